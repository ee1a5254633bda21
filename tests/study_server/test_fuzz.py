"""Malformed requests over every participant and admin route: never a 5xx, never a row that should not be.

A seeded generator (bounded: ``N_REQUESTS`` requests, bodies of at most ~200 KB) builds each request broken
in one way - a forged or malformed id in the path, a wrong method, a body that is too large (declared or
chunked), too deep, not UTF-8, not JSON, or JSON of the wrong shape, an answer with one bad field, an admin
form without or with a wrong CSRF token, ids out of every integer range - and sends it with the in-process
test client, logged in as the admin or not. Every route of the app's URL map is hit (checked).

After the run: no response >= 500; under /api/ every refusal is JSON ``{"error": {"code", "message"}}``;
every table holds as many rows as before (the audit log excepted: it records failed logins and the admin's
views, by design) and no assignment changed status or sound-check state.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter

import pytest
from sqlalchemy import func, inspect, select, table
from werkzeug.security import generate_password_hash

from study_server.store.extensions import db
from study_server.store.models import Assignment, Study
from studykit import TASK2, arrive, import_study, make_plan, valid_values

N_REQUESTS = 5200
SEED = 15
PASSWORD = "fuzzing password 15"
BAD_SLOTS = ["t99", "t1%0A", "q1", "t" + "9" * 9, "x-1"]


def _bad_ids(rng: random.Random, good: str) -> list[str]:
    # (A raw newline would not reach the server: the client's URL parsing drops it, as browsers do.)
    return [good + "%0A", good + "%0a", good[:-1] + "!", "a" * 65, "a" * 15, good.upper() + "Zz", "%00" * 20,
            "é" * 20, "..%2f..%2fetc", " " + good, good + " ", "x" * rng.randint(200, 3000),
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(32))]


def _bad_ints() -> list[str]:
    return ["0", "-1", "99999999", str(2 ** 31), str(2 ** 63), "9" * 40, "1e3", "0x10", "%20"]


def _json_bodies(rng: random.Random) -> list[tuple[bytes, str]]:
    """(body, content type): every one malformed for any route that reads JSON."""
    deep = rng.choice([17, 40, 1000, 30000, 60000])
    return [
        (b"[" * deep, "application/json"),
        (b"[" * 100000, "application/json"),
        (('{"a":' * deep).encode(), "application/json"),
        ((json.dumps(_nest(rng.randint(17, 60)))).encode(), "application/json"),  # valid JSON, too deep
        (b"\xff\xfe\x00{}", "application/json"),
        (b'{"answer_id": "abc', "application/json"),
        (b"NaN", "application/json"),
        (b"1" * 5000, "application/json"),  # beyond Python's int-string limit
        (b'"' + b"x" * 70000 + b'"', "application/json"),  # over JSON_MAX_BYTES
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'"a string"', "application/json"),
        (b"12", "application/json"),
        (b'{"answer": ["not", "text"], "query": [1]}', "application/json"),
        (b'{"query": {"lab": "x\\ny"}}', "application/json"),
        (b'{"query": {"lab": "' + b"y" * 300 + b'"}}', "application/json"),
        (b"answer=x&position=1", "application/x-www-form-urlencoded"),
        (json.dumps({"answer_id": "abcdefgh"}).encode(), "text/plain"),
        (bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))), "application/json"),
    ]


def _nest(depth: int):
    value: object = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _bad_answers(rng: random.Random, state: dict) -> list[dict]:
    """Answer bodies with exactly one thing wrong."""
    good = {"answer_id": "fuzz-" + "".join(rng.choice("abcdef0123456789") for _ in range(12)),
            "position": 0, "values": valid_values(state["questions"], rng.randint(0, 3)), "rt_ms": 900,
            "played_fraction": 1.0}
    wrong = [("answer_id", "abcdefgh12\n"), ("answer_id", "a" * 65), ("answer_id", "short"), ("answer_id", 12345678),
             ("answer_id", None), ("position", True), ("position", 1.5), ("position", 10 ** 30), ("position", -1),
             ("position", "0"), ("position", len(state["items"]) + 3), ("values", []), ("values", "x"),
             ("values", {"nope": "x"}), ("values", {q["id"]: ["deep", ["er"]] for q in state["questions"]}),
             ("values", {state["questions"][0]["id"]: "not-an-option"}), ("rt_ms", -1), ("rt_ms", 1e300),
             ("rt_ms", "900"), ("rt_ms", True), ("played_fraction", 2), ("played_fraction", -0.1),
             ("played_fraction", [1])]
    out = []
    for key, value in wrong:
        body = dict(good)
        body[key] = value
        out.append(body)
    out.append({k: v for k, v in good.items() if k != "values"})
    return out


def _bad_media_failures(state: dict) -> list[dict]:
    n = len(state["items"])
    return [{"position": 0, "failures": 1, "error": "MEDIA_ERR_NETWORK"},  # gave up too early
            {"position": n + 1, "failures": 3, "error": "MEDIA_ERR_NETWORK"},
            {"position": "0", "failures": 3, "error": "MEDIA_ERR_NETWORK"},
            {"position": 0, "failures": 3, "error": "x\n" * 10},
            {"position": 0, "failures": 3, "error": "e" * 101},
            {"position": 0, "failures": True, "error": "MEDIA_ERR_NETWORK"},
            {"position": 0, "failures": 10 ** 9, "error": "MEDIA_ERR_NETWORK"}]


def _snapshot(app) -> tuple[dict[str, int], list[tuple]]:
    with app.app_context():
        engine = db.session.get_bind()
        names = sorted(set(inspect(engine).get_table_names()) - {"alembic_version", "audit_log"})
        counts = {name: db.session.scalar(select(func.count()).select_from(table(name))) for name in names}
        states = [tuple(r) for r in db.session.execute(
            select(Assignment.id, Assignment.status, Assignment.audio_check_attempts, Assignment.audio_check_passed)
            .order_by(Assignment.id))]
        db.session.rollback()
        return counts, states


def _fuzz(app, media_set, tmp_path):
    app.config.update(RATE_LIMIT_ENABLED=False, ADMIN_PASSWORD_HASH=generate_password_hash(
        PASSWORD, method="pbkdf2:sha256:1000"))
    rng = random.Random(SEED)
    study = import_study(app, make_plan(media_set, TASK2, name="fuzz", out=tmp_path / "fuzz.json",
                                        audio_check={"enabled": True, "kind": "huggins+words", "trials": 6,
                                                     "pass_at": 5, "attempts": 1}), media_set)
    participant = app.test_client()
    token = arrive(participant, study, lab="fuzz-1")
    state = participant.post(f"/api/v1/a/{token}/start").get_json()
    waiting = arrive(participant, study, lab="fuzz-2")  # allocated, never started
    with app.app_context():
        study_id = db.session.scalar(select(Study.id).where(Study.name == study))
        assignment_id = db.session.scalar(select(Assignment.id).where(Assignment.token == token))
    admin = app.test_client()
    login_page = admin.get("/admin/login").get_data(as_text=True)
    csrf = login_page.split('name="csrf_token" value="')[1].split('"')[0]
    assert admin.post("/admin/login", data={"user": "admin", "password": PASSWORD,
                                            "csrf_token": csrf}).status_code == 302
    anonymous = app.test_client()
    seen_rules: set[str] = set()

    def _note_rule(sender, **extra):
        from flask import request
        if request.url_rule is not None:
            seen_rules.add(request.url_rule.endpoint)
    from flask import request_started
    request_started.connect(_note_rule, app)

    before = _snapshot(app)

    media = state["items"][0]["media_url"].split("/")  # ['', 'm', token, slot, sig]
    api_token_routes = ["", "/start", "/ping", "/return", "/audio-check", "/answers", "/media-failed", "/complete",
                        "/listening/calibrated", "/listening/answer"]
    body_routes = [f"/api/v1/a/{token}/answers", f"/api/v1/a/{token}/audio-check",
                   f"/api/v1/a/{token}/media-failed", f"/api/v1/studies/{study}/arrive",
                   f"/api/v1/a/{token}/listening/calibrated", f"/api/v1/a/{token}/listening/answer",
                   f"/api/v1/a/{token}/demographics", f"/api/v1/a/{waiting}/simulated"]
    sound = state["listening"]["calibration_url"].split("/")  # ['', 'l', token, 'c0', sig]

    def path_cases():
        bad_token = rng.choice(_bad_ids(rng, token))
        bad_study = rng.choice(_bad_ids(rng, study))
        bad_int = rng.choice(_bad_ints())
        return [
            ("GET", f"/s/{bad_study}?lab=ok-id", None),
            ("GET", f"/s/{study}?lab={rng.choice(['x%0Ay', 'a' * 300, '%00', 'a b'])}", None),
            ("GET", f"/s/{study}?workerId=W%0A&assignmentId=A&hitId=H", None),
            ("GET", f"/a/{bad_token}", None),
            ("GET", f"/a/{bad_token}/done", None),
            ("POST", f"/api/v1/a/{rng.choice([bad_token, token])}/decline", None),  # started: refused
            ("POST", f"/admin/studies/{bad_int}/preview", "admin-csrf"),
            ("GET", f"/m/{bad_token}/{media[3]}/{media[4]}", None),
            ("GET", f"/m/{token}/{rng.choice(BAD_SLOTS)}/{media[4]}", None),
            ("GET", f"/m/{token}/{media[3]}/{rng.choice(['AAAA', media[4] + 'x', media[4][:-1]])}", None),
            ("GET", f"/api/v1/studies/{bad_study}", None),
            ("POST", f"/api/v1/studies/{bad_study}/arrive", {"json": {"query": {"lab": "fuzz-x"}}}),
            ("GET", f"/api/v1/a/{bad_token}", None),
            ("POST", f"/api/v1/a/{bad_token}{rng.choice(api_token_routes[1:])}", {"json": {}}),
            ("POST", f"/api/v1/a/{waiting}/answers", {"json": _bad_answers(rng, state)[0]}),
            (rng.choice(["PUT", "DELETE", "PATCH"]), f"/api/v1/a/{token}{rng.choice(api_token_routes)}", None),
            (rng.choice(["PUT", "DELETE"]), f"/api/v1/studies/{study}/arrive", None),
            ("GET", f"/api/v1/{rng.choice(['nope', 'a', 'studies', 'a/' + token + '/nope'])}", None),
            (rng.choice(["GET", "POST"]), "/api/v1/health?x=%00", {"data": b"[" * 99, "content_type": "application/json"}),
            ("GET", f"/l/{bad_token}/c0/{sound[4]}", None),
            ("GET", f"/l/{token}/{rng.choice(['h9-0', 'h0-99', 'c1', 'h0-0%0A', 'x0', 'h-1-0'])}/{sound[4]}", None),
            ("GET", f"/l/{token}/c0/{rng.choice(['AAAA', sound[4] + 'x', sound[4][:-1]])}", None),
            ("POST", f"/admin/holds/{bad_int}/release", "admin-csrf"),
            ("POST", f"/admin/holds/{rng.choice([bad_int, assignment_id])}/extend", "admin-csrf"),
            ("GET", "/admin/holds?x=%00", "admin"),
            ("GET", "/admin/api/holds", "anonymous"),
            ("GET", f"/admin/studies/{bad_int}", "admin"),
            ("GET", f"/admin/assignments/{bad_int}", "admin"),
            ("GET", f"/admin/api/studies/{bad_int}", "admin"),
            ("GET", f"/admin/api/studies/{bad_int}/recruitment", "admin"),
            ("GET", f"/admin/api/studies/{bad_int}/assignments", "admin"),
            ("GET", f"/admin/api/assignments/{bad_int}", "admin"),
            ("POST", f"/admin/studies/{bad_int}/export", "admin-csrf"),
            ("GET", f"/admin/studies/{bad_int}/live?since={rng.choice(['', '%00', 'x' * 300])}", "admin"),
            ("GET", f"/admin/studies/{rng.choice([bad_int, study_id])}/participants?page="
                    f"{rng.choice(['x', '-1', '0', '99999999999999999999'])}", "admin"),
            ("GET", f"/admin/api/studies/{bad_int}/progress", "admin"),
            ("POST", f"/admin/assignments/{rng.choice([bad_int, assignment_id])}/verdict", "admin-csrf"),
            ("POST", f"/admin/studies/{rng.choice([bad_int, study_id])}/review/"
                     f"{rng.choice(['item-999999', 'assignment-0', 'item-', 'x-1', '%00', 'item-99999999999999999999'])}",
             "admin-csrf"),
            ("GET", rng.choice(["/admin/", "/admin/api/studies", f"/admin/studies/{study_id}",
                                f"/admin/api/assignments/{assignment_id}"]), "anonymous"),
            ("POST", rng.choice(["/admin/logout", f"/admin/studies/{study_id}/export"]), "admin-no-csrf"),
            ("POST", "/admin/login", "bad-login"),
            ("GET", f"/admin/login?next={rng.choice(['https://evil.example/', '//evil', '/admin/%0d%0a'])}",
             "anonymous"),
            ("GET", f"/static/{rng.choice(['../app.py', '%2e%2e/x', 'nope.js'])}", None),
            ("GET", f"/static/participant/{rng.choice(['../__init__.py', 'nope.css', '%00'])}", None),
        ]

    statuses: Counter = Counter()
    for i in range(N_REQUESTS):
        kind = rng.random()
        headers: dict[str, str] = {}
        client = participant
        kwargs: dict = {}
        if kind < 0.45:  # a malformed body on a route that reads one
            method, path = "POST", rng.choice(body_routes)
            pick = rng.random()
            if pick < 0.55:
                data, ctype = rng.choice(_json_bodies(rng))
                kwargs = {"data": data, "content_type": ctype}
            elif path.endswith("/answers"):
                kwargs = {"json": rng.choice(_bad_answers(rng, state))}
            elif path.endswith("/media-failed"):
                kwargs = {"json": rng.choice(_bad_media_failures(state))}
            elif path.endswith("/listening/answer"):  # one field wrong (the screen is not calibrated either)
                kwargs = {"json": rng.choice([{"trial": -1, "answer": 1}, {"trial": 0, "answer": 0},
                                              {"trial": "0", "answer": 1}, {"trial": 0, "answer": 4},
                                              {"trial": 99, "answer": 2}, {"trial": 0}, {"answer": 1},
                                              {"trial": 0.5, "answer": 1}, {"trial": True, "answer": 2}])}
            elif path.endswith("/listening/calibrated"):  # this step takes no fields
                kwargs = {"json": rng.choice([{"x": 1}, {"calibrated": True}, {"": None}])}
            elif path.endswith("/demographics"):  # this study asks none (and a bad body either way)
                kwargs = {"json": rng.choice([{"values": {"age": 200}}, {"values": "x"}, {"values": {"nope": 1}}, {}])}
            elif path.endswith("/simulated"):  # no participant can mark their session simulated
                kwargs = {"json": rng.choice([{"signature": "0" * 64}, {"signature": 5}, {}, {"signature": "x" * 9999}])}
            elif path.endswith("/audio-check"):
                kwargs = {"json": rng.choice([{"answer": None}, {"answer": 5}, {"answer": "w" * 101}, {}, {"x": 1}])}
            else:
                kwargs = {"json": rng.choice([{"query": {"lab": "a\nb"}}, {"query": "x"}, {"query": {"lab": ""}},
                                              {"query": {"workerId": "w" * 300, "assignmentId": "A1"}}, {"query": {"PROLIFIC_PID": ""}}])}
            if rng.random() < 0.1:  # chunked, no declared length
                raw = kwargs.get("data") or json.dumps(kwargs.get("json")).encode()
                raw = raw * max(1, (70000 // max(1, len(raw))) + 1) if rng.random() < 0.7 else raw
                # (the body keeps its declared type: a JSON object sent as text/plain is malformed; as JSON, an
                # arrival without a query is a plain link's, which is no malformed request)
                kwargs = {"input_stream": io.BytesIO(raw), "content_type": kwargs.get("content_type", "application/json"),
                          "environ_overrides": {"wsgi.input_terminated": True}}
                headers["Transfer-Encoding"] = "chunked"
        else:
            method, path, how = rng.choice(path_cases())
            if isinstance(how, dict):
                kwargs = how
            elif how == "admin":
                client = admin
            elif how == "admin-csrf":
                client, kwargs = admin, {"data": {"csrf_token": csrf}}
            elif how == "admin-no-csrf":
                client, kwargs = admin, {"data": {"csrf_token": rng.choice(["", "forged", csrf + "x"])}}
            elif how == "anonymous":
                client = anonymous
            elif how == "bad-login":
                client = anonymous
                kwargs = {"data": rng.choice([{"user": "admin", "password": "wrong"},
                                              {"user": "admin\n", "password": PASSWORD},
                                              {"user": "a" * 5000, "password": "p" * 5000, "csrf_token": "x"}])}
        response = client.open(path, method=method, headers=headers, **kwargs)
        status = response.status_code
        statuses[status // 100] += 1
        assert status < 500, (i, method, path, kwargs.get("data", kwargs.get("json")), response.get_data()[:300])
        if path.startswith("/api/") and status >= 400:
            body = response.get_json(silent=True)
            assert body and set(body["error"]) >= {"code", "message"}, (method, path, status, response.get_data()[:200])
        response.close()
    request_started.disconnect(_note_rule, app)
    return before, _snapshot(app), seen_rules, statuses


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_app(request):
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def test_malformed_requests_never_fail_the_server_nor_store_anything(any_app, media_set, tmp_path):
    before, after, seen, statuses = _fuzz(any_app, media_set, tmp_path)
    assert sum(statuses.values()) == N_REQUESTS >= 5000
    assert statuses[5] == 0
    assert after == before  # every table (audit log aside) and every assignment's state as before
    every_route = {rule.endpoint for rule in any_app.url_map.iter_rules()}
    assert every_route - seen == set(), "routes the fuzzer never reached"
    assert statuses[4] > 0.9 * N_REQUESTS  # refused, as they should be (the rest: pages, redirects)


