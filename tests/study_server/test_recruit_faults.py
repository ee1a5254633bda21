"""Fault injection on MTurk: for every platform call of open, sync, a reviewer's approve/reject and bonus,
the process dies before the call, dies after it (MTurk did the work, our database did not record it), or
the reply is lost. Then the same command runs again (at once, or 25 hours later when MTurk has forgotten
the idempotency tokens) and the outcome must equal a run without faults: the HITs on MTurk are the ones in
our database (none orphaned, none doubled), nobody is paid twice, nobody honest is rejected.

MTurk is the in-memory fake of ``mturkfake`` behind a real boto3 client (requests validated against the
real API model, replies parsed and retried by botocore)."""

from __future__ import annotations

import json

import pytest
from mturkfake import Crash, FakeMTurk
from sqlalchemy import select
from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.recruit import RecruitError, ledger, mturk, service
from study_server.store.extensions import db
from study_server.store.models import Assignment, Participant
from study_server.store.recruitment import BONUS_SENT, BonusPayment, RecruitPost, ReviewItem

BASE = "https://study.example.org"
SANDBOX = "https://workersandbox.mturk.com"


@pytest.fixture
def study(app, media_set, tmp_path):
    path = make_plan(media_set, TASK1, name="faults-t1", out=tmp_path / "plan.json")
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": 1.5, "bonus": {"rule": "per_correct", "question": "emotion",
                                                    "truth": "visual_emotion", "amount_usd": 0.05, "max_usd": 0.30,
                                                    "count_repeats": True}}
    path.write_text(json.dumps(plan))
    name = import_study(app, path, media_set)
    with app.app_context():
        yield service.find_study(db.session, name)


def _rec(fake):
    return mturk.MTurkRecruiter(fake.client())


def _settings(study):
    return service.post_settings(study, BASE)


# -- the phases, each as a cron or a person would run it ---------------------------------------------
def do_open(fake, study):
    return service.open_posts(db.session, study, _rec(fake), _settings(study))


def do_sync(fake, study):
    return service.sync(db.session, study, _rec(fake), settings=_settings(study))


def do_bonus(fake, study):
    return ledger.pay_bonuses(db.session, study, _rec(fake))


def do_review(fake, study):
    """A person approves the partial submission and rejects the unknown one from the review queue."""
    for item in service.review_queue(db.session, study):
        if item.reason == service.PARTIAL:
            service.resolve_review(db.session, study, _rec(fake), item.id, "approve", feedback="Thanks, paid in full.")
        elif item.reason == service.UNKNOWN:
            service.resolve_review(db.session, study, _rec(fake), item.id, "reject",
                                   feedback="No survey was submitted with this assignment's code.")


def workers(fake, app, study):
    """W1 valid, W2 inconsistent, W3 partial (left mid-survey, submitted on MTurk anyway), W9 submitted on
    MTurk without ever reaching our server."""
    hit = sorted(fake.hits)[0]
    web = app.test_client()
    ids = {}
    for w, how in (("W1", "valid"), ("W2", "bad"), ("W3", "partial"), ("W9", "ghost")):
        aid = fake.accept(hit, w)
        ids[w] = aid
        if how != "ghost":
            token = arrive(web, study.name, assignmentId=aid, hitId=hit, workerId=w, turkSubmitTo=SANDBOX)
            if how == "valid":
                complete_session(web, token)
            elif how == "bad":
                complete_session(web, token, variant_for=lambda pos: 1 if pos >= 6 else 0)
            else:
                assert web.post(f"/api/v1/a/{token}/start").status_code == 200
        fake.submit(aid)
    return ids


PHASES = {
    "open": (do_open, ()),
    "sync": (do_sync, ("open", "workers")),
    "review": (do_review, ("open", "workers", "sync")),
    "bonus": (do_bonus, ("open", "workers", "sync")),
}
OPS = {
    "open": ["CreateQualificationType", "ListHITs", "GetAccountBalance", "CreateHITType", "CreateHITWithHITType"],
    "sync": ["ListHITs", "AssociateQualificationWithWorker", "ListAssignmentsForHIT", "ApproveAssignment",
             "RejectAssignment", "GetHIT", "GetAccountBalance", "CreateHITWithHITType"],
    "review": ["ApproveAssignment", "RejectAssignment"],
    "bonus": ["GetAccountBalance", "SendBonus"],
}
# 25 hours later matters where MTurk's memory of a call ends: the idempotency tokens (CreateHIT, SendBonus)
# and decisions; the other calls are read-only or idempotent by themselves.
TOKEN_OPS = ("CreateHITWithHITType", "SendBonus", "ApproveAssignment", "RejectAssignment")
CASES = [(phase, op, when, later) for phase, ops in OPS.items() for op in ops for when in ("before", "after", "lost")
         for later in ((False, True) if op in TOKEN_OPS else (False,))]


def _setup(fake, app, study, steps):
    out = {}
    for step in steps:
        if step == "workers":
            out = workers(fake, app, study)
        else:
            PHASES[step][0](fake, study)
    return out


def _outcome(fake, study, ids):
    """What must be the same with and without faults (ids are the fake's, so compared per worker)."""
    ours = {p.external_id for p in db.session.scalars(select(RecruitPost).where(RecruitPost.study_id == study.id))}
    on_mturk = set(fake.hits)
    assert on_mturk == ours, f"HITs on MTurk {sorted(on_mturk)} but in the database {sorted(ours)}"
    worker_of = {aid: w for w, aid in ids.items()}
    platform = {worker_of[a]: fake.status_of(a) for a in ids.values()}
    db_status = dict(db.session.execute(select(Participant.worker_id, Assignment.status)
                                        .join(Assignment, Assignment.participant_id == Participant.id)).all())
    bonuses = {worker_of[b["AssignmentId"]]: fake.bonuses_on(b["AssignmentId"]) for b in fake.bonuses}
    rows = {(r.worker_id, r.status) for r in db.session.scalars(select(BonusPayment))}
    queue = {(r.worker_id, r.reason, r.status) for r in db.session.scalars(select(ReviewItem))}
    return {"places": sorted(h["MaxAssignments"] for h in fake.hits.values()), "platform": platform,
            "db": db_status, "bonus_counts": {w: len(b) for w, b in bonuses.items()}, "ledger": rows,
            "queue": queue}


def _again(fn, fake, study, phase):
    """A further run changes nothing (open refuses: the study is posted)."""
    if phase == "open":
        with pytest.raises(RecruitError, match="already posted"):
            fn(fake, study)
    elif phase != "review":
        fn(fake, study)


def _reference(app, study, phase):
    """The outcome of the phase run without faults (on a fresh fake)."""
    fake = FakeMTurk()
    fn, steps = PHASES[phase]
    ids = _setup(fake, app, study, steps)
    fn(fake, study)
    _again(fn, fake, study, phase)
    return fake, ids


@pytest.mark.parametrize("phase,op,when,later", CASES,
                         ids=[f"{p}-{o}-{w}{'-rerun-25h' if t else ''}" for p, o, w, t in CASES])
def test_fault_then_rerun_agrees_with_a_clean_run(app, study, phase, op, when, later):
    fn, steps = PHASES[phase]
    fake = FakeMTurk()
    ids = _setup(fake, app, study, steps)
    fake.fail(op, when)
    calls_before = len(fake.ops(op))
    try:
        fn(fake, study)
    except (Crash, RecruitError):
        db.session.rollback()
    if when != "before":
        assert len(fake.ops(op)) > calls_before, f"{op} was never called in {phase}: the case tests nothing"
    if later:
        fake.advance(25)  # MTurk forgot the idempotency tokens
    fn(fake, study)
    _again(fn, fake, study, phase)
    # The expectations are stated directly (and checked against a run without faults in the test below).
    _check(phase, _outcome(fake, study, ids), ids)


def _check(phase, got, ids):
    if phase == "open":
        assert got["places"] == [4]
        return
    assert got["places"] == [2, 4]  # the refill after W1 (valid) and W3 (in progress) count: 4 - 2 = 2
    assert got["bonus_counts"].get("W1", 0) <= 1 and not {"W2", "W3", "W9"} & set(got["bonus_counts"])
    assert got["platform"]["W1"] == "Approved" and got["db"]["W1"] == "approved"
    assert got["platform"]["W2"] == "Rejected" and got["db"]["W2"] == "rejected"  # inconsistent answers
    if phase in ("sync", "bonus"):
        assert got["platform"]["W3"] == "Submitted" and got["platform"]["W9"] == "Submitted"  # nobody honest rejected
        assert {(w, r) for w, r, _ in got["queue"]} == {("W3", "partial"), ("W9", "unknown")}
    if phase == "review":
        assert got["platform"]["W3"] == "Approved" and got["platform"]["W9"] == "Rejected"
        assert {(w, s) for w, _, s in got["queue"]} == {("W3", "approved"), ("W9", "rejected")}
    if phase == "bonus":
        assert got["bonus_counts"] == {"W1": 1}
        assert got["ledger"] == {("W1", BONUS_SENT)}


@pytest.mark.parametrize("phase", list(PHASES))
def test_run_without_faults_meets_the_expectations(app, study, phase):
    fake, ids = _reference(app, study, phase)
    _check(phase, _outcome(fake, study, ids), ids)
