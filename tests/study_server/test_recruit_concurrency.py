"""Two real OS processes at once against one database (SQLite file and PostgreSQL) and one Prolific (the
fake HTTP server of ``prolificfake``, which both children call over HTTP): bonus x bonus pays every
participant exactly once (row claims), sync x sync is serialised (the study lock) with a clear message,
sync x bonus both finish. A claim left by a killed payer is settled by reading the records, never by paying.

The children start together (each says READY once connected; the parent then says go to both); Prolific holds the pay call and the submissions list a
little, so the two runs overlap on every try. Each child is bounded by a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prolificfake import FakeProlific
from sqlalchemy import select
from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.recruit import AnotherRun, LedgerError, ledger, service
from study_server.recruit.locks import study_lock
from study_server.store.extensions import db
from study_server.store.models import Assignment
from study_server.store.recruitment import BONUS_PAYING, BONUS_SENT, BONUS_UNKNOWN, BonusPayment

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://study.example.org"
N = 6

CHILD = r"""
import json, sys, time
from study_server.app import create_app
from study_server.store.extensions import db
from study_server.recruit import RecruitError, ledger, service
from study_server.recruit.prolific import ProlificRecruiter

url, name, api, action, instance = sys.argv[1:6]
app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test-secret", "INSTANCE_PATH": instance})
with app.app_context():
    study = service.find_study(db.session, name)
    rec = ProlificRecruiter(token="secret-token", base_url=api, study_id="STUDY1",
                            completion_code=study.completion_code, sleep=lambda s: None)
    db.session.commit()  # end the read transaction (SQLite: BEGIN IMMEDIATE) before waiting
    print("READY", flush=True)
    sys.stdin.readline()  # the parent says go when both children are ready
    try:
        if action == "bonus":
            r = ledger.pay_bonuses(db.session, study, rec)
            out = {"paid": len(r.paid), "claimed_elsewhere": getattr(r, "claimed_elsewhere", []),
                   "already": r.skipped_already_paid}
        elif action == "bonus-hang":  # claims rows, then hangs inside the pay call until killed
            rec.bonus = lambda *a, **k: (print("PAYING", flush=True), time.sleep(600))
            ledger.pay_bonuses(db.session, study, rec)
            out = {}
        else:
            r = service.sync(db.session, study, rec, settings=service.post_settings(study, "https://study.example.org"))
            out = {"approved": r.approved, "posted": r.posted}
    except RecruitError as exc:
        out = {"error": type(exc).__name__, "message": str(exc)}
    print("RESULT " + json.dumps(out), flush=True)
"""


def _spawn(url, name, fake, action, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, url, name, fake.url, action,
                             str(tmp_path / f"instance-{action}")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True)


def _ready(proc):
    line = proc.stdout.readline()
    assert line.strip() == "READY", f"child did not start: {line!r} {proc.stderr.read()[-3000:] if proc.poll() is not None else ''}"


def _result(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)  # bounded: a hung child fails the test
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed (rc {proc.returncode}):\n{out}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def _race(url, name, fake, actions, tmp_path):
    procs = [_spawn(url, name, fake, a, tmp_path) for a in actions]
    try:
        for p in procs:  # both children import and connect first, then start together
            _ready(p)
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        return [_result(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request, media_set, tmp_path):
    """(app, database URL) on SQLite or on a fresh PostgreSQL database."""
    name = "app" if request.param == "sqlite" else "pg_app"
    app = request.getfixturevalue(name)
    return app, app.config["DATABASE_URL"]


@pytest.fixture
def fake():
    f = FakeProlific()
    f.thread.start()
    yield f
    f.server.shutdown()
    f.server.server_close()


def _study(app, media_set, tmp_path):
    """The study (a bonus per correct answer), in the current app context."""
    path = make_plan(media_set, TASK1, name="race-t1", out=tmp_path / "plan.json", quota=4)
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": 2.0, "bonus": {"rule": "per_correct", "question": "emotion",
                                                    "truth": "visual_emotion", "amount_usd": 0.05, "max_usd": None}}
    path.write_text(json.dumps(plan))
    return service.find_study(db.session, import_study(app, path, media_set))


def _approved_participants(app, study, fake, n=N, approve=True):
    c = service.ensure_campaign(db.session, study, "prolific", False)
    service.record_post(db.session, study, c, "STUDY1", n, seq=1)
    web = app.test_client()
    for i in range(1, n + 1):
        token = arrive(web, study.name, PROLIFIC_PID=f"P{i}", STUDY_ID="STUDY1", SESSION_ID=f"S{i}")
        complete_session(web, token)
        if approve:
            a = db.session.scalar(select(Assignment).where(Assignment.token == token))
            a.status = "approved"
    db.session.commit()
    fake.places = n
    fake.submissions = [{"id": f"S{i}", "participant_id": f"P{i}",
                         "status": "APPROVED" if approve else "AWAITING REVIEW"} for i in range(1, n + 1)]


def test_two_bonus_processes_pay_each_participant_once(world, fake, media_set, tmp_path):
    app, url = world
    with app.app_context():
        study = _study(app, media_set, tmp_path)
        name = study.name
        _approved_participants(app, study, fake)
        expected = {pb.worker_id: pb.amount_cents for pb in ledger.plan_bonuses(db.session, study)}
        assert len(expected) == N
    fake.pay_delay_s = 0.3  # each pay call takes a while: the second process runs into claimed rows
    a, b = _race(url, name, fake, ["bonus", "bonus"], tmp_path)
    for pid, cents in expected.items():
        assert fake.paid_to(pid) == [cents], (pid, fake.paid_to(pid), a, b)  # once, the planned amount
    assert a["paid"] + b["paid"] == N and fake.pay_calls == N
    assert a["claimed_elsewhere"] or b["claimed_elsewhere"] or a["already"] or b["already"], (a, b)
    said = " ".join(a["claimed_elsewhere"] + b["claimed_elsewhere"])
    assert not said or "is being paid by process" in said
    with app.app_context():
        assert set(db.session.scalars(select(BonusPayment.status))) == {BONUS_SENT}


def test_two_syncs_are_serialised_with_a_clear_message(world, fake, media_set, tmp_path):
    app, url = world
    with app.app_context():
        study = _study(app, media_set, tmp_path)
        name = study.name
        _approved_participants(app, study, fake, n=2, approve=False)
    fake.list_delay_s = 1.5  # the first sync is still reading submissions when the second one starts
    results = _race(url, name, fake, ["sync", "sync"], tmp_path)
    refused = [r for r in results if r.get("error")]
    done = [r for r in results if not r.get("error")]
    assert len(refused) == 1 and len(done) == 1, results
    assert refused[0]["error"] == "AnotherRun"
    assert "another sync is running since" in refused[0]["message"] and "stopped before changing anything" in \
        refused[0]["message"]
    assert sorted(done[0]["approved"]) == ["S1", "S2"]
    approvals = [p for m, p, b in fake.calls("POST", "/api/v1/submissions/") if p.endswith("/transition/")]
    assert sorted(approvals) == ["/api/v1/submissions/S1/transition/", "/api/v1/submissions/S2/transition/"]
    assert len(fake.calls("PATCH")) <= 1  # places added at most once
    # The lock is free again: the next cron run goes through.
    with app.app_context():
        study = service.find_study(db.session, name)
        from study_server.recruit.prolific import ProlificRecruiter
        fake.list_delay_s = 0
        service.sync(db.session, study, ProlificRecruiter(token="secret-token", base_url=fake.url, study_id="STUDY1"),
                     settings=service.post_settings(study, BASE))


def test_sync_and_bonus_at_once_both_finish(world, fake, media_set, tmp_path):
    app, url = world
    with app.app_context():
        study = _study(app, media_set, tmp_path)
        name = study.name
        _approved_participants(app, study, fake)
        expected = {pb.worker_id: pb.amount_cents for pb in ledger.plan_bonuses(db.session, study)}
    fake.pay_delay_s = fake.list_delay_s = 0.3
    s, b = _race(url, name, fake, ["sync", "bonus"], tmp_path)
    assert "error" not in s and "error" not in b, (s, b)
    assert b["paid"] == N and all(fake.paid_to(pid) == [c] for pid, c in expected.items())


def test_a_killed_payers_claim_is_settled_by_the_records_never_by_paying(world, fake, media_set, tmp_path):
    app, url = world
    with app.app_context():
        study = _study(app, media_set, tmp_path)
        name = study.name
        _approved_participants(app, study, fake, n=1)
    proc = _spawn(url, name, fake, "bonus-hang", tmp_path)
    try:
        _ready(proc)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()  # the child holds the claim and is inside the pay call
        assert line.strip() == "PAYING", proc.stderr.read()[-2000:]
        with app.app_context():
            study = service.find_study(db.session, name)
            row = db.session.scalar(select(BonusPayment))
            assert row.status == BONUS_PAYING and row.claimed_by.split(":")[1] == str(proc.pid)
            from study_server.recruit.prolific import ProlificRecruiter
            rec = ProlificRecruiter(token="secret-token", base_url=fake.url, study_id="STUDY1")
            r = ledger.pay_bonuses(db.session, study, rec)  # the claim is alive: left alone, and said so
            assert r.paid == [] and r.claimed_elsewhere and f"process {proc.pid}" in r.claimed_elsewhere[0]
            assert "since" in r.claimed_elsewhere[0]
            proc.kill()
            proc.wait(timeout=30)
            # The claimant is dead: its records are read (nothing shows on Prolific) and the row waits for a
            # person instead of being paid a second time.
            with pytest.raises(LedgerError, match=r"--mark-sent \d+"):
                ledger.pay_bonuses(db.session, study, rec)
            db.session.refresh(row)
            assert row.status == BONUS_UNKNOWN and fake.pay_calls == 0
            (u,) = ledger.unsettled(db.session, study)
            assert u["pseudonym"] and u["amount"].endswith(" USD") and f"--mark-sent {row.id}" in u["command"]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_lock_names_who_holds_it(world, fake, media_set, tmp_path):
    app, _ = world
    with app.app_context():
        study = _study(app, media_set, tmp_path)
        with study_lock(db.session, study, "open"):
            from study_server.recruit.prolific import ProlificRecruiter
            rec = ProlificRecruiter(token="secret-token", base_url=fake.url, study_id="STUDY1")
            with pytest.raises(AnotherRun, match=rf"another open is running since \d{{4}}-\d\d-\d\d \d\d:\d\d.* "
                                                 rf"\(process {os.getpid()}"):
                service.sync(db.session, study, rec, settings=service.post_settings(study, BASE))
        assert not fake.requests  # refused before any call
        service.sync(db.session, study, ProlificRecruiter(token="secret-token", base_url=fake.url),
                     settings=service.post_settings(study, BASE))  # released
