"""The database extension: one SQLAlchemy engine and session factory per app, bound in ``init_app``.

Plain SQLAlchemy 2 (no Flask-SQLAlchemy). ``db.session`` is the request's session (created on first use,
closed when the app context ends); ``db.engine`` the app's engine. Outside a request (CLI, tests) use
``db.session`` inside ``app.app_context()`` or ``make_engine(url)`` + ``Session(engine)`` directly.

SQLite: WAL journal, a busy timeout, foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE`` - it takes the write lock up front, so two writers queue on the busy timeout instead
of failing with "database is locked" when a read transaction later tries to write (WAL's snapshot
rule). That also makes the batch allocation atomic on SQLite (see ``assignment.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from study_server.store.outages import classify

_EXT_KEY = "emostudy_db"


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20, busy_timeout_ms: int = 30000,
                echo: bool = False, pre_ping: bool = False, pool_recycle_s: int = 1800,
                connect_timeout_s: int = 5) -> Engine:
    """An engine for ``url`` with the SQLite pragmas or the PostgreSQL pool settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000,
                                                             "check_same_thread": False})
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    # pre_ping costs a round trip per request; recycling old connections covers the usual causes of dead ones.
    # connect_timeout: a server that does not answer makes the request fail (503, study_server.store.faults) in
    # seconds instead of holding a worker thread for the operating system's TCP timeout.
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=pre_ping,
                         pool_recycle=pool_recycle_s, connect_args={"connect_timeout": int(connect_timeout_s)})


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001 - DB-API objects
        # Let SQLAlchemy's "begin" event issue BEGIN (pysqlite's own transaction handling defers it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass
class _State:
    engine: Engine
    sessions: sessionmaker[Session]


class Database:
    """``db = Database()``; ``db.init_app(app)`` binds it to an app (several apps may coexist in tests)."""

    def init_app(self, app: Flask) -> None:
        c = app.config
        engine = make_engine(c["DATABASE_URL"], pool_size=c.get("DATABASE_POOL_SIZE", 10),
                             max_overflow=c.get("DATABASE_MAX_OVERFLOW", 20),
                             busy_timeout_ms=c.get("SQLITE_BUSY_TIMEOUT_MS", 30000),
                             echo=bool(c.get("DATABASE_ECHO", False)),
                             pre_ping=bool(c.get("DATABASE_PRE_PING", False)),
                             pool_recycle_s=int(c.get("DATABASE_POOL_RECYCLE_S", 1800)),
                             connect_timeout_s=int(c.get("DATABASE_CONNECT_TIMEOUT_S", 5)))
        app.extensions[_EXT_KEY] = _State(engine, sessionmaker(engine, expire_on_commit=False))
        app.teardown_appcontext(_close_session)

    @staticmethod
    def _state(app: Flask | None = None) -> _State:
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return app.extensions[_EXT_KEY]
        except KeyError:
            raise RuntimeError("the database is not bound to this app: call db.init_app(app) "
                               "(create_app does it)") from None

    @property
    def engine(self) -> Engine:
        return self._state().engine

    def sessionmaker(self, app: Flask | None = None) -> sessionmaker[Session]:
        return self._state(app).sessions

    @property
    def session(self) -> Session:
        """The session of the current app context (one per request)."""
        session = g.get("_emostudy_session")
        if session is None:
            session = g._emostudy_session = self._state().sessions()
        return session

    def dispose(self, app: Flask) -> None:
        """Close the pool's connections (tests, forked workers)."""
        state = app.extensions.get(_EXT_KEY)
        if state is not None:
            state.engine.dispose()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("_emostudy_session", None)
    if session is None:
        return
    try:
        session.close()  # rolls back what is left open: a round trip, which fails if the database just went away
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is a database fault (study_server.store.faults)
        kind = classify(exc)
        if kind is None:
            raise
        # The reply is made (or is a 503) and nothing was left to commit; SQLAlchemy has dropped the broken
        # connection. Counted in the incident's log line, never a traceback after a finished request.
        incidents = current_app.extensions.get("emostudy_db_incidents")
        if incidents is not None:
            incidents.failed(exc, kind)


db = Database()
