"""Schema management: Alembic migrations run programmatically (``emostudy db upgrade`` calls these).

The migration scripts live in the top-level ``migrations`` package (installed with emostudy), so this
works from a wheel as well as from a checkout; no alembic.ini is needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from study_server.core.config import normalize_database_url

HEAD = "heads"  # every branch's head (recruitment adds its own revision on top of 0001_initial)


def migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'migrations' package is not installed next to study_server; "
                           "reinstall emostudy (pip install 'emostudy[server]')")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str):
    """An Alembic ``Config`` for ``url`` (the URL is passed in memory, never written or logged)."""
    from alembic.config import Config  # optional heavy dependency: Alembic loads only for schema commands

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = normalize_database_url(url)
    return cfg


def make_migration_engine(url: str, **kwargs) -> Engine:
    """An engine for migrations. SQLite: foreign keys off (batch migrations copy tables), transactional DDL."""
    url = normalize_database_url(url)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.isolation_level = None
            if engine.url.database not in (None, "", ":memory:"):
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN")
    return engine


def upgrade(url: str, revision: str = HEAD) -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest)."""
    from alembic import command  # optional heavy dependency: Alembic loads only for schema commands

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate down to ``revision`` (default: an empty schema)."""
    from alembic import command  # optional heavy dependency: Alembic loads only for schema commands

    command.downgrade(alembic_config(url), revision)


def current(url: str) -> tuple[str, ...]:
    """The revision(s) the database is at (empty for a database never migrated)."""
    # optional heavy dependency: Alembic loads only for schema commands
    from alembic.runtime.migration import MigrationContext

    engine = make_migration_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def head_revisions() -> tuple[str, ...]:
    # optional heavy dependency: Alembic loads only for schema commands
    """The newest revision(s) of the migration scripts."""
    from alembic.script import ScriptDirectory  # optional heavy dependency: imported only when used

    return tuple(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))


def is_up_to_date(url: str) -> bool:
    return current(url) == head_revisions()
