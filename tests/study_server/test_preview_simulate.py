"""Preview and pilot are kept out of the data (issue 28): the admin's "Preview as participant" takes no place
and leaves no trace in the export; a simulated participant (`emostudy simulate`) walks the real HTTP API,
is marked with a signature only the server secret makes, and is exported only with --include-simulated."""

from __future__ import annotations

import csv
import json
import re

from sqlalchemy import select
from werkzeug.security import generate_password_hash

import pytest
from studykit import TASK2, arrive, complete_session, import_study, make_plan, serve_in_thread

PASSWORD = "preview pw"


@pytest.fixture
def app_config():
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


def _login(client):
    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token}).status_code == 302


def _csrf(client, path):
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _export_rows(app, name, out, **kwargs):
    from study_server.export.tables import export_study
    from study_server.store.extensions import db

    with app.app_context():
        export_study(db.session, name, out, **kwargs)
    with open(out / "participants.csv", newline="") as f:
        parts = list(csv.DictReader(f))
    with open(out / "answers.csv", newline="") as f:
        answers = list(csv.DictReader(f))
    return parts, answers


def test_a_preview_takes_no_place_and_leaves_no_trace(app, client, media_set, tmp_path):
    from study_server.store.extensions import db
    from study_server.store.models import Assignment, Study

    plan = make_plan(media_set, TASK2, name="previewed", n_batches=1, quota=1, out=tmp_path / "p.json",
                     audio_check=False)
    name = import_study(app, plan, media_set)
    with app.app_context():
        study_id = db.session.scalar(select(Study.id).where(Study.name == name))
    _login(client)
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert "Preview as participant" in page
    # without the CSRF token: refused
    assert client.post(f"/admin/studies/{study_id}/preview", data={"batch": "b01"}).status_code == 400
    csrf = _csrf(client, f"/admin/studies/{study_id}")
    assert client.post(f"/admin/studies/{study_id}/preview", data={"batch": "b99", "csrf_token": csrf}).status_code == 404
    r = client.post(f"/admin/studies/{study_id}/preview", data={"batch": "b01", "csrf_token": csrf})
    assert r.status_code == 303 and "/a/" in r.headers["Location"]
    preview = r.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"/a/{preview}").status_code == 200
    complete_session(client, preview)  # the researcher takes the whole batch
    # the one place of the study is still free: a real participant gets it
    real = arrive(client, name, lab="real-1")
    complete_session(client, real)
    with app.app_context():
        kinds = dict(db.session.execute(select(Assignment.token, Assignment.kind)).all())
    assert kinds == {preview: "preview", real: "real"}
    # the admin counts one valid participant, not two
    from study_server.admin.stats import study_detail

    with app.app_context():
        detail = study_detail(db.session, db.session.get(Study, study_id), timeout_s=3600)
    assert detail["totals"]["valid"] == 1, detail["totals"]
    # the expected time beside the measured median of the real participant only (the preview not counted)
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert re.search(r"Expected time per participant: <strong>\d+ min</strong>.*over 1 completed participant",
                     page, re.S), page[page.find("Expected"):][:300]
    for include in (False, True):
        parts, answers = _export_rows(app, name, tmp_path / f"export-{include}", include_simulated=include)
        assert [p["assignment"] for p in parts] == [str(_id(app, real))]
        assert {a["assignment"] for a in answers} == {str(_id(app, real))}
    assert all(p["platform"] != "preview" for p in parts)


def _id(app, token):
    from study_server.store.extensions import db
    from study_server.store.models import Assignment

    with app.app_context():
        return db.session.scalar(select(Assignment.id).where(Assignment.token == token))


def test_a_session_cannot_mark_itself_simulated(app, client, media_set, tmp_path):
    from study_server.study.preview import simulation_signature

    name = import_study(app, make_plan(media_set, TASK2, name="honest", out=tmp_path / "h.json"), media_set)
    token = arrive(client, name, lab="cheat")
    r = client.post(f"/api/v1/a/{token}/simulated", json={"signature": "0" * 64})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "not_simulated"
    other = arrive(client, name, lab="other")
    stolen = simulation_signature(app.config["SECRET_KEY"], other)  # a signature is bound to its token
    assert client.post(f"/api/v1/a/{token}/simulated", json={"signature": stolen}).status_code == 403


def test_simulated_participants_are_exported_only_when_asked(app, media_set, tmp_path):
    from study_server.participant.simulate import simulate
    from study_server.store.extensions import db
    from study_server.store.models import Assignment, MediaFetch

    plan_path = make_plan(media_set, TASK2, name="piloted", n_batches=1, quota=3, out=tmp_path / "s.json",
                          audio_check=False)
    name = import_study(app, plan_path, media_set)
    plan = json.loads(plan_path.read_text())
    rows = json.loads((media_set / "manifest.json").read_text())["stimuli"]
    with serve_in_thread(app) as base:
        report = simulate(base, name, 2, manifest_rows=rows, secret_key=app.config["SECRET_KEY"], task=TASK2,
                          plan_questions=plan["questions"], seed=5, workers=2)
    assert report.completed == 2 and not report.refused
    with app.app_context():
        kinds = db.session.scalars(select(Assignment.kind)).all()
        fetched = db.session.scalar(select(MediaFetch.id).limit(1))
    assert kinds == ["simulated", "simulated"] and fetched is not None  # the media really were fetched
    parts, answers = _export_rows(app, name, tmp_path / "plain")
    assert parts == [] and answers == []
    parts, answers = _export_rows(app, name, tmp_path / "with", include_simulated=True)
    assert len(parts) == 2 and len(answers) == 2 * 6 * 2  # 6 items x 2 questions each


def test_the_simulate_command_drives_a_local_server_on_the_database(app, media_set, tmp_path):
    from click.testing import CliRunner

    from emostudy.cli import main
    from study_server.store.extensions import db
    from study_server.store.models import Answer, Assignment, MediaFetch

    name = import_study(app, make_plan(media_set, TASK2, name="cli-sim", n_batches=1, quota=2,
                                       out=tmp_path / "c.json", audio_check=False), media_set)
    result = CliRunner().invoke(main, ["simulate", name, "--participants", "2", "--speed", "fast",
                                       "--db", app.config["DATABASE_URL"]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 of 2 simulated participants completed" in result.output
    with app.app_context():
        kinds = db.session.scalars(select(Assignment.kind)).all()
        n_answers = len(db.session.scalars(select(Answer.id)).all())
        n_fetched = len(db.session.scalars(select(MediaFetch.id)).all())
    assert kinds == ["simulated", "simulated"]
    assert n_answers == n_fetched == 2 * 6  # every video was fetched before its answer (evidence of watching)
    parts, _ = _export_rows(app, name, tmp_path / "none")
    assert parts == []


def test_real_speed_waits_for_each_video_before_its_answer(app, media_set, tmp_path, monkeypatch):
    """--speed real: after fetching a clip the simulated person waits at least its length (plus a reading time
    that is then reported as rt_ms) before answering, so the server's watching evidence sees a person's pace."""
    from study_server.participant import simulate as sim
    from study_server.store.extensions import db
    from study_server.store.models import Answer

    plan_path = make_plan(media_set, TASK2, name="paced", n_batches=1, quota=1, out=tmp_path / "r.json",
                          audio_check=False)
    name = import_study(app, plan_path, media_set)
    plan = json.loads(plan_path.read_text())
    rows = json.loads((media_set / "manifest.json").read_text())["stimuli"]
    slept: list[float] = []
    monkeypatch.setattr(sim, "_watch", lambda s: slept.append(s))
    with serve_in_thread(app) as base:
        report = sim.simulate(base, name, 1, manifest_rows=rows, secret_key=app.config["SECRET_KEY"], task=TASK2,
                              plan_questions=plan["questions"], plan=plan, speed="real", workers=1)
    assert report.completed == 1
    with app.app_context():
        rts = [a.rt_ms for a in db.session.scalars(select(Answer).order_by(Answer.id))]
    clip = rows[0]["duration_s"]
    assert len(slept) == len(rts) == 6
    for wait, rt in zip(slept, rts):
        assert wait == pytest.approx(clip + rt / 1000, abs=0.01)  # the whole clip, then the answer time
    with pytest.raises(ValueError, match="speed 'instant'"):
        sim.simulate(base, name, 1, manifest_rows=rows, secret_key="x", task=TASK2, speed="instant")
