"""Per-participant trial order (plan ``design.order = "per-participant"``), on SQLite and PostgreSQL.

Each participant of a batch sees its items in an order of their own (drawn from the plan's seed and their
token, at start, with the repeat gap kept); everything keyed by position - media slots, answers, the
consistency verdict, the export's ``shown_position`` - follows that order, and the answers land on the
right items. Which stimulus a participant saw at a position is read from the media they received (the
served copy without its padding), independently of the server's bookkeeping.
"""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from sqlalchemy import select

from studykit import TASK1, arrive, import_study, make_plan, valid_values

N_PEOPLE = 5


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_app(request):
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def _per_participant_study(app, media_set, tmp_path, name="shuffled") -> tuple[str, dict]:
    from stimuli.plan import plan_to_bytes

    path = make_plan(media_set, TASK1, name=name, n_batches=1, quota=N_PEOPLE, out=tmp_path / f"{name}.json")
    plan = json.loads(path.read_text())
    plan["design"].update(order="per-participant", min_repeat_gap=2)
    path.write_bytes(plan_to_bytes(plan))
    import_study(app, path, media_set)
    return name, plan


def _seen(client, state, media_set) -> list[str]:
    """The stimulus id shown at each of the participant's positions, read from the bytes received."""
    from study_server.study.media import strip_padding

    by_sha = {r["sha256"]: r["stimulus_id"]
              for r in json.loads((media_set / "manifest.json").read_text())["stimuli"]}
    return [by_sha[hashlib.sha256(strip_padding(client.get(it["media_url"]).data)).hexdigest()]
            for it in state["items"]]


def _variant(stimulus_id: str) -> int:
    return int(stimulus_id.removeprefix("stim"))  # the same stimulus, the same answer: a consistent person


def test_each_participant_has_an_own_order_and_answers_land_on_the_right_items(any_app, media_set, tmp_path,
                                                                              monkeypatch):
    from study_server.study.context import cache_of
    from study_server.export.tables import export_study
    from study_server.store.extensions import db
    from study_server.store.models import Answer, Assignment, Item, StudyStimulus, Verdict

    app = any_app
    flask_saves = []
    view = app.view_functions["api.answers"]
    monkeypatch.setitem(app.view_functions, "api.answers", lambda **kw: flask_saves.append(1) or view(**kw))
    client = app.test_client()
    name, plan = _per_participant_study(app, media_set, tmp_path)
    batch = [it["stimulus_id"] for it in plan["batches"][0]["items"]]
    orders = []
    for k in range(N_PEOPLE):
        token = arrive(client, name, lab=f"shuffle-{k}")
        state = client.post(f"/api/v1/a/{token}/start").get_json()
        seen = _seen(client, state, media_set)
        orders.append(seen)
        assert sorted(seen) == sorted(batch)  # the batch's items, each original and its repeat
        for sid in {s for s in seen if seen.count(s) == 2}:
            first, second = (i for i, s in enumerate(seen) if s == sid)
            assert second - first >= 2  # the repeat gap holds in the participant's order
        # the same order on every request, and from a process that never saw the token
        assert [it["media_url"] for it in client.get(f"/api/v1/a/{token}").get_json()["items"]] == \
            [it["media_url"] for it in state["items"]]
        cache_of(app).shown.clear()
        assert _seen(client, client.get(f"/api/v1/a/{token}").get_json(), media_set) == seen
        for it in state["items"]:
            pos = it["position"]
            r = client.post(f"/api/v1/a/{token}/answers", json={
                "answer_id": f"{token[:10]}-{pos}", "position": pos,
                "values": valid_values(state["questions"], _variant(seen[pos])), "rt_ms": 900,
                "played_fraction": 1.0})
            assert r.status_code == 200, r.get_json()
        done = client.post(f"/api/v1/a/{token}/complete").get_json()
        assert done["status"] == "completed"
        with app.app_context():
            a = db.session.scalar(select(Assignment).where(Assignment.token == token))
            verdict = db.session.scalar(select(Verdict).where(Verdict.assignment_id == a.id))
            assert (verdict.verdict, verdict.n_inconsistent, verdict.n_repeat_answers) == ("valid", 0, 9)
            stored = db.session.execute(
                select(StudyStimulus.stimulus_id, Answer.values).join(Item, Item.id == Answer.item_id)
                .join(StudyStimulus, StudyStimulus.id == Item.stimulus_pk).where(Answer.assignment_id == a.id)).all()
            db.session.rollback()
        assert len(stored) == len(batch)
        for sid, values in stored:  # every answer is stored on the item whose video was shown
            assert values == valid_values(state["questions"], _variant(sid)), sid
    assert len({tuple(o) for o in orders}) == N_PEOPLE  # 5 participants, 5 orders
    if app.config["DATABASE_URL"].startswith("postgresql"):
        assert flask_saves == []  # the fast path stored every one of them, in the participants' orders

    # The export says where each participant saw each item.
    with app.app_context():
        export_study(db.session, name, tmp_path / "export")
    with open(tmp_path / "export" / "answers.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["question"] == "emotion"]
    by_person: dict[str, dict[int, str]] = {}
    for r in rows:
        by_person.setdefault(r["assignment"], {})[int(r["shown_position"])] = r["stimulus_id"]
    assert sorted([by_person[k][p] for p in range(len(batch))] for k in by_person) == sorted(orders)
    assert any(r["shown_position"] != r["position"] for r in rows)


def test_an_inconsistent_participant_is_judged_in_their_own_order(app, client, media_set, tmp_path):
    from study_server.store.extensions import db
    from study_server.store.models import Assignment, Verdict

    name, _ = _per_participant_study(app, media_set, tmp_path, name="shuffled-inc")
    token = arrive(client, name, lab="inc-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    seen = _seen(client, state, media_set)
    answered: set[str] = set()
    for it in state["items"]:
        pos, sid = it["position"], seen[it["position"]]
        variant = _variant(sid) + (1 if sid in answered else 0)  # every repeat answered differently
        answered.add(sid)
        client.post(f"/api/v1/a/{token}/answers", json={"answer_id": f"inc-{pos:04d}", "position": pos,
                                                        "values": valid_values(state["questions"], variant)})
    client.post(f"/api/v1/a/{token}/complete")
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        v = db.session.scalar(select(Verdict).where(Verdict.assignment_id == a.id))
        # 3 repeats x (emotion differs, realness 1 level apart: within tolerance, aspects 2 apart)
        assert v.n_repeat_answers == 9 and v.n_inconsistent >= 6 and v.verdict == "rejected"


def test_per_batch_plans_keep_the_plans_order(client, task1_study, plan_json, media_set):
    token = arrive(client, task1_study, lab="pb-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    plan = plan_json(task1_study)
    assert _seen(client, state, media_set) in [[it["stimulus_id"] for it in b["items"]] for b in plan["batches"]]
