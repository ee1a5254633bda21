"""Alembic environment: runs the migrations on the URL (or connection) that study_server.store.schema passes in.

The models' metadata is the autogenerate target; packages with their own tables add one import line.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from study_server.store.schema import make_migration_engine
from study_server.store.models import Base
import study_server.store.recruitment  # noqa: F401,E402  (recruitment tables)

# Modules whose tables belong to the same metadata (one import line each):
# study_server.store.recruitment is added here by the recruitment package.

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url") \
        or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run `emostudy db upgrade` or pass -x url=... to alembic")
    return url


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_migration_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
