"""Balanced, atomic batch assignment: quotas, resume, expiry, rejected surveys, exclusion, concurrency."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from study_server.store.extensions import db
from study_server.store.models import Assignment, Batch, Participant
from studykit import TASK1, TASK2, arrive, complete_session, import_study, make_plan


def _batch_counts(app, study_name: str | None = None) -> Counter:
    with app.app_context():
        q = select(Batch.key, func.count()).join(Assignment, Assignment.batch_id == Batch.id) \
            .where(Assignment.status.in_(("allocated", "started", "completed"))).group_by(Batch.key)
        return Counter(dict(db.session.execute(q).all()))


def test_fewest_first_and_full_study_is_polite(client, app, task1_study):
    tokens = [arrive(client, task1_study, lab=f"p{i}") for i in range(4)]
    assert len(set(tokens)) == 4
    assert _batch_counts(app) == Counter({"b01": 2, "b02": 2})
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "p9"}})
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["code"] == "study_full" and "Thank you" in err["message"]
    page = client.get(f"/s/{task1_study}?lab=p10")
    assert page.status_code == 409 and b"all the participants it" in page.data
    with app.app_context():  # the refused arrivals stored nothing
        assert db.session.scalar(select(func.count()).select_from(Participant)) == 4


def test_ties_are_random(app, media_set, tmp_path):
    name = import_study(app, make_plan(media_set, TASK1, n_batches=6, quota=5, out=tmp_path / "p.json"), media_set)
    client = app.test_client()
    for i in range(30):
        arrive(client, name, lab=f"w{i}")
    counts = _batch_counts(app)
    assert set(counts.values()) == {5}
    # Order of the first 6 arrivals: ties broken at random, so not the batch order every time.
    with app.app_context():
        order = [k for (k,) in db.session.execute(select(Batch.key).join(Assignment, Assignment.batch_id == Batch.id)
                                                   .order_by(Assignment.id)).all()]
    # After each round of 6 every batch holds the same number, so every pick of a round is a tie among the rest.
    assert sorted(order[:6]) == [f"b0{i}" for i in range(1, 7)]  # each batch once per round
    assert sorted(order[6:12]) == sorted(order[:6])
    assert order[:6] != sorted(order[:6]) or order[6:12] != sorted(order[6:12])  # chance: (1/720)^2


def test_same_worker_resumes_never_two_batches(client, app, task1_study):
    q = {"assignmentId": "A1", "hitId": "H1", "workerId": "W1", "turkSubmitTo": "https://workersandbox.mturk.com"}
    r1 = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": q})
    r2 = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {**q, "assignmentId": "A2"}})
    assert r1.status_code == 201 and r2.status_code == 200
    assert r1.get_json()["token"] == r2.get_json()["token"] and r2.get_json()["resumed"] is True
    with app.app_context():
        a = db.session.scalar(select(Assignment))
        assert a.external_assignment_id == "A2"  # MTurk's new assignment id is the one to submit
        assert db.session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_mturk_preview_stores_nothing(client, app, task1_study):
    page = client.get(f"/s/{task1_study}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    assert page.status_code == 200 and b"Accept the task" in page.data
    r = client.post(f"/api/v1/studies/{task1_study}/arrive",
                    json={"query": {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"}})
    assert r.get_json() == {"preview": True}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Participant)) == 0


def test_turk_submit_to_must_be_mturk(client, task1_study):
    q = {"assignmentId": "A1", "hitId": "H1", "workerId": "W1", "turkSubmitTo": "https://evil.example"}
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": q})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_arrival"


def _age(app, token: str, seconds: float) -> None:
    with app.app_context():
        db.session.execute(update(Assignment).where(Assignment.token == token).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)))
        db.session.commit()


def test_inactive_assignments_expire_and_free_their_slot(client, app, task1_study):
    app.config["ASSIGNMENT_TIMEOUT_S"] = 600
    tokens = [arrive(client, task1_study, lab=f"p{i}") for i in range(4)]
    _age(app, tokens[0], 601)
    new = arrive(client, task1_study, lab="late")  # takes the expired slot
    with app.app_context():
        statuses = dict(db.session.execute(select(Assignment.token, Assignment.status)).all())
    assert statuses[tokens[0]] == "expired" and statuses[new] == "allocated"
    # The expired worker comes back: the study is full again, so they are told politely.
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "p0"}})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "slot_expired"
    # ...and an expired token cannot store answers while there is no room.
    assert client.post(f"/api/v1/a/{tokens[0]}/start").status_code == 409


@pytest.mark.postgres
def test_expiry_and_revival_postgres(pg_app, media_set, tmp_path):
    """PostgreSQL expires stale assignments and counts in one statement: the same outcomes as above."""
    pg_app.config["ASSIGNMENT_TIMEOUT_S"] = 600
    name = import_study(pg_app, make_plan(media_set, TASK1, name="expiry", n_batches=2, quota=2,
                                          out=tmp_path / "expiry.json"), media_set)
    client = pg_app.test_client()
    tokens = [arrive(client, name, lab=f"e{i}") for i in range(4)]
    r = client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "e9"}})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "study_full"
    _age(pg_app, tokens[0], 601)
    _age(pg_app, tokens[1], 599)  # idle, but not for long enough
    new = arrive(client, name, lab="late")  # takes the expired slot
    with pg_app.app_context():
        statuses = dict(db.session.execute(select(Assignment.token, Assignment.status)
                                           .where(Assignment.token.in_([*tokens, new]))).all())
    assert statuses == {tokens[0]: "expired", tokens[1]: "allocated", tokens[2]: "allocated",
                        tokens[3]: "allocated", new: "allocated"}
    r = client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "e0"}})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "slot_expired"
    client.post(f"/api/v1/a/{new}/return")  # frees a slot: the expired worker is revived
    r = client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "e0"}})
    assert r.status_code == 200 and r.get_json()["token"] == tokens[0] and r.get_json()["status"] == "allocated"


def test_expired_worker_is_revived_when_there_is_room(client, app, task1_study):
    app.config["ASSIGNMENT_TIMEOUT_S"] = 600
    token = arrive(client, task1_study, lab="p0")
    _age(app, token, 700)
    arrive(client, task1_study, lab="p1")  # sweeps: p0 expires
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "p0"}})
    assert r.status_code == 200 and r.get_json()["token"] == token and r.get_json()["status"] == "allocated"


def test_rejected_survey_frees_its_slot(client, app, media_set, tmp_path):
    name = import_study(app, make_plan(media_set, TASK2, n_batches=1, quota=1, out=tmp_path / "p.json"), media_set)
    token = arrive(client, name, lab="careless")
    # Every answer differs from the one before: both repeats x both questions are inconsistent (4 > 2).
    complete_session(client, token, variant_for=lambda pos: pos)
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        assert a.status == "completed" and a.verdict.verdict == "rejected" and a.verdict.n_inconsistent == 4
    second = arrive(client, name, lab="careful")  # the slot is free again
    complete_session(client, second)
    r = client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "third"}})
    assert r.get_json()["error"]["code"] == "study_full"


def test_exclusion_of_other_studies(client, app, media_set, tmp_path):
    first = import_study(app, make_plan(media_set, TASK1, out=tmp_path / "p1.json"), media_set)
    second = import_study(app, make_plan(media_set, TASK2, exclude_studies=[first], out=tmp_path / "p2.json"),
                          media_set)
    q = {"assignmentId": "A1", "hitId": "H1", "workerId": "W7", "turkSubmitTo": "https://www.mturk.com"}
    token = client.post(f"/api/v1/studies/{first}/arrive", json={"query": q}).get_json()["token"]
    client.post(f"/api/v1/a/{token}/start")
    r = client.post(f"/api/v1/studies/{second}/arrive", json={"query": {**q, "assignmentId": "A2", "hitId": "H2"}})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "excluded"
    assert arrive(client, second, assignmentId="A3", hitId="H2", workerId="W8",
                  turkSubmitTo="https://www.mturk.com")


def _concurrent_arrivals(app, study: str, n: int, prefix: str) -> Counter:
    barrier = threading.Barrier(n)
    results: Counter = Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        try:
            r = client.post(f"/api/v1/studies/{study}/arrive", json={"query": {"lab": f"{prefix}{i}"}})
            code = r.get_json().get("error", {}).get("code", "ok") if r.status_code >= 400 else r.status_code
        except Exception as exc:  # noqa: BLE001 - counted and shown by the assertion, not swallowed
            code = f"{type(exc).__name__}: {exc}"[:200]
        with lock:
            results[code] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _check_balanced(app, study: str, quota: int, n_batches: int) -> list[int]:
    with app.app_context():
        rows = db.session.execute(
            select(Batch.key, func.count(Assignment.id)).outerjoin(Assignment, Assignment.batch_id == Batch.id)
            .join(Batch.study).where(Batch.study.has(name=study)).group_by(Batch.key)).all()
    counts = [n for _, n in rows]
    assert len(counts) == n_batches
    assert max(counts) <= quota, counts
    assert max(counts) - min(counts) <= 1, counts
    return counts


def test_concurrent_arrivals_sqlite_threads(app, media_set, tmp_path):
    name = import_study(app, make_plan(media_set, TASK1, n_batches=3, quota=10, out=tmp_path / "p.json"), media_set)
    results = _concurrent_arrivals(app, name, 40, "t")
    assert results[201] == 30 and results["study_full"] == 10, results
    assert _check_balanced(app, name, 10, 3) == [10, 10, 10]


@pytest.mark.postgres
def test_200_concurrent_arrivals_postgres(pg_app, media_set, tmp_path):
    roomy = import_study(pg_app, make_plan(media_set, TASK1, name="roomy", n_batches=6, quota=40,
                                           out=tmp_path / "roomy.json"), media_set)
    results = _concurrent_arrivals(pg_app, roomy, 200, "r")
    assert results[201] == 200, results
    counts = _check_balanced(pg_app, roomy, 40, 6)
    assert sum(counts) == 200 and sorted(counts) == [33, 33, 33, 33, 34, 34]
    tight = import_study(pg_app, make_plan(media_set, TASK2, name="tight", n_batches=6, quota=30,
                                           out=tmp_path / "tight.json"), media_set)
    results = _concurrent_arrivals(pg_app, tight, 200, "t")
    assert results[201] == 180 and results["study_full"] == 20, results
    assert _check_balanced(pg_app, tight, 30, 6) == [30] * 6


@pytest.mark.postgres
def test_same_worker_arriving_concurrently_postgres(pg_app, media_set, tmp_path):
    """One worker's simultaneous arrivals: one assignment, one participant, everyone gets its token - as a
    new worker (they collide on the participant row) and as a known one (on the assignment, under the lock)."""
    first, second = (import_study(pg_app, make_plan(media_set, TASK1, name=name, n_batches=2, quota=10,
                                                    out=tmp_path / f"{name}.json"), media_set)
                     for name in ("samew1", "samew2"))
    n = 12

    def arrive_together(study: str) -> list[tuple[int, str]]:
        barrier = threading.Barrier(n)
        replies: list[tuple[int, str]] = []
        lock = threading.Lock()

        def one() -> None:
            client = pg_app.test_client()
            barrier.wait()
            r = client.post(f"/api/v1/studies/{study}/arrive", json={"query": {"lab": "twin"}})
            with lock:
                replies.append((r.status_code, (r.get_json() or {}).get("token", str(r.get_json()))))

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return replies

    for study in (first, second):
        replies = arrive_together(study)
        assert Counter(code for code, _ in replies) == Counter({201: 1, 200: n - 1}), replies
        assert len({token for _, token in replies}) == 1
        with pg_app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Assignment)
                                     .where(Assignment.token == replies[0][1])) == 1
    with pg_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Participant)
                                 .where(Participant.worker_id == "twin")) == 1


def test_lab_tokens_when_the_study_has_them(client, app, task1_study):
    from study_server.store.models import Study
    from study_server.recruit.lab import make_tokens

    with app.app_context():
        study = db.session.scalar(select(Study).where(Study.name == task1_study))
        (token,) = make_tokens(db.session, study, 1)
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "made-up-token"}})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "lab_token_invalid"
    first = arrive(client, task1_study, lab=token)
    assert arrive(client, task1_study, lab=token) == first  # one token, one participant


def test_paused_study_takes_nobody_new_but_lets_people_finish(client, app, task1_study):
    from study_server.store.models import Study

    token = arrive(client, task1_study, lab="early")
    with app.app_context():
        db.session.execute(update(Study).values(status="paused"))
        db.session.commit()
    r = client.post(f"/api/v1/studies/{task1_study}/arrive", json={"query": {"lab": "late"}})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "study_closed"
    assert arrive(client, task1_study, lab="early") == token
    complete_session(client, token)
