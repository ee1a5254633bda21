"""Issue 29 on PostgreSQL: the stale-status race, forced.

A participant's request reads their assignment (started, or allocated) when it begins. Before it writes,
an arrival expires that assignment (idle past the timeout, or not started within the arrival hold) and takes
its place, and commits. The request then writes. Before the fix it wrote ``status`` by primary key from the
status it had read and the batch held quota + 1; now the write is conditional (``WHERE status IN
(allocated, started)``) and, when it changes nothing, the assignment is revived under the study's lock only if
its batch has room. The interleaving is forced: the arrival runs to its COMMIT inside the request, at the
point after the request read its status and before it wrote (a wrapper around the function called there).
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select, update

from study_server.store.extensions import db
from study_server.store.models import Assignment
from study_server.study.assignment import occupancy
from studykit import TASK1, arrive, import_study, make_plan, valid_values, watch

pytestmark = pytest.mark.postgres

TIMEOUT_S = 600


def _arrive_in_thread(app, study, worker):
    out = {}

    def run():
        r = app.test_client().post(f"/api/v1/studies/{study}/arrive", json={"query": {"lab": worker}})
        out["status"], out["body"] = r.status_code, r.get_json()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert "status" in out, "the arrival did not finish: it waited for the participant's request"
    return out


def _age(app, token, **columns):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=TIMEOUT_S * 2)
    with app.app_context():
        db.session.execute(update(Assignment).where(Assignment.token == token).values(**{c: past for c in columns}))
        db.session.commit()


def _occupancy(app):
    with app.app_context():
        study_id = db.session.scalar(select(Assignment.study_id))
        return occupancy(db.session, study_id)


def _status(app, token):
    with app.app_context():
        return db.session.scalar(select(Assignment.status).where(Assignment.token == token))


@pytest.fixture
def study(pg_app, media_set, tmp_path):
    pg_app.config["ASSIGNMENT_TIMEOUT_S"] = TIMEOUT_S
    return import_study(pg_app, make_plan(media_set, TASK1, name="stale", n_batches=1, quota=2,
                                          out=tmp_path / "stale.json"), media_set)


def test_completion_after_an_arrival_took_the_place_never_overfills(pg_app, study, monkeypatch):
    from study_server.study import consistency

    client = pg_app.test_client()
    tokens = [arrive(client, study, lab=f"c{i}") for i in range(2)]
    state = client.post(f"/api/v1/a/{tokens[0]}/start").get_json()
    assert client.post(f"/api/v1/a/{tokens[1]}/start").status_code == 200
    for item in state["items"]:
        watch(client, item)
        assert client.post(f"/api/v1/a/{tokens[0]}/answers", json={
            "answer_id": f"stale-{item['position']:04d}", "position": item["position"],
            "values": valid_values(state["questions"]), "rt_ms": 900, "played_fraction": 1.0}).status_code == 200
    _age(pg_app, tokens[0], last_seen_at=1)  # idle past the timeout: the next arrival expires them
    original, seen = consistency.answers_by_position, {}

    def arrival_in_between(session, ctx):
        if not seen:  # the request read 'started'; now the arrival expires it and takes its place
            seen["arrival"] = _arrive_in_thread(pg_app, study, "newcomer")
        return original(session, ctx)
    monkeypatch.setattr(consistency, "answers_by_position", arrival_in_between)
    done = client.post(f"/api/v1/a/{tokens[0]}/complete")
    assert seen["arrival"]["status"] == 201
    counts = _occupancy(pg_app)
    assert max(counts.values()) <= 2, counts  # the quota: never 3 of 2
    assert done.status_code == 409 and done.get_json()["error"]["code"] == "slot_expired", done.get_json()
    assert _status(pg_app, tokens[0]) == "expired"


def test_completion_revives_when_there_is_room(pg_app, study, monkeypatch):
    from study_server.study import consistency

    client = pg_app.test_client()
    token = arrive(client, study, lab="r0")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for item in state["items"]:
        watch(client, item)
        client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"room-{item['position']:04d}", "position": item["position"],
            "values": valid_values(state["questions"]), "rt_ms": 900, "played_fraction": 1.0})
    _age(pg_app, token, last_seen_at=1)
    original, seen = consistency.answers_by_position, {}

    def arrival_in_between(session, ctx):
        if not seen:
            seen["arrival"] = _arrive_in_thread(pg_app, study, "second")
        return original(session, ctx)
    monkeypatch.setattr(consistency, "answers_by_position", arrival_in_between)
    done = client.post(f"/api/v1/a/{token}/complete")
    assert done.status_code == 200, done.get_json()  # expired by the arrival, revived: a place was free
    assert _status(pg_app, token) == "completed" and max(_occupancy(pg_app).values()) == 2


def test_start_after_the_hold_lapsed_and_the_place_was_taken_never_overfills(pg_app, study, monkeypatch):
    from study_server.study import assignment

    pg_app.config["ARRIVAL_HOLD_S"] = 60
    client = pg_app.test_client()
    tokens = [arrive(client, study, lab=f"s{i}") for i in range(2)]
    assert client.post(f"/api/v1/a/{tokens[1]}/start").status_code == 200
    _age(pg_app, tokens[0], allocated_at=1)  # the hold lapsed: the next arrival releases the place
    original, seen = assignment.ensure_active, {}

    def arrival_in_between(session, a, **kw):
        if not seen:  # the request read 'allocated'; the arrival releases the hold and takes the place
            seen["arrival"] = _arrive_in_thread(pg_app, study, "taker")
        return original(session, a, **kw)
    monkeypatch.setattr(assignment, "ensure_active", arrival_in_between)
    r = client.post(f"/api/v1/a/{tokens[0]}/start")
    assert seen["arrival"]["status"] == 201
    assert max(_occupancy(pg_app).values()) <= 2
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "slot_expired", r.get_json()
    assert _status(pg_app, tokens[0]) == "expired"
