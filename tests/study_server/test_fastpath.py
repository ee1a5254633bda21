"""The answer fast path (study_server.participant.fastpath): same replies as the Flask route, fewer layers.

Every test runs on PostgreSQL (the fast path's only database); ``FAST_ANSWERS=False`` gives the reference
behaviour, the Flask route, on the same database.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from study_server.store.extensions import db
from study_server.store.models import Answer
from studykit import TASK1, arrive, import_study, make_plan, valid_values

pytestmark = pytest.mark.postgres


def _make_app(pg_url, tmp_path, **overrides):
    from study_server.store import schema as dbmod
    from study_server.app import create_app

    dbmod.upgrade(pg_url)
    config = {"TESTING": True, "DATABASE_URL": pg_url, "INSTANCE_PATH": str(tmp_path / "instance"),
              "SECRET_KEY": "test-secret", "DATABASE_POOL_SIZE": 5, "DATABASE_MAX_OVERFLOW": 5, **overrides}
    return create_app(config)


@pytest.fixture
def count_flask_saves(monkeypatch):
    """Counts the requests that reach the Flask answer route of an app."""
    def install(app):
        calls = []
        view = app.view_functions["api.answers"]

        def counting(*args, **kwargs):
            calls.append(kwargs.get("token"))
            return view(*args, **kwargs)
        monkeypatch.setitem(app.view_functions, "api.answers", counting)
        return calls
    return install


def _body(state, position, answer_id, variant=0, **extra):
    return {"answer_id": answer_id, "position": position, "values": valid_values(state["questions"], variant),
            "rt_ms": 900, "played_fraction": 1.0, **extra}


def _started(app, media_set, tmp_path, lab="fp1", name="fast"):
    study = import_study(app, make_plan(media_set, TASK1, name=name, out=tmp_path / f"{name}.json"), media_set)
    client = app.test_client()
    token = arrive(client, study, lab=lab)
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    return client, study, token, state


def _stored(app, token=None) -> list[tuple[str, int | None, dict]]:
    from study_server.store.models import Assignment

    with app.app_context():
        q = select(Answer.answer_id, Answer.rt_ms, Answer.values, Answer.played_fraction).order_by(Answer.answer_id)
        if token:
            q = q.join(Assignment, Assignment.id == Answer.assignment_id).where(Assignment.token == token)
        return [tuple(r) for r in db.session.execute(q)]


def test_ordinary_saves_skip_flask_and_store_what_was_sent(pg_url, media_set, tmp_path, count_flask_saves):
    app = _make_app(pg_url, tmp_path)
    flask_calls = count_flask_saves(app)
    client, _, token, state = _started(app, media_set, tmp_path)
    acks = []
    for p in range(4):
        r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, p, f"fast-ans-{p}", variant=p))
        assert r.status_code == 200
        acks.append(r)
    assert flask_calls == []  # all four took the fast path
    stored = _stored(app, token)
    assert [s[0] for s in stored] == [f"fast-ans-{p}" for p in range(4)]
    assert [s[2] for s in stored] == [valid_values(state["questions"], p) for p in range(4)]
    assert all(s[1] == 900 and s[3] == 1.0 for s in stored)
    # A retry goes to the Flask route (the INSERT stores nothing) and gets exactly the same bytes.
    again = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "fast-ans-0"))
    assert again.status_code == 200 and again.data == acks[0].data
    assert flask_calls == [token]
    assert len(_stored(app, token)) == 4


def test_replies_and_headers_match_the_flask_route(pg_url, media_set, tmp_path):
    """The same sequence of requests against the fast path and against Flask alone: same statuses, same
    bodies (but the time stamps), same headers (but the CSP nonce)."""
    outcomes = {}
    for fast in (True, False):
        (tmp_path / str(fast)).mkdir()
        app = _make_app(pg_url, tmp_path / str(fast), FAST_ANSWERS=fast)
        client, _, token, state = _started(app, media_set, tmp_path / str(fast), lab=f"cmp{fast}", name=f"cmp{fast}")
        n = len(state["items"])
        tag = f"c{int(fast)}"  # answer ids are unique across the database: one prefix per run
        requests = [
            _body(state, 0, f"{tag}-ans-00"),
            _body(state, 0, f"{tag}-ans-00"),  # retry
            _body(state, 0, f"{tag}-ans-0b"),  # second answer to the item
            _body(state, n + 3, f"{tag}-ans-99"),  # not in the batch
            {**_body(state, 1, f"{tag}-ans-01"), "values": {"emotion": "joyful"}},  # not an option
            _body(state, 1, f"{tag}-ans-01", rt_ms=-5),  # bad timing
            {"answer_id": "short", "position": 1, "values": {}},
            _body(state, 1, f"{tag}-ans-01"),
        ]
        seen = []
        for body in requests:
            r = client.post(f"/api/v1/a/{token}/answers", json=body)
            text = re.sub(r'"stored_at":"[^"]+"', '"stored_at":"T"', r.get_data(as_text=True)).replace(tag, "c")
            headers = {k: re.sub(r"'nonce-[^']+'", "'nonce-N'", v) for k, v in r.headers.items()}
            seen.append((r.status_code, text, headers))
        bad_json = client.post(f"/api/v1/a/{token}/answers", data=b"{not json", content_type="application/json")
        seen.append((bad_json.status_code, bad_json.get_data(as_text=True), None))
        for mimetype in ("text/plain", "application/jsonx"):  # not JSON by Flask's rule: refused, not stored
            r = client.post(f"/api/v1/a/{token}/answers", data=json.dumps(_body(state, 2, f"{tag}-ans-02")),
                            content_type=mimetype)
            seen.append((r.status_code, r.get_data(as_text=True), None))
        outcomes[fast] = seen
        db.dispose(app)
    assert [s[0] for s in outcomes[True]] == [200, 200, 409, 404, 400, 400, 400, 200, 400, 400, 400]
    assert outcomes[True] == outcomes[False]


def test_security_headers_on_fast_replies(pg_url, media_set, tmp_path, count_flask_saves):
    app = _make_app(pg_url, tmp_path)
    flask_calls = count_flask_saves(app)
    client, _, token, state = _started(app, media_set, tmp_path)
    r1 = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "hdr-ans-00"))
    r2 = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "hdr-ans-01"))
    assert flask_calls == []
    for r in (r1, r2):
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors" in r.headers["Content-Security-Policy"]
        assert int(r.headers["Content-Length"]) == len(r.data)
    nonces = [re.search(r"'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1) for r in (r1, r2)]
    assert nonces[0] != nonces[1]  # a fresh nonce per reply, as Flask's


def test_rate_limit_counts_each_request_once(pg_url, media_set, tmp_path, count_flask_saves):
    app = _make_app(pg_url, tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_PER_ASSIGNMENT="4/60")
    flask_calls = count_flask_saves(app)
    client, _, token, state = _started(app, media_set, tmp_path)  # start: 1 of the 4
    assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "rl-ans-00")).status_code == 200
    # A refused body passes through to Flask: counted once (by the fast path), refused by the route.
    bad = client.post(f"/api/v1/a/{token}/answers", json={**_body(state, 1, "rl-ans-01"), "values": {"x": "y"}})
    assert bad.status_code == 400 and flask_calls == [token]
    assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "rl-ans-01")).status_code == 200
    limited = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 2, "rl-ans-02"))  # the 5th
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert "frame-ancestors" in limited.headers["Content-Security-Policy"]
    assert [s[0] for s in _stored(app, token)] == ["rl-ans-00", "rl-ans-01"]


def test_unknown_tokens_and_unusual_states_go_to_flask(pg_url, media_set, tmp_path, count_flask_saves):
    app = _make_app(pg_url, tmp_path)
    flask_calls = count_flask_saves(app)
    client, study, token, state = _started(app, media_set, tmp_path)
    other = arrive(client, study, lab="fp-not-started")  # allocated, never started: not in the cache
    r = client.post(f"/api/v1/a/{other}/answers", json=_body(state, 0, "ns-ans-00"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_started"
    # A started assignment that this process has never seen (e.g. started by another worker process).
    from study_server.study.context import cache_of

    cache_of(app).targets.pop(token)
    assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "ns-ans-01")).status_code == 200
    assert flask_calls == [other, token]
    # ... the Flask route remembered it: the next save is fast again.
    assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "ns-ans-02")).status_code == 200
    assert flask_calls == [other, token]


def test_a_failing_fast_path_loses_nothing(pg_url, media_set, tmp_path, count_flask_saves, monkeypatch):
    """A database error in the fast path: the Flask route stores the answer (or reports the error)."""
    from study_server.participant import fastpath

    app = _make_app(pg_url, tmp_path)
    flask_calls = count_flask_saves(app)
    client, _, token, state = _started(app, media_set, tmp_path)

    def broken(*args, **kwargs):
        raise ConnectionError("the connection broke")
    monkeypatch.setattr(fastpath.FastAnswers, "_decide_and_insert", broken)
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "brk-ans-00"))
    assert r.status_code == 200 and flask_calls == [token]
    assert [s[0] for s in _stored(app, token)] == ["brk-ans-00"]


def test_a_finished_assignment_takes_no_answer_on_the_fast_path(pg_url, media_set, tmp_path):
    app = _make_app(pg_url, tmp_path)
    client, _, token, state = _started(app, media_set, tmp_path)
    for p in range(len(state["items"])):
        assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, p, f"fin-ans-{p:02d}")).status_code == 200
    assert client.post(f"/api/v1/a/{token}/complete").get_json()["status"] == "completed"
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Answer))
    # The token is still cached; the INSERT's status guard stores nothing and Flask explains.
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "fin-ans-late"))
    assert r.status_code == 409
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Answer)) == n
