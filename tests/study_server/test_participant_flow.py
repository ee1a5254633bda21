"""A whole participant session through the pages and the API (Task 1 and Task 2)."""

from __future__ import annotations

from sqlalchemy import func, select

from study_server.store.extensions import db
from study_server.store.models import Answer, Assignment, Verdict
from studykit import arrive, complete_session


def test_task1_session_valid(client, app, task1_study):
    page = client.get(f"/s/{task1_study}?lab=card-001")
    assert page.status_code == 302
    token = page.headers["Location"].rsplit("/", 1)[-1]
    html = client.get(f"/a/{token}")
    assert html.status_code == 200 and b"study.js" in html.data
    out = complete_session(client, token)
    assert out["status"] == "completed" and out["completion"]["kind"] == "code"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Answer)) == 9
        v = db.session.scalar(select(Verdict))
        assert v.verdict == "valid" and v.n_repeat_answers == 9 and v.n_inconsistent == 0
    done = client.get(f"/a/{token}/done")
    assert done.status_code == 200 and out["completion"]["code"].encode() in done.data


def test_task2_session_with_audio_check(client, app, task2_study):
    token = arrive(client, task2_study, PROLIFIC_PID="p1", STUDY_ID="s1", SESSION_ID="x1")
    out = complete_session(client, token)
    assert out["completion"]["kind"] == "redirect"
    assert out["completion"]["url"].startswith("https://app.prolific.com/submissions/complete?cc=")
    with app.app_context():
        a = db.session.scalar(select(Assignment))
        assert a.audio_check_passed is True and a.prolific_session_id == "x1"


def test_mturk_completion_posts_back_to_mturk(client, app, task1_study):
    q = "assignmentId=ASG1&hitId=HIT1&workerId=WK1&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    token = client.get(f"/s/{task1_study}?{q}").headers["Location"].rsplit("/", 1)[-1]
    out = complete_session(client, token)
    action = out["completion"]
    assert action["kind"] == "mturk_form"
    assert action["action"] == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert action["fields"]["assignmentId"] == "ASG1" and action["fields"]["completion_code"]
    page = client.get(f"/a/{token}/done").get_data(as_text=True)
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="ASG1"' in page and 'name="completion_code" value="' in page
    # The study page of a finished assignment leads to the completion page.
    assert client.get(f"/a/{token}").headers["Location"].endswith(f"/a/{token}/done")


def test_declining_consent_frees_the_slot(client, app, task1_study):
    token = arrive(client, task1_study, lab="no-thanks")
    assert client.post(f"/api/v1/a/{token}/return").get_json() == {"status": "returned"}
    r = client.post(f"/api/v1/a/{token}/answers", json={"answer_id": "late-answer-1", "position": 0, "values": {}})
    assert r.status_code in (400, 409)
    for i in range(4):  # all four slots are free for others
        arrive(client, task1_study, lab=f"other{i}")


def test_pages_have_no_inline_scripts_and_work_in_frames(client, task1_study):
    token = arrive(client, task1_study, lab="frame")
    page = client.get(f"/a/{token}")
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "onclick" not in html  # CSP: scripts only from files
    assert 'name="viewport"' in html  # phone browsers
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors" in csp and "mturk.com" in csp and "X-Frame-Options" not in page.headers
