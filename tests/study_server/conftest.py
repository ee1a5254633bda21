"""Shared fixtures of the study-server tests (used by the server, admin/export and recruitment tests).

Stable interface (other test files rely on these names and signatures). Plain functions live in
``studykit.py`` (``from studykit import make_plan, arrive, ...``: pytest puts this folder on sys.path).

- ``media_set`` (session): a tiny stimulus set folder (12 real H.264+AAC mp4 files, 64x64, 0.4 s,
  manifest.json). Sources GT/BL/OURS; ``visual_emotion``/``audio_emotion`` cycle through the six emotions.
- ``make_plan(set_dir, task="emotion-realness" | "av-mismatch", *, name=None, n_batches=2, quota=2,
  exclude_studies=(), audio_check=None) -> Path``: writes a valid plan (stimuli.plan.validate_plan) for the
  set. Task 1 batches: 6 originals + 3 repeats (9 items, 3 questions: emotion/realness/aspects, 9 repeat
  answers, reject when > 5 inconsistent); Task 2: 4 originals + 2 repeats (6 items, primary/secondary,
  4 repeat answers, reject when > 2). Also available as the fixture ``plan_factory``.
- ``app`` / ``client`` / ``runner``: the app on a fresh SQLite file (migrated with Alembic) per test;
  ``app_config`` (dict) may be overridden by a test module to change settings.
- ``import_study(app, plan_path, set_dir, replace=False) -> str`` (fixture ``study_importer``): imports, returns the name.
- ``task1_study`` / ``task2_study``: the name of an imported study (2 batches, quota 2).
- ``pg_url`` / ``pg_app``: a fresh PostgreSQL database per test (and the app on it, migrated); skipped
  locally without EMOSTUDY_TEST_POSTGRES_URL, an error in CI.
- ``arrive(client, study, **query) -> str``: JSON arrival, returns the assignment token.
- ``valid_values(plan_or_questions, variant=0) -> dict``: a valid answer (the variant-th option) to every question.
- ``complete_session(client, token, variant_for=None) -> dict``: start, audio check, answer all, complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from studykit import CHROMIUM_ARGS, TASK1, TASK2, build_media_set, import_study, make_plan, serve_in_thread

@pytest.fixture(scope="session")
def media_set(tmp_path_factory) -> Path:
    return build_media_set(tmp_path_factory.mktemp("set") / "tiny-set")


@pytest.fixture
def plan_factory() -> Callable[..., Path]:
    return make_plan


# --------------------------------------------------------------------------------------------- app

@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> Path:
    from study_server.store import schema as db

    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module to change settings (merged into the testing config)."""
    return {}


@pytest.fixture
def app(tmp_path, _migrated_template, app_config):
    from study_server.app import create_app
    from study_server.store.extensions import db

    path = tmp_path / "emostudy.sqlite3"
    shutil.copyfile(_migrated_template, path)
    config = {"TESTING": True, "DATABASE_URL": f"sqlite:///{path}", "INSTANCE_PATH": str(tmp_path / "instance"),
              "SECRET_KEY": "test-secret", **app_config}
    app = create_app(config)
    yield app
    db.dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def study_importer() -> Callable[..., str]:
    return import_study


@pytest.fixture
def task1_study(app, media_set, tmp_path) -> str:
    return import_study(app, make_plan(media_set, TASK1, out=tmp_path / "plan1.json"), media_set)


@pytest.fixture
def task2_study(app, media_set, tmp_path) -> str:
    return import_study(app, make_plan(media_set, TASK2, out=tmp_path / "plan2.json"), media_set)


@pytest.fixture
def plan_json(app):
    """``plan_json(study_name) -> dict``: the stored plan of an imported study."""
    def _get(name: str) -> dict:
        from sqlalchemy import select

        from study_server.store.extensions import db
        from study_server.store.models import Study

        with app.app_context():
            return json.loads(db.session.scalar(select(Study.plan_json).where(Study.name == name)))
    return _get


@pytest.fixture
def pg_url(postgres_url):
    """A fresh, empty PostgreSQL database for one test (created from ``postgres_url``, dropped after)."""
    import secrets as _secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from study_server.core.config import normalize_database_url

    base = make_url(normalize_database_url(postgres_url))
    name = f"emostudy_t_{_secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_app(pg_url, tmp_path):
    """The app on a fresh, migrated PostgreSQL database (skipped without EMOSTUDY_TEST_POSTGRES_URL)."""
    from study_server.store import schema as dbmod
    from study_server.app import create_app
    from study_server.store.extensions import db

    dbmod.upgrade(pg_url)
    app = create_app({"TESTING": True, "DATABASE_URL": pg_url, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "SECRET_KEY": "test-secret", "DATABASE_POOL_SIZE": 10, "DATABASE_MAX_OVERFLOW": 10})
    yield app
    db.dispose(app)


@pytest.fixture
def live_server(app):
    """The app served over HTTP on a free local port (browser tests); yields the base URL."""
    with serve_in_thread(app) as base:
        yield base


@pytest.fixture
def browser(chromium_path):
    """Debian's Chromium, headless, driven by Playwright (skipped without it locally; an error in CI)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()
