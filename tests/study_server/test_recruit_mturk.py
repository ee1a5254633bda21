"""Recruitment on MTurk: every call runs against botocore's Stubber, which checks each request against the
real MTurk API model (moto does not implement MTurk)."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner
from sqlalchemy import func, select
from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.recruit import LiveModeRefused, PlatformError, ledger, mturk, service
from study_server.store.extensions import db
from study_server.store.models import Assignment, AuditLog, Participant
from study_server.store.recruitment import BONUS_PAYING, BONUS_SENT, BonusPayment, Campaign, RecruitPost

SANDBOX = "https://workersandbox.mturk.com"
BASE = "https://study.example.org"


def _client():
    return boto3.client("mturk", region_name="us-east-1", endpoint_url=mturk.SANDBOX_ENDPOINT,
                        aws_access_key_id="test", aws_secret_access_key="test")


def _hit(hit_id, available=0, pending=0, completed=0, max_assignments=4):
    return {"HIT": {"HITId": hit_id, "HITTypeId": "TYPE1", "HITStatus": "Assignable", "MaxAssignments": max_assignments,
                    "NumberOfAssignmentsAvailable": available, "NumberOfAssignmentsPending": pending,
                    "NumberOfAssignmentsCompleted": completed}}


@pytest.fixture
def bonus_plan(media_set, tmp_path):
    """A Task 1 plan paying 0.05 per correct emotion (truth = the visual emotion), capped at 0.30."""
    path = make_plan(media_set, TASK1, name="recruit-t1", out=tmp_path / "plan.json")
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": 1.5, "bonus": {"rule": "per_correct", "question": "emotion",
                                                    "truth": "visual_emotion", "amount_usd": 0.05, "max_usd": 0.30,
                                                    "count_repeats": True}}
    path.write_text(json.dumps(plan))
    return path


@pytest.fixture
def study(app, bonus_plan, media_set):
    name = import_study(app, bonus_plan, media_set)
    with app.app_context():
        yield service.find_study(db.session, name)


OWN_QUAL = {"QualificationTypeId": "QFAM", "Comparator": "DoesNotExist", "ActionsGuarded": "DiscoverPreviewAndAccept"}


def _open_with_stub(app, study, places=None, expect_qual=True):
    client = _client()
    rec = mturk.MTurkRecruiter(client)
    settings = service.post_settings(study, BASE)
    key = service.campaign_key(study, "mturk", True)
    with Stubber(client) as stub:
        stub.add_response("list_hits", {"HITs": [], "NumResults": 0}, {"MaxResults": 100})  # nothing orphaned
        if expect_qual:  # the study family's qualification is made once, then found in the database
            stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": "QFAM"}},
                              {"Name": ANY, "Keywords": ANY, "Description": ANY, "QualificationTypeStatus": "Active"})
        stub.add_response("get_account_balance", {"AvailableBalance": "10000.00"}, {})
        stub.add_response("create_hit_type", {"HITTypeId": "TYPE1"}, {
            "AutoApprovalDelayInSeconds": 3 * 24 * 3600, "AssignmentDurationInSeconds": 3600, "Reward": "1.50",
            "Title": ANY, "Keywords": ANY, "Description": ANY,
            "QualificationRequirements": [
                {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
                 "LocaleValues": [{"Country": "US"}], "ActionsGuarded": "DiscoverPreviewAndAccept"},
                {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
                 "IntegerValues": [95], "ActionsGuarded": "DiscoverPreviewAndAccept"},
                {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo",
                 "IntegerValues": [100], "ActionsGuarded": "DiscoverPreviewAndAccept"},
                OWN_QUAL]})  # the study's own exclusion: nobody takes two of its HITs
        sizes = [9] * ((places or 4) // 9) + ([(places or 4) % 9] if (places or 4) % 9 else [])
        for k, n in enumerate(sizes, start=1):
            stub.add_response("create_hit_with_hit_type", {"HIT": {"HITId": f"HIT{k}"}}, {
                "HITTypeId": "TYPE1", "MaxAssignments": n, "LifetimeInSeconds": 7 * 24 * 3600,
                "Question": mturk.external_question(f"{BASE}/s/{study.name}"), "RequesterAnnotation": f"{key}-{k}",
                "UniqueRequestToken": f"{key}-{k}"})
        ids = service.open_posts(db.session, study, rec, settings, places=places)
        stub.assert_no_pending_responses()
    return ids


def test_open_posts_hits_of_at_most_nine_with_the_papers_qualifications(app, study):
    # 2 batches x quota 2 = 4 places by default; 20 places -> 9 + 9 + 2.
    assert _open_with_stub(app, study) == ["HIT1"]
    db.session.execute(RecruitPost.__table__.delete())
    db.session.execute(Campaign.__table__.delete())
    db.session.commit()
    assert _open_with_stub(app, study, places=20, expect_qual=False) == ["HIT1", "HIT2", "HIT3"]
    assert list(db.session.scalars(select(RecruitPost.places).order_by(RecruitPost.id))) == [9, 9, 2]
    actions = list(db.session.scalars(select(AuditLog.action)))
    assert actions.count("recruit.open.mturk") == 2
    # Tokens are unique per study and per post, and fit MTurk's 64 characters for any study name.
    tokens = [p.details["token"] for p in db.session.scalars(select(RecruitPost))]
    assert len(set(tokens)) == 3 and all(len(t) <= 64 for t in tokens)


def test_external_question_refuses_plain_http():
    with pytest.raises(PlatformError, match="https"):
        mturk.external_question("http://study.example.org/s/x")
    xml = mturk.external_question("https://study.example.org/s/x?a=1&b=2")
    assert "<ExternalURL>https://study.example.org/s/x?a=1&amp;b=2</ExternalURL>" in xml


def test_later_study_requires_the_exclusion_qualification_as_does_not_exist(app, media_set, tmp_path):
    first = import_study(app, make_plan(media_set, TASK1, name="fam-a", out=tmp_path / "a.json"), media_set)
    second = import_study(app, make_plan(media_set, TASK1, name="fam-b", exclude_studies=[first],
                                         out=tmp_path / "b.json"), media_set)
    with app.app_context():
        s2 = service.find_study(db.session, second)
        client = _client()
        rec = mturk.MTurkRecruiter(client)
        with Stubber(client) as stub:
            stub.add_response("list_hits", {"HITs": []}, {"MaxResults": 100})
            stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": "QA"}},
                              {"Name": "emostudy took part: fam-a", "Keywords": ANY, "Description": ANY,
                               "QualificationTypeStatus": "Active"})
            stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": "QB"}},
                              {"Name": "emostudy took part: fam-b", "Keywords": ANY, "Description": ANY,
                               "QualificationTypeStatus": "Active"})
            stub.add_response("get_account_balance", {"AvailableBalance": "10000.00"}, {})
            stub.add_response("create_hit_type", {"HITTypeId": "T2"}, {
                "AutoApprovalDelayInSeconds": ANY, "AssignmentDurationInSeconds": ANY, "Reward": "1.00",
                "Title": ANY, "Keywords": ANY, "Description": ANY, "QualificationRequirements": [
                    ANY, ANY, ANY, {"QualificationTypeId": "QA", "Comparator": "DoesNotExist",
                                    "ActionsGuarded": "DiscoverPreviewAndAccept"},
                    {"QualificationTypeId": "QB", "Comparator": "DoesNotExist",
                     "ActionsGuarded": "DiscoverPreviewAndAccept"}]})
            stub.add_response("create_hit_with_hit_type", {"HIT": {"HITId": "H2"}}, {
                "HITTypeId": "T2", "MaxAssignments": 4, "LifetimeInSeconds": ANY, "Question": ANY,
                "RequesterAnnotation": ANY, "UniqueRequestToken": ANY})
            service.open_posts(db.session, s2, rec, service.post_settings(s2, BASE))
            stub.assert_no_pending_responses()


def _mturk_arrival(client, study, n):
    return arrive(client, study, assignmentId=f"ASG{n}", hitId="HIT1", workerId=f"W{n}", turkSubmitTo=SANDBOX)


def _inconsistent(pos):  # repeats (positions >= 6) answered differently from their originals
    return 1 if pos >= 6 else 0


LIST = {"HITId": "HIT1", "AssignmentStatuses": ["Submitted", "Approved", "Rejected"], "MaxResults": 100}


def _annotated(study, hit_id, seq, n=4):
    key = service.campaign_key(study, "mturk", True)
    return {"HITId": hit_id, "HITTypeId": "TYPE1", "MaxAssignments": n, "RequesterAnnotation": f"{key}-{seq}"}


def test_sync_grants_exclusion_approves_valid_rejects_inconsistent_queues_the_rest_and_refills(app, study):
    _open_with_stub(app, study)
    web = app.test_client()
    good = _mturk_arrival(web, study.name, 1)
    complete_session(web, good)
    bad = _mturk_arrival(web, study.name, 2)
    complete_session(web, bad, variant_for=_inconsistent)
    _mturk_arrival(web, study.name, 3)  # accepted, never finished, but submitted on MTurk anyway
    client = _client()
    rec = mturk.MTurkRecruiter(client)
    settings = service.post_settings(study, BASE)
    key = service.campaign_key(study, "mturk", True)
    with Stubber(client) as stub:
        stub.add_response("list_hits", {"HITs": [_annotated(study, "HIT1", 1)]}, {"MaxResults": 100})
        for w in ("W1", "W2", "W3"):
            stub.add_response("associate_qualification_with_worker", {}, {
                "QualificationTypeId": "QFAM", "WorkerId": w, "IntegerValue": 1, "SendNotification": False})
        stub.add_response("list_assignments_for_hit", {"Assignments": [
            {"AssignmentId": "ASG1", "WorkerId": "W1", "HITId": "HIT1", "AssignmentStatus": "Submitted"},
            {"AssignmentId": "ASG2", "WorkerId": "W2", "HITId": "HIT1", "AssignmentStatus": "Submitted"},
            {"AssignmentId": "ASG3", "WorkerId": "W3", "HITId": "HIT1", "AssignmentStatus": "Submitted"},
            {"AssignmentId": "ASG9", "WorkerId": "W9", "HITId": "HIT1", "AssignmentStatus": "Submitted"}]}, LIST)
        stub.add_response("approve_assignment", {}, {"AssignmentId": "ASG1"})
        stub.add_response("reject_assignment", {}, {"AssignmentId": "ASG2", "RequesterFeedback": service.FEEDBACK_INCONSISTENT})
        # ASG3 (partial) and ASG9 (no record) go to the review queue: no call.
        # 4 places wanted; W1 valid and W3 still active count: 2 needed; the HIT has no place left -> 2 more.
        stub.add_response("get_hit", {"HIT": {**_annotated(study, "HIT1", 1), "NumberOfAssignmentsAvailable": 0,
                                              "NumberOfAssignmentsPending": 0}}, {"HITId": "HIT1"})
        stub.add_response("get_account_balance", {"AvailableBalance": "10000.00"}, {})
        stub.add_response("create_hit_with_hit_type", {"HIT": {"HITId": "HIT2", "HITTypeId": "TYPE1"}}, {
            "HITTypeId": "TYPE1", "MaxAssignments": 2, "LifetimeInSeconds": ANY, "Question": ANY,
            "RequesterAnnotation": f"{key}-2", "UniqueRequestToken": f"{key}-2"})
        report = service.sync(db.session, study, rec, settings=settings)
        stub.assert_no_pending_responses()
    assert report.approved == ["ASG1"] and report.rejected == ["ASG2"]
    assert sorted(report.queued) == ["ASG3", "ASG9"]
    assert report.granted == 3 and report.posted == ["HIT2"] and report.needed == 2
    statuses = dict(db.session.execute(select(Assignment.external_assignment_id, Assignment.status)).all())
    assert statuses == {"ASG1": "approved", "ASG2": "rejected", "ASG3": "allocated"}
    queue = {(r.external_id, r.reason) for r in service.review_queue(db.session, study)}
    assert queue == {("ASG3", "partial"), ("ASG9", "unknown")}
    # Audit entries precede the calls: one per decision.
    actions = list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions.count("recruit.approve") == 1 and actions.count("recruit.reject") == 1
    assert actions.count("recruit.grant_exclusion") == 3 and actions.count("recruit.review_queue") == 2

    # A second sync makes no standing/money call again: decisions read back, grants recorded, queue kept.
    client2 = _client()
    rec2 = mturk.MTurkRecruiter(client2)
    with Stubber(client2) as stub:
        stub.add_response("list_hits", {"HITs": [_annotated(study, "HIT1", 1), _annotated(study, "HIT2", 2, 2)]},
                          {"MaxResults": 100})
        stub.add_response("list_assignments_for_hit", {"Assignments": [
            {"AssignmentId": "ASG1", "WorkerId": "W1", "HITId": "HIT1", "AssignmentStatus": "Approved"},
            {"AssignmentId": "ASG2", "WorkerId": "W2", "HITId": "HIT1", "AssignmentStatus": "Rejected"},
            {"AssignmentId": "ASG3", "WorkerId": "W3", "HITId": "HIT1", "AssignmentStatus": "Submitted"},
            {"AssignmentId": "ASG9", "WorkerId": "W9", "HITId": "HIT1", "AssignmentStatus": "Submitted"}]}, LIST)
        stub.add_response("list_assignments_for_hit", {"Assignments": []}, {**LIST, "HITId": "HIT2"})
        stub.add_response("get_hit", {"HIT": {**_annotated(study, "HIT1", 1), "NumberOfAssignmentsAvailable": 0}},
                          {"HITId": "HIT1"})
        stub.add_response("get_hit", {"HIT": {**_annotated(study, "HIT2", 2, 2), "NumberOfAssignmentsAvailable": 2}},
                          {"HITId": "HIT2"})
        again = service.sync(db.session, study, rec2, settings=settings)
        stub.assert_no_pending_responses()
    assert again.approved == [] and again.rejected == [] and again.posted == [] and again.granted == 0
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "recruit.review_queue")) == 2


def test_policy_approve_without_bonus(app, study):
    web = app.test_client()
    bad = _mturk_arrival(web, study.name, 2)
    complete_session(web, bad, variant_for=_inconsistent)
    db.session.add(RecruitPost(study_id=study.id, platform="mturk", external_id="HIT1", type_id="TYPE1", places=4))
    db.session.commit()
    client = _client()
    rec = mturk.MTurkRecruiter(client, hit_ids=["HIT1"], hit_type_id="TYPE1")
    with Stubber(client) as stub:
        stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": "QFAM"}}, None)
        stub.add_response("associate_qualification_with_worker", {}, None)
        stub.add_response("list_assignments_for_hit", {"Assignments": [
            {"AssignmentId": "ASG2", "WorkerId": "W2", "HITId": "HIT1", "AssignmentStatus": "Submitted"}]}, None)
        stub.add_response("approve_assignment", {}, {"AssignmentId": "ASG2"})
        stub.add_response("get_hit", _hit("HIT1", available=3), {"HITId": "HIT1"})
        r = service.sync(db.session, study, rec, policy=service.APPROVE_POLICY)
        stub.assert_no_pending_responses()
    assert r.approved_without_bonus == ["ASG2"]
    assert ledger.plan_bonuses(db.session, study) == []  # its verdict is still 'rejected': no bonus


def _approved_worker(app, study, n=1):
    web = app.test_client()
    token = _mturk_arrival(web, study.name, n)
    complete_session(web, token)
    a = db.session.scalar(select(Assignment).where(Assignment.token == token))
    a.status = "approved"
    db.session.commit()
    return a


def _expected_bonus_cents(app, study, assignment):
    # Independent route: count answers whose emotion equals the stimulus' visual emotion in the manifest.
    from study_server.store.models import Answer, Item, StudyStimulus

    rows = db.session.execute(select(Answer.values, StudyStimulus.labels).join(Item, Answer.item_id == Item.id)
                              .join(StudyStimulus, Item.stimulus_pk == StudyStimulus.id)
                              .where(Answer.assignment_id == assignment.id)).all()
    correct = sum(1 for values, labels in rows if values["emotion"] == labels["visual_emotion"])
    return min(5 * correct, 30), correct


def test_bonus_is_computed_from_answers_and_never_paid_twice(app, study):
    a = _approved_worker(app, study)
    cents, correct = _expected_bonus_cents(app, study, a)
    assert correct > 0  # variant 0 answers 'anger'; the tiny set shows anger on some items
    planned = ledger.plan_bonuses(db.session, study)
    assert [(p.worker_id, p.amount_cents, p.n_correct) for p in planned] == [("W1", cents, correct)]
    token = ledger.ledger_token(study, a.id, ledger.bonus_rule_name(service.plan_of(study)))
    expected = {"WorkerId": "W1", "BonusAmount": f"{cents / 100:.2f}", "AssignmentId": "ASG1", "Reason": ANY,
                "UniqueRequestToken": token}

    # Run 1 crashes during the call (connection lost): the row stays claimed ('paying') by a run that is gone.
    class Crash(Exception):
        pass

    client = _client()
    rec = mturk.MTurkRecruiter(client)
    with Stubber(client) as stub:
        stub.add_response("get_account_balance", {"AvailableBalance": "100.00"}, {})

        def crashing(*args, **kwargs):
            raise Crash("the process died during the call")
        rec.bonus = crashing
        with pytest.raises(Crash):
            ledger.pay_bonuses(db.session, study, rec)
    row = db.session.scalar(select(BonusPayment))
    assert row.status == BONUS_PAYING and row.token == token and row.external_id == "ASG1"
    assert row.claimed_by.split(":")[1] == str(os.getpid()) and row.claimed_at is not None

    # Run 2 first asks MTurk what was paid on the assignment (nothing), then pays with the SAME token.
    client = _client()
    rec = mturk.MTurkRecruiter(client)
    with Stubber(client) as stub:
        stub.add_response("list_bonus_payments", {"BonusPayments": []}, {"AssignmentId": "ASG1", "MaxResults": 100})
        stub.add_response("get_account_balance", {"AvailableBalance": "100.00"}, {})
        stub.add_response("send_bonus", {}, expected)
        r = ledger.pay_bonuses(db.session, study, rec)
        stub.assert_no_pending_responses()
    assert len(r.paid) == 1
    db.session.refresh(row)
    assert row.status == BONUS_SENT

    # Run 3 sends nothing (the Stubber has no response queued: any call would fail the test).
    client = _client()
    with Stubber(client) as stub:
        r = ledger.pay_bonuses(db.session, study, mturk.MTurkRecruiter(client))
        stub.assert_no_pending_responses()
    assert r.paid == [] and r.skipped_already_paid == 1
    assert db.session.scalar(select(func.count()).select_from(BonusPayment)) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "recruit.bonus")) == 2


@pytest.mark.parametrize("message", ['The idempotency token "abc" has already been processed.',  # MTurk's words
                                     "The value of UniqueRequestToken abc has already been used."])
def test_duplicate_token_answer_from_mturk_counts_as_paid(message):
    client = _client()
    rec = mturk.MTurkRecruiter(client)
    with Stubber(client) as stub:
        stub.add_client_error("send_bonus", service_error_code="RequestError", service_message=message)
        assert rec.bonus("W1", "A1", 10, "r", "abc")["duplicate"] is True


def test_other_refusals_are_not_taken_for_payments():
    client = _client()
    rec = mturk.MTurkRecruiter(client)
    with Stubber(client) as stub:
        stub.add_client_error("send_bonus", service_error_code="RequestError",
                              service_message="You do not have enough funds to pay this bonus.")
        with pytest.raises(PlatformError, match="enough funds"):
            rec.bonus("W1", "A1", 10, "r", "abc")


def test_dry_run_sync_changes_nothing(app, study):
    web = app.test_client()
    complete_session(web, _mturk_arrival(web, study.name, 1))
    db.session.add(RecruitPost(study_id=study.id, platform="mturk", external_id="HIT1", type_id="TYPE1", places=4))
    service.ensure_campaign(db.session, study, "mturk", True)
    db.session.commit()
    client = _client()
    rec = mturk.MTurkRecruiter(client, hit_ids=["HIT1"])
    with Stubber(client) as stub:  # only reads are allowed
        stub.add_response("list_assignments_for_hit", {"Assignments": [
            {"AssignmentId": "ASG1", "WorkerId": "W1", "HITId": "HIT1", "AssignmentStatus": "Submitted"}]}, None)
        stub.add_response("get_hit", _hit("HIT1"), {"HITId": "HIT1"})
        r = service.sync(db.session, study, rec, settings=service.post_settings(study, BASE), dry_run=True)
        stub.assert_no_pending_responses()
    assert any(c.startswith("approve mturk:ASG1") for c in r.planned_calls)
    assert any("grant exclusion" in c for c in r.planned_calls)
    assert any(c.startswith("post ") for c in r.planned_calls)
    assert db.session.scalar(select(Assignment.status)) == "completed"


def test_live_mode_is_refused_without_flag_and_confirmation(app, study, monkeypatch):
    with pytest.raises(LiveModeRefused):
        mturk.make_client(live=True, confirmed=False)
    client = mturk.make_client(live=False)
    assert client.meta.endpoint_url == mturk.SANDBOX_ENDPOINT
    from study_server.commands.recruit import recruit_group

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    db.session.commit()  # end this test's transaction: the CLI opens the database itself
    result = CliRunner().invoke(recruit_group, ["status", "--study", study.name, "--platform", "mturk", "--live",
                                                "--db", app.config["DATABASE_URL"]], input="no\n")
    assert result.exit_code != 0
    assert "live" in result.output.lower()


def test_preview_stores_nothing(app, study):
    web = app.test_client()
    page = web.get(f"/s/{study.name}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=HIT1")
    assert page.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Participant)) == 0
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 0


@pytest.mark.browser
def test_completion_page_posts_assignment_to_external_submit(app, study, chromium_path):
    """The finished participant's browser POSTs assignmentId and a non-empty answer field to
    turkSubmitTo/mturk/externalSubmit; Playwright's routing plays MTurk's endpoint."""
    import threading
    from urllib.parse import parse_qs

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    web = app.test_client()
    token = _mturk_arrival(web, study.name, 1)
    done = complete_session(web, token)["completion"]
    assert done["kind"] == "mturk_form" and done["action"] == f"{SANDBOX}/mturk/externalSubmit"
    db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    posted = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page()

            def fake_mturk(route, request):
                posted.append((request.method, request.url, request.post_data))
                route.fulfill(status=200, content_type="text/html", body="<p>submitted</p>")

            page.route("https://workersandbox.mturk.com/**", fake_mturk)
            page.goto(f"http://127.0.0.1:{server.server_port}/a/{token}/done")
            page.wait_for_function("document.body.innerText.includes('submitted')", timeout=15000)
            browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=5)
    (method, url, body), = posted
    fields = {k: v[0] for k, v in parse_qs(body).items()}
    assert method == "POST" and url == f"{SANDBOX}/mturk/externalSubmit"
    assert fields["assignmentId"] == "ASG1"
    assert any(k != "assignmentId" and v.strip() for k, v in fields.items())


def test_cli_open_passes_qualification_options_and_family(app, study, monkeypatch):
    from study_server.commands.recruit import recruit_group

    client = _client()
    monkeypatch.setattr(mturk, "make_client", lambda **kw: client)
    db.session.commit()
    args = ["open", "--study", study.name, "--platform", "mturk", "--db", app.config["DATABASE_URL"],
            "--base-url", BASE, "--countries", "US,CA", "--min-approval-rate", "97", "--min-approved-hits", "500",
            "--family", "emotion-videos-2026"]
    dry = CliRunner().invoke(recruit_group, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "would post 4 places" in dry.output
    with Stubber(client) as stub:
        stub.add_response("list_hits", {"HITs": []}, {"MaxResults": 100})
        stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": "QFAM"}},
                          {"Name": "emostudy took part: emotion-videos-2026", "Keywords": ANY, "Description": ANY,
                           "QualificationTypeStatus": "Active"})
        stub.add_response("get_account_balance", {"AvailableBalance": "10000.00"}, {})
        stub.add_response("create_hit_type", {"HITTypeId": "TYPE1"}, {
            "AutoApprovalDelayInSeconds": ANY, "AssignmentDurationInSeconds": ANY, "Reward": "1.50", "Title": ANY,
            "Keywords": ANY, "Description": ANY, "QualificationRequirements": [
                {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
                 "LocaleValues": [{"Country": "US"}, {"Country": "CA"}], "ActionsGuarded": "DiscoverPreviewAndAccept"},
                {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
                 "IntegerValues": [97], "ActionsGuarded": "DiscoverPreviewAndAccept"},
                {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo",
                 "IntegerValues": [500], "ActionsGuarded": "DiscoverPreviewAndAccept"}, OWN_QUAL]})
        stub.add_response("create_hit_with_hit_type", {"HIT": {"HITId": "HIT1"}}, None)
        result = CliRunner().invoke(recruit_group, args)
        stub.assert_no_pending_responses()
    assert result.exit_code == 0, result.output
    assert "posted 4 places on mturk: HIT1" in result.output
    post = db.session.scalar(select(RecruitPost))
    assert post.details["family"] == "emotion-videos-2026"
    assert service._posted_family(db.session, study) == "emotion-videos-2026"
