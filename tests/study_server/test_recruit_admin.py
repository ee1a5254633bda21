"""The admin pages show the recruitment posts and the bonus ledger of a study."""

from __future__ import annotations

import re

import pytest
from studykit import TASK1, import_study, make_plan
from werkzeug.security import generate_password_hash

from study_server.store.extensions import db
from study_server.store.models import Study
from study_server.store.recruitment import RecruitPost, ReviewItem

PASSWORD = "recruit admin pw"


@pytest.fixture
def app_config():
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


def test_study_page_and_json_show_posts_and_ledger(app, client, media_set, tmp_path):
    name = import_study(app, make_plan(media_set, TASK1, name="adm-rec", out=tmp_path / "p.json"), media_set)
    with app.app_context():
        study = db.session.query(Study).filter_by(name=name).one()
        sid = study.id
        db.session.add(RecruitPost(study_id=sid, platform="mturk", sandbox=True, external_id="HITX", places=4,
                                   details={}))
        db.session.add(ReviewItem(study_id=sid, platform="mturk", external_id="ASGQ", worker_id="WQ", reason="unknown",
                                  evidence={"platform_status": "Submitted"}, resolution={}))
        db.session.commit()
    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token})
    page = client.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert "Recruitment" in page and "HITX" in page and "Places still needed: 4" in page
    assert "Review queue" in page and "submission ASGQ" in page and "MTurk says: Submitted" in page
    data = client.get(f"/admin/api/studies/{sid}/recruitment").get_json()
    assert data["places_needed"] == 4 and data["posts"][0]["id"] == "HITX" and data["bonus_ledger"] == {}
    assert [(r["external_id"], r["reason"]) for r in data["review_queue"]] == [("ASGQ", "unknown")]


def test_study_page_lists_unsettled_payments_by_pseudonym_amount_and_command(app, client, media_set, tmp_path):
    """Issue 30: not a count: which participant (pseudonym), how much, and the command that settles it."""
    from sqlalchemy import select
    from studykit import arrive, complete_session

    from study_server.store.models import Assignment
    from study_server.store.recruitment import BonusPayment

    name = import_study(app, make_plan(media_set, TASK1, name="adm-unk", out=tmp_path / "p.json"), media_set)
    web = app.test_client()
    token = arrive(web, name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    complete_session(web, token)
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        sid, pseudonym = a.study_id, a.participant.pseudonym
        db.session.add(BonusPayment(assignment_id=a.id, rule="r", platform="prolific", worker_id="P1", amount_cents=45,
                                    token="t" * 64, status="unknown", reason="Bonus", response={}, external_id="S1",
                                    currency="GBP", amount_minor=36))
        db.session.commit()
    html = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": csrf})
    page = client.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert pseudonym in page and "0.36 GBP" in page and "--mark-sent 1" in page and "P1" not in page.split(
        "Payments that need a person")[1].split("</table>")[0]
    data = client.get(f"/admin/api/studies/{sid}/recruitment").get_json()
    (u,) = data["unsettled_payments"]
    assert u["pseudonym"] == pseudonym and u["amount"] == "0.36 GBP" and "--mark-failed 1" in u["command"]
