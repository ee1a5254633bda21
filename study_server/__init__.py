"""The study server (Flask + SQLAlchemy). Nothing connects or starts at import.

Rooms, each a package saying what it owns, on floors (a room imports only the rooms below it; the table is
``STUDY_SERVER_FLOORS`` in tests/test_boundaries.py)::

    commands/                       emostudy db | study | serve | export | recruit
    app.py                          create_app: wires the surfaces
    admin/                          the researcher's pages            -> recruit, export, study, web, store, core
    participant/                    the participant's pages and API   -> study, web, store, core
    recruit/   export/              platforms and payments; exports   -> study, store, core
    study/                          the study's state and rules       -> store, core
    web/                            HTTP plumbing                     -> core
    store/                          tables, engine, database faults   -> core
    core/                           settings, errors
"""
