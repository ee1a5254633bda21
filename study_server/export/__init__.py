"""What leaves the server for the analysis: the export folder (``tables``: answers.csv, participants.csv,
plan, manifest, codebook) and its Psych-DS dataset (``psychds``).

Stands on ``study``, ``store`` and ``core``.
"""
