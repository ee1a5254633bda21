"""The participant's path: the pages (``pages``: ad, consent, trials, completion, media), the JSON API
(``api``), the listening checks' routes (``listening``), arrival holds and rate limits (``holds``), the
fast answer-save path (``fastpath``), and a simulated participant that walks the same path over HTTP
(``simulate``).

Stands on ``study``, ``web``, ``store`` and ``core``.
"""
