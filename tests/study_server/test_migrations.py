"""Alembic migrations on SQLite and PostgreSQL: upgrade head on an empty database, the models match the
migrated schema (autogenerate finds no difference), every revision downgrades, and the schema comes back.

PostgreSQL runs in a database of its own (created and dropped here), so that it never touches the shared
test database other tests use.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from study_server.store import schema as dbmod


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    from adminkit import fresh_postgres_database

    with fresh_postgres_database(request.getfixturevalue("postgres_url"), prefix="emostudy_mig") as url:
        yield url


def _tables(url: str) -> set[str]:
    engine = dbmod.make_migration_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _schema(url: str) -> dict[str, list[str]]:
    engine = dbmod.make_migration_engine(url)
    try:
        inspector = inspect(engine)
        return {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in inspector.get_table_names()}
    finally:
        engine.dispose()


def _diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from study_server.store.models import Base

    import study_server.store.recruitment  # noqa: F401  (its tables share the metadata, as in migrations/env.py)

    engine = dbmod.make_migration_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _revisions() -> list[str]:
    """Every revision from the first to the heads (base first)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(dbmod.alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def test_upgrade_head_models_match_downgrade_base(empty_url):
    from study_server.store.models import Base

    assert dbmod.current(empty_url) == ()
    assert _tables(empty_url) == set()
    dbmod.upgrade(empty_url)
    assert dbmod.current(empty_url) == dbmod.head_revisions()
    tables = _tables(empty_url)
    assert set(Base.metadata.tables) <= tables  # every model table exists (recruitment's included)
    assert _diff(empty_url) == []  # and matches its model column for column, index for index
    dbmod.downgrade(empty_url, "base")
    assert dbmod.current(empty_url) == ()
    assert _tables(empty_url) <= {"alembic_version"}
    dbmod.upgrade(empty_url)  # and back: downgrades leave nothing behind that blocks an upgrade
    assert _diff(empty_url) == []


def test_each_revision_steps_up_and_down(empty_url):
    revisions = _revisions()
    assert revisions[0] == "0001_initial"
    seen: list[dict[str, list[str]]] = []
    for revision in revisions:
        dbmod.upgrade(empty_url, revision)
        schema = _schema(empty_url)
        assert not seen or schema != seen[-1], f"{revision} changes nothing"
        seen.append(schema)
    # stepping down restores exactly the schema each earlier revision had
    for revision, schema in zip(reversed(revisions[:-1]), reversed(seen[:-1])):
        dbmod.downgrade(empty_url, revision)
        assert _schema(empty_url) == schema, f"downgrade to {revision}"
