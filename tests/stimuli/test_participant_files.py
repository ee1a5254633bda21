"""[participant] consent / debrief files, language and video width (issue 28), and the disclosure lint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from stimuli_factories import task2_rows

from stimuli.errors import PlanError, SpecError
from stimuli.manifest import build_manifest
from stimuli.plan import compile_plan, disclosure_warnings, participant_text_problems, plan_to_bytes, validate_plan
from stimuli.spec import load_spec, resolve_spec

CONSENT = "# Consent\n\nYou may stop at any time. Approved by EC-2026-17.\n"
DEBRIEF = "# Debrief\n\nSome videos were shown twice, to check consistency.\n"  # a debrief may tell the design


def _spec_dir(tmp_path: Path, extra: str, files: dict[str, str] | None = None) -> Path:
    _, raw = resolve_spec("paper-task2")
    text = raw.decode().replace("[participant]\n", "[participant]\n" + extra + "\n", 1)
    (tmp_path / "study.toml").write_text(text)
    for name, body in (files or {}).items():
        (tmp_path / name).write_text(body)
    return tmp_path / "study.toml"


def _manifest(backend: str | None):
    rows = task2_rows()
    if backend:
        rows = [{**r, "provenance": {"backend": backend}} for r in rows]
    return build_manifest("/nonexistent/t2", rows, name="t2")


def test_consent_and_debrief_travel_into_the_plan_with_their_sha256(tmp_path):
    spec = load_spec(_spec_dir(tmp_path, 'consent = "consent.md"\nconsent_statements = ["I am 18 or older."]\n'
                                          'debrief = "debrief.md"\nlanguage = "de"\nvideo_width = 256',
                               {"consent.md": CONSENT, "debrief.md": DEBRIEF}))
    plan = compile_plan(spec, _manifest(None), seed=3)
    part = plan["participant"]
    assert part["consent"] == {"file": "consent.md", "text": CONSENT, "statements": ["I am 18 or older."],
                               "sha256": hashlib.sha256(CONSENT.encode()).hexdigest()}
    assert part["debrief"]["text"] == DEBRIEF and part["language"] == "de" and part["video_width"] == 256
    validate_plan(plan)
    # the debrief may tell the design (it is read after the last answer); the consent may not
    assert participant_text_problems(plan) == []
    plan["participant"]["consent"]["text"] = "Some videos are repeated."
    plan["participant"]["consent"]["sha256"] = hashlib.sha256(b"Some videos are repeated.").hexdigest()
    assert "participant.consent" in participant_text_problems(plan)[0]


def test_plans_without_the_new_keys_keep_their_bytes(tmp_path):
    spec = load_spec("paper-task2")
    plan = compile_plan(spec, _manifest(None), seed=3)
    assert set(plan["participant"]) == {"title", "intro", "instructions", "allow_words"}
    b = plan_to_bytes(plan)
    assert b"consent" not in b and b"language" not in b


@pytest.mark.parametrize("extra, files, message", [
    ('consent = "missing.md"', {}, r"key 'participant.consent': cannot read .*missing.md"),
    ('consent = "../secret.md"', {}, r"must be a .md \(Markdown\) file in the spec's folder"),
    ('consent = "consent.html"', {}, r"must be a .md"),
    ('consent = "consent.md"', {"consent.md": "  \n"}, r"is empty"),
    ('consent_statements = ["I agree"]', {}, r"needs consent = \"consent.md\""),
    ('language = "fr"', {}, r"'fr' has no message catalogue; use one of en, de, es"),
    ('video_width = 10', {}, r"must be between 64 and 1920"),
])
def test_bad_participant_files_are_named(tmp_path, extra, files, message):
    with pytest.raises(SpecError, match=message):
        load_spec(_spec_dir(tmp_path, extra, files))


def test_a_consent_file_needs_the_spec_folder():
    from stimuli.spec import parse_spec

    _, raw = resolve_spec("paper-task2")
    text = raw.decode().replace("[participant]\n", '[participant]\nconsent = "consent.md"\n', 1)
    with pytest.raises(SpecError, match="load the spec from its file"):
        parse_spec(text)


def test_plan_validation_of_the_new_keys(tmp_path):
    spec = load_spec(_spec_dir(tmp_path, 'consent = "consent.md"', {"consent.md": CONSENT}))
    plan = compile_plan(spec, _manifest(None), seed=3)
    bad = {**plan, "participant": {**plan["participant"], "language": "xx"}}
    with pytest.raises(PlanError, match="participant.language"):
        validate_plan(bad)
    bad = {**plan, "participant": {**plan["participant"], "surprise": 1}}
    with pytest.raises(PlanError, match="participant.surprise"):
        validate_plan(bad)


def test_disclosure_that_contradicts_the_set_is_warned_about():
    synthetic, recorded = _manifest("warp"), _manifest("recording")
    plan = compile_plan(load_spec("paper-task2"), synthetic, seed=3)
    # the paper's text says its examples are "real recordings": true of the paper's set, not of a warp-only one
    assert "'recordings'" in disclosure_warnings(plan, synthetic)[0]
    plan["participant"]["instructions"] = "All of the videos were rendered by artificial intelligence (AI)."
    assert disclosure_warnings(plan, synthetic) == []
    warnings = disclosure_warnings(plan, recorded)
    assert warnings and "participant.instructions" in warnings[0] and "every clip of the set is a recording" in warnings[0]
    plan["participant"]["instructions"] = "All videos are recordings of real people."
    assert "none is a recording" in disclosure_warnings(plan, synthetic)[0]
    assert disclosure_warnings(plan, recorded) == []
    assert disclosure_warnings(plan, _manifest(None)) == []  # a set that does not say: nothing to compare
