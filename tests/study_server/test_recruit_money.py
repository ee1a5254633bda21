"""The numbered scenarios of issue #30 (money under faults and today's Prolific), one test each, on the
stateful fakes: MTurk behind botocore (``mturkfake``) and Prolific over HTTP with delayed bonus records
(``prolificfake``). Scenarios 1 and 5 (two processes) are in ``test_recruit_concurrency.py``."""

from __future__ import annotations

import json
import time

import pytest
import requests
from click.testing import CliRunner
from mturkfake import FakeMTurk
from prolificfake import FakeProlific
from sqlalchemy import select
from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.recruit import (
    LedgerError,
    OutcomeUnknown,
    PayRefused,
    PlatformError,
    ledger,
    money,
    mturk,
    service,
    summary,
)
from study_server.recruit.base import Submission
from study_server.recruit.prolific import ProlificRecruiter
from study_server.store.extensions import db
from study_server.store.models import Assignment
from study_server.store.recruitment import BONUS_SENT, BONUS_UNKNOWN, BonusPayment, ReviewItem

BASE = "https://study.example.org"
SANDBOX = "https://workersandbox.mturk.com"


def _plan(media_set, tmp_path, name, bonus_usd=0.05, max_usd=0.30, reward=1.5):
    path = make_plan(media_set, TASK1, name=name, out=tmp_path / f"{name}.json")
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": reward, "bonus": {"rule": "per_correct", "question": "emotion",
                                                       "truth": "visual_emotion", "amount_usd": bonus_usd,
                                                       "max_usd": max_usd, "count_repeats": True}}
    path.write_text(json.dumps(plan))
    return path


@pytest.fixture
def study(app, media_set, tmp_path):
    name = import_study(app, _plan(media_set, tmp_path, "money-t1"), media_set)
    with app.app_context():
        yield service.find_study(db.session, name)


@pytest.fixture
def pfake():
    f = FakeProlific()
    f.thread.start()
    yield f
    f.server.shutdown()
    f.server.server_close()


def _mrec(fake, max_attempts=1):
    return mturk.MTurkRecruiter(fake.client(max_attempts))


def _msync(fake, study):
    return service.sync(db.session, study, _mrec(fake), settings=service.post_settings(study, BASE))


def _prec(pfake, study, **kw):
    return ProlificRecruiter(token="secret-token", base_url=pfake.url, study_id="STUDY1",
                             completion_code=study.completion_code, sleep=lambda s: None, **kw)


def _prolific_approved(app, study, pfake, pid="P1", session="S1"):
    c = service.ensure_campaign(db.session, study, "prolific", False)
    service.record_post(db.session, study, c, "STUDY1", 4, seq=1)
    web = app.test_client()
    token = arrive(web, study.name, PROLIFIC_PID=pid, STUDY_ID="STUDY1", SESSION_ID=session)
    complete_session(web, token)
    a = db.session.scalar(select(Assignment).where(Assignment.token == token))
    a.status = "approved"
    db.session.commit()
    pfake.submissions = [{"id": session, "participant_id": pid, "status": "APPROVED"}]
    pfake.places = 4
    return a


# -- 2. a Prolific pay call that went through answered with a 4xx while the records lag -----------------
@pytest.mark.parametrize("fault", ["400-after", "408-after"])
def test_2_prolific_pay_4xx_is_unknown_and_never_paid_again(app, study, pfake, fault):
    _prolific_approved(app, study, pfake)
    pfake.records_delay_s = 1.0  # Prolific pays asynchronously: the bonus shows on the submission later
    pfake.pay_fault = fault
    with pytest.raises(LedgerError, match=r"--mark-sent \d+"):
        ledger.pay_bonuses(db.session, study, _prec(pfake, study))
    row = db.session.scalar(select(BonusPayment))
    assert row.status == BONUS_UNKNOWN and pfake.pay_calls == 1
    with pytest.raises(LedgerError):  # records still empty: left for a person, not paid again
        ledger.pay_bonuses(db.session, study, _prec(pfake, study))
    assert pfake.pay_calls == 1
    time.sleep(1.1)
    r = ledger.pay_bonuses(db.session, study, _prec(pfake, study))  # now the records show it: settled
    assert r.reconciled_paid == [row.id] and r.paid == [] and pfake.pay_calls == 1
    assert pfake.paid_to("P1") == [row.amount_minor]


# -- 3. GBP: 45 cents at 0.79 is 35.55 pence -> 36 pence, matched as 36 pence ---------------------------------
def test_3_gbp_bonus_is_kept_and_matched_in_pence(app, media_set, tmp_path, pfake):
    name = import_study(app, _plan(media_set, tmp_path, "money-gbp", bonus_usd=0.45, max_usd=0.45, reward=2.0),
                        media_set)
    with app.app_context():
        _gbp(app, service.find_study(db.session, name), pfake)


def _gbp(app, study, pfake):
    _prolific_approved(app, study, pfake)
    pfake.currency = "GBP"
    (pb,) = ledger.plan_bonuses(db.session, study)
    assert pb.amount_cents == 45
    pfake.pay_fault = "lost-after"
    with pytest.raises(LedgerError, match=r"0\.36 GBP"):
        ledger.pay_bonuses(db.session, study, _prec(pfake, study, usd_rate=0.79))
    row = db.session.scalar(select(BonusPayment))
    assert (row.amount_cents, row.currency, row.amount_minor) == (45, "GBP", 36)
    (_, _, setup), = pfake.calls("POST", "/api/v1/submissions/bonus-payments/")
    assert setup["csv_bonuses"] == "P1,0.36\n"
    r = ledger.pay_bonuses(db.session, study, _prec(pfake, study, usd_rate=0.79))  # record: 36 pence
    assert r.reconciled_paid == [row.id] and pfake.pay_calls == 1
    assert money.convert(45, "GBP", 0.79) == 36 and money.convert(45, "USD", None) == 45


# -- 4. a lost SendBonus reply, then 25 h later ListBonusPayments answers 200 without its list -----------------
def _mturk_worker(app, study, fake, worker="W1"):
    (hit,) = service.open_posts(db.session, study, _mrec(fake), service.post_settings(study, BASE))
    web = app.test_client()
    aid = fake.accept(hit, worker)
    complete_session(web, arrive(web, study.name, assignmentId=aid, hitId=hit, workerId=worker,
                                 turkSubmitTo=SANDBOX))
    fake.submit(aid)
    return hit, aid


def test_4_a_bonus_list_without_its_key_is_an_error_never_no_payments(app, study):
    fake = FakeMTurk()
    _, aid = _mturk_worker(app, study, fake)
    _msync(fake, study)
    fake.fail("SendBonus", "lost")
    with pytest.raises(LedgerError):
        ledger.pay_bonuses(db.session, study, _mrec(fake))
    assert len(fake.bonuses_on(aid)) == 1  # MTurk paid; the reply was lost
    fake.advance(25)  # MTurk has forgotten the idempotency token
    fake.fail("ListBonusPayments", "nokey")
    with pytest.raises(LedgerError, match="participant"):
        ledger.pay_bonuses(db.session, study, _mrec(fake))
    row = db.session.scalar(select(BonusPayment))
    assert row.status == BONUS_UNKNOWN and "no BonusPayments list" in row.response["check_error"]
    assert len(fake.bonuses_on(aid)) == 1 and fake.ops("SendBonus") == ["SendBonus"]
    r = ledger.pay_bonuses(db.session, study, _mrec(fake))  # a readable list: found paid
    assert r.reconciled_paid == [row.id] and len(fake.bonuses_on(aid)) == 1


# -- 6. one bad worker id or refused grant does not stop the cron sync ----------------------------------------
def test_6_a_refused_exclusion_grant_queues_the_worker_and_the_run_goes_on(app, study):
    fake = FakeMTurk()
    hit, aid = _mturk_worker(app, study, fake)
    web = app.test_client()
    visitor = fake.accept(hit, "test-user")
    arrive(web, study.name, assignmentId=visitor, hitId=hit, workerId="test-user", turkSubmitTo=SANDBOX)
    fake.refuse_grant = {"test-user"}
    r = _msync(fake, study)
    assert r.approved == [aid] and fake.status_of(aid) == "Approved"  # W1 approved despite test-user
    assert "exclusion grant to test-user" in r.queued
    item = db.session.scalar(select(ReviewItem).where(ReviewItem.reason == service.GRANT_REFUSED))
    assert item.worker_id == "test-user" and "does not exist" in item.evidence["error"]
    n = len(fake.ops("AssociateQualificationWithWorker"))
    _msync(fake, study)  # queued: not retried on every cron run
    assert len(fake.ops("AssociateQualificationWithWorker")) == n
    with pytest.raises(Exception, match="--dismiss"):
        service.resolve_review(db.session, study, _mrec(fake), item.id, "approve")
    assert service.resolve_review(db.session, study, _mrec(fake), item.id, "dismiss").status == "dismissed"


# -- 7. a RETURNED old Prolific session never closes the participant's new one --------------------------------
def test_7_returned_old_session_does_not_close_the_new_one(app, study, pfake):
    c = service.ensure_campaign(db.session, study, "prolific", False)
    service.record_post(db.session, study, c, "STUDY1", 4, seq=1)
    web = app.test_client()
    token = arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    assert arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S2") == token  # came back
    pfake.places = 4
    pfake.submissions = [{"id": "S1", "participant_id": "P1", "status": "RETURNED"},
                         {"id": "S2", "participant_id": "P1", "status": "ACTIVE"}]
    service.sync(db.session, study, _prec(pfake, study), settings=service.post_settings(study, BASE))
    a = db.session.scalar(select(Assignment).where(Assignment.token == token))
    assert a.status not in ("returned", "expired"), a.status
    complete_session(web, token)  # can still finish (no 409 assignment_closed)
    db.session.expire_all()
    assert db.session.scalar(select(Assignment.status).where(Assignment.token == token)) == "completed"


# -- 8. a bonus follows the worker's submitted assignment, not a returned later one ---------------------------
def test_8_bonus_before_sync_waits_then_follows_the_submitted_assignment(app, study):
    fake = FakeMTurk()
    hit1, hit2 = sorted(service.open_posts(db.session, study, _mrec(fake), service.post_settings(study, BASE),
                                           places=10))
    web = app.test_client()
    first = fake.accept(hit1, "W1")
    token = arrive(web, study.name, assignmentId=first, hitId=hit1, workerId="W1", turkSubmitTo=SANDBOX)
    complete_session(web, token)
    fake.submit(first)
    second = fake.accept(hit2, "W1")
    arrive(web, study.name, assignmentId=second, hitId=hit2, workerId="W1", turkSubmitTo=SANDBOX)
    fake.return_(second)
    r = ledger.pay_bonuses(db.session, study, _mrec(fake))  # before sync: nothing approved on MTurk yet
    assert r.paid == [] and r.failed == [] and r.waiting_for_approval == ["W1"] and not fake.ops("SendBonus")
    _msync(fake, study)
    r = ledger.pay_bonuses(db.session, study, _mrec(fake))
    assert len(r.paid) == 1 and len(fake.bonuses_on(first)) == 1 and len(fake.bonuses) == 1
    assert db.session.scalar(select(BonusPayment.external_id)) == first


def test_8_a_row_pinned_to_a_returned_assignment_moves_to_the_approved_one(app, study):
    """A ledger row an older release pinned to the returned assignment (refused on every run) is re-pinned."""
    fake = FakeMTurk()
    hit1, hit2 = sorted(service.open_posts(db.session, study, _mrec(fake), service.post_settings(study, BASE),
                                           places=10))
    web = app.test_client()
    first = fake.accept(hit1, "W1")
    token = arrive(web, study.name, assignmentId=first, hitId=hit1, workerId="W1", turkSubmitTo=SANDBOX)
    complete_session(web, token)
    fake.submit(first)
    second = fake.accept(hit2, "W1")
    arrive(web, study.name, assignmentId=second, hitId=hit2, workerId="W1", turkSubmitTo=SANDBOX)
    fake.return_(second)
    _msync(fake, study)
    (pb,) = ledger.plan_bonuses(db.session, study)
    rule = ledger.bonus_rule_name(service.plan_of(study))
    db.session.add(BonusPayment(assignment_id=pb.assignment_id, rule=rule, platform="mturk", worker_id="W1",
                                amount_cents=pb.amount_cents, token=ledger.ledger_token(study, pb.assignment_id, rule),
                                status="failed", reason=pb.reason, response={"error": "not this worker's"},
                                external_id=second))
    db.session.commit()
    r = ledger.pay_bonuses(db.session, study, _mrec(fake))
    assert len(r.paid) == 1 and len(fake.bonuses_on(first)) == 1


# -- 9. amounts that are not whole cents are refused with the nearest ones -------------------------------------
def test_9_a_reward_of_1_005_is_refused_with_the_nearest_amounts(app, study, pfake):
    settings = service.post_settings(study, BASE, reward_usd=1.005)
    fake = FakeMTurk()
    with pytest.raises(PayRefused, match=r"1\.005 USD is not a whole number of cents.*use 1\.00 or 1\.01"):
        service.open_posts(db.session, study, _mrec(fake), settings)
    assert not fake.ops("CreateHITWithHITType")
    with pytest.raises(PayRefused, match=r"use 1\.00 or 1\.01"):
        service.open_posts(db.session, study, _prec(pfake, study), settings, sandbox=False)
    assert not pfake.calls("POST", "/api/v1/studies/")
    assert money.to_minor("0.45", "x") == 45 and money.fmt(100) == "1.00" and mturk.usd(0.45) == "0.45"
    with pytest.raises(PayRefused, match=r"use 0\.00 or 0\.01"):
        money.to_minor(0.005, "payment.bonus.amount_usd")


def test_9_a_bonus_rule_in_fractions_of_a_cent_is_refused(app, media_set, tmp_path):
    name = import_study(app, _plan(media_set, tmp_path, "money-frac", bonus_usd=0.005, max_usd=None), media_set)
    with app.app_context():
        study = service.find_study(db.session, name)
        with pytest.raises(PayRefused, match=r"amount_usd: 0\.005 USD is not a whole number of cents"):
            ledger.plan_bonuses(db.session, study)


# -- 10. create reply lost, then `open --publish` again: the adopted study is published ---------------------------
def test_10_rerun_of_open_publish_publishes_the_adopted_study(app, study, pfake):
    rec = _prec(pfake, study)
    rec.study_id = None
    real = rec.http.request

    def lose_create(method, url, **kw):
        resp = real(method, url, **kw)
        if method == "POST" and url.endswith("/studies/"):
            raise requests.ConnectionError("reply lost")
        return resp
    rec.http.request = lose_create
    settings = service.post_settings(study, BASE, reward_usd=2.0)
    with pytest.raises(OutcomeUnknown):
        service.open_posts(db.session, study, rec, settings, sandbox=False, publish=True)
    assert pfake.studies["STUDY1"]["status"] == "UNPUBLISHED"
    rec2 = _prec(pfake, study)
    rec2.study_id = None
    ids = service.open_posts(db.session, study, rec2, settings, sandbox=False, publish=True)
    assert ids == ["STUDY1"] and len(pfake.studies) == 1
    assert pfake.studies["STUDY1"]["status"] == "ACTIVE"
    # Once more: fully posted and published -> "already posted", nothing published twice.
    with pytest.raises(service.AlreadyPosted):
        service.open_posts(db.session, study, _prec(pfake, study), settings, sandbox=False, publish=True)
    assert len(pfake.calls("POST", "/api/v1/studies/STUDY1/transition/")) == 1


# -- 11. platform errors in words; unknown payments listed by worker, amount and command ----------------------
@pytest.mark.parametrize("fault", ["html", "nokey"])
def test_11_non_json_mturk_replies_are_words_not_keyerror(app, study, fault):
    fake = FakeMTurk()
    fake.fail("CreateHITWithHITType", fault)
    with pytest.raises(OutcomeUnknown, match="CreateHITWithHITType") as err:
        service.open_posts(db.session, study, _mrec(fake), service.post_settings(study, BASE))
    assert "KeyError" not in repr(err.value) and "may or may not have taken effect" in str(err.value)
    # The HIT was made: the re-run finds it by its annotation instead of making another.
    ids = service.open_posts(db.session, study, _mrec(fake), service.post_settings(study, BASE))
    assert len(fake.hits) == 1 and ids == list(fake.hits)


def test_11_cli_and_admin_list_unknown_payments_by_pseudonym_amount_and_command(app, study, pfake):
    from study_server.commands.recruit import recruit_group

    a = _prolific_approved(app, study, pfake)
    pfake.pay_fault = "502-after"
    pfake.records_delay_s = 60
    with pytest.raises(LedgerError):
        ledger.pay_bonuses(db.session, study, _prec(pfake, study))
    row = db.session.scalar(select(BonusPayment))
    (u,) = ledger.unsettled(db.session, study)
    assert u["pseudonym"] == a.participant.pseudonym and u["amount"] == f"{money.fmt(row.amount_minor)} USD"
    assert u["command"].startswith(f"emostudy recruit bonus --study {study.name} --platform prolific --mark-sent {row.id}")
    overview = summary.recruitment_summary(db.session, study)
    assert overview["unsettled_payments"][0]["pseudonym"] == a.participant.pseudonym
    name, url = study.name, app.config["DATABASE_URL"]
    db.session.commit()
    out = CliRunner().invoke(recruit_group, ["bonus", "--study", name, "--platform", "prolific", "--db", url,
                                             "--yes", "--prolific-url", pfake.url],
                             env={"EMOSTUDY_PROLIFIC_API_TOKEN": "secret-token"})
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert a.participant.pseudonym in out.output and f"--mark-sent {row.id}" in out.output, out.output


# -- today's Prolific: rejection rules before the call, new statuses read back ------------------------------
def test_prolific_rejection_needs_100_characters_and_a_category_before_the_call(app, study, pfake):
    rec = _prec(pfake, study)
    sub = Submission(platform="prolific", external_id="S1", worker_id="P1", status="AWAITING REVIEW")
    with pytest.raises(PlatformError, match="at least 100 characters.*has 12"):
        rec.reject(sub, "Bad answers.", "inconsistent")
    with pytest.raises(PlatformError, match="needs a category"):
        rec.reject(sub, "x" * 120, None)
    assert not pfake.calls("POST", "/api/v1/submissions/S1/transition/")


def test_prolific_partially_approved_and_screened_out_are_read_back(app, study, pfake):
    c = service.ensure_campaign(db.session, study, "prolific", False)
    service.record_post(db.session, study, c, "STUDY1", 4, seq=1)
    web = app.test_client()
    done = arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    complete_session(web, done)
    out = arrive(web, study.name, PROLIFIC_PID="P2", STUDY_ID="STUDY1", SESSION_ID="S2")
    pfake.places = 4
    pfake.submissions = [{"id": "S1", "participant_id": "P1", "status": "PARTIALLY APPROVED"},
                         {"id": "S2", "participant_id": "P2", "status": "SCREENED OUT"}]
    r = service.sync(db.session, study, _prec(pfake, study), settings=service.post_settings(study, BASE))
    status = {a.token: a.status for a in db.session.scalars(select(Assignment))}
    assert status[done] == "approved" and status[out] == "returned" and sorted(r.read_back) == ["S1", "S2"]


def test_a_refused_approval_queues_that_submission_and_the_run_goes_on(app, study, pfake):
    """Like scenario 6 for decisions: Prolific refusing one approval must not stop the others."""
    c = service.ensure_campaign(db.session, study, "prolific", False)
    service.record_post(db.session, study, c, "STUDY1", 4, seq=1)
    web = app.test_client()
    for i in (1, 2):
        complete_session(web, arrive(web, study.name, PROLIFIC_PID=f"P{i}", STUDY_ID="STUDY1", SESSION_ID=f"S{i}"))
    pfake.places = 4
    pfake.submissions = [{"id": "S1", "participant_id": "P1", "status": "AWAITING REVIEW"},
                         {"id": "S2", "participant_id": "P2", "status": "AWAITING REVIEW"}]
    pfake.raw_replies["/api/v1/submissions/S1/transition/"] = (400, b'{"error": "submission is locked"}')
    r = service.sync(db.session, study, _prec(pfake, study), settings=service.post_settings(study, BASE))
    assert r.approved == ["S2"] and r.queued == ["S1"]
    item = db.session.scalar(select(ReviewItem).where(ReviewItem.external_id == "S1"))
    assert item.reason == service.REFUSED and "locked" in item.evidence["error"]


# -- 1 on MTurk: a row another live process has claimed is skipped and said so; a token repeat is not "paid" ---
def test_1_mturk_payer_skips_a_row_claimed_by_a_live_process(app, study):
    import os
    import socket

    fake = FakeMTurk()
    _, aid = _mturk_worker(app, study, fake)
    _msync(fake, study)
    (pb,) = ledger.plan_bonuses(db.session, study)
    rule = ledger.bonus_rule_name(service.plan_of(study))
    other = os.getppid()  # a live process that is not this one
    db.session.add(BonusPayment(assignment_id=pb.assignment_id, rule=rule, platform="mturk", worker_id="W1",
                                amount_cents=pb.amount_cents, token=ledger.ledger_token(study, pb.assignment_id, rule),
                                status="paying", reason=pb.reason, response={}, external_id=aid, currency="USD",
                                amount_minor=pb.amount_cents, claimed_by=f"{socket.gethostname()}:{other}:run1",
                                claimed_at=ledger.utcnow()))
    db.session.commit()
    r = ledger.pay_bonuses(db.session, study, _mrec(fake))
    assert r.paid == [] and not fake.ops("SendBonus") and not fake.ops("ListBonusPayments")
    assert len(r.claimed_elsewhere) == 1 and f"is being paid by process {other}" in r.claimed_elsewhere[0]


def test_1_mturk_token_repeat_counts_as_found_paid_not_paid_again(app, study):
    fake = FakeMTurk()
    _mturk_worker(app, study, fake)
    _msync(fake, study)
    fake.fail("SendBonus", "after")  # MTurk paid; this process died before recording anything
    with pytest.raises(Exception, match="died after SendBonus"):
        ledger.pay_bonuses(db.session, study, _mrec(fake))
    db.session.rollback()
    fake.fail("ListBonusPayments", "throttle", times=99)  # the records cannot be read: the token decides
    with pytest.raises(LedgerError):
        ledger.pay_bonuses(db.session, study, _mrec(fake))
    row = db.session.scalar(select(BonusPayment))
    ledger.mark_bonus(db.session, study, row.id, "failed", note="test: pretend the page showed nothing")
    fake.faults.clear()
    fake.bonuses.clear()  # (so ListBonusPayments shows nothing and the row is sent again with its token)
    r = ledger.pay_bonuses(db.session, study, _mrec(fake))
    assert r.paid == [] and r.reconciled_paid == [row.id]  # MTurk: "token already processed" = paid before
    assert db.session.get(BonusPayment, row.id).status == BONUS_SENT


# -- today's Prolific: a fixed screen-out payment for a failed headphone screen instead of a return request ------
def test_prolific_screen_out_code_pays_who_fails_the_headphone_screen(app, media_set, tmp_path, pfake):
    from studykit import TASK2, pass_screen

    from study_server.recruit.prolific import screen_out_code

    huggins = {"enabled": True, "kind": "huggins", "trials": 6, "pass_at": 5, "attempts": 1}
    plan = make_plan(media_set, TASK2, name="money-screen", audio_check=huggins, out=tmp_path / "screen.json")
    name = import_study(app, plan, media_set)
    with app.app_context():
        study = service.find_study(db.session, name)
        rec = _prec(pfake, study)
        rec.study_id = None
        rec.screen_out_usd = "1.60"  # not less than the reward: refused before any call
        settings = service.post_settings(study, BASE, reward_usd=1.6, estimated_minutes=12)
        with pytest.raises(PayRefused, match="screen-out payment .* less than the reward"):
            service.open_posts(db.session, study, rec, settings, sandbox=False)
        assert not pfake.calls("POST", "/api/v1/studies/")
        rec.screen_out_usd = "0.20"
        service.open_posts(db.session, study, rec, settings, sandbox=False)
        (_, _, body), = pfake.calls("POST", "/api/v1/studies/")
        code = screen_out_code(study.completion_code)
        assert body["completion_codes"][1] == {"code": code, "code_type": "SCREENED_OUT", "actions": [
            {"action": "FIXED_SCREEN_OUT_PAYMENT", "fixed_screen_out_reward": 20, "slots": 4}]}
        assert body["completion_codes"][0]["code"] == study.completion_code != code
    web = app.test_client()
    token = arrive(web, name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    web.post(f"/api/v1/a/{token}/start")
    reply = pass_screen(web, token, wrong=2)  # fails the screen
    assert reply["status"] == "abandoned"
    assert reply["screen_out"] == {"kind": "redirect", "code": code,
                                   "url": f"https://app.prolific.com/submissions/complete?cc={code}"}
    # A lab participant of the same study is not sent to Prolific.
    lab = arrive(web, name, lab="hp-lab")
    web.post(f"/api/v1/a/{lab}/start")
    assert "screen_out" not in pass_screen(web, lab, wrong=2)


def test_claims_of_other_machines_count_as_alive_for_an_hour():
    import datetime as dt
    import os
    import socket

    now = ledger.utcnow()
    row = BonusPayment(claimed_by="other-host:123:run", claimed_at=now - dt.timedelta(minutes=50))
    assert ledger.claim_alive(row, "mine", now)
    row.claimed_at = now - dt.timedelta(minutes=70)
    assert not ledger.claim_alive(row, "mine", now)  # a crash there: its records are read, it is not paid
    me = BonusPayment(claimed_by=f"{socket.gethostname()}:{os.getpid()}:run1", claimed_at=now)
    assert ledger.claim_alive(me, "run1", now) and not ledger.claim_alive(me, "run2", now)  # an earlier run died
    gone = BonusPayment(claimed_by=f"{socket.gethostname()}:999999999:run1", claimed_at=now)
    assert not ledger.claim_alive(gone, "x", now)


def test_prolific_malformed_replies_are_errors_or_unknown_never_empty(app, study, pfake):
    _prolific_approved(app, study, pfake)
    # A submissions list without its "results": an error in words, never "no submissions".
    pfake.raw_replies["/api/v1/studies/STUDY1/submissions/"] = (200, b'{"count": 3}')
    with pytest.raises(PlatformError, match="no results list"):
        service.sync(db.session, study, _prec(pfake, study), settings=service.post_settings(study, BASE))
    del pfake.raw_replies["/api/v1/studies/STUDY1/submissions/"]
    # A pay call answered 200 with a page that is not JSON: unknown, not paid again.
    pfake.raw_replies["/api/v1/bulk-bonus-payments/BULK1/pay/"] = (200, b"<html>gateway</html>")
    with pytest.raises(LedgerError):
        ledger.pay_bonuses(db.session, study, _prec(pfake, study))
    assert db.session.scalar(select(BonusPayment.status)) == BONUS_UNKNOWN
    assert "not a JSON object" in db.session.scalar(select(BonusPayment)).response["error"]
