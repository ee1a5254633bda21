"""Admin: login, CSRF, the counts per batch (pages and JSON), a participant's answers, export, audit log."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from adminkit import add_assignment, batch_positions, plan_of

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config():
    # a cheap hash method keeps the tests fast; production uses werkzeug's default (scrypt)
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


def _token(client, path="/admin/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client, password=PASSWORD, user="admin"):
    return client.post("/admin/login", data={"user": user, "password": password, "csrf_token": _token(client)})


def _audit(app) -> list[tuple[str, str, str | None]]:
    from study_server.store.extensions import db
    from study_server.store.models import AuditLog

    with app.app_context():
        return [(r.actor, r.action, r.target) for r in db.session.scalars(select(AuditLog).order_by(AuditLog.id))]


def _admin_urls(app, study_id: int, assignment_id: int) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint == "admin.login":
            continue
        urls.append((rule.rule.replace("<int:study_id>", str(study_id))
                     .replace("<int:assignment_id>", str(assignment_id)).replace("<key>", "item-1"), sorted(rule.methods - {"HEAD", "OPTIONS"})))
    return urls


def _study_id(app, name: str) -> int:
    from study_server.store.extensions import db
    from study_server.store.models import Study

    with app.app_context():
        return db.session.scalar(select(Study.id).where(Study.name == name))


def test_every_admin_page_and_endpoint_needs_login(app, client, task1_study):
    aid = add_assignment(app, task1_study, "b01", worker="w1")
    urls = _admin_urls(app, _study_id(app, task1_study), aid)
    assert len(urls) >= 9
    for url, methods in urls:
        for method in methods:
            if method == "POST":  # a POST with a valid CSRF token but no login
                token = _token(client)
                response = client.post(url, data={"csrf_token": token})
            else:
                response = client.get(url)
            if "/admin/api/" in url:
                assert response.status_code == 401, url
                assert response.get_json()["error"]["code"] == "login_required"
            else:
                assert response.status_code == 302, (method, url)
                assert "/admin/login" in response.headers["Location"]
    assert not any(action == "export" for _, action, _ in _audit(app))
    # once logged in, every GET works
    assert _login(client).status_code == 302
    for url, methods in urls:
        if "GET" in methods:
            assert client.get(url).status_code == 200, url


def test_login_logout_and_wrong_password(app, client):
    assert _login(client, password="wrong password").status_code == 401
    assert _login(client, user="root").status_code == 401
    assert client.get("/admin/").status_code == 302
    response = _login(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200 and "Log out" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    token = _token(client, "/admin/")
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302
    assert [a for _, a, _ in _audit(app)] == ["login_failed", "login_failed", "login", "logout"]


def test_next_is_never_an_open_redirect(client):
    token = _token(client)
    response = client.post("/admin/login", data={"password": PASSWORD, "user": "admin", "csrf_token": token,
                                                 "next": "https://evil.example/admin/"})
    assert response.headers["Location"] == "/admin/"


def test_csrf_refused_without_token(app, client, task1_study):
    study_id = _study_id(app, task1_study)
    # login itself needs the token
    client.get("/admin/login")
    assert client.post("/admin/login", data={"user": "admin", "password": PASSWORD}).status_code == 400
    assert client.get("/admin/").status_code == 302  # not logged in
    _login(client)
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(f"/admin/studies/{study_id}/export", data=data)
        assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
        assert client.post("/admin/logout", data=data).status_code == 400
    assert client.get("/admin/").status_code == 200  # still logged in: the forged logout did nothing
    assert [a for _, a, _ in _audit(app)] == ["login"]
    # a token from another session is refused too
    other = app.test_client()
    assert other.post("/admin/login", data={"user": "admin", "password": PASSWORD,
                                            "csrf_token": _token(client, "/admin/")}).status_code == 400


def test_no_password_configured_means_no_login(app, client, monkeypatch):
    monkeypatch.delenv("EMOSTUDY_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("EMOSTUDY_ADMIN_PASSWORD_HASH", raising=False)
    app.config["ADMIN_PASSWORD_HASH"] = None
    page = client.get("/admin/login")
    assert page.status_code == 503 and "EMOSTUDY_ADMIN_PASSWORD_HASH" in page.get_data(as_text=True)
    with client.session_transaction() as session:
        session["csrf_token"] = "known-token"
    response = client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": "known-token"})
    assert response.status_code == 503


def test_login_attempts_are_throttled(app, client):
    codes = [_login(client, password=f"guess {i}").status_code for i in range(11)]
    assert codes == [401] * 10 + [429]
    assert _login(client).status_code == 429  # even the right password, until the window passes


def test_counts_per_batch_pages_and_json(app, client, task1_study):
    plan = plan_of(app, task1_study)
    full = {p: {"emotion": "anger", "realness": "not-sure", "aspects": ["none"]} for p in batch_positions(plan, "b01")}
    # b01: 2 active (one allocated, one started), 1 valid, 1 rejected, 1 expired, 1 stale (idle past the
    # 1800 s timeout: counted as expired), 1 returned
    add_assignment(app, task1_study, "b01", worker="a1", status="allocated")
    add_assignment(app, task1_study, "b01", worker="a2", status="started", answers={0: full[0]})
    add_assignment(app, task1_study, "b01", worker="v1", status="completed", verdict="valid", answers=full)
    add_assignment(app, task1_study, "b01", worker="r1", status="completed", verdict="rejected", answers=full)
    add_assignment(app, task1_study, "b01", worker="e1", status="expired")
    add_assignment(app, task1_study, "b01", worker="e2", status="started", idle_s=4000)
    add_assignment(app, task1_study, "b01", worker="l1", status="returned")
    # b02: 2 valid (quota 2: nothing needed), one of them already approved on the platform
    add_assignment(app, task1_study, "b02", worker="v2", status="completed", verdict="valid")
    add_assignment(app, task1_study, "b02", worker="v3", status="approved", verdict="valid")
    _login(client)
    study_id = _study_id(app, task1_study)
    detail = client.get(f"/admin/api/studies/{study_id}").get_json()
    by_batch = {b["batch_id"]: b for b in detail["batches"]}
    expected_b01 = {"quota": 2, "active": 2, "valid": 1, "rejected": 1, "expired": 2, "left": 1, "completed": 2,
                    "needed": 1, "n_items": 9}
    expected_b02 = {"quota": 2, "active": 0, "valid": 2, "rejected": 0, "expired": 0, "left": 0, "completed": 2,
                    "needed": 0, "n_items": 9}
    assert {k: by_batch["b01"][k] for k in expected_b01} == expected_b01
    assert {k: by_batch["b02"][k] for k in expected_b02} == expected_b02
    assert detail["totals"] == {"quota": 4, "active": 2, "valid": 3, "rejected": 1, "expired": 2, "left": 1,
                                "completed": 4, "needed": 1}
    listing = client.get("/admin/api/studies").get_json()["studies"]
    assert [(s["name"], s["totals"]["valid"]) for s in listing] == [(task1_study, 3)]
    # the HTML tables show the same numbers, in the documented column order
    html = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    row = re.search(r"<tr><td>b01</td>(.*?)</tr>", html, re.S).group(1)
    cells = [int(c) for c in re.findall(r'<td class="n">(\d+)</td>', row)]
    assert "1 / 2" in row  # valid of quota
    assert cells == [2, 1, 2, 1, 1]  # taking part, rejected, timed out, left, still needed
    dash = client.get("/admin/").get_data(as_text=True)
    assert f'href="/admin/studies/{study_id}"' in dash
    row = re.search(r"<tr><td></td><td>b01</td>(.*?)</tr>", dash, re.S).group(1)
    assert [int(c) for c in re.findall(r'<td class="n">(\d+)</td>', row)] == [2, 2, 1, 1, 2, 1, 1]
    total = re.search(r'<tr class="total">(.*?)</tr>', dash, re.S).group(1)
    assert [int(c) for c in re.findall(r'<td class="n">(\d+)</td>', total)] == [4, 2, 3, 1, 2, 1, 1]
    assignments = client.get(f"/admin/api/studies/{study_id}/assignments").get_json()["assignments"]
    assert len(assignments) == 9
    assert sorted(a["n_answers"] for a in assignments if a["batch_id"] == "b01") == [0, 0, 0, 0, 1, 9, 9]


def test_participant_answers_and_verdict(app, client, task1_study):
    plan = plan_of(app, task1_study)
    answers = {p: {"emotion": "fear", "realness": "definitely-real", "aspects": ["lip-sync"]}
               for p in batch_positions(plan, "b02")}
    aid = add_assignment(app, task1_study, "b02", worker="WORKER-77", platform="prolific", status="completed",
                         verdict="rejected", n_inconsistent=7, answers=answers)
    _login(client)
    detail = client.get(f"/admin/api/assignments/{aid}").get_json()
    assert detail["worker_id"] == "WORKER-77" and detail["platform"] == "prolific"
    assert detail["verdict"]["verdict"] == "rejected" and detail["verdict"]["n_inconsistent"] == 7
    assert [a["position"] for a in detail["answers"]] == batch_positions(plan, "b02")
    assert detail["answers"][0]["values"] == answers[0]
    html = client.get(f"/admin/assignments/{aid}").get_data(as_text=True)
    assert "WORKER-77" in html and "<b>rejected</b>" in html and "7 of 9 answers" in html
    assert "<b>Lip synchronization</b>" in html and "<b>Fear</b>" in html  # the plan's labels, not the values
    assert ("admin", "view_assignment", f"assignment:{aid}") in _audit(app)
    assert client.get("/admin/api/assignments/999999").status_code == 404


def test_export_button_downloads_zip_and_is_audited(app, client, task1_study):
    plan = plan_of(app, task1_study)
    add_assignment(app, task1_study, "b01", worker="z1", status="completed", verdict="valid",
                   answers={p: {"emotion": "anger", "realness": "not-sure", "aspects": ["none"]}
                            for p in batch_positions(plan, "b01")})
    _login(client)
    study_id = _study_id(app, task1_study)
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert f'action="/admin/studies/{study_id}/export"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/admin/studies/{study_id}/export", data={"csrf_token": token})
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert f"{task1_study}-export.zip" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(archive.namelist()) == [f"{task1_study}/{n}" for n in (
        "answers.csv", "codebook.md", "decisions.csv", "manifest.json", "participants.csv", "plan.json")]
    rows = archive.read(f"{task1_study}/answers.csv").decode().splitlines()
    assert len(rows) == 1 + 9 * 3
    assert ("admin", "export", f"study:{task1_study}") in _audit(app)


@pytest.mark.postgres
def test_counts_and_export_on_postgresql(postgres_url, media_set, tmp_path, app_config):
    from adminkit import fresh_postgres_database
    from study_server.store import schema as dbmod
    from study_server.app import create_app
    from study_server.export.tables import export_study
    from study_server.store.extensions import db
    from studykit import TASK2, import_study, make_plan

    with fresh_postgres_database(postgres_url) as url:
        dbmod.upgrade(url)
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test-secret",
                          "INSTANCE_PATH": str(tmp_path / "instance"), **app_config})
        try:
            study = import_study(app, make_plan(media_set, TASK2, out=tmp_path / "p.json"), media_set)
            plan = plan_of(app, study)
            full = {p: {"primary": "anger", "secondary": "none"} for p in batch_positions(plan, "b02")}
            add_assignment(app, study, "b02", worker="pg1", status="completed", verdict="valid", answers=full)
            add_assignment(app, study, "b02", worker="pg2", status="started", idle_s=4000)
            add_assignment(app, study, "b01", worker="pg3", status="allocated")
            client = app.test_client()
            _login(client)
            detail = client.get(f"/admin/api/studies/{_study_id(app, study)}").get_json()
            counts = {b["batch_id"]: (b["active"], b["valid"], b["expired"], b["needed"]) for b in detail["batches"]}
            assert counts == {"b01": (1, 0, 0, 2), "b02": (0, 1, 1, 1)}
            with app.app_context():
                result = export_study(db.session, study, tmp_path / "out")
            assert result.n_answer_rows == 2 * len(full) and result.n_participant_rows == 3
        finally:
            db.dispose(app)
