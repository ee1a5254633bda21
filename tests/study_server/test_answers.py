"""Per-answer saving: idempotent retries, refusals that store nothing, resume, overlapping saves under load."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from study_server.store.extensions import db
from study_server.store.models import Answer
from studykit import arrive, valid_values


def _n_answers(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Answer))


@pytest.fixture
def started(client, task1_study):
    token = arrive(client, task1_study, lab="p1")
    started = client.post(f"/api/v1/a/{token}/start").get_json()
    assert started["status"] == "started"
    state = client.get(f"/api/v1/a/{token}").get_json()
    assert started == state  # the start reply is the state: a client needs no GET before the trials
    return token, state


def _body(state, position, answer_id, variant=0):
    return {"answer_id": answer_id, "position": position, "values": valid_values(state["questions"], variant),
            "rt_ms": 812, "played_fraction": 1.0}


def test_retries_store_one_row_and_get_the_same_ack(client, app, started):
    token, state = started
    body = _body(state, 0, "ans-0000-aaaa")
    first = client.post(f"/api/v1/a/{token}/answers", json=body)
    again = [client.post(f"/api/v1/a/{token}/answers", json=body) for _ in range(3)]
    assert first.status_code == 200
    assert all(r.status_code == 200 and r.data == first.data for r in again)
    assert first.get_json()["answer_id"] == "ans-0000-aaaa" and first.get_json()["position"] == 0
    assert _n_answers(app) == 1
    # Another id for the same item: refused, the stored answer stays.
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "ans-0000-bbbb", variant=1))
    assert r.status_code == 409 and r.get_json()["error"] == {
        "code": "already_answered", "answer_id": "ans-0000-aaaa",
        "message": r.get_json()["error"]["message"]}
    # The same id for another item: refused.
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "ans-0000-aaaa"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "answer_id_reused"
    assert _n_answers(app) == 1
    with app.app_context():
        stored = db.session.scalar(select(Answer))
        assert stored.values == body["values"] and stored.rt_ms == 812 and stored.played_fraction == 1.0


@pytest.mark.parametrize("change, status, code", [
    ({"position": 9}, 404, "unknown_item"),
    ({"position": -1}, 404, "unknown_item"),
    ({"position": "0"}, 400, "bad_request"),
    ({"values": {"emotion": "rage", "realness": "not-sure", "aspects": ["other"]}}, 400, "invalid_value"),
    ({"values": {"emotion": "anger", "realness": 3, "aspects": ["other"]}}, 400, "invalid_value"),
    ({"values": {"emotion": "anger", "realness": "not-sure", "aspects": "other"}}, 400, "invalid_value"),
    ({"values": {"emotion": "anger", "realness": "not-sure", "aspects": ["none", "other"]}}, 400, "invalid_value"),
    ({"values": {"emotion": "anger", "realness": "not-sure", "aspects": ["other", "other"]}}, 400, "invalid_value"),
    ({"values": {"emotion": "anger", "realness": "not-sure"}}, 400, "missing_answer"),
    ({"values": {"emotion": "anger", "realness": "not-sure", "aspects": ["other"], "source": "GT"}}, 400,
     "unknown_question"),
    ({"answer_id": "short"}, 400, "bad_answer_id"),
    ({"answer_id": "has spaces in it"}, 400, "bad_answer_id"),
    ({"rt_ms": -5}, 400, "bad_timing"),
    ({"played_fraction": 1.5}, 400, "bad_timing"),
])
def test_forged_answers_are_refused_and_store_nothing(client, app, started, change, status, code):
    token, state = started
    body = {**_body(state, 0, "forged-0001"), **change}
    r = client.post(f"/api/v1/a/{token}/answers", json=body)
    assert r.status_code == status, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == code and len(err["message"]) > 10
    assert _n_answers(app) == 0


def test_forged_tokens_are_refused(client, app, started):
    token, state = started
    for fake in ("A" * 32, token[:-1] + ("x" if token[-1] != "x" else "y"), "x", "a%20b" * 5):
        r = client.post(f"/api/v1/a/{fake}/answers", json=_body(state, 0, "fake-0001"))
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "assignment_not_found"
    r = client.post("/api/v1/a/../../etc/answers", json=_body(state, 0, "fake-0001"))
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    assert client.post(f"/api/v1/a/{token}/answers", data="not json",
                       content_type="application/json").get_json()["error"]["code"] == "bad_request"
    assert _n_answers(app) == 0


def test_answers_need_consent_and_audio_check(client, app, task2_study):
    token = arrive(client, task2_study, lab="p2")
    state = client.get(f"/api/v1/a/{token}").get_json()
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "early-0001"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_started"
    client.post(f"/api/v1/a/{token}/start")
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "early-0002"))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "audio_check_required"
    assert _n_answers(app) == 0


def test_audio_check_is_server_side_and_limited(client, app, task2_study):
    from study_server.study.audio_check import expected_word, words

    token = arrive(client, task2_study, lab="p3")
    client.post(f"/api/v1/a/{token}/start")
    state = client.get(f"/api/v1/a/{token}")
    for w in words():  # the word is never in what the client receives
        assert w not in state.get_data(as_text=True)
    wrong = next(w for w in words() if w != expected_word("test-secret", token, 0))
    r = client.post(f"/api/v1/a/{token}/audio-check", json={"answer": wrong}).get_json()
    assert r["passed"] is False and r["attempts_left"] == 2 and f"/{token}/a1/" in r["media_url"]
    word = expected_word("test-secret", token, 1)
    r = client.post(f"/api/v1/a/{token}/audio-check", json={"answer": f" {word.upper()}."}).get_json()
    assert r["passed"] is True
    token2 = arrive(client, task2_study, lab="p4")
    client.post(f"/api/v1/a/{token2}/start")
    for _ in range(3):
        r = client.post(f"/api/v1/a/{token2}/audio-check", json={"answer": "xyzzy"}).get_json()
    assert r["passed"] is False and r["status"] == "abandoned" and r["attempts_left"] == 0


def test_reload_resumes_at_first_unanswered(client, started):
    token, state = started
    for pos in (0, 1, 2, 4):
        client.post(f"/api/v1/a/{token}/answers", json=_body(state, pos, f"resume-{pos:04d}"))
    again = client.get(f"/api/v1/a/{token}").get_json()
    assert again["answered"] == [0, 1, 2, 4] and again["next_position"] == 3 and again["total"] == 9
    r = client.post(f"/api/v1/a/{token}/complete")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "incomplete"
    assert r.get_json()["error"]["missing"] == [3, 5, 6, 7, 8]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_app(request):
    """The app on SQLite, then on PostgreSQL (when EMOSTUDY_TEST_POSTGRES_URL is set)."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


@pytest.mark.slow
def test_overlapping_saves_against_a_saturated_server(any_app, media_set, tmp_path):
    """Clients fire every save 50 ms after the previous one without waiting, each save sent twice at once
    and retried (same id) after a short client timeout, while other threads keep the server busy. Every acknowledged answer must
    be stored exactly once, with the values sent."""
    import requests
    from werkzeug.serving import make_server

    from studykit import TASK1, import_study, make_plan

    app = any_app
    name = import_study(app, make_plan(media_set, TASK1, n_batches=2, quota=10, out=tmp_path / "p.json"), media_set)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    hammers: list[threading.Thread] = []
    try:
        http = requests.Session()
        tokens = []
        for i in range(4):
            token = http.post(f"{base}/api/v1/studies/{name}/arrive", json={"query": {"lab": f"o{i}"}}).json()["token"]
            http.post(f"{base}/api/v1/a/{token}/start")
            tokens.append(token)
        state = http.get(f"{base}/api/v1/a/{tokens[0]}").json()

        def hammer():  # saturate: state reads and pings, as fast as the server answers
            s = requests.Session()
            while not stop.is_set():
                for t in tokens:
                    try:
                        s.get(f"{base}/api/v1/a/{t}", timeout=10)
                    except requests.RequestException:
                        time.sleep(0.01)  # the backlog overflowed: that is the saturation we want

        hammers = [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
        for h in hammers:
            h.start()
        acked: dict[str, dict] = {}
        sent: dict[str, dict] = {}
        lock = threading.Lock()
        attempts = [0]

        def save(token: str, pos: int) -> None:
            body = {"answer_id": f"{token[:10]}-{pos:03d}", "position": pos,
                    "values": valid_values(state["questions"], pos), "rt_ms": 100 + pos, "played_fraction": 1.0}
            with lock:
                sent[body["answer_id"]] = body
            s = requests.Session()
            for attempt in range(40):
                with lock:
                    attempts[0] += 1
                try:
                    r = s.post(f"{base}/api/v1/a/{token}/answers", json=body, timeout=0.15 if attempt < 2 else 5)
                except requests.RequestException:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if r.status_code == 200:
                    with lock:
                        acked[body["answer_id"]] = r.json()
                    return
                time.sleep(0.05 * (attempt + 1))

        savers = []
        for pos in range(9):
            for token in tokens:
                # Two copies of every save in flight at once: a client retrying before the first reply.
                for _ in range(2):
                    t = threading.Thread(target=save, args=(token, pos))
                    t.start()
                    savers.append(t)
            time.sleep(0.05)
        for t in savers:
            t.join(timeout=60)
    finally:
        stop.set()
        for h in hammers:
            h.join(timeout=20)
        server.shutdown()
    assert len(sent) == 36 and set(acked) == set(sent)
    with app.app_context():
        rows = db.session.execute(select(Answer.answer_id, Answer.values, Answer.rt_ms)).all()
    assert len(rows) == 36  # nothing lost, nothing twice
    assert {a: (v, rt) for a, v, rt in rows} == {a: (b["values"], b["rt_ms"]) for a, b in sent.items()}
    print(f"overlapping saves: 36 answers, {attempts[0]} POSTs")
    assert attempts[0] >= 72  # every save was sent at least twice with the same answer id


def test_oversized_bodies_are_refused_as_json(client, app, started):
    token, state = started
    body = {**_body(state, 0, "huge-000001"), "padding": "x" * (2 << 20)}
    r = client.post(f"/api/v1/a/{token}/answers", json=body)
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "request_entity_too_large"
    assert _n_answers(app) == 0


@pytest.mark.browser
@pytest.mark.slow
def test_page_retries_until_acknowledged(app, media_set, tmp_path, chromium_path):
    """study.js in Chromium against a flaky network: every answer's first POST fails before reaching the
    server, the second reaches it but its reply is lost (502), the third is acknowledged. All answers are
    stored once, the survey completes."""
    import json

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from studykit import TASK1, import_study, make_plan

    name = import_study(app, make_plan(media_set, TASK1, out=tmp_path / "p.json"), media_set)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    posts: dict[str, int] = {}

    def flaky(route, request):
        answer_id = json.loads(request.post_data)["answer_id"]
        posts[answer_id] = posts.get(answer_id, 0) + 1
        if posts[answer_id] == 1:
            route.abort()
        elif posts[answer_id] == 2:
            route.fetch()  # the server stores the answer; the participant never hears back
            route.fulfill(status=502, body="bad gateway")
        else:
            route.continue_()

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"])
            page = browser.new_page()
            page.route("**/answers", flaky)
            page.goto(f"{base}/s/{name}?lab=flaky")
            page.click("#consent-yes")
            page.click("#instructions-next")
            for _ in range(2):
                page.click("#example-play")
                page.click("#example-next:not([disabled])", timeout=15000)
            for _ in range(9):
                page.wait_for_selector("#step-trial:not([hidden])")
                assert page.is_disabled("#questions input")  # locked until the video ends
                page.click("#trial-play")
                page.wait_for_selector("#questions fieldset:not([disabled])", timeout=15000)
                for fieldset in page.query_selector_all("#questions fieldset"):
                    fieldset.query_selector("input").check()
                page.click("#trial-next")
            page.wait_for_url("**/done", timeout=30000)
            code = page.text_content("#completion-code")
            browser.close()
    finally:
        server.shutdown()
    assert len(posts) == 9 and set(posts.values()) == {3}
    assert code and len(code.strip()) == 10
    with app.app_context():
        rows = db.session.execute(select(Answer.answer_id)).scalars().all()
    assert sorted(rows) == sorted(posts)  # each answer stored exactly once


@pytest.mark.postgres
def test_answer_paths_on_postgres(pg_app, media_set, tmp_path):
    """The autocommit fast path and its fallbacks (not started, expired then revived, finished)."""
    import datetime as dt

    from sqlalchemy import update

    from study_server.store.models import Assignment
    from studykit import TASK1, import_study, make_plan

    name = import_study(pg_app, make_plan(media_set, TASK1, out=tmp_path / "p.json"), media_set)
    client = pg_app.test_client()
    token = arrive(client, name, lab="pg1")
    state = client.get(f"/api/v1/a/{token}").get_json()
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "pg-early-01"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_started"
    client.post(f"/api/v1/a/{token}/start")
    first = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "pg-answer-0"))
    assert first.status_code == 200
    assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "pg-answer-0")).data == first.data
    with pg_app.app_context():  # idle for an hour, then swept by someone else's arrival
        db.session.execute(update(Assignment).where(Assignment.token == token).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
        db.session.commit()
    arrive(client, name, lab="pg2")
    with pg_app.app_context():
        assert db.session.scalar(select(Assignment.status).where(Assignment.token == token)) == "expired"
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "pg-answer-1"))
    assert r.status_code == 200  # revived: its batch still had room
    with pg_app.app_context():
        assert db.session.scalar(select(Assignment.status).where(Assignment.token == token)) == "started"
        assert db.session.scalar(select(func.count()).select_from(Answer)) == 2


@pytest.mark.postgres
def test_one_statement_save_on_postgres(pg_app, media_set, tmp_path):
    """PostgreSQL's one-statement save: refreshes last_seen_at only when it is old, answers once per item,
    and stores nothing once the assignment is finished although its token stays in the process cache."""
    import datetime as dt

    from sqlalchemy import update

    from study_server.study.context import cache_of
    from study_server.store.models import Assignment
    from studykit import TASK1, import_study, make_plan

    name = import_study(pg_app, make_plan(media_set, TASK1, name="onestmt", out=tmp_path / "p.json"), media_set)
    client = pg_app.test_client()
    now = dt.datetime.now(dt.timezone.utc)
    recent, old = now - dt.timedelta(seconds=10), now - dt.timedelta(seconds=70)
    tokens = {}
    for who, when in (("recent", recent), ("old", old)):
        tokens[who] = arrive(client, name, lab=f"os-{who}")
        client.post(f"/api/v1/a/{tokens[who]}/start")

    def age(who: str, when: dt.datetime) -> None:
        """As if the assignment had last been seen at ``when`` (in the database and in this process)."""
        with pg_app.app_context():
            db.session.execute(update(Assignment).where(Assignment.token == tokens[who]).values(last_seen_at=when))
            db.session.commit()
        cache_of(pg_app).seen[tokens[who]] = when

    def last_seen(who: str) -> dt.datetime:
        with pg_app.app_context():
            return db.session.scalar(select(Assignment.last_seen_at).where(Assignment.token == tokens[who]))

    state = client.get(f"/api/v1/a/{tokens['old']}").get_json()  # the GET refreshes it: age both afterwards
    age("recent", recent)
    age("old", old)
    assert client.post(f"/api/v1/a/{tokens['recent']}/answers", json=_body(state, 0, "os-recent-0")).status_code == 200
    assert last_seen("recent") == recent  # 10 s ago: no write
    assert client.post(f"/api/v1/a/{tokens['old']}/answers", json=_body(state, 0, "os-answer-0")).status_code == 200
    assert last_seen("old") > old + dt.timedelta(seconds=60)  # 70 s ago: refreshed
    token = tokens["old"]
    assert client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "os-answer-1")).status_code == 200
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 1, "os-answer-1b"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "already_answered"
    for position in range(2, len(state["items"])):
        assert client.post(f"/api/v1/a/{token}/answers",
                           json=_body(state, position, f"os-answer-{position}")).status_code == 200
    assert client.post(f"/api/v1/a/{token}/complete").get_json()["status"] == "completed"
    with pg_app.app_context():  # a new answer id for a finished assignment: refused, nothing stored
        n_before = db.session.scalar(select(func.count()).select_from(Answer))
    r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, 0, "os-answer-late"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "already_answered"
    with pg_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Answer)) == n_before
