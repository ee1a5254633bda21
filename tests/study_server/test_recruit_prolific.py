"""Prolific and lab links: the Prolific API is played by a local fake HTTP server that records requests."""

from __future__ import annotations

import json

import pytest
import requests
from prolificfake import FakeProlific
from sqlalchemy import func, select
from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.recruit import LedgerError, OutcomeUnknown, PayRefused, RecruitError, lab, ledger, service
from study_server.recruit.prolific import ProlificRecruiter, to_minor
from study_server.store.extensions import db
from study_server.store.models import Assignment, AuditLog
from study_server.store.recruitment import BONUS_SENT, BONUS_UNKNOWN, BonusPayment, RecruitPost
from study_server.study import lab_tokens

BASE = "https://study.example.org"


@pytest.fixture
def fake():
    f = FakeProlific()
    f.thread.start()
    yield f
    f.server.shutdown()
    f.server.server_close()


@pytest.fixture
def study(app, media_set, tmp_path):
    path = make_plan(media_set, TASK1, name="prolific-t1", audio_check=True, out=tmp_path / "plan.json")
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": 2.0, "bonus": {"rule": "per_correct", "question": "emotion",
                                                    "truth": "visual_emotion", "amount_usd": 0.05, "max_usd": None}}
    path.write_text(json.dumps(plan))
    name = import_study(app, path, media_set)
    with app.app_context():
        yield service.find_study(db.session, name)


def _recruiter(fake, study, study_id=None, **kw):
    return ProlificRecruiter(token="secret-token", base_url=fake.url, study_id=study_id,
                             completion_code=study.completion_code, **kw)


def _posted(study, places=4):
    """The study as `open` leaves it: a campaign and the Prolific study STUDY1."""
    c = service.ensure_campaign(db.session, study, "prolific", False)
    service.record_post(db.session, study, c, "STUDY1", places, seq=1)
    return c


def test_open_creates_a_draft_with_url_parameters_completion_code_and_audio(app, study, fake):
    rec = _recruiter(fake, study)
    ids = service.open_posts(db.session, study, rec, service.post_settings(study, BASE), sandbox=False)
    assert ids == ["STUDY1"]
    (method, path, body), = fake.calls("POST", "/api/v1/studies/")
    assert body["external_study_url"] == (f"{BASE}/s/{study.name}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
                                          "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")
    assert body["prolific_id_option"] == "url_parameters"
    assert body["completion_codes"][0]["code"] == study.completion_code
    assert body["reward"] == 200 and body["total_available_places"] == 4  # USD account: cents
    assert body["peripheral_requirements"] == ["AUDIO"]  # the plan checks sound
    assert service.campaign_key(study, "prolific", False) in body["internal_name"]  # found again after a crash
    assert not fake.calls("POST", "/api/v1/studies/STUDY1/transition/")  # a draft: not published
    assert db.session.scalar(select(RecruitPost.external_id)) == "STUDY1"


def test_open_recorded_even_when_the_reply_is_lost(app, study, fake, monkeypatch):
    """The study is created but the reply never arrives: the re-run finds it by its annotation."""
    rec = _recruiter(fake, study)
    real = rec.http.request

    def lose_create(method, url, **kw):
        resp = real(method, url, **kw)
        if method == "POST" and url.endswith("/studies/"):
            raise requests.ConnectionError("reply lost")
        return resp
    monkeypatch.setattr(rec.http, "request", lose_create)
    with pytest.raises(OutcomeUnknown):
        service.open_posts(db.session, study, rec, service.post_settings(study, BASE), sandbox=False)
    assert db.session.scalar(select(func.count()).select_from(RecruitPost)) == 0
    ids = service.open_posts(db.session, study, _recruiter(fake, study), service.post_settings(study, BASE),
                             sandbox=False)
    assert ids == ["STUDY1"] and len(fake.studies) == 1  # recorded, not created twice


def test_minimum_pay_is_checked_from_the_estimated_minutes(app, study, fake):
    settings = service.post_settings(study, BASE, estimated_minutes=20)  # $2.00 for 20 min = $6.00/h < $8.00/h
    with pytest.raises(PayRefused, match=r"6\.00 USD/h, below Prolific's minimum of 8\.00 USD/h; pay at least 2\.67"):
        service.open_posts(db.session, study, _recruiter(fake, study), settings, sandbox=False)
    assert not fake.calls("POST", "/api/v1/studies/")
    rec = _recruiter(fake, study)
    rec.allow_low_pay = "pilot with colleagues, topped up by hand"
    service.open_posts(db.session, study, rec, settings, sandbox=False)
    opened = db.session.scalar(select(AuditLog).where(AuditLog.action == "recruit.open.prolific"))
    assert opened.details["allow_low_pay"] == "pilot with colleagues, topped up by hand"


def test_amounts_are_in_the_study_currency(app, study, fake):
    fake.currency = "GBP"
    with pytest.raises(PayRefused, match="pays in GBP.*--usd-rate"):
        service.open_posts(db.session, study, _recruiter(fake, study), service.post_settings(study, BASE),
                           sandbox=False)
    service.open_posts(db.session, study, _recruiter(fake, study, usd_rate=0.8), service.post_settings(study, BASE),
                       sandbox=False)
    (_, _, body), = fake.calls("POST", "/api/v1/studies/")
    assert body["reward"] == 160  # $2.00 at 0.8 GBP per USD = 160 pence (6.40 GBP/h >= 6.00)
    assert to_minor(0.05, "USD", None) == 5 and to_minor(0.05, "GBP", 0.8) == 4


def test_previous_studies_blocklist_and_screeners(app, study, fake, media_set, tmp_path):
    _posted(study)
    path = make_plan(media_set, TASK1, name="prolific-t2", exclude_studies=[study.name], out=tmp_path / "p2.json")
    plan = json.loads(path.read_text())
    plan["study"]["recruitment"] = {"screeners": [{"filter_id": "fluent-languages", "selected_values": ["19"]}],
                                    "requires_audio": True, "estimated_minutes": 15}
    plan["audio_check"]["enabled"] = False
    plan["payment"]["reward_usd"] = 2.0
    path.write_text(json.dumps(plan))
    second = service.find_study(db.session, import_study(app, path, media_set))
    service.open_posts(db.session, second, _recruiter(fake, second), service.post_settings(second, BASE),
                       sandbox=False)
    (_, _, body), = fake.calls("POST", "/api/v1/studies/")
    assert body["filters"] == [{"filter_id": "previous_studies", "selected_values": ["STUDY1"]},
                               {"filter_id": "fluent-languages", "selected_values": ["19"]}]
    assert body["peripheral_requirements"] == ["AUDIO"]  # [recruitment] requires_audio (no audio check here)
    assert body["estimated_completion_time"] == 15 == service.post_settings(second, BASE).estimated_minutes


def test_spec_recruitment_table_reaches_the_plan_and_bad_screeners_are_named():
    from stimuli.spec import SpecError, parse_spec, resolve_spec

    _, raw = resolve_spec("paper-task2")
    extra = ('\n[recruitment]\nestimated_minutes = 9\nrequires_audio = true\n'
             'screeners = [{filter_id = "fluent-languages", selected_values = ["19"]}]\n')
    spec = parse_spec(raw.decode() + extra)
    assert spec.recruitment.estimated_minutes == 9 and spec.recruitment.requires_audio
    assert spec.recruitment.as_plan()["screeners"] == [{"filter_id": "fluent-languages", "selected_values": ["19"]}]
    assert parse_spec(raw).recruitment.estimated_minutes is None  # optional
    # compile_plan carries the table into plan["study"]["recruitment"], and post_settings reads its minutes.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stimuli"))
    from stimuli_factories import task2_rows

    from stimuli.manifest import build_manifest
    from stimuli.plan import compile_plan, validate_plan

    manifest = build_manifest("/nonexistent/t2", task2_rows(), name="t2")
    plan = validate_plan(compile_plan(spec, manifest, seed=1))
    assert plan["study"]["recruitment"]["estimated_minutes"] == 9
    assert "recruitment" not in compile_plan(parse_spec(raw), manifest, seed=1)["study"]  # old plans keep their bytes
    with pytest.raises(SpecError, match=r"recruitment.screeners\[0\]'.*selected_values or selected_range"):
        parse_spec(raw.decode() + '\n[recruitment]\nscreeners = [{filter_id = "age"}]\n')


def test_sync_approves_rejects_with_category_asks_partial_to_return_and_adds_places(app, study, fake):
    _posted(study)
    web = app.test_client()
    good = arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    complete_session(web, good)
    bad = arrive(web, study.name, PROLIFIC_PID="P2", STUDY_ID="STUDY1", SESSION_ID="S2")
    complete_session(web, bad, variant_for=lambda pos: 1 if pos >= 6 else 0)
    arrive(web, study.name, PROLIFIC_PID="P3", STUDY_ID="STUDY1", SESSION_ID="S3")  # could not finish
    gone = arrive(web, study.name, PROLIFIC_PID="P4", STUDY_ID="STUDY1", SESSION_ID="S4")
    late = arrive(web, study.name, PROLIFIC_PID="P5", STUDY_ID="STUDY1", SESSION_ID="S5")
    fake.places = 6
    fake.submissions = [{"id": "S1", "participant_id": "P1", "status": "AWAITING REVIEW"},
                        {"id": "S2", "participant_id": "P2", "status": "AWAITING REVIEW"},
                        {"id": "S3", "participant_id": "P3", "status": "AWAITING REVIEW"},
                        {"id": "S4", "participant_id": "P4", "status": "RETURNED"},
                        {"id": "S5", "participant_id": "P5", "status": "TIMED-OUT"},
                        {"id": "S0", "participant_id": "P0", "status": "APPROVED"}]
    rec = _recruiter(fake, study, "STUDY1")
    r = service.sync(db.session, study, rec, settings=service.post_settings(study, BASE))
    assert r.approved == ["S1"] and r.rejected == ["S2"] and r.return_requested == ["S3"]
    transitions = {p: b for m, p, b in fake.calls("POST", "/api/v1/submissions/") if p.endswith("/transition/")}
    assert transitions["/api/v1/submissions/S1/transition/"] == {"action": "APPROVE"}
    rej = transitions["/api/v1/submissions/S2/transition/"]
    assert rej["action"] == "REJECT" and len(rej["message"]) >= 100 and rej["rejection_category"] == "FAILED_CHECK"
    assert "/api/v1/submissions/S3/transition/" not in transitions  # nobody rejected for not finishing
    (_, _, ret), = fake.calls("POST", "/api/v1/submissions/S3/request-return/")
    assert ret == {"request_return_reasons": ["Didn't finish the study"]}
    status = {a.token: a.status for a in db.session.scalars(select(Assignment))}
    assert status[gone] == "returned" and status[late] == "expired"  # read back from Prolific
    # 4 wanted, 1 valid, P3 still active: 2 needed; the study shows 6 places, 6 taken -> 0 open: +2 (6 + 2).
    assert r.needed == 2 and r.open_places == 0
    (_, _, patch), = fake.calls("PATCH")
    assert patch == {"total_available_places": 8}
    # A second sync asks nobody again.
    n = len(fake.calls("POST"))
    fake.submissions[0]["status"], fake.submissions[1]["status"] = "APPROVED", "REJECTED"
    fake.places = 8
    service.sync(db.session, study, _recruiter(fake, study, "STUDY1"), settings=service.post_settings(study, BASE))
    assert len(fake.calls("POST")) == n


def _approved(app, study):
    _posted(study)
    web = app.test_client()
    token = arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    complete_session(web, token)
    a = db.session.scalar(select(Assignment).where(Assignment.token == token))
    a.status = "approved"
    db.session.commit()
    fake_sub = {"id": "S1", "participant_id": "P1", "status": "APPROVED"}
    return a, fake_sub


@pytest.mark.parametrize("fault", ["lost-after", "502-after"])
def test_bonus_paid_once_when_the_pay_reply_is_lost_or_502(app, study, fake, fault):
    a, sub = _approved(app, study)
    fake.submissions = [sub]
    (pb,) = ledger.plan_bonuses(db.session, study)
    fake.pay_fault = fault
    with pytest.raises(LedgerError, match=r"--mark-sent \d+"):
        ledger.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    row = db.session.scalar(select(BonusPayment))
    assert row.status == BONUS_UNKNOWN and row.external_id == "S1", (row.status, row.response, fake.requests)
    r = ledger.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))  # reads S1's bonus records
    assert r.reconciled_paid == [row.id] and r.paid == []
    db.session.refresh(row)
    assert row.status == BONUS_SENT and fake.pay_calls == 1
    ledger.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    assert fake.pay_calls == 1 and sub["bonus_payments"] == [pb.amount_cents]
    setup = [b for m, p, b in fake.calls("POST", "/api/v1/submissions/bonus-payments/")]
    assert setup[0]["csv_bonuses"] == f"P1,{pb.amount_cents / 100:.2f}\n"


def test_unsettled_bonus_waits_for_a_person_then_is_paid_once(app, study, fake):
    a, sub = _approved(app, study)
    fake.submissions = [sub]
    fake.pay_fault = "lost-before"  # the connection dropped before Prolific paid
    with pytest.raises(LedgerError):
        ledger.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    with pytest.raises(LedgerError, match="check each on prolific"):  # the records show nothing: not resent
        ledger.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    assert fake.pay_calls == 0
    row = db.session.scalar(select(BonusPayment))
    ledger.mark_bonus(db.session, study, row.id, "failed", note="not in Prolific's payments page")
    r = ledger.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    assert r.paid == [row.id] and fake.pay_calls == 1
    marks = db.session.scalar(select(AuditLog).where(AuditLog.action == "recruit.bonus.mark_failed"))
    assert marks.details["ledger_id"] == row.id and marks.details["note"] == "not in Prolific's payments page"


def test_lab_tokens_are_one_time_links_without_payments(app, study):
    rec = lab.LabRecruiter(db.session, study)
    ids = service.open_posts(db.session, study, rec, service.post_settings(study, BASE), places=3)
    assert len(ids) == 1 and len(rec.links) == 3
    assert all(link.startswith(f"{BASE}/s/{study.name}?lab=") for link in rec.links)
    token = rec.links[0].split("lab=")[1]
    assert lab_tokens.check_token(db.session, study.id, token)
    assert not lab_tokens.check_token(db.session, study.id, "forged-token")
    status = rec.status()[0]
    assert status["places"] == 3 and status["completed"] == 1
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "recruit.open.lab")) == 1


# -- fault injection on Prolific: before the call, after it (done there, not recorded here), lost reply ----
class Crash(Exception):
    """The process died at this point."""


def _faulty(rec, method, suffix, when):
    """Arm one fault on the first matching request of this recruiter's HTTP session."""
    real = rec.http.request
    armed = [True]

    def request(m, url, **kw):
        hit = armed[0] and m == method and url.split("?")[0].endswith(suffix)
        if hit:
            armed[0] = False
            if when == "before":
                raise Crash(f"died before {m} {suffix}")
        resp = real(m, url, **kw)
        if hit and when == "after":
            raise Crash(f"died after {m} {suffix}")
        if hit and when == "lost":
            raise requests.ConnectionError("reply lost")
        return resp
    rec.http.request = request
    rec.fault_armed = armed
    return rec


def _prolific_world(app, study, fake):
    _posted(study)
    web = app.test_client()
    complete_session(web, arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1"))
    bad = arrive(web, study.name, PROLIFIC_PID="P2", STUDY_ID="STUDY1", SESSION_ID="S2")
    complete_session(web, bad, variant_for=lambda pos: 1 if pos >= 6 else 0)
    arrive(web, study.name, PROLIFIC_PID="P3", STUDY_ID="STUDY1", SESSION_ID="S3")
    fake.places = 3
    fake.submissions = [{"id": f"S{i}", "participant_id": f"P{i}", "status": "AWAITING REVIEW"} for i in (1, 2, 3)]


PROLIFIC_CALLS = [("sync", "POST", "/submissions/S1/transition/"), ("sync", "POST", "/submissions/S2/transition/"),
                  ("sync", "POST", "/submissions/S3/request-return/"), ("sync", "PATCH", "/studies/STUDY1/"),
                  ("sync", "GET", "/studies/STUDY1/submissions/"),
                  ("bonus", "POST", "/submissions/bonus-payments/"), ("bonus", "POST", "/pay/"),
                  ("bonus", "GET", "/submissions/S1/")]
PROLIFIC_CASES = [(ph, m, sfx, w) for ph, m, sfx in PROLIFIC_CALLS for w in ("before", "after", "lost")]


@pytest.mark.parametrize("phase,method,suffix,when", PROLIFIC_CASES,
                         ids=[f"{p}-{m}-{s.strip('/').replace('/', '.')}-{w}" for p, m, s, w in PROLIFIC_CASES])
def test_prolific_fault_then_rerun(app, study, fake, phase, method, suffix, when):
    _prolific_world(app, study, fake)
    settings = service.post_settings(study, BASE)

    def sync(rec):
        return service.sync(db.session, study, rec, settings=settings)

    def bonus(rec):
        return ledger.pay_bonuses(db.session, study, rec)

    if phase == "bonus":
        sync(_recruiter(fake, study, "STUDY1"))
        fake.submissions[0]["status"] = "APPROVED"
        if suffix == "/submissions/S1/":  # the records are read only when an outcome is unknown
            fake.pay_fault = "lost-after"
            with pytest.raises(LedgerError):
                bonus(_recruiter(fake, study, "STUDY1"))
    run = sync if phase == "sync" else bonus
    faulty = _faulty(_recruiter(fake, study, "STUDY1"), method, suffix, when)
    try:
        run(faulty)
    except (Crash, RecruitError):
        db.session.rollback()
    assert faulty.fault_armed == [False], "the call never happened: the case tests nothing"
    try:
        run(_recruiter(fake, study, "STUDY1"))
    except LedgerError:  # Prolific's records cannot settle it: a person checks the payments page and marks it
        row = db.session.scalar(select(BonusPayment))
        ledger.mark_bonus(db.session, study, row.id, "sent" if fake.pay_calls else "failed", note="checked")
    run(_recruiter(fake, study, "STUDY1"))
    status = {s["id"]: s["status"] for s in fake.submissions}
    assert status["S1"] == "APPROVED" and status["S2"] == "REJECTED"
    assert status["S3"] == "AWAITING REVIEW" and fake.submissions[2].get("return_requested")  # never rejected
    assert fake.places == 5  # 4 wanted - P1 valid - P3 active = 2 more, added once
    if phase == "bonus":
        assert fake.pay_calls == 1 and len(fake.submissions[0]["bonus_payments"]) == 1
        assert db.session.scalar(select(BonusPayment.status)) == BONUS_SENT
