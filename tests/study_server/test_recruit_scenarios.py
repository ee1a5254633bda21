"""Recruitment scenarios of issue #16 on the in-memory MTurk (``mturkfake``): a worker who returns a second
HIT, a study recruited on two platforms, refill arithmetic, paging, close-then-sync, re-posts that keep the
qualifications, throttling, the account balance, and the explicit notify/block/mark commands."""

from __future__ import annotations

import itertools
import json

import botocore.endpoint
import pytest
from click.testing import CliRunner
from mturkfake import FakeMTurk
from sqlalchemy import select
from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.recruit import LedgerError, PayRefused, PlatformError, RecruitError, ledger, mturk, service, summary
from study_server.store.extensions import db
from study_server.store.models import Assignment, AuditLog
from study_server.store.recruitment import BONUS_SENT, BonusPayment, PlatformAssignmentId, RecruitPost

BASE = "https://study.example.org"
SANDBOX = "https://workersandbox.mturk.com"


def _plan(media_set, tmp_path, name, **kw):
    path = make_plan(media_set, TASK1, name=name, out=tmp_path / f"{name}.json", **kw)
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": 1.5, "bonus": {"rule": "per_correct", "question": "emotion",
                                                    "truth": "visual_emotion", "amount_usd": 0.05, "max_usd": 0.30,
                                                    "count_repeats": True}}
    path.write_text(json.dumps(plan))
    return path


@pytest.fixture
def study(app, media_set, tmp_path):
    name = import_study(app, _plan(media_set, tmp_path, "scen-t1"), media_set)
    with app.app_context():
        yield service.find_study(db.session, name)


def _rec(fake, max_attempts=1, **kw):
    return mturk.MTurkRecruiter(fake.client(max_attempts), **kw)


def _open(fake, study, **kw):
    return service.open_posts(db.session, study, _rec(fake), service.post_settings(study, BASE), **kw)


def _sync(fake, study, **kw):
    return service.sync(db.session, study, _rec(fake), settings=service.post_settings(study, BASE), **kw)


def _work(web, fake, study, hit, worker, how="valid"):
    aid = fake.accept(hit, worker)
    token = arrive(web, study.name, assignmentId=aid, hitId=hit, workerId=worker, turkSubmitTo=SANDBOX)
    if how == "valid":
        complete_session(web, token)
    return aid, token


def test_worker_who_returns_a_second_hit_is_approved_and_paid_on_the_real_submission(app, study):
    fake = FakeMTurk()
    hit1, hit2 = sorted(_open(fake, study, places=10))  # HITs of 9 and 1
    web = app.test_client()
    first, token = _work(web, fake, study, hit1, "W1")
    fake.submit(first)
    second = fake.accept(hit2, "W1")  # accepts another HIT of the study, arrives, then returns it
    assert arrive(web, study.name, assignmentId=second, hitId=hit2, workerId="W1", turkSubmitTo=SANDBOX) == token
    fake.return_(second)
    a = db.session.scalar(select(Assignment).where(Assignment.token == token))
    assert a.external_assignment_id == second  # the latest id, as before; the first one is still known:
    assert set(db.session.scalars(select(PlatformAssignmentId.external_id))) == {first, second}
    r = _sync(fake, study)
    assert r.approved == [first] and r.rejected == [] and r.queued == []
    assert fake.status_of(first) == "Approved"
    paid = ledger.pay_bonuses(db.session, study, _rec(fake))
    assert len(paid.paid) == 1 and len(fake.bonuses_on(first)) == 1 and fake.bonuses == fake.bonuses_on(first)


def test_second_submission_of_one_worker_goes_to_the_review_queue(app, study):
    fake = FakeMTurk()
    hit1, hit2 = sorted(_open(fake, study, places=10))
    web = app.test_client()
    first, token = _work(web, fake, study, hit1, "W1")
    fake.submit(first)
    second = fake.accept(hit2, "W1")
    arrive(web, study.name, assignmentId=second, hitId=hit2, workerId="W1", turkSubmitTo=SANDBOX)
    fake.submit(second)  # the same survey submitted twice
    r = _sync(fake, study)
    assert r.approved == [first] and r.queued == [second] and r.rejected == []
    (item,) = service.review_queue(db.session, study)
    assert item.reason == "duplicate" and item.evidence["other_ids"][first] == "Approved"
    assert fake.status_of(second) == "Submitted"  # a person decides


def test_mixed_platform_study_pays_each_platform_only_its_own(app, study):
    fake = FakeMTurk()
    (hit,) = _open(fake, study)
    web = app.test_client()
    aid, _ = _work(web, fake, study, hit, "W1")
    fake.submit(aid)
    complete_session(web, arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="S", SESSION_ID="S1"))
    db.session.execute(Assignment.__table__.update().values(status="approved"))
    db.session.commit()
    assert {b.platform for b in ledger.plan_bonuses(db.session, study)} == {"mturk", "prolific"}
    r = ledger.pay_bonuses(db.session, study, _rec(fake))
    assert len(r.paid) == 1 and [b["WorkerId"] for b in fake.bonuses] == ["W1"]
    assert set(db.session.scalars(select(BonusPayment.platform))) == {"mturk"}  # Prolific's is left to Prolific


def test_refill_counts_workers_in_progress_once(app, media_set, tmp_path):
    assert service.refill_count(needed=7, available=4) == 3  # the numbers (pending 1 is in "needed")
    name = import_study(app, _plan(media_set, tmp_path, "scen-refill", quota=4), media_set)  # 2 x 4 = 8 places
    with app.app_context():
        _refill(app, service.find_study(db.session, name))


def _refill(app, study):
    fake = FakeMTurk()
    (hit,) = _open(fake, study, places=5)
    web = app.test_client()
    aid = fake.accept(hit, "W1")  # working: active with us, pending on MTurk
    arrive(web, study.name, assignmentId=aid, hitId=hit, workerId="W1", turkSubmitTo=SANDBOX)
    r = _sync(fake, study)
    assert (r.needed, r.open_places) == (7, 4)
    assert [fake.hits[h]["MaxAssignments"] for h in r.posted] == [3]


def test_paging_goes_on_past_an_empty_page_with_a_next_token(app, study):
    fake = FakeMTurk(page_size=2, empty_page_first=True)
    (hit,) = _open(fake, study)
    web = app.test_client()
    ids = []
    for w in ("W1", "W2", "W3"):
        aid, _ = _work(web, fake, study, hit, w)
        fake.submit(aid)
        ids.append(aid)
    r = _sync(fake, study)
    assert sorted(r.approved) == sorted(ids)
    assert fake.ops("ListAssignmentsForHIT").count("ListAssignmentsForHIT") >= 3


def test_close_then_sync_reviews_but_never_posts(app, study):
    fake = FakeMTurk()
    (hit,) = _open(fake, study)
    web = app.test_client()
    aid, _ = _work(web, fake, study, hit, "W1")
    service.close(db.session, study, _rec(fake, max_attempts=1))
    assert fake.hits[hit]["Expiration"] < fake.now.timestamp()
    fake.submit(aid)  # submitted after the close
    r = _sync(fake, study)
    assert r.closed and r.approved == [aid] and r.posted == [] and r.needed == 3
    assert list(fake.hits) == [hit] and not fake.ops("CreateHITWithHITType")[1:]
    assert summary.recruitment_summary(db.session, study)["campaigns"] == {"mturk (sandbox)": "closed"}


def test_repost_keeps_the_original_qualifications(app, study):
    fake = FakeMTurk()
    rec = _rec(fake)
    rec.qualifications = mturk.Qualifications(countries=("US", "CA"), min_approval_rate=97, min_approved_hits=500)
    (hit,) = service.open_posts(db.session, study, rec, service.post_settings(study, BASE), places=1)
    first_reqs = fake.hits[hit]["QualificationRequirements"]
    assert {"Country": "CA"} in first_reqs[0]["LocaleValues"] and first_reqs[1]["IntegerValues"] == [97]
    r = _sync(fake, study)  # a cron sync: a fresh recruiter with default qualifications
    (new,) = r.posted
    assert fake.hits[new]["QualificationRequirements"] == first_reqs
    assert any(q["Comparator"] == "DoesNotExist" for q in first_reqs)  # the study's own exclusion


def test_throttling_is_retried_with_backoff_then_explained(app, study, monkeypatch):
    slept = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", slept.append)
    fake = FakeMTurk()
    (hit,) = _open(fake, study)
    fake.fail("GetHIT", "throttle", times=2)
    assert _rec(fake, max_attempts=mturk.MAX_ATTEMPTS, hit_ids=[hit]).status()[0]["id"] == hit
    assert len(slept) == 2 and all(s >= 0 for s in slept)
    fake.fail("GetHIT", "throttle", times=99)
    with pytest.raises(PlatformError, match=r"kept refusing get_hit .*ThrottlingException, 6 tries.*run the same"):
        _rec(fake, max_attempts=mturk.MAX_ATTEMPTS, hit_ids=[hit]).status()


def test_lost_replies_retried_by_botocore_meet_the_idempotency_token(app, study, monkeypatch):
    """With retries on, a lost CreateHIT / SendBonus reply is retried by botocore; MTurk refuses the
    repeated token and we recognise its words: one HIT, one bonus."""
    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda s: None)
    fake = FakeMTurk()
    fake.fail("CreateHITWithHITType", "lost")
    rec = _rec(fake, max_attempts=3)
    (hit,) = service.open_posts(db.session, study, rec, service.post_settings(study, BASE))
    assert list(fake.hits) == [hit] and db.session.scalar(select(RecruitPost.external_id)) == hit
    web = app.test_client()
    aid, _ = _work(web, fake, study, hit, "W1")
    fake.submit(aid)
    _sync(fake, study)
    fake.fail("SendBonus", "lost")
    r = ledger.pay_bonuses(db.session, study, _rec(fake, max_attempts=3))
    assert len(r.paid) == 1 and len(fake.bonuses) == 1 and fake.ops("SendBonus") == ["SendBonus"] * 2
    assert db.session.scalar(select(BonusPayment.status)) == BONUS_SENT


def test_balance_is_checked_before_posting_and_paying(app, study):
    fake = FakeMTurk(balance=5.0)
    with pytest.raises(PayRefused, match=r"balance \$5\.00 cannot cover 4 places .*\$7\.20"):
        _open(fake, study)
    assert fake.hits == {}
    fake.balance = 100.0
    (hit,) = _open(fake, study)
    web = app.test_client()
    aid, _ = _work(web, fake, study, hit, "W1")
    fake.submit(aid)
    _sync(fake, study)
    fake.balance = 0.01
    with pytest.raises(PayRefused, match="cannot cover 1 bonuses"):
        ledger.pay_bonuses(db.session, study, _rec(fake))
    assert fake.bonuses == [] and not fake.ops("SendBonus")


def test_notify_and_block_only_by_explicit_command_and_audited(app, study):
    fake = FakeMTurk()
    _open(fake, study)
    assert not fake.ops("NotifyWorkers") and not fake.ops("CreateWorkerBlock")
    service.notify(db.session, study, _rec(fake), ["W1", "W2"], "Your bonus", "We paid your bonus. Thank you!")
    assert fake.notified[0]["WorkerIds"] == ["W1", "W2"]
    with pytest.raises(RecruitError, match="--reason"):
        service.block(db.session, study, _rec(fake), "W9", " ")
    service.block(db.session, study, _rec(fake), "W9", "Submitted the same survey 14 times")
    assert fake.blocks == {"W9": "Submitted the same survey 14 times"}
    actions = list(db.session.scalars(select(AuditLog.action)))
    assert actions.count("recruit.notify") == 1 and actions.count("recruit.block") == 1


def test_cli_mark_sent_and_review_listing(app, study):
    from study_server.commands.recruit import recruit_group

    fake = FakeMTurk()
    (hit,) = _open(fake, study)
    web = app.test_client()
    aid, _ = _work(web, fake, study, hit, "W1")
    fake.submit(aid)
    ghost = fake.accept(hit, "W9")
    fake.submit(ghost)
    _sync(fake, study)
    fake.fail("SendBonus", "lost")
    with pytest.raises(LedgerError):  # MTurk paid; the reply was lost; ListBonusPayments fails too
        fake.fail("ListBonusPayments", "throttle", times=99)
        ledger.pay_bonuses(db.session, study, _rec(fake, max_attempts=1))
    row = db.session.scalar(select(BonusPayment))
    assert row.status == "unknown"
    db.session.commit()
    url = app.config["DATABASE_URL"]
    listing = CliRunner().invoke(recruit_group, ["review", "--study", study.name, "--platform", "mturk", "--db", url])
    assert listing.exit_code == 0 and f"mturk:{ghost}" in listing.output and "unknown" in listing.output
    marked = CliRunner().invoke(recruit_group, ["bonus", "--study", study.name, "--platform", "mturk", "--db", url,
                                                "--mark-sent", str(row.id), "--note", "seen in ListBonusPayments"])
    assert marked.exit_code == 0, marked.output
    assert f"ledger row {row.id}" in marked.output and "sent" in marked.output
    db.session.expire_all()
    assert db.session.get(BonusPayment, row.id).status == BONUS_SENT
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "recruit.bonus.mark_sent"))
    assert audit.details["note"] == "seen in ListBonusPayments" and audit.details["was"] == "unknown"
    name = study.name
    db.session.commit()  # SQLite: the app begins every transaction IMMEDIATE; end ours before the CLI's
    bad = CliRunner().invoke(recruit_group, ["bonus", "--study", name, "--platform", "mturk", "--db", url,
                                             "--mark-failed", "999"])
    assert bad.exit_code != 0 and "no bonus ledger row 999" in bad.output


def test_tokens_are_unique_per_study_and_fit_for_long_names(app, media_set, tmp_path):
    """The old token was the study name cut to 64 characters: names sharing 42+ characters collided."""
    stem = "a-very-long-study-name-for-the-emotion-video-experiment-of-2026-"
    names = [import_study(app, _plan(media_set, tmp_path, stem + s), media_set) for s in ("pilot", "main")]
    with app.app_context():
        studies = [service.find_study(db.session, n) for n in names]
        keys = {service.campaign_key(s, "mturk", True) for s in studies}
        keys |= {service.campaign_key(s, "mturk", False) for s in studies}
        assert len(keys) == 4 and all(len(f"{k}-99999") <= 64 for k in keys)
        fake = FakeMTurk()
        for s in studies:
            _open(fake, s, places=10)
        tokens = [p.details["token"] for p in db.session.scalars(select(RecruitPost))]
        assert len(tokens) == 4 == len(set(tokens)) == len(set(fake.tokens))


def test_lost_approval_retried_by_botocore_is_recognised_as_done(app, study, monkeypatch):
    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda s: None)
    fake = FakeMTurk()
    (hit,) = _open(fake, study)
    web = app.test_client()
    aid, _ = _work(web, fake, study, hit, "W1")
    fake.submit(aid)
    fake.fail("ApproveAssignment", "lost")  # approved; the retry is refused ("status of: Submitted")
    r = service.sync(db.session, study, _rec(fake, max_attempts=3), settings=service.post_settings(study, BASE))
    assert r.approved == [aid] and fake.status_of(aid) == "Approved" and "GetAssignment" in fake.ops()
    assert db.session.scalar(select(Assignment.status)) == "approved"


def test_sandbox_pilot_then_live_are_separate_campaigns(app, study):
    sandbox, live = FakeMTurk(), FakeMTurk()
    live._ids = itertools.count(500)  # real sandbox and live ids never coincide
    (pilot,) = service.open_posts(db.session, study, _rec(sandbox), service.post_settings(study, BASE), places=2)
    service.close(db.session, study, _rec(sandbox), sandbox=True)
    (real,) = service.open_posts(db.session, study, _rec(live), service.post_settings(study, BASE), places=3,
                                 sandbox=False)
    r = service.sync(db.session, study, _rec(live), settings=service.post_settings(study, BASE), sandbox=False)
    assert not r.closed and r.open_places == 3 and len(r.posted) == 1 and "GetHIT" in live.ops()  # 4 - 3 = 1
    assert all(p.get("HITId") in (None, real) for _, p in live.calls)  # never asks live MTurk for a sandbox HIT
    assert summary.recruitment_summary(db.session, study)["campaigns"] == {"mturk (sandbox)": "closed",
                                                                           "mturk": "open"}
    assert {p.external_id: p.sandbox for p in db.session.scalars(select(RecruitPost))} == {
        pilot: True, real: False, r.posted[0]: False}


def test_study_posted_before_campaigns_is_adopted_with_its_hit_type(app, study):
    """A HIT recorded by the earlier code (no campaign): sync adopts it and refills with its HIT type."""
    fake = FakeMTurk()
    rec = _rec(fake)
    rec.qualifications = mturk.Qualifications(countries=("GB",))
    type_id = rec.ensure_hit_type(service.post_settings(study, BASE))
    (hit,) = [h["HITId"] for h in [rec.create_hit(service.post_settings(study, BASE), 1, "old-style-token")]]
    db.session.add(RecruitPost(study_id=study.id, platform="mturk", sandbox=True, external_id=hit, type_id=type_id,
                               places=1, details={"family": study.name}))
    db.session.commit()
    r = _sync(fake, study)
    (new,) = r.posted
    assert fake.hits[new]["HITTypeId"] == type_id and r.needed == 4 and r.open_places == 1
    assert service.get_campaign(db.session, study, "mturk", True).settings["hit_type_id"] == type_id
