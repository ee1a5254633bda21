"""The participant reads the plan's participant text, never the researcher's notes, and the server refuses to
import a plan whose participant text names the design (issue 15)."""

from __future__ import annotations

import json

import pytest

from studykit import TASK2, arrive, import_study, make_plan

NOTE = "RESEARCHER NOTE: consistency repeats and mismatched pairs"


def _plan(media_set, tmp_path, name, edit=None):
    from stimuli.plan import plan_to_bytes

    path = make_plan(media_set, TASK2, name=name, out=tmp_path / f"{name}.json")
    plan = json.loads(path.read_text())
    plan["study"]["description"] = NOTE
    if edit:
        edit(plan)
    path.write_bytes(plan_to_bytes(plan))
    return path, plan


def test_participants_read_the_participant_text_and_never_the_note(app, client, media_set, tmp_path):
    from sqlalchemy import select

    from study_server.store.extensions import db
    from study_server.store.models import Study
    from study_server.recruit.service import post_settings

    path, plan = _plan(media_set, tmp_path, "texts")
    name = import_study(app, path, media_set)
    part = plan["participant"]
    seen = []
    ad = client.get(f"/s/{name}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H")
    seen.append(ad.get_data(as_text=True))
    assert part["title"] in seen[-1] and part["intro"] in seen[-1]
    info = client.get(f"/api/v1/studies/{name}").get_json()
    assert info["title"] == part["title"] and "task" not in info
    token = arrive(client, name, lab="t1")
    page = client.get(f"/a/{token}").get_data(as_text=True)
    assert part["title"] in page and part["intro"] in page and part["instructions"] in page
    seen.append(page)
    state = client.get(f"/api/v1/a/{token}").get_json()
    assert state["study"] == {k: part[k] for k in ("title", "intro", "instructions")}
    seen.append(json.dumps(state))
    with app.app_context():
        study = db.session.scalar(select(Study).where(Study.name == name))
        post = post_settings(study, "https://study.example.org")
        assert study.title == plan["study"]["title"]  # the admin pages keep the researcher's title
    assert (post.title, post.description) == (part["title"], part["intro"])
    seen.append(json.dumps([post.title, post.description]))
    for text in seen:
        assert NOTE not in text and "av-mismatch" not in text and plan["study"]["title"] not in text


def test_import_refuses_participant_text_that_names_the_design(app, media_set, tmp_path):
    from study_server.core.errors import StudyImportError

    def edit(plan):
        plan["participant"]["instructions"] += " Two of the videos are repeated."
    path, _ = _plan(media_set, tmp_path, "leaky", edit)
    with pytest.raises(StudyImportError, match=r"key 'participant.instructions': the word 'repeated'"):
        import_study(app, path, media_set)

    def source_label(plan):
        plan["questions"][0]["options"][0]["label"] = "Anger (OURS)"
    path, _ = _plan(media_set, tmp_path, "leaky2", source_label)
    with pytest.raises(StudyImportError, match=r"key 'questions\[0\].options\[0\].label': the word 'OURS'"):
        import_study(app, path, media_set)


def test_a_plan_from_before_the_participant_table_shows_title_and_instructions(app, client, media_set, tmp_path):
    def old_style(plan):
        part = plan.pop("participant")
        plan["study"]["instructions"] = part["instructions"]
        plan["study"]["title"] = "An older plan"  # shown to participants then, so linted
    path, plan = _plan(media_set, tmp_path, "old-style", old_style)
    name = import_study(app, path, media_set)
    token = arrive(client, name, lab="o1")
    state = client.get(f"/api/v1/a/{token}").get_json()
    assert state["study"] == {"title": plan["study"]["title"], "intro": "",
                              "instructions": plan["study"]["instructions"]}
    assert NOTE not in client.get(f"/a/{token}").get_data(as_text=True)
