"""Models, the migration 0001 and the plan import."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from study_server.core.errors import StudyImportError
from study_server.store.extensions import db
from study_server.store.models import Batch, Item, Study, StudyStimulus

from studykit import TASK1, import_study, make_plan


def test_migration_matches_models(_migrated_template):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import study_server.store.recruitment  # noqa: F401 - its tables are part of the metadata too
    from study_server.store import schema as dbmod
    from study_server.store.models import Base

    url = f"sqlite:///{_migrated_template}"
    assert dbmod.current(url) == dbmod.head_revisions()
    engine = dbmod.make_migration_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_import_stores_plan_batches_items_and_labels(app, media_set, tmp_path):
    plan_path = make_plan(media_set, TASK1, out=tmp_path / "p.json", n_batches=2, quota=3)
    name = import_study(app, plan_path, media_set)
    with app.app_context():
        s = db.session
        study = s.scalar(select(Study).where(Study.name == name))
        assert study.task == TASK1 and study.quota_per_batch == 3
        assert study.plan_json == plan_path.read_text()  # the file's exact text
        assert [b.key for b in study.batches] == ["b01", "b02"]
        assert all(b.quota == 3 for b in study.batches)
        items = study.batches[0].items
        assert [i.position for i in items] == list(range(9))
        assert [i.repeat_of for i in items] == [None] * 6 + [0, 1, 2]
        assert items[6].stimulus_pk == items[0].stimulus_pk
        plan = json.loads(plan_path.read_text())
        assert [i.stimulus.stimulus_id for i in items] == [it["stimulus_id"] for it in plan["batches"][0]["items"]]
        stim = s.scalar(select(StudyStimulus).where(StudyStimulus.study_id == study.id,
                                                    StudyStimulus.stimulus_id == "stim01"))
        assert stim.labels["source"] == "BL" and stim.labels["visual_emotion"] == "disgust"
        assert study.created_at.tzinfo is not None and study.created_at.utcoffset() == dt.timedelta(0)
        assert s.scalar(select(func.count()).select_from(Item)) == 18


def test_second_import_refused_then_replaced(app, media_set, tmp_path):
    plan_path = make_plan(media_set, TASK1, out=tmp_path / "p.json")
    import_study(app, plan_path, media_set)
    with pytest.raises(StudyImportError, match="already imported"):
        import_study(app, plan_path, media_set)
    import_study(app, plan_path, media_set, replace=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Study)) == 1
        assert db.session.scalar(select(func.count()).select_from(Batch)) == 2


def test_import_refuses_plan_of_another_set(app, media_set, tmp_path):
    plan = json.loads(make_plan(media_set, TASK1, out=tmp_path / "p.json").read_text())
    plan["manifest_sha256"] = "1" * 64
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(plan))
    with pytest.raises(StudyImportError, match="manifest_sha256"):
        import_study(app, bad, media_set)


def test_production_needs_secret_key(tmp_path, monkeypatch):
    from study_server.app import create_app
    from study_server.core.errors import ConfigError

    monkeypatch.delenv("EMOSTUDY_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="EMOSTUDY_SECRET_KEY"):
        create_app({"ENV_NAME": "production", "INSTANCE_PATH": str(tmp_path)})


def test_env_overrides_and_masking(tmp_path, monkeypatch):
    from study_server.core.config import build_config, describe_config, finalize_config

    monkeypatch.setenv("EMOSTUDY_DATABASE_URL", "postgresql://u:hunter2@db.example/emo")
    monkeypatch.setenv("EMOSTUDY_ASSIGNMENT_TIMEOUT_S", "60")
    monkeypatch.setenv("EMOSTUDY_ADMIN_PASSWORD", "correct horse")
    values = finalize_config(build_config("production" if False else None), tmp_path)
    assert values["DATABASE_URL"] == "postgresql+psycopg://u:hunter2@db.example/emo"
    assert values["ASSIGNMENT_TIMEOUT_S"] == 60
    assert values["ADMIN_PASSWORD"] is None and values["ADMIN_PASSWORD_HASH"].startswith(("scrypt", "pbkdf2"))
    shown = json.dumps(describe_config(values))
    assert "hunter2" not in shown and "correct horse" not in shown and values["SECRET_KEY"] not in shown


def test_default_database_is_sqlite_in_instance_folder(tmp_path, monkeypatch):
    from study_server.core.config import build_config, finalize_config

    monkeypatch.delenv("EMOSTUDY_DATABASE_URL", raising=False)
    values = finalize_config(build_config("development"), tmp_path / "inst")
    assert values["DATABASE_URL"] == f"sqlite:///{tmp_path / 'inst' / 'emostudy.sqlite3'}"
    assert (tmp_path / "inst" / "secret_key").stat().st_mode & 0o077 == 0
