"""A whole participant session through the pages and the API (Task 1 and Task 2)."""

from __future__ import annotations

from sqlalchemy import func, select

from study_server.extensions import db
from study_server.models import Answer, Assignment, Verdict
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
