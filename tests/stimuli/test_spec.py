from __future__ import annotations

import re

import pytest

from stimuli.designs import AvMismatchDesign, ExamplesDesign
from stimuli.factors import Factor, FactorDesign
from stimuli.emotions import EMOTIONS
from stimuli.errors import SpecError
from stimuli.spec import builtin_specs, load_spec, parse_spec, resolve_spec


def test_builtin_specs_listed():
    assert {"paper-task1", "paper-task2"} <= set(builtin_specs())


def test_paper_task1_is_the_paper():
    s = load_spec("paper-task1")
    assert s.study.task == "emotion-realness"
    # Declared by factors since issue 27 (the same batches: tests/stimuli/test_factors.py pins them).
    assert s.design == FactorDesign(
        factors=(Factor("source", ("GT", "BL", "OURS")), Factor("emotion", EMOTIONS)), batches=6, clips_per_cell=5,
        counterbalance="rotation", counterbalance_factors=("source", "emotion"), repeats_per_batch=1,
        repeats_per="source", min_repeat_gap=2, mix_size_variants=True)
    assert s.examples == ExamplesDesign(per_emotion=2, sources=("GT",), size_variants=("128x128", "96x128"))
    assert [q.id for q in s.questions] == ["emotion", "realness", "aspects"]
    emo, real, asp = s.questions
    assert emo.type == "single" and [o.value for o in emo.options] == list(EMOTIONS)
    assert emo.prompt == "Which emotion is primarily expressed by the person?"
    assert real.type == "scale" and real.prompt == "How realistic is the video?"
    assert [(o.label, o.score) for o in real.options] == [
        ("Definitely real", 5), ("Somewhat real", 4), ("Neutral", 3), ("Somewhat unreal", 2), ("Definitely unreal", 1)]
    assert asp.type == "multi" and asp.prompt == "Which aspect(s) can be improved to make the video more real?"
    assert [(o.label, o.exclusive) for o in asp.options] == [
        ("None", True), ("Image quality", False), ("Lip synchronization", False), ("Head movement", False),
        ("Other", False)]
    assert asp.options[0].value == "none"
    assert s.consistency.max_inconsistent == 5
    assert [(r.question, r.kind, r.tolerance) for r in s.consistency.rules] == [
        ("emotion", "equal", 0), ("realness", "max_abs_diff", 1), ("aspects", "max_set_diff", 1)]
    assert s.quota_per_batch == 10
    b = s.payment.bonus
    assert (b.rule, b.question, b.truth) == ("per_correct", "emotion", "target") and b.amount_usd > 0
    assert s.payment.reward_usd > 0
    assert "recordings of real people" in s.participant.instructions and "artificial intelligence" in s.participant.instructions


def test_paper_task2_is_the_paper():
    s = load_spec("paper-task2")
    assert s.study.task == "av-mismatch"
    assert s.design == FactorDesign(
        factors=(Factor("visual_emotion", EMOTIONS), Factor("audio_emotion", EMOTIONS),
                 Factor("source", ("OURS",), crossed=False)), batches=6, clips_per_cell=2,
        counterbalance="latin-square", counterbalance_factors=("visual_emotion", "audio_emotion"),
        repeats_per_batch=2, min_repeat_gap=2)
    assert s.examples == ExamplesDesign(per_emotion=2, sources=("GT",), size_variants=("128x128",))
    assert [q.id for q in s.questions] == ["primary", "secondary"]
    p, sec = s.questions
    assert p.prompt == "Which is the primary emotion expressed by the person?"
    assert sec.prompt == "Which is the secondary emotion expressed by the person?"
    assert [o.value for o in p.options] == list(EMOTIONS)
    assert [o.value for o in sec.options] == [*EMOTIONS, "none"] and sec.options[-1].label == "None"
    assert s.consistency.max_inconsistent == 2
    assert [(r.question, r.kind) for r in s.consistency.rules] == [("primary", "equal"), ("secondary", "equal")]
    assert s.quota_per_batch == 10
    assert s.study.exclude_studies == ("paper-task1",)
    assert "AI" in s.participant.instructions


MINIMAL = """
[study]
name = "mini"
task = "av-mismatch"
[[questions]]
id = "primary"
type = "single"
prompt = "Which?"
options = "emotions"
[consistency]
max_inconsistent = 1
"""


def test_minimal_spec_defaults_and_shorthand():
    s = parse_spec(MINIMAL, where="mini.toml")
    assert s.design == AvMismatchDesign() and s.quota_per_batch == 10
    assert [o.label for o in s.questions[0].options] == [e.capitalize() for e in EMOTIONS]
    assert s.payment.bonus.rule == "none" and s.audio_check is False
    assert re.fullmatch(r"[0-9a-f]{64}", s.sha256)


@pytest.mark.parametrize("edit, key, needle", [
    (("[study]\nname", "[study]\nbogus = 1\nname"), "study.bogus", "unknown key"),
    (('task = "av-mismatch"', 'task = "oops"'), "study.task", "not a known design"),
    (('type = "single"', 'type = "radio"'), "questions[0].type", "'radio' is not one of"),
    (('options = "emotions"', 'options = "colours"'), "questions[0].options", "only shorthands"),
    (('options = "emotions"', 'options = [{value = "a", label = "A"}]'), "questions[0].options", "at least two"),
    (('options = "emotions"', 'options = [{value = "A b", label = "A"}, {value = "b", label = "B"}]'),
     "questions[0].options[0].value", "lowercase"),
    (('type = "single"', 'type = "scale"'), "questions[0].options[0].score", "needs a score"),
    (("max_inconsistent = 1", "max_inconsistent = -1"), "consistency.max_inconsistent", ">= 0"),
    (("max_inconsistent = 1", 'max_inconsistent = "two"'), "consistency.max_inconsistent", "must be an integer"),
    (("max_inconsistent = 1", 'max_inconsistent = 1\nrules = [{question = "secondary", kind = "equal"}]'),
     "consistency.rules[0].question", "not a question id"),
    (("max_inconsistent = 1", 'max_inconsistent = 1\nrules = [{question = "primary", kind = "max_set_diff"}]'),
     "consistency.rules[0].kind", "not 'multi'"),
    (("max_inconsistent = 1", 'max_inconsistent = 1\nrules = [{question = "primary", kind = "max_abs_diff"}]'),
     "consistency.rules[0].kind", "without a score"),
    (('[study]', 'quota_per_batch = 0\n[study]'), "quota_per_batch", ">= 1"),
    (('[study]', '[design]\nbatches = "six"\n[study]'), "design.batches", "must be an integer"),
    (('[study]', '[design]\nper_source = 5\n[study]'), "design.per_source", "unknown key"),
    (('[study]', '[payment.bonus]\nrule = "per_correct"\nquestion = "nope"\namount_usd = 0.1\ntruth = "either"\n[study]'),
     "payment.bonus.question", "not a question id"),
    (('[study]', '[payment.bonus]\nrule = "per_correct"\nquestion = "primary"\namount_usd = 0.1\ntruth = "x"\n[study]'),
     "payment.bonus.truth", "not one of"),
    (('[study]', '[payment]\nreward_usd = -1\n[study]'), "payment.reward_usd", ">= 0"),
    (('[consistency]', '[examples]\nper_emotion = 1\nsources = []\n[consistency]'), "examples.sources", "at least one"),
])
def test_errors_name_the_key(edit, key, needle):
    old, new = edit
    assert old in MINIMAL
    text = MINIMAL.replace(old, new, 1)
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="mini.toml")
    msg = str(exc.value)
    assert msg.startswith(f"mini.toml: key '{key}'"), msg
    assert needle in msg


def test_task1_design_keys_are_checked():
    text = MINIMAL.replace('task = "av-mismatch"', 'task = "emotion-realness"').replace(
        "[study]", '[design]\nsources = ["GT", "GT"]\n[study]')
    with pytest.raises(SpecError, match="key 'design.sources'.*twice"):
        parse_spec(text, where="t.toml")


def test_not_toml_and_unknown_spec(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        parse_spec("[study\nname=", where="x.toml")
    with pytest.raises(SpecError, match="not a ready-made spec .*paper-task1"):
        resolve_spec("paper-task9")
    f = tmp_path / "s.toml"
    f.write_text(MINIMAL)
    assert load_spec(f).source == str(f)
