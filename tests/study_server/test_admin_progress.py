"""The study page of a running study (issue 32): progress over time, time to full, time and pay, dropout,
flags, words instead of internals; decisions with their audit trail and their effect on the export; the
review queue of every channel; payments that need a person; the polling endpoint's cost."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import statistics

import pytest
from sqlalchemy import event, select, update
from werkzeug.security import generate_password_hash

from adminkit import add_assignment, batch_positions, plan_of
from studykit import TASK1, arrive, import_study, make_plan

PASSWORD = "correct horse battery"
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
def app_config():
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


@pytest.fixture
def admin(client):
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").get_data(as_text=True)).group(1)
    assert client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token}).status_code == 302
    return client


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _session(app):
    from study_server.store.extensions import db
    return db.session


def _study_id(app, name):
    from study_server.store.models import Study
    with app.app_context():
        return _session(app).scalar(select(Study.id).where(Study.name == name))


def _set_times(app, aid: int, *, allocated: dt.datetime, started: dt.datetime | None = None,
               completed: dt.datetime | None = None, last_seen: dt.datetime | None = None) -> None:
    from study_server.store.models import Assignment
    with app.app_context():
        s = _session(app)
        s.execute(update(Assignment).where(Assignment.id == aid).values(
            allocated_at=allocated, started_at=started, completed_at=completed,
            last_seen_at=last_seen or completed or started or allocated))
        s.commit()


def _answers(plan, batch, n=None, emotion="anger"):
    positions = batch_positions(plan, batch)[:n]
    return {p: {"emotion": emotion, "realness": "not-sure", "aspects": ["none"]} for p in positions}


@pytest.fixture
def running_study(app, media_set, tmp_path):
    """Eleven participants over the last five hours: completions with known times, people who left at each
    step, one inconsistent, one still active; quota 4 per batch. Returns (study name, {label: assignment id})."""
    task1_study = import_study(app, make_plan(media_set, TASK1, name="running", quota=4, out=tmp_path / "r.json"),
                               media_set)
    plan = plan_of(app, task1_study)
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    ids = {}
    # (label, batch, status, verdict, answers, arrived h:m before this hour, minutes to complete)
    for label, batch, status, verdict, n, back_min, took_min in [
            ("v1", "b01", "completed", "valid", None, 4 * 60 + 50, 10),
            ("v2", "b01", "completed", "valid", None, 3 * 60 + 20, 14),
            ("v3", "b02", "completed", "valid", None, 2 * 60 + 40, 12),
            ("v4", "b02", "completed", "valid", None, 90, 20),
            ("bad", "b01", "completed", "rejected", None, 100, 8),
            ("consent", "b01", "returned", None, 0, 200, None),
            ("examples", "b02", "returned", None, 0, 150, None),
            ("trial4", "b02", "expired", None, 3, 120, None),
            ("trial4b", "b01", "abandoned", None, 3, 60, None),
            ("idle", "b02", "started", None, 2, 50, None),
            ("now", "b01", "started", None, 1, -2, None)]:
        aid = add_assignment(app, task1_study, batch, worker=f"W-{label}", status=status, verdict=verdict,
                             answers=_answers(plan, batch, n), n_inconsistent=7 if verdict == "rejected" else 0)
        arrived = hour - dt.timedelta(minutes=back_min) if back_min >= 0 else NOW - dt.timedelta(seconds=30)
        started = None if label == "consent" else arrived + dt.timedelta(minutes=1)
        completed = started + dt.timedelta(minutes=took_min) if took_min else None
        last_seen = NOW - dt.timedelta(seconds=5) if label == "now" else None
        _set_times(app, aid, allocated=arrived, started=started, completed=completed, last_seen=last_seen)
        ids[label] = aid
    return task1_study, ids


def _db_rows(app, study):
    from study_server.store.models import Assignment, Study, Verdict
    with app.app_context():
        return _session(app).execute(
            select(Assignment.allocated_at, Assignment.started_at, Assignment.completed_at, Verdict.verdict)
            .outerjoin(Verdict, Verdict.assignment_id == Assignment.id).join(Study, Study.id == Assignment.study_id)
            .where(Study.name == study)).all()


def test_progress_numbers_match_the_database(app, admin, running_study):
    study, ids = running_study
    sid = _study_id(app, study)
    data = admin.get(f"/admin/api/studies/{sid}/progress").get_json()
    assert data["bin_hours"] == 1 and data["timezone"] == "UTC"
    bins = [dt.datetime.fromisoformat(b) for b in data["bins"]]
    assert bins[0] == min(r[0] for r in _db_rows(app, study)).replace(minute=0, second=0, microsecond=0)
    # an independent count: for each bin, the rows whose time falls in [start, start + 1 h)
    for series, pick in (("arrivals", lambda r: r[0]), ("starts", lambda r: r[1]), ("completions", lambda r: r[2]),
                         ("valid", lambda r: r[2] if r[3] == "valid" else None)):
        expected = [sum(1 for r in _db_rows(app, study) if pick(r) and b <= pick(r) < b + dt.timedelta(hours=1))
                    for b in bins]
        assert data[series] == expected, series
    assert sum(data["arrivals"]) == 11 and sum(data["valid"]) == 4 and sum(data["completions"]) == 5
    # completion times (minutes): 10, 14, 12, 20, 8 -> quartiles by linear interpolation (inclusive method)
    took = sorted([10, 14, 12, 20, 8])
    assert data["durations_s"]["median"] == 12 * 60
    assert data["durations_s"]["q1"] == 10 * 60 and data["durations_s"]["q3"] == 14 * 60
    # pay: $1.00 reward, no bonus, over the 12 minute median = $5.00 an hour, below Prolific's $8.00
    assert data["pay"]["per_hour_usd"] == pytest.approx(1.0 / (statistics.median(took) / 60))
    assert data["pay"]["below_minimum"] is True
    # time to full: 4 valid still needed; the study is younger than the 6 hour window, so the rate is the
    # valid completions (4) over its age (since the first consent)
    first_start = min(r[1] for r in _db_rows(app, study) if r[1])
    age_h = (dt.datetime.now(dt.timezone.utc) - first_start).total_seconds() / 3600
    assert data["eta"]["needed"] == 4 and data["eta"]["recent_valid"] == 4
    assert data["eta"]["window_h"] == pytest.approx(age_h, abs=0.01) and age_h < 6
    assert data["eta"]["eta_s"] == pytest.approx(4 / (4 / data["eta"]["window_h"]) * 3600)
    # dropout: one before consent, one at the examples, two after 3 trials, one idle after 2 (timed out)
    steps = {(d["step"], d["trial"]): d["n"] for d in data["dropout"]}
    assert steps == {("consent", None): 1, ("examples", None): 1, ("trial", 4): 2, ("trial", 3): 1}
    assert data["flags"]["inconsistent"] == 1


def test_study_page_speaks_words_not_internals(app, admin, running_study, media_set, tmp_path):
    from study_server.store.recruitment import RecruitPost
    study, ids = running_study
    sid = _study_id(app, study)
    with app.app_context():
        s = _session(app)
        s.add(RecruitPost(study_id=sid, platform="lab", sandbox=True, external_id="lab-1-abcd", places=5, details={}))
        s.add(RecruitPost(study_id=sid, platform="mturk", sandbox=True, external_id="HIT1", places=5, details={}))
        s.commit()
    html = admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert "`" not in html  # no literal backticks
    assert "Sandbox" not in html and "LIVE" not in html
    assert "Lab link" in html and "MTurk sandbox (test, no money)" in html
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", html)  # no fractions of seconds
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", html)  # no ISO 'T' timestamps
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)
    # the participant link of every channel, and a place for the preview button
    assert f"/s/{study}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}" in html and f"/s/{study}?lab=" in html
    assert 'id="preview-slot"' in html
    # the chart is inline SVG: nothing fetched from elsewhere, no chart library
    assert "<svg" in html and "cdn" not in html.lower() and 'src="http' not in html
    # the dropout and flags in words
    assert "before giving consent" in html and "at trial 4" in html and "Participants rejected as inconsistent" in html


def test_times_in_the_study_time_zone(app, admin, media_set, tmp_path):
    from stimuli.plan import validate_plan
    from stimuli.spec import parse_spec
    from stimuli.errors import SpecError

    path = make_plan(media_set, TASK1, name="tz-study", out=tmp_path / "tz.json")
    plan = json.loads(path.read_text())
    plan["study"]["timezone"] = "Asia/Kolkata"  # +05:30: hours start at :30 UTC
    validate_plan(plan)
    path.write_text(json.dumps(plan))
    name = import_study(app, path, media_set)
    aid = add_assignment(app, name, "b01", worker="tz1", status="completed", verdict="valid",
                         answers=_answers(plan, "b01"))
    t = dt.datetime(2026, 12, 7, 10, 40, 5, 123456, tzinfo=dt.timezone.utc)
    _set_times(app, aid, allocated=t, started=t + dt.timedelta(seconds=30), completed=t + dt.timedelta(minutes=9))
    page = admin.get(f"/admin/assignments/{aid}").get_data(as_text=True)
    assert "2026-12-07 16:10:05 IST" in page  # 10:40:05 UTC, to the second
    data = admin.get(f"/admin/api/studies/{_study_id(app, name)}/progress").get_json()
    assert data["timezone"] == "Asia/Kolkata"
    assert dt.datetime.fromisoformat(data["bins"][0]) == dt.datetime(2026, 12, 7, 10, 30, tzinfo=dt.timezone.utc)
    # the spec key: an IANA name, checked when the spec is read
    from pathlib import Path
    text = (Path(__file__).parents[2] / "stimuli" / "specs" / "demo-task1.toml").read_text()
    assert "timezone" not in text and parse_spec(text).study.timezone == "UTC"
    with_tz = text.replace("[study]\n", '[study]\ntimezone = "Europe/Berlin"\n', 1)
    assert parse_spec(with_tz).study.timezone == "Europe/Berlin"
    with pytest.raises(SpecError, match="timezone.*Mars/Olympus.*IANA"):
        parse_spec(text.replace("[study]\n", '[study]\ntimezone = "Mars/Olympus"\n', 1))


def test_participant_page_in_the_order_seen_with_conditions_in_words(app, admin, task1_study):
    from study_server.store.models import Assignment, MediaFailure, Item
    plan = plan_of(app, task1_study)
    answers = _answers(plan, "b02", 6, emotion="fear")
    aid = add_assignment(app, task1_study, "b02", worker="P-1", status="started", answers=answers)
    with app.app_context():
        s = _session(app)
        a = s.get(Assignment, aid)
        item7 = s.scalar(select(Item).where(Item.batch_id == a.batch_id, Item.position == 7))
        s.add(MediaFailure(assignment_id=aid, item_id=item7.id, n_failures=3, error="MEDIA_ERR_NETWORK"))
        s.commit()
    html = admin.get(f"/admin/assignments/{aid}").get_data(as_text=True)
    rows = re.findall(r'<tr title="stimulus (\w+), plan position (\d+)"><td class="n">(\d+)</td><td>(\w*)</td>'
                      r'<td>([\w ]*)</td><td>([\w ]*)</td>\s*<td>(?:trial (\d+))?</td>', html)
    assert [int(r[2]) for r in rows] == list(range(1, 10))
    batch = next(b for b in plan["batches"] if b["batch_id"] == "b02")
    manifest = {}
    from study_server.store.models import StudyStimulus
    with app.app_context():
        manifest = {st.stimulus_id: st.labels for st in _session(app).scalars(select(StudyStimulus))}
    for stim, position, trial, source, visual, audio, repeat in rows:  # per-batch order: the plan's
        item = batch["items"][int(position)]
        assert item["stimulus_id"] == stim and int(trial) == int(position) + 1
        assert (source, visual, audio) == (manifest[stim]["source"], manifest[stim]["visual_emotion"],
                                          manifest[stim]["audio_emotion"])
        assert (repeat or None) == (None if item["repeat_of"] is None else str(item["repeat_of"] + 1))
    assert html.count("<b>Fear</b>") == 6 and "video would not load: MEDIA_ERR_NETWORK (3 tries)" in html
    assert "0.8 s" in html  # response time in seconds


def test_per_participant_order_follows_shown_order(app, admin, media_set, tmp_path):
    from study_server.store.models import Assignment
    from study_server.study.studies import shown_order
    path = make_plan(media_set, TASK1, name="ordered", out=tmp_path / "o.json")
    plan = json.loads(path.read_text())
    plan["design"].update({"order": "per-participant", "min_repeat_gap": 1})
    path.write_text(json.dumps(plan))
    name = import_study(app, path, media_set)
    aid = add_assignment(app, name, "b01", worker="ord-1", status="started")
    with app.app_context():
        token = _session(app).get(Assignment, aid).token
    items = [(it["position"], it["repeat_of"]) for it in plan["batches"][0]["items"]]
    order = shown_order(plan, items, token)
    assert list(order) != [p for p, _ in items]  # this token's order differs from the plan's
    html = admin.get(f"/admin/assignments/{aid}").get_data(as_text=True)
    shown = [int(p) for p in re.findall(r'plan position (\d+)"', html)]
    assert shown == list(order)


def test_override_verdict_is_logged_and_exported(app, admin, running_study, tmp_path):
    from study_server.export.tables import export_study
    from study_server.store.models import AdminDecision, AuditLog, Verdict
    study, ids = running_study
    aid, sid = ids["v2"], _study_id(app, study)
    token = _csrf(admin, f"/admin/assignments/{aid}")
    # no reason: refused, nothing changes
    admin.post(f"/admin/assignments/{aid}/verdict", data={"csrf_token": token, "verdict": "rejected", "reason": " "})
    assert "every decision needs a reason" in admin.get(f"/admin/assignments/{aid}").get_data(as_text=True)
    r = admin.post(f"/admin/assignments/{aid}/verdict",
                   data={"csrf_token": token, "verdict": "rejected", "reason": "same answer to every video"})
    assert r.status_code == 302
    with app.app_context():
        s = _session(app)
        v = s.scalar(select(Verdict).where(Verdict.assignment_id == aid))
        assert v.verdict == "rejected" and v.details["override"]["checked_verdict"] == "valid"
        (d,) = s.scalars(select(AdminDecision)).all()
        assert (d.actor, d.kind, d.action, d.reason, d.assignment_id) == (
            "admin", "verdict", "valid -> rejected", "same answer to every video", aid)
        assert s.scalar(select(AuditLog.action).where(AuditLog.target == f"assignment:{aid}",
                                                      AuditLog.action == "decision.verdict"))
        export_study(s, study, tmp_path / "export", include_simulated=True)
    page = admin.get(f"/admin/assignments/{aid}").get_data(as_text=True)
    assert "the consistency check said valid" in page and "same answer to every video" in page
    assert "same answer to every video" in admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    data = admin.get(f"/admin/api/studies/{sid}").get_json()
    assert data["totals"]["valid"] == 3 and data["totals"]["rejected"] == 2
    participants = list(csv.DictReader(io.StringIO((tmp_path / "export" / "participants.csv").read_text())))
    assert {p["assignment"]: p["verdict"] for p in participants}[str(aid)] == "rejected"
    (row,) = list(csv.DictReader(io.StringIO((tmp_path / "export" / "decisions.csv").read_text())))
    assert row["assignment"] == str(aid) and row["action"] == "valid -> rejected" and row["actor"] == "admin"
    assert row["reason"] == "same answer to every video" and row["participant"] != "W-v2" and len(row["participant"]) == 16
    # overriding to what it already is changes nothing
    admin.post(f"/admin/assignments/{aid}/verdict", data={"csrf_token": token, "verdict": "rejected", "reason": "x"})
    with app.app_context():
        assert len(_session(app).scalars(select(AdminDecision)).all()) == 1


def test_lab_participants_wait_in_the_review_queue(app, admin, task1_study):
    from study_server.store.models import AdminDecision, Assignment
    plan = plan_of(app, task1_study)
    aid = add_assignment(app, task1_study, "b01", worker="LAB-1", status="completed", verdict="valid",
                         answers=_answers(plan, "b01"))
    sid = _study_id(app, task1_study)
    page = admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert f'id="review-assignment-{aid}"' in page and "Paid by hand" in page and "Ask to return" not in page
    token = _csrf(admin, f"/admin/studies/{sid}")
    admin.post(f"/admin/studies/{sid}/review/assignment-{aid}",
               data={"csrf_token": token, "decision": "approve", "reason": "checked the answers"})
    with app.app_context():
        s = _session(app)
        assert s.get(Assignment, aid).status == "approved"
        assert [(d.kind, d.action, d.reason) for d in s.scalars(select(AdminDecision))] == [
            ("review", "approve", "checked the answers")]
    page = admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert f'id="review-assignment-{aid}"' not in page
    # an unknown entry, or a decision a lab participant cannot get, changes nothing
    for key, decision in ((f"assignment-{aid}", "return"), ("item-999", "approve"), ("nonsense", "approve")):
        admin.post(f"/admin/studies/{sid}/review/{key}", data={"csrf_token": token, "decision": decision, "reason": "r"})
    with app.app_context():
        assert len(_session(app).scalars(select(AdminDecision)).all()) == 1


class _FakeProlific:
    platform = "prolific"

    def __init__(self):
        self.calls = []

    def request_return(self, sub):
        self.calls.append(("return", sub.external_id))

    def approve(self, sub, feedback=None):
        self.calls.append(("approve", sub.external_id))


def test_platform_queue_decisions_go_through_the_recruitment_ledger(app, admin, task1_study):
    from study_server.store.models import AdminDecision, AuditLog
    from study_server.store.recruitment import ReviewItem
    aid = add_assignment(app, task1_study, "b01", worker="PRO-1", platform="prolific", status="started",
                         answers=_answers(plan_of(app, task1_study), "b01", 4))
    sid = _study_id(app, task1_study)
    with app.app_context():
        s = _session(app)
        item = ReviewItem(study_id=sid, platform="prolific", external_id="SESS-1", worker_id="PRO-1", reason="partial",
                          evidence={"assignment": aid, "platform_status": "AWAITING REVIEW", "answers": 4}, resolution={})
        s.add(item)
        s.commit()
        item_id = item.id
    fake = _FakeProlific()
    app.extensions["emostudy_admin_recruiter"] = lambda session, study, platform: fake
    page = admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert "did not finish the survey" in page and "PRO-1" not in page  # the pseudonym, not the worker id
    token = _csrf(admin, f"/admin/studies/{sid}")
    admin.post(f"/admin/studies/{sid}/review/item-{item_id}",
               data={"csrf_token": token, "decision": "return", "reason": "left after 4 videos"})
    assert fake.calls == [("return", "SESS-1")]
    with app.app_context():
        s = _session(app)
        assert s.get(ReviewItem, item_id).status == "return-requested"
        actions = [a for (a,) in s.execute(select(AuditLog.action).order_by(AuditLog.id))]
        assert actions.index("recruit.review.return") < actions.index("decision.review")  # the ledger's audit first
        assert [(d.action, d.assignment_id) for d in s.scalars(select(AdminDecision))] == [("return", aid)]


def test_payments_that_need_a_person_are_listed_with_their_command(app, admin, task1_study):
    from study_server.store.recruitment import BonusPayment
    aid = add_assignment(app, task1_study, "b01", worker="PAY-WORKER", platform="prolific", status="approved",
                         verdict="valid")
    sid = _study_id(app, task1_study)
    with app.app_context():
        s = _session(app)
        for n, status in enumerate(("unknown", "failed", "sent")):
            s.add(BonusPayment(assignment_id=aid, rule=f"r{n}", platform="prolific", worker_id="PAY-WORKER",
                               amount_cents=50, token=f"tok{n}", status=status, reason="bonus",
                               response={"error": "timeout"} if status == "unknown" else {}))
        s.commit()
        ids = {b.status: b.id for b in s.scalars(select(BonusPayment))}
    page = admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    table = re.search(r'<table id="payments">(.*?)</table>', page, re.S).group(1)
    assert table.count("<tr>") == 3  # the header and the unknown and failed rows; the sent one is settled
    assert "PAY-WORKER" not in table
    assert f"--mark-sent {ids['unknown']}" in table and f"--mark-failed {ids['unknown']}" in table
    assert f"emostudy recruit bonus --study {task1_study} --platform prolific" in table
    assert f"--mark-sent {ids['failed']}" not in table


def test_hold_release_is_a_logged_decision(app, admin, client, task1_study):
    from study_server.store.models import AdminDecision, Assignment
    token_p = arrive(client, task1_study, lab="held-1")
    with app.app_context():
        aid = _session(app).scalar(select(Assignment.id).where(Assignment.token == token_p))
    token = _csrf(admin, "/admin/holds")
    admin.post(f"/admin/holds/{aid}/release", data={"csrf_token": token, "reason": "a bot"})
    with app.app_context():
        assert [(d.kind, d.action, d.reason) for d in _session(app).scalars(select(AdminDecision))] == [
            ("hold", "release", "a bot")]


def _count_queries(app, fn):
    from study_server.store.extensions import db
    with app.app_context():
        engine = db.engine
    seen = []

    def on_execute(conn, cursor, statement, *args):
        seen.append(statement)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        result = fn()
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return result, seen


def test_polling_costs_one_cheap_query_whatever_the_size(app, admin, client, task1_study):
    sid = _study_id(app, task1_study)
    page = admin.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert "setTimeout(tick, 10000)" in page  # at most one request per 10 s per open page
    mark = re.search(r'data-fingerprint="([^"]+)"', page).group(1)
    counts = []
    for n in (0, 60):
        for k in range(n):
            add_assignment(app, task1_study, "b01" if k % 2 else "b02", worker=f"poll-{n}-{k}", status="started")
        if n:
            mark = re.search(r'data-fingerprint="([^"]+)"', admin.get(f"/admin/studies/{sid}/live").get_data(as_text=True)).group(1)
        response, queries = _count_queries(app, lambda: admin.get(f"/admin/studies/{sid}/live?since={mark}"))
        assert response.status_code == 204 and response.data == b""
        counts.append(sum(q.lstrip().upper().startswith("SELECT") for q in queries))
        assert not any("answers" in q.lower() for q in queries)  # no answer table scan while nothing changes
    # the login check, the study row and the fingerprint: the same three with 0 or 60 participants
    assert counts[0] == counts[1] == 3
    add_assignment(app, task1_study, "b01", worker="new-arrival", status="allocated")
    response = admin.get(f"/admin/studies/{sid}/live?since={mark}")
    assert response.status_code == 200 and 'id="live"' in response.get_data(as_text=True)


@pytest.mark.postgres
def test_progress_numbers_on_postgresql(pg_app, media_set, tmp_path):
    """The epoch seconds come from SQL (extract(epoch) on PostgreSQL, julianday on SQLite): the same numbers."""
    app = pg_app
    app.config["ADMIN_PASSWORD_HASH"] = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    study = import_study(app, make_plan(media_set, TASK1, name="pg-progress", quota=4, out=tmp_path / "p.json"),
                         media_set)
    plan = plan_of(app, study)
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    for k, (back_min, took_min, verdict) in enumerate([(170, 10, "valid"), (100, 14, "valid"), (40, 12, "rejected")]):
        aid = add_assignment(app, study, "b01", worker=f"pg-{k}", status="completed", verdict=verdict,
                             answers=_answers(plan, "b01"))
        arrived = hour - dt.timedelta(minutes=back_min, seconds=0.25)
        _set_times(app, aid, allocated=arrived, started=arrived + dt.timedelta(minutes=1),
                   completed=arrived + dt.timedelta(minutes=1 + took_min))
    admin = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/admin/login").get_data(as_text=True)).group(1)
    admin.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token})
    data = admin.get(f"/admin/api/studies/{_study_id(app, study)}/progress").get_json()
    bins = [dt.datetime.fromisoformat(b) for b in data["bins"]]
    rows = _db_rows(app, study)
    assert data["arrivals"] == [sum(1 for r in rows if b <= r[0] < b + dt.timedelta(hours=1)) for b in bins]
    assert data["valid"] == [sum(1 for r in rows if r[3] == "valid" and b <= r[2] < b + dt.timedelta(hours=1))
                             for b in bins]
    assert data["durations_s"]["median"] == 12 * 60 and data["durations_s"]["n"] == 3


@pytest.mark.parametrize("app_config", [{"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
                                         "ARRIVAL_HOLD_S": 60}])
def test_extended_hold_outlives_its_lapse_and_is_logged(app, admin, client, task1_study):
    from study_server.store.models import AdminDecision, Assignment
    from study_server.study.assignment import expire_stale
    token_p = arrive(client, task1_study, lab="slow-reader")
    with app.app_context():
        aid = _session(app).scalar(select(Assignment.id).where(Assignment.token == token_p))
    token = _csrf(admin, "/admin/holds")
    admin.post(f"/admin/holds/{aid}/extend", data={"csrf_token": token, "minutes": "999", "reason": "x"})
    admin.post(f"/admin/holds/{aid}/extend", data={"csrf_token": token, "minutes": "10", "reason": ""})
    admin.post(f"/admin/holds/{aid}/extend", data={"csrf_token": token, "minutes": "10",
                                                  "reason": "reading the consent form on the phone"})
    with app.app_context():
        s = _session(app)
        a = s.get(Assignment, aid)
        assert a.hold_until is not None and a.hold_until > a.allocated_at + dt.timedelta(minutes=10)
        (d,) = s.scalars(select(AdminDecision)).all()
        assert (d.kind, d.action, d.reason) == ("hold", "extend 10 min", "reading the consent form on the phone")
        # five minutes on: without the extension the 60 s hold would have lapsed; with it, the place is kept
        assert expire_stale(s, a.study_id, 1800, NOW + dt.timedelta(minutes=5), hold_s=60) == 0
        s.commit()
        assert s.get(Assignment, aid).status == "allocated"
        # past the extension it lapses as any hold does
        assert expire_stale(s, a.study_id, 1800, a.hold_until + dt.timedelta(seconds=1), hold_s=60) == 1
        s.commit()
    admin.post(f"/admin/holds/{aid}/extend", data={"csrf_token": token, "minutes": "10", "reason": "again"})
    with app.app_context():
        assert len(_session(app).scalars(select(AdminDecision)).all()) == 1  # an expired hold is not extended


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_an_extended_hold_keeps_the_place_on_both_allocation_paths(request, backend, media_set, tmp_path,
                                                                   monkeypatch):
    """The allocation itself (SQLite: expire_stale; PostgreSQL: one SQL statement) honours the extension."""
    from study_server.admin.decisions import extend_hold
    from study_server.store.extensions import db
    from study_server.store.models import Assignment
    from study_server.study import assignment as assign_module

    app = request.getfixturevalue("app" if backend == "sqlite" else "pg_app")
    origin = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    t = {"s": 0.0}
    monkeypatch.setattr(assign_module, "utcnow", lambda: origin + dt.timedelta(seconds=t["s"]))
    # The three who started make no progress for 13 minutes: only the extended hold is under test here, so the
    # release of idle started sessions (IDLE_RELEASE_S, issue 29) is off.
    app.config.update({"ARRIVAL_HOLD_S": 180, "RATE_LIMIT_ENABLED": False, "IDLE_RELEASE_S": 0})
    study = import_study(app, make_plan(media_set, TASK1, name="held", quota=2, out=tmp_path / "h.json"), media_set)
    client = app.test_client()
    slow = arrive(client, study, lab="slow")
    for i in range(3):  # 4 places: full
        assert client.post(f"/api/v1/a/{arrive(client, study, lab=f'p{i}')}/start").status_code == 200
    t["s"] = 60
    with app.app_context():
        aid = db.session.scalar(select(Assignment.id).where(Assignment.token == slow))
        until = extend_hold(db.session, aid, 10, "phone call", actor="admin", hold_s=180,
                            now=origin + dt.timedelta(seconds=60))
    assert until == origin + dt.timedelta(seconds=180 + 600)  # 10 minutes past when it would have lapsed
    for t["s"] in (181, 779):  # past the plain hold, and just before the extension ends: still held
        r = client.post(f"/api/v1/studies/{study}/arrive", json={"query": {"lab": "late"}})
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "study_full"
    t["s"] = 781
    late = arrive(client, study, lab="late")
    with app.app_context():
        statuses = dict(db.session.execute(select(Assignment.token, Assignment.status)).all())
    assert statuses[slow] == "expired" and statuses[late] == "allocated"
