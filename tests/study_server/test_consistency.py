"""Consistency verdicts at the thresholds of the paper (Task 1: reject > 5 of 9; Task 2: > 2 of 4).

Expected counts are worked out by hand from the rules in docs/contracts.md: for each repeat and rule,
equal -> values differ; max_abs_diff -> |score difference| > tolerance; max_set_diff -> |symmetric
difference| > tolerance.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from study_server.study.consistency import evaluate, is_inconsistent
from study_server.store.extensions import db
from study_server.store.models import Assignment
from studykit import TASK1, TASK2, arrive, import_study, make_plan, watch

REAL = {"definitely-real": 5, "somewhat-real": 4, "not-sure": 3, "somewhat-unreal": 2, "definitely-unreal": 1}


def _plan(media_set, tmp_path, task):
    import json

    return json.loads(make_plan(media_set, task, out=tmp_path / f"{task}.json").read_text())


def _task1_answers(n_bad: int) -> dict[int, dict]:
    """Originals at 0-2, repeats at 6-8 (3 repeats x 3 rules = 9 repeat answers); make ``n_bad`` of the 9
    inconsistent, spending them in rule order per repeat: emotion, realness (2 levels off), aspects (2 off)."""
    base = {"emotion": "anger", "realness": "somewhat-real", "aspects": ["lip-sync"]}
    answers = {p: dict(base) for p in range(9)}
    bad_versions = [("emotion", "fear"), ("realness", "definitely-unreal"), ("aspects", ["head-movement", "other"])]
    k = 0
    for pos in (6, 7, 8):
        for key, value in bad_versions:
            if k < n_bad:
                answers[pos][key] = value
                k += 1
    return answers


@pytest.mark.parametrize("n_bad, verdict", [(0, "valid"), (5, "valid"), (6, "rejected"), (9, "rejected")])
def test_task1_threshold(media_set, tmp_path, n_bad, verdict):
    plan = _plan(media_set, tmp_path, TASK1)
    items = [(it["position"], it["repeat_of"]) for it in plan["batches"][0]["items"]]
    result = evaluate(plan, items, _task1_answers(n_bad))
    assert (result.verdict, result.n_inconsistent, result.n_repeat_answers) == (verdict, n_bad, 9)


def test_task1_tolerances(media_set, tmp_path):
    plan = _plan(media_set, tmp_path, TASK1)
    q = {x["id"]: x for x in plan["questions"]}
    rule_real = {"kind": "max_abs_diff", "tolerance": 1}
    rule_set = {"kind": "max_set_diff", "tolerance": 1}
    # Realness: one level apart is consistent (paper: "differed more than one level").
    assert not is_inconsistent(rule_real, q["realness"], "somewhat-real", "not-sure")
    assert is_inconsistent(rule_real, q["realness"], "somewhat-real", "somewhat-unreal")
    # Aspects: one option more or less is consistent; two differences are not.
    assert not is_inconsistent(rule_set, q["aspects"], ["lip-sync"], ["lip-sync", "other"])
    assert is_inconsistent(rule_set, q["aspects"], ["lip-sync"], ["other"])  # {lip-sync, other}: 2
    assert is_inconsistent(rule_set, q["aspects"], ["none"], ["lip-sync", "other"])


@pytest.mark.parametrize("n_bad, verdict", [(2, "valid"), (3, "rejected")])
def test_task2_threshold(media_set, tmp_path, n_bad, verdict):
    plan = _plan(media_set, tmp_path, TASK2)
    items = [(it["position"], it["repeat_of"]) for it in plan["batches"][0]["items"]]  # repeats at 4, 5
    answers = {p: {"primary": "happiness", "secondary": "none"} for p in range(6)}
    flips = [(4, "primary", "sadness"), (4, "secondary", "fear"), (5, "primary", "anger"), (5, "secondary", "fear")]
    for pos, key, value in flips[:n_bad]:
        answers[pos][key] = value
    result = evaluate(plan, items, answers)
    assert (result.verdict, result.n_inconsistent, result.n_repeat_answers) == (verdict, n_bad, 4)


def test_verdict_stored_at_completion(client, app, media_set, tmp_path):
    name = import_study(app, make_plan(media_set, TASK1, out=tmp_path / "p.json"), media_set)
    token = arrive(client, name, lab="p1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    answers = _task1_answers(6)
    for pos in range(9):
        watch(client, state["items"][pos])
        r = client.post(f"/api/v1/a/{token}/answers", json={"answer_id": f"cons-{pos:04d}", "position": pos,
                                                            "values": answers[pos]})
        assert r.status_code == 200, r.get_json()
    r = client.post(f"/api/v1/a/{token}/complete")
    assert r.status_code == 200 and "verdict" not in r.get_data(as_text=True)  # kept from the participant
    assert client.post(f"/api/v1/a/{token}/complete").get_json() == r.get_json()  # idempotent
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        assert a.verdict.verdict == "rejected" and a.verdict.n_inconsistent == 6
        checks = a.verdict.details["checks"]
        assert len(checks) == 9 and sum(c["inconsistent"] for c in checks) == 6
        assert {(c["position"], c["repeat_of"]) for c in checks} == {(6, 0), (7, 1), (8, 2)}


def test_completion_writes_the_assignment_row_once(client, app, task1_study):
    """The lock order of study_server/study/assignment.py: a participant idle past the timeout who completes
    refreshes and completes their row in ONE UPDATE (a second write of the same row makes PostgreSQL
    re-check its foreign keys, which is what deadlocked with arrivals in issue #20)."""
    import datetime as dt

    from sqlalchemy import event, update

    from studykit import valid_values

    app.config["ASSIGNMENT_TIMEOUT_S"] = 600
    token = arrive(client, task1_study, lab="idle")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for item in state["items"]:
        r = client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"idle-{item['position']:04d}", "position": item["position"],
            "values": valid_values(state["questions"]), "rt_ms": 900, "played_fraction": 1.0})
        assert r.status_code == 200
    with app.app_context():
        db.session.execute(update(Assignment).where(Assignment.token == token).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=601)))
        db.session.commit()
        engine = db.engine
    updates: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE ASSIGNMENTS"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        r = client.post(f"/api/v1/a/{token}/complete")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200 and r.get_json()["status"] == "completed"
    assert len(updates) == 1, updates
