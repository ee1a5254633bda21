"""What a participant may learn from the plan (issue 15): the participant's text is apart from the researcher's
notes and linted; a labelled example is never a trial's clip; the order may be drawn per participant."""

from __future__ import annotations

from collections import Counter

import pytest
from stimuli_factories import fake_row, task1_rows, task2_rows

from stimuli.designs import (AvMismatchDesign, build_av_mismatch, check_participant_order,
                             participant_order)
from stimuli.emotions import EMOTIONS
from stimuli.errors import DesignError, PlanError, SpecError
from stimuli.manifest import build_manifest
from stimuli.plan import DESIGN_WORDS, compile_plan, participant_text_problems, validate_plan
from stimuli.spec import builtin_specs, load_spec, parse_spec, resolve_spec


@pytest.fixture(scope="module")
def sets():
    return (build_manifest("/nonexistent/t1", task1_rows(), name="t1"),
            build_manifest("/nonexistent/t2", task2_rows(), name="t2"))


def _paper2(text_edit: tuple[str, str] | None = None, extra: str = "") -> str:
    _, raw = resolve_spec("paper-task2")
    text = raw.decode()
    if text_edit:
        assert text_edit[0] in text
        text = text.replace(*text_edit, 1)
    return text + extra


# ------------------------------------------------------------------------------ participant text

def test_researcher_notes_and_participant_text_are_apart(sets):
    _, m2 = sets
    spec = load_spec("paper-task2")
    assert "consistency repeats" in spec.study.description  # the researcher's note names the design ...
    plan = compile_plan(spec, m2, seed=1)
    assert plan["participant"] == {"title": spec.participant.title, "intro": spec.participant.intro,
                                   "instructions": spec.participant.instructions, "allow_words": []}
    assert "instructions" not in plan["study"]
    assert plan["participant"]["title"] != plan["study"]["title"]
    # ... and nothing a participant reads does
    assert participant_text_problems(plan, m2) == []


def test_every_shipped_spec_passes_the_lint(sets):
    m1, m2 = sets
    for name in builtin_specs():
        spec = load_spec(name)
        for field in ("title", "intro", "instructions"):
            text = getattr(spec.participant, field)
            for src in ("GT", "BL", "OURS", "FULL", "LIPS", "STILL", "WARP"):
                assert src.lower() not in text.lower().split(), (name, field, src)
    assert compile_plan(load_spec("paper-task1"), m1, seed=2)


def test_participant_table_defaults_to_the_study_title():
    spec = parse_spec(_paper2(("[participant]\ntitle = \"Emotions of AI-rendered talking faces\"\n",
                               "[participant]\n")), where="p.toml")
    assert spec.participant.title == spec.study.title


def test_instructions_under_study_are_refused_with_the_fix():
    text = _paper2(("[study]\n", "[study]\ninstructions = \"Watch.\"\n"))
    with pytest.raises(SpecError, match=r"key 'study.instructions'.*\[participant\] instructions"):
        parse_spec(text, where="p.toml")


@pytest.mark.parametrize("field, old, new, word", [
    ("participant.instructions", "You will watch 14 short videos", "You will watch 14 short videos, two of them repeated",
     "repeated"),
    ("participant.instructions", "You will watch 14 short videos", "Some videos are shown twice. You will watch 14 videos",
     "twice"),
    ("participant.intro", "tell us which emotions you perceive", "tell us whether face and voice MATCH", "MATCH"),
    ("participant.intro", "tell us which emotions you perceive", "judge videos with mismatched emotions",
     "mismatched"),
    ("participant.title", 'title = "Emotions of AI-rendered talking faces"', 'title = "Emotion pairs"', "pairs"),
    ("participant.instructions", "You will watch 14 short videos", "We check your consistency. You will watch 14 videos",
     "consistency"),
    ("participant.instructions", "You will watch 14 short videos", "Each condition has 7 videos. You will watch",
     "condition"),
    ("participant.instructions", "You will watch 14 short videos", "Videos by OURS and GT. You will watch", "OURS"),
    ("participant.instructions", "You will watch 14 short videos", "The visual emotion is set. You will watch",
     "visual emotion"),
    ("questions[0].prompt", "Which is the primary emotion expressed by the person?",
     "Which emotion does the face show, if the voice is incongruent?", "incongruent"),
    ("questions[1].options[6].label", '{ value = "none", label = "None" }',
     '{ value = "none", label = "Same as the baseline" }', "baseline"),
    ("questions[0].id", 'id = "primary"', 'id = "ours"', "ours"),
    ("study.name", 'name = "paper-task2"', 'name = "mismatch-pilot"', "mismatch"),
])
def test_lint_refuses_with_the_field_and_the_word(sets, field, old, new, word):
    _, m2 = sets
    text = _paper2((old, new))
    if field == "questions[0].id":
        text = text.replace('question = "primary"', 'question = "ours"').replace('secondary_of = "primary"',
                                                                                  'secondary_of = "ours"')
    spec = parse_spec(text, where="p.toml")
    with pytest.raises(SpecError) as exc:
        compile_plan(spec, m2, seed=1)
    msg = str(exc.value)
    assert msg.startswith("p.toml: key '"), msg
    assert f"key '{field}': the word {word!r}" in msg, msg


def test_lint_reads_the_sets_source_labels_and_allow_words(sets):
    rows = task2_rows()
    for r in rows:
        if r["source"] == "GT":
            r["source"] = "STILL"
    m = build_manifest("/nonexistent/s", rows, name="s")
    text = _paper2(("You will watch 14 short videos", "Please sit still. You will watch 14 short videos"))
    text = text.replace('sources = ["GT"]', 'sources = ["STILL"]')
    with pytest.raises(SpecError, match=r"key 'participant.instructions': the word 'still'.*allow_words"):
        compile_plan(parse_spec(text, where="p.toml"), m, seed=1)
    allowed = text.replace("[participant]\n", '[participant]\nallow_words = ["still"]\n')
    plan = compile_plan(parse_spec(allowed, where="p.toml"), m, seed=1)
    assert plan["participant"]["allow_words"] == ["still"]
    # a source the set has but the spec never names is refused too (the manifest is read)
    rows2 = task2_rows()
    rows2.append(fake_row("extra1", "PILOTX", "anger", "anger"))
    m2 = build_manifest("/nonexistent/s2", rows2, name="s2")
    spec = parse_spec(_paper2(("You will watch 14", "PILOTX videos. You will watch 14")), where="p.toml")
    with pytest.raises(SpecError, match="the word 'PILOTX'"):
        compile_plan(spec, m2, seed=1)


def test_design_words_are_whole_words():
    plan = {"study": {"name": "s", "title": "t"}, "design": {},
            "participant": {"title": "Pairwise? no: repeatedly? no", "intro": "conditional, sourced, matchbox",
                            "instructions": "a batchelor", "allow_words": []},
            "questions": []}
    assert participant_text_problems(plan) == []
    assert len(DESIGN_WORDS) >= 6


def test_validate_plan_checks_the_participant_table(sets):
    _, m2 = sets
    plan = compile_plan(load_spec("paper-task2"), m2, seed=1)
    bad = {**plan, "participant": {**plan["participant"], "intro": 3}}
    with pytest.raises(PlanError, match="participant.intro"):
        validate_plan(bad)
    old = {k: v for k, v in plan.items() if k != "participant"}
    with pytest.raises(PlanError, match="study.instructions"):
        validate_plan(old)  # a plan without the table must be an old one: with study.instructions
    validate_plan({**old, "study": {**old["study"], "instructions": "Watch."}})


# ----------------------------------------------------------------------------- example reuse

def test_plan_refuses_an_example_that_is_a_trials_clip(sets):
    """Task 2 with GT examples drawn from the OURS trials' own clips: refused unless allowed."""
    _, m2 = sets
    text = _paper2(('sources = ["GT"]', 'sources = ["OURS"]'))
    spec = parse_spec(text, where="p.toml")
    # 3 OURS clips per pair, 2 per pair are trials: 1 unused congruent clip per emotion, 2 needed
    with pytest.raises(DesignError, match=r"same clip as a trial.*allow_example_reuse = true"):
        compile_plan(spec, m2, seed=1)
    allowed = parse_spec(text.replace("[examples]\n", "[examples]\nallow_example_reuse = true\n"), where="p.toml")
    plan = compile_plan(allowed, m2, seed=1)
    trials = {i["stimulus_id"] for b in plan["batches"] for i in b["items"]}
    assert {e["stimulus_id"] for e in plan["examples"]} & trials
    assert plan["design"]["examples"]["allow_example_reuse"] is True


def test_same_media_file_under_another_id_counts_as_the_trial(sets):
    """An example row pointing at a trial's media bytes (same sha256) is the trial's clip."""
    rows = task2_rows(per_pair=2, gt_per_emotion=2)
    m = build_manifest("/nonexistent/x", rows, name="x")
    plan = compile_plan(load_spec("paper-task2"), m, seed=1)
    trial_ids = {i["stimulus_id"] for b in plan["batches"] for i in b["items"]}
    ours_congruent = [r for r in rows if r["source"] == "OURS" and r["visual_emotion"] == r["audio_emotion"]
                      and r["stimulus_id"] in trial_ids]
    gt = [r for r in rows if r["source"] == "GT"]
    by_emotion = {r["visual_emotion"]: r for r in ours_congruent}
    for r in gt:  # every GT clip of anger is, byte for byte, an OURS trial's file
        if r["visual_emotion"] == "anger":
            r["sha256"] = by_emotion["anger"]["sha256"]
    with pytest.raises(DesignError, match="same media file.*2 of 2 anger"):
        compile_plan(load_spec("paper-task2"), build_manifest("/nonexistent/y", rows, name="y"), seed=1)


# ---------------------------------------------------------------------------------------- order

ITEMS = [(0, None), (1, None), (2, None), (3, None), (4, None), (5, None), (6, 1), (7, 4)]


def test_participant_order_keeps_the_gap_and_is_deterministic():
    orders = {participant_order(ITEMS, 3, 7, f"tok{k}") for k in range(200)}
    assert participant_order(ITEMS, 3, 7, "tok1") == participant_order(ITEMS, 3, 7, "tok1")
    assert participant_order(ITEMS, 3, 8, "tok1") != participant_order(ITEMS, 3, 7, "tok1") or \
        participant_order(ITEMS, 3, 9, "tok1") != participant_order(ITEMS, 3, 7, "tok1")
    assert len(orders) > 150  # 200 participants, nearly as many orders
    repeat_of = dict(ITEMS)
    for order in orders:
        assert sorted(order) == list(range(8))
        at = {p: n for n, p in enumerate(order)}
        for pos, orig in repeat_of.items():
            if orig is not None:
                assert at[pos] - at[orig] >= 3  # the repeat comes at least min_gap after its original
    # every item takes every place about equally often (a uniform shuffle): first places over 200 orders
    first = Counter(o[0] for o in orders)
    assert set(first) >= {0, 2, 3, 5}


def test_compile_with_per_participant_order(sets):
    _, m2 = sets
    text = _paper2(('order = "per-batch"', 'order = "per-participant"'))
    plan = compile_plan(parse_spec(text, where="p.toml"), m2, seed=5)
    assert plan["design"]["order"] == "per-participant"
    assert any("order: per participant" in n for n in plan["notes"])
    same = compile_plan(parse_spec(text, where="p.toml"), m2, seed=5)
    assert plan == same  # the plan stays deterministic
    validate_plan(plan, manifest=m2)
    with pytest.raises(SpecError, match=r"key 'design.order'.*per-batch, per-participant"):
        parse_spec(_paper2(('order = "per-batch"', 'order = "random"')), where="p.toml")
    with pytest.raises(PlanError, match="design.order"):
        validate_plan({**plan, "design": {**plan["design"], "order": "shuffled"}})


def test_per_participant_order_refused_when_the_gap_rarely_fits():
    stim = build_manifest("/nonexistent/t2", task2_rows(), name="t2").stimuli
    d = AvMismatchDesign(repeats_per_batch=6, min_repeat_gap=8, order="per-participant")
    batches, _ = build_av_mismatch(stim, AvMismatchDesign(repeats_per_batch=6, min_repeat_gap=4), seed=1)
    check_participant_order(batches, 4, seed=1)  # fits often enough
    with pytest.raises(DesignError, match="per-participant.*min_repeat_gap"):
        check_participant_order(batches, d.min_repeat_gap, seed=1)


def test_spec_order_default_is_per_batch():
    assert load_spec("paper-task1").design.order == "per-batch"
    assert load_spec("paper-task2").design.order == "per-batch"
    assert EMOTIONS  # the module's fixtures use the six emotions
