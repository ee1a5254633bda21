"""The study and participant pages in Chromium (issue 32): simulated participants take a study through the
real HTTP API, their times are spread over the last hours, and the chart's numbers are read from the page
and checked against the database; a verdict is overridden through the page's form and its audit row and its
effect on the export are checked. Screenshots at 1280 px go to ``EMOSTUDY_ADMIN_SCREENSHOTS`` (a folder;
``docs/img`` for the documentation) or else the test's temporary folder."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from studykit import TASK1, arrive, import_study, make_plan

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config():
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("EMOSTUDY_ADMIN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _spread_over_hours(app, study: str, now: dt.datetime) -> None:
    """Move each participant's whole session back by 0-5 hours (by id), keeping its own durations."""
    from study_server.store.extensions import db
    from study_server.store.models import Answer, Assignment, Item, MediaFetch, Study

    with app.app_context():
        s = db.session
        sid = s.scalar(select(Study.id).where(Study.name == study))
        for a in s.scalars(select(Assignment).where(Assignment.study_id == sid).order_by(Assignment.id)):
            back = dt.timedelta(hours=a.id % 6, minutes=25 + 7 * (a.id % 5))  # sessions end before now
            for col in ("allocated_at", "started_at", "completed_at", "last_seen_at", "ended_at"):
                if getattr(a, col) is not None:
                    setattr(a, col, getattr(a, col) - back)
            if a.completed_at is not None:  # simulated people answer at once; people take 9-21 minutes
                took = dt.timedelta(minutes=9 + 3 * (a.id % 5), seconds=17 * a.id % 60)
                a.completed_at = a.last_seen_at = a.started_at + took
                fetches = {f.position: f for f in s.scalars(select(MediaFetch).where(MediaFetch.assignment_id == a.id))}
                for k, (answer, position) in enumerate(s.execute(
                        select(Answer, Item.position).join(Item, Item.id == Answer.item_id)
                        .where(Answer.assignment_id == a.id).order_by(Item.position))):
                    answer.created_at = a.started_at + dt.timedelta(seconds=60 + k * took.total_seconds() * 0.9 / 9)
                    if position in fetches:  # the video was asked for a few seconds before the answer
                        fetches[position].first_requested_at = answer.created_at - dt.timedelta(seconds=5)
        s.commit()


def _db_series(app, study: str, bins: list[dt.datetime]) -> dict[str, list[int]]:
    from study_server.store.extensions import db
    from study_server.store.models import Assignment, Study, Verdict

    with app.app_context():
        rows = db.session.execute(
            select(Assignment.allocated_at, Assignment.started_at, Assignment.completed_at, Verdict.verdict)
            .outerjoin(Verdict, Verdict.assignment_id == Assignment.id).join(Study, Study.id == Assignment.study_id)
            .where(Study.name == study)).all()
    hour = dt.timedelta(hours=1)
    picks = {"arrivals": lambda r: r[0], "starts": lambda r: r[1], "completions": lambda r: r[2],
             "valid": lambda r: r[2] if r[3] == "valid" else None}
    return {k: [sum(1 for r in rows if pick(r) is not None and b <= pick(r) < b + hour) for b in bins]
            for k, pick in picks.items()}


def test_study_page_in_chromium(app, client, live_server, browser, media_set, tmp_path):
    from study_server.export.tables import export_study
    from study_server.participant.simulate import ResponseModel, simulate
    from study_server.store.extensions import db
    from study_server.store.models import AdminDecision, Assignment, Study, Verdict

    path = make_plan(media_set, TASK1, name="pilot-emotion", quota=8, out=tmp_path / "plan.json")
    plan = json.loads(path.read_text())
    plan["study"]["title"] = "Pilot: emotion and realness of talking faces"
    path.write_text(json.dumps(plan))
    study = import_study(app, path, media_set)
    rows = json.loads((media_set / "manifest.json").read_text())["stimuli"]
    report = simulate(live_server, study, 8, manifest_rows=rows, secret_key=app.config["SECRET_KEY"], task=TASK1,
                      plan_questions=plan["questions"], model=ResponseModel(careless=0.2), seed=3, workers=2)
    assert report.completed == 8 and not report.refused
    # people who left: two before consent, one after consent (nothing answered)
    for k in range(2):
        arrive(client, study, lab=f"left-{k}")
    started = arrive(client, study, lab="left-started")
    client.post(f"/api/v1/a/{started}/start")
    now = dt.datetime.now(dt.timezone.utc)
    _spread_over_hours(app, study, now)
    with app.app_context():
        s = db.session
        sid = s.scalar(select(Study.id).where(Study.name == study))
        s.execute(update(Assignment).where(Assignment.study_id == sid, Assignment.completed_at.is_(None))
                  .values(last_seen_at=now - dt.timedelta(hours=2)))  # idle past the 30 minute timeout
        s.commit()
        valid_ids = list(s.scalars(select(Assignment.id).join(Verdict, Verdict.assignment_id == Assignment.id)
                                   .where(Assignment.study_id == sid, Verdict.verdict == "valid")
                                   .order_by(Assignment.id)))
    assert valid_ids

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server}/admin/login")
    page.fill("#user", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/admin/studies/{sid}")
    points = page.eval_on_selector_all(
        "svg.chart circle[data-series]",
        "els => els.map(e => [e.dataset.series, +e.dataset.bin, +e.dataset.n])")
    shown: dict[str, dict[int, int]] = {}
    for series, b, n in points:
        shown.setdefault(series, {})[b] = n
    api = page.request.get(f"{live_server}/admin/api/studies/{sid}/progress").json()  # the bins, as the admin
    bins = [dt.datetime.fromisoformat(b) for b in api["bins"]]
    expected = _db_series(app, study, bins)
    for series, counts in expected.items():
        assert [shown[series][i] for i in range(len(bins))] == counts, series
    assert sum(expected["arrivals"]) == 11 and sum(expected["completions"]) == 8
    assert len(bins) >= 6  # the sessions spread over six hours
    assert page.inner_text("#n-arrivals") == "11"
    page.screenshot(path=str(_shots(tmp_path) / "admin-study.png"), full_page=True)

    # override a valid participant's verdict through the page's form
    target = valid_ids[0]
    page.goto(f"{live_server}/admin/assignments/{target}")
    page.select_option("#override select[name=verdict]", "rejected")
    page.fill("#override input[name=reason]", "answered every video within a second")
    page.click("#override button[type=submit]")
    assert "Verdict set to rejected" in page.inner_text(".flash")
    assert "answered every video within a second" in page.inner_text("#decisions")
    assert "the consistency check said valid" in page.inner_text("#verdict")
    page.screenshot(path=str(_shots(tmp_path) / "admin-participant.png"), full_page=True)
    with app.app_context():
        s = db.session
        (d,) = s.scalars(select(AdminDecision)).all()
        assert (d.assignment_id, d.kind, d.action, d.actor) == (target, "verdict", "valid -> rejected", "admin")
        export_study(s, study, tmp_path / "export", include_simulated=True)
    participants = {r["assignment"]: r for r in csv.DictReader(io.StringIO(
        (tmp_path / "export" / "participants.csv").read_text()))}
    assert participants[str(target)]["verdict"] == "rejected"
    (decision,) = csv.DictReader(io.StringIO((tmp_path / "export" / "decisions.csv").read_text()))
    assert decision["assignment"] == str(target) and decision["reason"] == "answered every video within a second"
    page.goto(f"{live_server}/admin/studies/{sid}")
    assert "answered every video within a second" in page.inner_text("#decisions")
    page.close()


def test_the_open_page_asks_at_most_once_per_10_s(app, live_server, browser, task1_study):
    from study_server.store.extensions import db
    from study_server.store.models import Study

    with app.app_context():
        sid = db.session.scalar(select(Study.id).where(Study.name == task1_study))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server}/admin/login")
    page.fill("#user", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/live" in r.url else None)
    page.clock.install()
    page.goto(f"{live_server}/admin/studies/{sid}")
    page.clock.run_for(9_000)
    page.wait_for_timeout(300)
    assert asked == []  # nothing in the first 10 s
    for _ in range(3):
        page.clock.run_for(10_000)
        page.wait_for_timeout(500)  # let the (real) request finish and schedule the next
    assert 1 <= len(asked) <= 3  # 39 s open: at most one request per 10 s
    page.close()
