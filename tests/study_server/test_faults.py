"""Database faults (study_server.store.faults): 503 + Retry-After, bounded retries, one log line per incident.

These tests make the faults in-process (a refused port, errors raised where the database would raise
them); tests/study_server/test_db_restart.py stops and restarts a real PostgreSQL cluster under load.
"""

from __future__ import annotations

import logging
import socket
import sqlite3

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from study_server.study import assignment as assign
from study_server.store.faults import Incidents
from study_server.store.outages import TRANSIENT, UNAVAILABLE, classify
from studykit import arrive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrapped(orig: Exception) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


def test_classify():
    assert classify(_wrapped(psycopg.OperationalError("connection refused"))) == UNAVAILABLE
    assert classify(psycopg.errors.AdminShutdown("terminating connection due to administrator command")) == UNAVAILABLE
    assert classify(psycopg.errors.CannotConnectNow("the database system is starting up")) == UNAVAILABLE
    assert classify(_wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))) == TRANSIENT
    assert classify(psycopg.errors.SerializationFailure("could not serialize access")) == TRANSIENT
    assert classify(sa_exc.TimeoutError("QueuePool limit reached")) == UNAVAILABLE
    # Bugs and refusals stay what they are.
    assert classify(sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))) is None
    import sqlite3

    assert classify(_wrapped(sqlite3.OperationalError("no such table: answers"))) is None
    assert classify(_wrapped(sqlite3.OperationalError("database is locked"))) == TRANSIENT
    assert classify(ValueError("x")) is None


def test_refused_database_gives_503_json_with_retry_after_and_one_log_line(tmp_path, caplog):
    """A real connection refusal: nothing listens on the port."""
    from study_server.app import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": f"postgresql+psycopg://x:y@127.0.0.1:{_free_port()}/none",
                      "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "k", "DATABASE_RETRY_AFTER_S": 7})
    client = app.test_client()
    caplog.set_level(logging.INFO)
    for _ in range(5):
        r = client.post("/api/v1/studies/anything/arrive", json={"query": {"lab": "w1"}})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "7"
        assert r.get_json()["error"]["code"] == "database_unavailable"
        r = client.get("/api/v1/a/" + "A" * 32)
        assert r.status_code == 503 and r.get_json()["error"]["code"] == "database_unavailable"
    r = client.get("/s/anything?lab=w2")  # a participant page: a page that says it will pass, still 503
    assert r.status_code == 503 and r.headers["Retry-After"] == "7" and b"Please wait" in r.data
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and "database unavailable" in errors[0].getMessage(), [e.getMessage() for e in errors]
    assert not any(rec.exc_info for rec in caplog.records)  # no traceback per request
    assert app.extensions["emostudy_db_incidents"].count == 11


def test_transient_faults_are_retried_then_503(client, app, task1_study, monkeypatch, caplog):
    real = assign.allocate
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise _wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(assign, "allocate", flaky)
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "w1"}})
    assert r.status_code == 201 and calls["n"] == 3  # two deadlocks, then the third run succeeds

    calls["n"] = 0
    app.config["DATABASE_TRANSIENT_RETRIES"] = 2

    def always(*args, **kwargs):
        calls["n"] += 1
        raise _wrapped(psycopg.errors.SerializationFailure("could not serialize access"))

    monkeypatch.setattr(assign, "allocate", always)
    caplog.set_level(logging.INFO)
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "w2"}})
    assert r.status_code == 503 and calls["n"] == 3
    assert r.get_json()["error"]["code"] == "database_busy" and r.headers["Retry-After"] == "5"
    monkeypatch.setattr(assign, "allocate", real)
    arrive(client, task1_study, lab="w3")  # the next success ends the incident: one line for it
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "study_server.store.faults"]
    assert len(lines) == 2 and "database busy" in lines[0] and "available again" in lines[1], lines


def test_other_errors_stay_500(client, app, task1_study, monkeypatch):
    def broken(*args, **kwargs):
        raise sa_exc.IntegrityError("INSERT", {}, psycopg.errors.NotNullViolation("null value"))

    monkeypatch.setattr(assign, "allocate", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "w1"}})
    assert r.status_code == 500


def test_incidents_log_once_and_count():
    records: list[str] = []

    class _Log:
        def error(self, msg, *args):
            records.append(msg % args)

        def warning(self, msg, *args):
            records.append(msg % args)

    t = [100.0]
    inc = Incidents(logger=_Log(), clock=lambda: t[0])  # type: ignore[arg-type]
    for _ in range(50):
        inc.failed(psycopg.OperationalError("connection refused"), UNAVAILABLE)
    t[0] = 112.5
    inc.recovered()
    inc.recovered()
    inc.failed(psycopg.OperationalError("connection refused"), UNAVAILABLE)
    assert len(records) == 3 and inc.incidents == 2
    assert "after 12.5 s; 50 request(s)" in records[1]
    t[0] = 150.0  # within a minute of the last fault: the same incident
    inc.failed(psycopg.OperationalError("connection refused"), UNAVAILABLE)
    assert len(records) == 3
    t[0] = 211.0  # a minute with no fault (its end went unseen): a new incident, a new line
    inc.failed(psycopg.OperationalError("connection refused"), UNAVAILABLE)
    assert len(records) == 4 and inc.incidents == 3


@pytest.mark.postgres
def test_database_lost_after_the_reply_is_made_is_not_an_error(pg_app, media_set, tmp_path):
    """The database goes away between the view's return and the request's teardown (whose rollback then
    fails): the client still gets the reply that was made, and the loss is counted, not raised."""
    from sqlalchemy import text

    from study_server.store.extensions import db
    from studykit import TASK1, import_study, make_plan

    name = import_study(pg_app, make_plan(media_set, TASK1, name="lost", out=tmp_path / "lost.json"), media_set)
    with pg_app.app_context():
        killer = db.engine

    @pg_app.after_request
    def _kill_backend(response):
        pid = db.session.connection().connection.driver_connection.info.backend_pid
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return response

    r = pg_app.test_client().get(f"/api/v1/studies/{name}")  # a read: its transaction is still open
    assert r.status_code == 200 and r.get_json()["name"] == name
    assert pg_app.extensions["emostudy_db_incidents"].incidents == 1


def test_a_read_only_database_is_unavailable():
    """Issue 29: SQLSTATE 25006 (a database set read-only, or a standby after a fail-over) is an outage."""
    assert classify(_wrapped(psycopg.errors.ReadOnlySqlTransaction(
        "cannot execute INSERT in a read-only transaction"))) == UNAVAILABLE
    assert classify(_wrapped(sqlite3.OperationalError("attempt to write a readonly database"))) == UNAVAILABLE


@pytest.mark.postgres
def test_a_read_only_postgres_answers_503_with_retry_after(pg_url, tmp_path, media_set):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from study_server.app import create_app
    from study_server.store import schema as dbmod
    from study_server.store.extensions import db
    from studykit import TASK1, arrive, import_study, make_plan

    dbmod.upgrade(pg_url)
    app = create_app({"TESTING": True, "DATABASE_URL": pg_url, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "SECRET_KEY": "test-secret"})
    try:
        name = import_study(app, make_plan(media_set, TASK1, out=tmp_path / "ro.json", name="ro"), media_set)
        client = app.test_client()
        token = arrive(client, name, lab="ro-1")
        database = make_url(pg_url).database
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
        admin.dispose()
        db.dispose(app)  # new connections get the setting
        for r in (client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "ro-2"}}),
                  client.post(f"/api/v1/a/{token}/start")):
            assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.data[:300])
    finally:
        db.dispose(app)
