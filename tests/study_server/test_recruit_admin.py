"""The admin pages show the recruitment posts and the bonus ledger of a study."""

from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from studykit import TASK1, import_study, make_plan

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
