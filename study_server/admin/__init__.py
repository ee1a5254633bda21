"""The researcher's pages: login (``auth``), counts and breakdowns (``stats``), the dashboard, study,
participant and holds pages and the export download (``pages``).

Stands on every room below it: ``recruit`` and ``export`` included.
"""
