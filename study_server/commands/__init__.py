"""The command-line verbs the shell's command table runs: ``server`` (db, study import, serve, export) and
``recruit`` (open, sync, bonus, ...). The top floor: each command builds the app and imports its work
only when it runs, so that ``emostudy --help`` loads neither Flask nor SQLAlchemy.
"""
