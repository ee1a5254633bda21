"""The database: tables (``models``, the recruitment tables in ``recruitment``), the engine and request
sessions (``extensions``), what a database outage looks like (``outages``) and how the app answers one
(``faults``), and the Alembic schema commands (``schema``).

Stands on ``core``; every room above reads and writes the study's state through it.
"""
