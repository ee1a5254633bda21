"""The participant's pages belong to the researcher (issue 28): the consent and debrief texts are the
researcher's Markdown, shown exactly as planned and rendered without raw HTML; every consent statement must
be ticked (the server checks); "I do not consent" frees the place (status ``declined``); no sentence of the
platform's says how the videos were made; ``[participant] language`` picks the catalogue and ``<html lang>``."""

from __future__ import annotations

import hashlib
import json

import pytest
from studykit import TASK2, arrive, import_study, make_plan, valid_values, watch

CONSENT = """# Consent to take part

You are invited to a study of **facial expressions**. Read the [information sheet](https://uni.example/info).

<script>alert("x")</script> <b>bold?</b> [click](javascript:alert(1))

- Your answers are anonymous.
- Ethics approval: EC-2026-17.
"""
DEBRIEF = "# Thank you\n\nThis study looked at *how people read faces*. Contact: lab@uni.example\n"
STATEMENTS = ["I am 18 years or older.", "I have read the information above and agree to take part."]


def _doc(name, text):
    return {"file": name, "text": text, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def consent_plan(media_set, tmp_path, name, *, language=None, quota=2, n_batches=2, instructions=None,
                 statements=STATEMENTS):
    from stimuli.plan import plan_to_bytes, validate_plan

    path = make_plan(media_set, TASK2, name=name, out=tmp_path / f"{name}.json", quota=quota, n_batches=n_batches)
    plan = json.loads(path.read_text())
    part = plan["participant"]
    part["consent"] = {**_doc("consent.md", CONSENT), "statements": list(statements)}
    part["debrief"] = _doc("debrief.md", DEBRIEF)
    if language:
        part["language"] = language
    if instructions is not None:
        part["instructions"] = instructions
    plan["audio_check"] = {"enabled": False}
    validate_plan(plan)
    path.write_bytes(plan_to_bytes(plan))
    return path, plan


def _finish(client, token, agree=(0, 1)):
    state = client.get(f"/api/v1/a/{token}").get_json()
    r = client.post(f"/api/v1/a/{token}/start", json={"agree": list(agree)})
    assert r.status_code == 200, r.get_json()
    for item in state["items"]:
        watch(client, item)
        r = client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"{token[:8]}-{item['position']}", "position": item["position"],
            "values": valid_values(state["questions"]), "rt_ms": 900, "played_fraction": 1.0})
        assert r.status_code == 200, r.get_json()
    r = client.post(f"/api/v1/a/{token}/complete")
    assert r.status_code == 200, r.get_json()


def test_consent_is_the_researchers_markdown_without_raw_html(app, client, media_set, tmp_path):
    path, plan = consent_plan(media_set, tmp_path, "consent-md")
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="c1")
    page = client.get(f"/a/{token}").get_data(as_text=True)
    assert '<h1>Consent to take part</h1>' in page and "<strong>facial expressions</strong>" in page
    assert '<a href="https://uni.example/info">information sheet</a>' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page  # shown as text, never run
    assert "<b>bold?</b>" not in page and 'href="javascript:' not in page
    for s in STATEMENTS:
        assert s in page
    assert 'id="consent-yes" disabled' in page and "I do not consent" in page
    # the platform adds no claim of its own next to the researcher's consent text
    assert "pseudonymous" not in page


def test_start_needs_every_statement(app, client, media_set, tmp_path):
    path, _ = consent_plan(media_set, tmp_path, "consent-st")
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="s1")
    for body in (None, {}, {"agree": [0]}, {"agree": [1, 1]}, {"agree": ["0", "1"]}, {"agree": True}):
        r = client.post(f"/api/v1/a/{token}/start", json=body)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "consent_required", body
    assert client.get(f"/api/v1/a/{token}").get_json()["status"] == "allocated"
    assert client.post(f"/api/v1/a/{token}/start", json={"agree": [1, 0]}).status_code == 200
    # once started, declining is refused (the platform's return is the way out)
    r = client.post(f"/api/v1/a/{token}/decline")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "already_started"


def test_declining_frees_the_place_and_is_recorded(app, client, media_set, tmp_path):
    from study_server.store.extensions import db
    from study_server.store.models import Assignment

    path, _ = consent_plan(media_set, tmp_path, "consent-full", quota=1, n_batches=1)
    name = import_study(app, path, media_set)
    first = arrive(client, name, lab="d1")
    full = client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "d2"}})
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "study_full"
    r = client.post(f"/api/v1/a/{first}/decline")
    assert r.status_code == 200 and r.get_json()["status"] == "declined"
    assert client.post(f"/api/v1/a/{first}/decline").get_json()["status"] == "declined"  # idempotent
    second = arrive(client, name, lab="d2")  # the freed place
    assert second != first
    # who declined and comes back stays declined (the page thanks them); nothing can be answered
    again = client.post(f"/api/v1/studies/{name}/arrive", json={"query": {"lab": "d1"}}).get_json()
    assert again["token"] == first and again["status"] == "declined"
    assert client.post(f"/api/v1/a/{first}/start", json={"agree": [0, 1]}).status_code >= 400
    with app.app_context():
        a = db.session.query(Assignment).filter_by(token=first).one()
        assert a.status == "declined" and a.ended_at is not None and a.started_at is None


def test_debrief_follows_the_last_answer_with_the_code(app, client, media_set, tmp_path):
    path, _ = consent_plan(media_set, tmp_path, "debrief")
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="b1")
    assert "how people read faces" not in client.get(f"/a/{token}").get_data(as_text=True)
    _finish(client, token)
    done = client.get(f"/a/{token}/done").get_data(as_text=True)
    assert "<em>how people read faces</em>" in done and 'id="completion-code"' in done


def test_no_sentence_of_ours_about_the_videos(app, client, media_set, tmp_path):
    path, _ = consent_plan(media_set, tmp_path, "no-ai", instructions="")
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="n1")
    page = client.get(f"/a/{token}").get_data(as_text=True).lower()
    ad = client.get(f"/s/{name}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H").get_data(as_text=True).lower()
    for text in (page, ad):
        for claim in ("artificial intelligence", "(ai)", "recordings", "rendered", "real people",
                      "a person speaking", "people speaking"):
            assert claim not in text, claim


def test_language_picks_the_catalogue_and_html_lang(app, client, media_set, tmp_path):
    path, _ = consent_plan(media_set, tmp_path, "german", language="de")
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="g1")
    page = client.get(f"/a/{token}").get_data(as_text=True)
    assert '<html lang="de">' in page and "Ich willige nicht ein" in page and "Abspielen" in page
    assert "I do not consent" not in page
    strings = json.loads(page.split('id="ui-strings"')[1].split(">", 1)[1].split("</script>")[0])
    assert strings["text"]["Video %(n)s of %(total)s"] == "Video %(n)s von %(total)s"
    assert strings["errors"]["study_full"].startswith("Diese Studie")
    # an error page of a German study is German too
    r = client.get(f"/s/{name}?lab=")
    assert '<html lang="de">' in r.get_data(as_text=True)
    path_es, _ = consent_plan(media_set, tmp_path, "spanish", language="es")
    spanish = client.get(f"/a/{arrive(client, import_study(app, path_es, media_set), lab='s1')}").get_data(as_text=True)
    assert '<html lang="es">' in spanish and "No doy mi consentimiento" in spanish
    english = import_study(app, make_plan(media_set, TASK2, name="english", out=tmp_path / "en.json"), media_set)
    assert '<html lang="en">' in client.get(f"/a/{arrive(client, english, lab='e1')}").get_data(as_text=True)


def test_a_plan_whose_consent_was_edited_is_refused(media_set, tmp_path):
    from stimuli.errors import PlanError
    from stimuli.plan import load_plan

    path, plan = consent_plan(media_set, tmp_path, "edited")
    plan["participant"]["consent"]["text"] += "\nAnd one more thing."
    path.write_text(json.dumps(plan))
    with pytest.raises(PlanError, match=r"participant.consent.text' does not match its sha256"):
        load_plan(path)


def test_export_and_psychds_carry_the_consent_and_debrief(app, client, media_set, tmp_path):
    from study_server.export.tables import export_study
    from study_server.store.extensions import db

    path, _ = consent_plan(media_set, tmp_path, "docs-export")
    name = import_study(app, path, media_set)
    _finish(client, arrive(client, name, lab="x1"))
    with app.app_context():
        export_study(db.session, name, tmp_path / "plain")
        export_study(db.session, name, tmp_path / "pds", format="psych-ds")
    for folder in (tmp_path / "plain", tmp_path / "pds"):
        consent = (folder / "documentation" / "consent.md").read_bytes()
        assert consent == CONSENT.encode() and hashlib.sha256(consent).hexdigest() == _doc("c", CONSENT)["sha256"]
        assert (folder / "documentation" / "debrief.md").read_text() == DEBRIEF


def test_one_duration_on_the_consent_page_the_post_and_the_admin_page(app, client, media_set, tmp_path):
    import re

    from sqlalchemy import select

    from stimuli.duration import expected_duration
    from study_server.recruit.service import post_settings
    from study_server.store.extensions import db
    from study_server.store.models import Study
    from study_server.study.duration import measured_median_minutes

    path, plan = consent_plan(media_set, tmp_path, "timed")
    name = import_study(app, path, media_set)
    rows = {r["stimulus_id"]: r["duration_s"] for r in json.loads((media_set / "manifest.json").read_text())["stimuli"]}
    expected = expected_duration(plan, rows)
    # by hand: 6 clips of 0.4 s + 3 s each, 2 questions x 5 s each; 2 examples; reading 3 pages + the words
    n_words = len(" ".join([plan["participant"]["intro"], plan["participant"]["instructions"], CONSENT,
                            *STATEMENTS]).split())
    assert expected.trials_s == pytest.approx(6 * (0.4 + 3 + 2 * 5), abs=0.3)
    assert expected.reading_s == pytest.approx(30 + n_words / 200 * 60)
    token = arrive(client, name, lab="t1")
    page = client.get(f"/a/{token}").get_data(as_text=True)
    shown = int(re.search(r"Expected time: about (\d+) minutes", page).group(1))
    assert shown == expected.minutes
    with app.app_context():
        study = db.session.scalar(select(Study).where(Study.name == name))
        assert post_settings(study, "https://x.example").estimated_minutes == shown
    _finish(client, token)
    with app.app_context():
        median, n = measured_median_minutes(db.session, study.id)
    assert n == 1 and median is not None and median < 1



def test_demographics_at_the_end_are_needed_to_complete(app, client, media_set, tmp_path):
    from stimuli.plan import plan_to_bytes

    path, plan = consent_plan(media_set, tmp_path, "demo-end")
    plan["demographics"] = {"when": "end", "age": "bands", "items": [
        {"id": "age", "required": True}, {"id": "country", "required": False}]}
    path.write_bytes(plan_to_bytes(plan))
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="e1")
    assert client.post(f"/api/v1/a/{token}/demographics", json={"values": {"age": "25-34"}}).status_code == 409
    state = client.get(f"/api/v1/a/{token}").get_json()
    assert state["demographics"] == {"when": "end", "done": False, "required": True}
    page = client.get(f"/a/{token}").get_data(as_text=True)
    assert "65 or older" in page and "Prefer not to say" in page and 'id="demo-country"' in page
    client.post(f"/api/v1/a/{token}/start", json={"agree": [0, 1]})
    for item in state["items"]:
        watch(client, item)
        client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"{token[:8]}-{item['position']}", "position": item["position"],
            "values": valid_values(state["questions"]), "rt_ms": 900, "played_fraction": 1.0})
    r = client.post(f"/api/v1/a/{token}/complete")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "demographics_missing"
    for bad in ({"age": "30"}, {"age": "25-34", "shoe_size": "44"}, {"country": "Peru"}, {"age": None}):
        r = client.post(f"/api/v1/a/{token}/demographics", json={"values": bad})
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "demographics_invalid", bad
    r = client.post(f"/api/v1/a/{token}/demographics", json={"values": {"age": "prefer_not", "country": " Peru  "}})
    assert r.get_json() == {"saved": True, "values": {"age": "prefer_not", "country": "Peru"}}
    # a retry (a lost reply) keeps the first answers
    again = client.post(f"/api/v1/a/{token}/demographics", json={"values": {"age": "18-24"}})
    assert again.get_json()["values"] == {"age": "prefer_not", "country": "Peru"}
    assert client.post(f"/api/v1/a/{token}/complete").status_code == 200
