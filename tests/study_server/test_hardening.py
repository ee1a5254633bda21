"""Issue 15 hardening: JSON limits (size, depth, chunked), ids with full matches, server-side admin sessions,
and the "media failed" record of a clip that would not load."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from study_server.store.extensions import db
from study_server.store.models import AdminSession, Answer, MediaFailure, Verdict
from studykit import arrive, valid_values, watch

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config():
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


@pytest.fixture
def started(client, task1_study):
    token = arrive(client, task1_study, lab="hard-1")
    return token, client.post(f"/api/v1/a/{token}/start").get_json()


def _answer(state, position, answer_id):
    return {"answer_id": answer_id, "position": position, "values": valid_values(state["questions"], 0),
            "rt_ms": 900, "played_fraction": 1.0}


def _n_answers(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Answer))


def _body_routes(token, study):
    return [f"/api/v1/a/{token}/answers", f"/api/v1/a/{token}/audio-check", f"/api/v1/studies/{study}/arrive"]


# ----------------------------------------------------------------------------------------- JSON limits

def test_deep_and_large_json_get_a_json_4xx_on_every_body_route(app, client, started, task1_study):
    token, _ = started
    nested = {"k": 1}
    for _ in range(40):
        nested = {"k": [nested]}
    cases = [("[" * 100_000, 413, "request_entity_too_large"),  # the body: over 64 KiB
             ("[" * 60_000, 400, "json_too_deep"),  # under the size limit, far too deep
             (json.dumps(nested), 400, "json_too_deep"),  # valid JSON, 81 levels
             ('{"answer_id": "x', 400, "bad_request"),
             (b"\xff\xfe{}", 400, "bad_request")]
    for path in _body_routes(token, task1_study):
        for body, status, code in cases:
            r = client.post(path, data=body, content_type="application/json")
            assert r.status_code == status and r.is_json, (path, r.status_code, r.data[:200])
            assert r.get_json()["error"]["code"] == code, (path, r.get_json())
    assert _n_answers(app) == 0


def test_sixteen_levels_are_allowed(app, client, started):
    token, state = started
    body = _answer(state, 0, "deep-ok-0001")
    extra: object = 1
    for _ in range(14):  # the body itself is level 1: 15 more levels -> 16
        extra = [extra]
    r = client.post(f"/api/v1/a/{token}/answers", json={**body, "note": extra})
    assert r.status_code == 200, r.get_json()


def test_chunked_bodies_over_the_limit_get_413(app, client, started, task1_study):
    token, state = started
    for path in _body_routes(token, task1_study):
        r = client.post(path, input_stream=io.BytesIO(b" " * (5 << 20)), content_type="application/json",
                        headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
        assert r.status_code == 413 and r.get_json()["error"]["code"] == "request_entity_too_large", path
    small = json.dumps(_answer(state, 0, "chunked-0001")).encode()
    r = client.post(f"/api/v1/a/{token}/answers", input_stream=io.BytesIO(small), content_type="application/json",
                    headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert r.status_code == 200, r.get_json()  # a small chunked answer is read and stored


def test_answer_ids_must_match_in_full(app, client, started):
    token, state = started
    for bad in ("abcdefgh12\n", "a" * 65, "abcdefgh\r\n", "abc defgh"):
        r = client.post(f"/api/v1/a/{token}/answers", json=_answer(state, 0, bad))
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_answer_id", repr(bad)
    assert _n_answers(app) == 0
    assert client.post(f"/api/v1/a/{token}/answers", json=_answer(state, 0, "a" * 64)).status_code == 200


def test_tokens_with_a_trailing_newline_name_nothing(app, client, started):
    token, _ = started
    for path in (f"/api/v1/a/{token}%0A", f"/a/{token}%0A", f"/api/v1/a/{token}%00/ping"):
        r = client.get(path) if "ping" not in path else client.post(path)
        assert r.status_code == 404, path


# ------------------------------------------------------------------------------------- admin sessions

def _login(client):
    page = client.get("/admin/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 302
    return client.get_cookie("session").value


def _csrf(client):
    page = client.get("/admin/").get_data(as_text=True)
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def test_logout_ends_the_session_on_the_server(app, client):
    old_cookie = _login(client)
    assert client.get("/admin/").status_code == 200
    assert client.post("/admin/logout", data={"csrf_token": _csrf(client)}).status_code == 302
    # An attacker who kept the old cookie (still validly signed, not expired) replays it.
    thief = app.test_client()
    thief.set_cookie("session", old_cookie)
    r = thief.get("/admin/")
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert thief.get("/admin/api/studies").status_code == 401
    login_page = thief.get("/admin/login")
    assert login_page.status_code == 200 and b'name="password"' in login_page.data
    with app.app_context():
        row = db.session.scalar(select(AdminSession))
        assert row.ended_at is not None and len(row.sid_sha256) == 64


def test_a_new_password_ends_every_session(app, client):
    _login(client)
    other = app.test_client()
    _login(other)
    assert client.get("/admin/").status_code == 200 and other.get("/admin/").status_code == 200
    app.config["ADMIN_PASSWORD_HASH"] = generate_password_hash("a brand new password", method="pbkdf2:sha256:1000")
    for c in (client, other):
        r = c.get("/admin/")
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"]


def test_a_forged_session_id_is_refused(app, client):
    _login(client)
    with client.session_transaction() as s:
        s["admin_sid"] = "made-up-session-id"
    assert client.get("/admin/").status_code == 302


# --------------------------------------------------------------------------------------- media failed

def test_media_failed_is_recorded_instead_of_an_answer(app, client, started, tmp_path):
    token, state = started
    url = f"/api/v1/a/{token}/media-failed"
    r = client.post(url, json={"position": 1, "failures": 3, "error": "MEDIA_ERR_NETWORK"})
    assert r.status_code == 409  # issue 29: only a clip the page asked for (a GET) can have failed
    watch(client, state["items"][1])
    r = client.post(url, json={"position": 1, "failures": 2, "error": "MEDIA_ERR_NETWORK"})
    assert r.status_code == 400  # the page lets the participant go on only after three failures
    r = client.post(url, json={"position": 1, "failures": 3, "error": "MEDIA_ERR_NETWORK"})
    assert r.status_code == 200 and r.get_json()["media_failed"] is True
    again = client.post(url, json={"position": 1, "failures": 4, "error": "MEDIA_ERR_DECODE"})
    assert again.status_code == 200  # a retry of the report: recorded once
    # The state counts it as done: the page resumes after it.
    s = client.get(f"/api/v1/a/{token}").get_json()
    assert s["media_failed"] == [1] and s["next_position"] == 0
    # Every other item answered (after fetching its clip); completion accepts the missing one.
    for item in state["items"]:
        if item["position"] == 1:
            continue
        watch(client, item)
        r = client.post(f"/api/v1/a/{token}/answers", json=_answer(state, item["position"], f"mfail-{item['position']:04d}"))
        assert r.status_code == 200
    answered = client.post(url, json={"position": 0, "failures": 3, "error": "MEDIA_ERR_NETWORK"})
    assert answered.status_code == 409 and answered.get_json()["error"]["code"] == "already_answered"
    done = client.post(f"/api/v1/a/{token}/complete")
    assert done.status_code == 200, done.get_json()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MediaFailure)) == 1
        assert db.session.scalar(select(func.count()).select_from(Answer)) == 8
        verdict = db.session.scalar(select(Verdict))
        # Task 1 repeats: 6<-0, 7<-1, 8<-2; the pair with the failed clip (7, 1) is not compared: each of
        # its 3 rules counts as inconsistent (issue 29), and the survey stays valid (at most 5).
        assert {(c["position"], c["repeat_of"]) for c in verdict.details["checks"]} == {(6, 0), (7, 1), (8, 2)}
        assert all(c["inconsistent"] for c in verdict.details["checks"] if c["position"] == 7)
        assert verdict.details["media_failed"] == [1] and verdict.n_inconsistent == 3 and verdict.verdict == "valid"

    import pandas as pd

    from study_server.admin import stats as admin_stats
    from study_server.export.tables import export_study
    from study_server.store.models import Assignment
    with app.app_context():
        study_id = db.session.scalar(select(Assignment.study_id))
        assert admin_stats.integrity_counts(db.session, study_id)["media_failed"] == 1
        detail = admin_stats.assignment_detail(db.session, db.session.scalar(select(Assignment)))
        assert [f["position"] for f in detail["media_failed"]] == [1]
        export_study(db.session, study_id, tmp_path / "out")
    participants = pd.read_csv(tmp_path / "out" / "participants.csv", keep_default_na=False, dtype=str)
    assert participants.loc[0, "n_media_failed"] == "1" and participants.loc[0, "media_failed_positions"] == "1"
    answers = pd.read_csv(tmp_path / "out" / "answers.csv", keep_default_na=False, dtype=str)
    assert "1" not in set(answers["position"])
    from analysis.cleaning import clean
    from analysis.io import load_export
    cleaned = clean(load_export(tmp_path / "out"))
    assert cleaned.counts["n_verdict_disagreements"] == 0 and cleaned.counts["n_surveys_valid"] == 1


def test_media_failed_needs_a_started_assignment(app, client, task1_study):
    token = arrive(client, task1_study, lab="hard-2")
    r = client.post(f"/api/v1/a/{token}/media-failed", json={"position": 0, "failures": 3, "error": "X"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_started"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MediaFailure)) == 0
