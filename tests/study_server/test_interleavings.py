"""Issue #20 on PostgreSQL: every interleaving of an arrival with a participant's own write, forced.

An arrival's allocation statement expires idle participants and counts the places. A participant who was
idle past the timeout writes their own row at the same moment (refresh on a page load, start, sound check,
answer save, completion). Each test holds that participant's transaction open *after it wrote the row and
before its COMMIT* (a hook on the engine's ``commit`` event, or an explicit transaction for the fast path's
one statement), starts the arrival in a thread, waits until PostgreSQL reports the arrival as waiting for
a lock (``pg_stat_activity.wait_event_type = 'Lock'``: an observed state, not a sleep), then lets the
participant commit. Afterwards no batch holds more active-or-valid participants than its quota, nobody
who completed is expired, and no request failed (a deadlock would show as a database error).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import contextmanager
from typing import Callable

import pytest
from sqlalchemy import event, select, text, update

from study_server.study.audio_check import expected_word
from study_server.store.extensions import db
from study_server.store.models import Assignment, Batch
from studykit import TASK2, arrive, import_study, make_plan, valid_values

pytestmark = pytest.mark.postgres

TIMEOUT_S = 600


@pytest.fixture
def study(pg_app, media_set, tmp_path):
    """One batch, quota 2, a sound check; two participants started and past it, then idle past the timeout."""
    pg_app.config["ASSIGNMENT_TIMEOUT_S"] = TIMEOUT_S
    name = import_study(pg_app, make_plan(media_set, TASK2, name="tight", n_batches=1, quota=2, audio_check=True,
                                          out=tmp_path / "tight.json"), media_set)
    client = pg_app.test_client()
    tokens = [arrive(client, name, lab=f"p{i}") for i in range(2)]
    for token in tokens:
        assert client.post(f"/api/v1/a/{token}/start").status_code == 200
    return name, tokens


def _pass_audio(client, app, token: str) -> None:
    word = expected_word(app.config["SECRET_KEY"], token, 0)
    assert client.post(f"/api/v1/a/{token}/audio-check", json={"answer": word}).get_json()["passed"]


def _answer_all(client, token: str) -> None:
    state = client.get(f"/api/v1/a/{token}").get_json()
    for item in state["items"]:
        r = client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"{token[:8]}-{item['position']}", "position": item["position"],
            "values": valid_values(state["questions"]), "rt_ms": 900, "played_fraction": 1.0})
        assert r.status_code == 200, r.get_json()


def _age(app, token: str, seconds: float) -> None:
    with app.app_context():
        db.session.execute(update(Assignment).where(Assignment.token == token).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)))
        db.session.commit()


def _wait_until_an_arrival_waits_for_a_lock(app, timeout_s: float = 20.0) -> None:
    """Poll PostgreSQL until the arrival's statement is blocked on a lock (the hook's condition)."""
    deadline = time.monotonic() + timeout_s
    with app.app_context():
        engine = db.engine
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            n = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%WITH expired AS%'")).scalar_one()
            conn.rollback()
            if n:
                return
            time.sleep(0.01)
    raise AssertionError("the arrival never waited for the participant's row: the interleaving was not forced")


class _Arrival(threading.Thread):
    def __init__(self, app, study: str, worker: str) -> None:
        super().__init__(daemon=True)
        self.app, self.study, self.worker = app, study, worker
        self.status: int | None = None
        self.body: dict | None = None

    def run(self) -> None:
        r = self.app.test_client().post(f"/api/v1/studies/{self.study}/arrive",
                                        json={"query": {"lab": self.worker}})
        self.status, self.body = r.status_code, r.get_json()


@contextmanager
def _arrival_during_commit(app, study: str, worker: str):
    """While the body runs, the first COMMIT in this thread waits for an arrival that waits for our row."""
    me = threading.get_ident()
    arrival = _Arrival(app, study, worker)

    def hook(conn) -> None:  # noqa: ANN001 - SQLAlchemy's Connection
        if threading.get_ident() != me or arrival.is_alive() or arrival.status is not None:
            return
        arrival.start()
        _wait_until_an_arrival_waits_for_a_lock(app)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "commit", hook)
    try:
        yield arrival
    finally:
        event.remove(engine, "commit", hook)
    arrival.join(30)
    assert arrival.status is not None, "the arrival did not run"


def _check_invariants(app, completed: tuple[str, ...] = ()) -> dict[str, str]:
    with app.app_context():
        rows = db.session.execute(select(Assignment.token, Assignment.status, Assignment.batch_id)).all()
        quotas = dict(db.session.execute(select(Batch.id, Batch.quota)).all())
        from study_server.study.assignment import occupancy

        study_id = db.session.scalar(select(Assignment.study_id).limit(1))
        counts = occupancy(db.session, study_id)
    for batch_id, n in counts.items():
        assert n <= quotas[batch_id], f"batch {batch_id} holds {n} participants, quota {quotas[batch_id]}"
    statuses = {token: status for token, status, _ in rows}
    for token in completed:
        assert statuses[token] == "completed", f"a participant who completed ended {statuses[token]}"
    return statuses


# The participant's own writes, as the routes make them (each commits once, inside the hook's window).
def _touch(client, app, token):  # api._touch (a page load)
    r = client.get(f"/api/v1/a/{token}")
    assert r.status_code == 200, r.get_json()


def _start(client, app, token):  # assignment.start's refresh (start is idempotent)
    r = client.post(f"/api/v1/a/{token}/start")
    assert r.status_code == 200, r.get_json()


def _audio(client, app, token):  # the sound check's refresh (a wrong word: an attempt used)
    r = client.post(f"/api/v1/a/{token}/audio-check", json={"answer": "notaword"})
    assert r.status_code == 200, r.get_json()


PATHS: dict[str, Callable] = {"touch": _touch, "start": _start, "audio": _audio}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_refresh_during_an_arrival_keeps_the_quota(pg_app, study, path):
    name, (p0, p1) = study
    client = pg_app.test_client()
    _age(pg_app, p0, TIMEOUT_S + 1)
    with _arrival_during_commit(pg_app, name, "newcomer") as arrival:
        PATHS[path](client, pg_app, p0)
    # p0 refreshed before the arrival's expiry could take its row: p0 stays, the newcomer finds it full.
    assert arrival.status == 409 and arrival.body["error"]["code"] == "study_full", arrival.body
    statuses = _check_invariants(pg_app)
    assert statuses[p0] == "started"


def test_answer_save_statement_during_an_arrival_keeps_the_quota(pg_app, study):
    """The fast path's (and try_save_pg's) refresh is one autocommit statement: its row lock is held while it
    runs. The same statement inside an explicit transaction holds the lock until we say."""
    from study_server.participant.fastpath import _TOUCH_SQL

    name, (p0, p1) = study
    _age(pg_app, p0, TIMEOUT_S + 1)
    with pg_app.app_context():
        aid = db.session.scalar(select(Assignment.id).where(Assignment.token == p0))
        raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        now = dt.datetime.now(dt.timezone.utc)
        cur.execute(_TOUCH_SQL, {"now": now, "aid": aid, "before": now - dt.timedelta(seconds=20)})
        arrival = _Arrival(pg_app, name, "newcomer")
        arrival.start()
        _wait_until_an_arrival_waits_for_a_lock(pg_app)
        raw.commit()
    finally:
        raw.close()
    arrival.join(30)
    assert arrival.status == 409 and arrival.body["error"]["code"] == "study_full", arrival.body
    assert _check_invariants(pg_app)[p0] == "started"


def test_completion_during_an_arrival_is_neither_a_deadlock_nor_expired(pg_app, study):
    name, (p0, p1) = study
    client = pg_app.test_client()
    _pass_audio(client, pg_app, p0)
    _answer_all(client, p0)
    _age(pg_app, p0, TIMEOUT_S + 1)
    with _arrival_during_commit(pg_app, name, "newcomer") as arrival:
        r = client.post(f"/api/v1/a/{p0}/complete")
    assert r.status_code == 200, r.get_json()
    assert arrival.status == 409 and arrival.body["error"]["code"] == "study_full", arrival.body  # a valid survey keeps its place
    _check_invariants(pg_app, completed=(p0,))


def test_a_row_written_twice_does_not_deadlock_with_an_arrival(pg_app, study):
    """The cycle of issue #20: a participant's transaction writes its row, an arrival takes the study's lock
    and waits for that row, the participant writes the row again (PostgreSQL re-checks its foreign keys,
    which needs a KEY SHARE lock on the study's row) and commits. With the study locked FOR UPDATE this
    was a deadlock; FOR NO KEY UPDATE lets the foreign-key check through."""
    name, (p0, p1) = study
    _age(pg_app, p0, TIMEOUT_S + 1)
    with pg_app.app_context():
        aid = db.session.scalar(select(Assignment.id).where(Assignment.token == p0))
        engine = db.engine
    with engine.connect() as conn:
        conn.execute(text("SET deadlock_timeout = '200ms'"))
        conn.execute(update(Assignment).where(Assignment.id == aid).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc)))
        arrival = _Arrival(pg_app, name, "newcomer")
        arrival.start()
        _wait_until_an_arrival_waits_for_a_lock(pg_app)
        conn.execute(update(Assignment).where(Assignment.id == aid).values(status="completed"))  # raises on a deadlock
        conn.commit()
    arrival.join(30)
    assert arrival.status == 409, arrival.body
    _check_invariants(pg_app, completed=(p0,))


def test_arrival_holds_and_the_refresh_interleave_too(pg_app, study):
    """A hold that lapses while its owner starts at that instant: start wins or the hold is freed, never both."""
    name, (p0, p1) = study
    client = pg_app.test_client()
    assert client.post(f"/api/v1/a/{p1}/return").status_code == 200  # a free place
    late = arrive(client, name, lab="slow-reader")  # allocated, not started
    with pg_app.app_context():
        db.session.execute(update(Assignment).where(Assignment.token == late).values(
            allocated_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=181)))
        db.session.commit()
    with _arrival_during_commit(pg_app, name, "newcomer") as arrival:
        assert client.post(f"/api/v1/a/{late}/start").status_code == 200
    assert arrival.status == 409, arrival.body  # the hold became a start before the arrival could free it
    assert _check_invariants(pg_app)[late] == "started"
