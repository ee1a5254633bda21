"""The ground floor: the server's settings (``config``) and its exception hierarchy (``errors``).

Every other room may import it; it imports none of them.
"""
