"""The design language of factors and levels (stimuli/factors.py, issue 27)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from stimuli_factories import fake_row, task1_rows, task2_rows

from stimuli.errors import DesignError, SpecError
from stimuli.factors import design_table, format_design_table
from stimuli.manifest import build_manifest
from stimuli.plan import compile_plan, plan_to_bytes
from stimuli.spec import load_spec, parse_spec

PINNED = Path(__file__).resolve().parents[1] / "pinned"
E3 = ["anger", "happiness", "sadness"]


@pytest.fixture(scope="module")
def sets():
    return (build_manifest("/nonexistent/t1", task1_rows(), name="t1"),
            build_manifest("/nonexistent/t2", task2_rows(), name="t2"))


def _sha(x) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("name", ["paper-task1", "paper-task2"])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_paper_specs_in_the_factor_language_give_the_pinned_plans(sets, name, seed):
    """tests/pinned/paper_pins.json was made by the code before issue 27 (tests/pinned/make_pins.py). The
    specs now declare their design by factors: the batches, examples, notes and every other section are the
    same; only ``design`` (the declaration itself), ``spec_sha256`` (the spec's text changed) and the questions'
    new ``measures``/``secondary_of``/``compare`` keys differ."""
    m = sets[0] if name == "paper-task1" else sets[1]
    pin = json.loads((PINNED / "paper_pins.json").read_text())["plans"][f"{name}/seed{seed}"]["sections"]
    plan = compile_plan(load_spec(name), m, seed)
    changed = {k for k in pin if _sha(plan.get(k)) != pin[k]}
    assert changed == {"design", "questions", "spec_sha256"}
    bare = [{k: v for k, v in q.items() if k not in ("measures", "secondary_of", "compare")}
            for q in plan["questions"]]
    assert _sha(bare) == pin["questions"]
    assert set(plan) == set(pin)


@pytest.mark.parametrize("name", ["paper-task1", "paper-task2"])
def test_the_old_spec_text_still_gives_byte_identical_plans(sets, name):
    """The paper specs as they were written before issue 27 (legacy [design] keys) compile to the very bytes."""
    m = sets[0] if name == "paper-task1" else sets[1]
    text = (PINNED / f"{name}-before-i27.toml").read_bytes()
    plan = compile_plan(parse_spec(text, where=name), m, 42)
    assert plan_to_bytes(plan) == (PINNED / f"{name}-seed42.plan.json").read_bytes()


def three_emotion_rows(*, drop=()):
    """OURS clips of 3 visual x 3 audio emotions x 2 identities x 2 sentences, plus congruent GT examples."""
    rows, n = [], 0
    for v in E3:
        for a in E3:
            for ident in ("1001", "1002"):
                for sent in ("DFA", "IEO"):
                    n += 1
                    if (v, a) not in drop:
                        rows.append(fake_row(f"x{n:03d}", "OURS", v, a, identity=ident, sentence=sent))
    for e in E3:
        for k in range(2):
            n += 1
            rows.append(fake_row(f"x{n:03d}", "GT", e, e, identity="2001", sentence=f"EX{k}"))
    return rows


THREE = """
[study]
name = "face-voice-3"
task = "factorial"
[participant]
title = "Emotions of talking faces"
[design]
batches = 3
clips_per_cell = 1
counterbalance = "latin-square"
repeats_per_batch = 2
order = "per-participant"
[design.factors]
visual_emotion = { levels = ["anger", "happiness", "sadness"] }
audio_emotion = { levels = ["anger", "happiness", "sadness"] }
identity = { levels = "all" }
sentence = { levels = "all" }
source = { levels = ["OURS"], crossed = false }
[examples]
per_emotion = 1
sources = ["GT"]
[[questions]]
id = "felt"
type = "single"
prompt = "Which emotion does the person express?"
options = "design-emotions"
measures = "perceived_emotion"
[consistency]
max_inconsistent = 1
rules = [{ question = "felt", kind = "equal" }]
"""


def test_three_emotion_face_voice_design():
    m = build_manifest("/nonexistent/x", three_emotion_rows(), name="x")
    spec = parse_spec(THREE, where="three.toml")
    assert [o.value for o in spec.questions[0].options] == E3
    plan = compile_plan(spec, m, 5)
    assert plan_to_bytes(plan) == plan_to_bytes(compile_plan(spec, m, 5))
    assert [len(b["items"]) for b in plan["batches"]] == [14, 14, 14]
    cells = Counter()
    for b in plan["batches"]:
        orig = [m[i["stimulus_id"]] for i in b["items"] if i["repeat_of"] is None]
        assert sum(i["repeat_of"] is not None for i in b["items"]) == 2
        assert Counter(s.visual_emotion for s in orig) == {e: 4 for e in E3}
        assert Counter(s.audio_emotion for s in orig) == {e: 4 for e in E3}
        cells.update((s.visual_emotion, s.audio_emotion, s.identity, s.sentence) for s in orig)
    assert len(cells) == 36 and set(cells.values()) == {1}  # every cell once over the study
    assert [e["emotion"] for e in plan["examples"]] == E3
    table = design_table(plan, m)
    assert table["factors"] == ["visual_emotion", "audio_emotion", "identity", "sentence"]
    assert len(table["cells"]) == 36 and all(table["balanced"].values())
    text = format_design_table(table)
    assert "36 cells over 3 batch(es)" in text and "visual_emotion: balanced (anger 4..4" in text


def test_impossible_design_names_the_missing_cells_and_what_would_fill_it():
    m = build_manifest("/nonexistent/x", three_emotion_rows(drop={("anger", "sadness")}), name="x")
    with pytest.raises(DesignError) as exc:
        compile_plan(parse_spec(THREE, where="three.toml"), m, 5)
    msg = str(exc.value)
    assert "missing 4 of 36 cells" in msg
    assert "visual_emotion anger, audio_emotion sadness, identity 1001, sentence DFA: have 0, need 1" in msg
    # Two emotions would be whole again; checked against the set, not guessed.
    assert "What would fill it: levels of visual_emotion and audio_emotion = ['happiness', 'sadness']" in msg


def test_too_many_clips_per_cell_suggests_fewer_and_uncrossing():
    m = build_manifest("/nonexistent/x", three_emotion_rows(), name="x")
    text = THREE.replace("clips_per_cell = 1", "clips_per_cell = 2")
    with pytest.raises(DesignError) as exc:
        compile_plan(parse_spec(text, where="three.toml"), m, 5)
    msg = str(exc.value)
    assert "clips_per_cell = 1 (every cell has at least 1)" in msg
    assert "identity = { ..., crossed = false }" in msg and "sentence = { ..., crossed = false }" in msg


def test_the_paper_design_on_a_three_emotion_set_says_what_would_fill_it():
    """The issue's first refusal: paper-task2 on a set of three emotions names the emotions that would work."""
    rows = [r for r in task2_rows() if r["visual_emotion"] in E3 and r["audio_emotion"] in E3]
    m = build_manifest("/nonexistent/x", rows, name="x")
    with pytest.raises(DesignError) as exc:
        compile_plan(load_spec("paper-task2"), m, 1)
    msg = str(exc.value)
    assert "missing 27 of 36 cells" in msg
    assert "levels of visual_emotion and audio_emotion = ['anger', 'happiness', 'sadness']" in msg


BETWEEN = """
[study]
name = "real-2x2"
task = "factorial"
[participant]
title = "Talking faces"
[design]
batches = 4
clips_per_cell = 2
counterbalance = "complete"
repeats_per_batch = 1
[design.factors]
source = { levels = ["A", "B"], within = false }
emotion = { levels = ["anger", "happiness"] }
[examples]
per_emotion = 0
[[questions]]
id = "real"
type = "scale"
prompt = "How real does the video look?"
measures = "realness"
options = [{ value = "yes", label = "Real", score = 2 }, { value = "no", label = "Not real", score = 1 }]
[consistency]
max_inconsistent = 1
"""


def two_by_two_rows():
    rows, n = [], 0
    for src in ("A", "B"):
        for emo in ("anger", "happiness"):
            for k in range(4):
                n += 1
                rows.append(fake_row(f"r{n:03d}", src, emo, emo, identity=f"{1001 + k}"))
    return rows


def test_between_factor_gives_each_batch_one_level():
    m = build_manifest("/nonexistent/r", two_by_two_rows(), name="r")
    plan = compile_plan(parse_spec(BETWEEN, where="b.toml"), m, 3)
    got = []
    for b in plan["batches"]:
        orig = [m[i["stimulus_id"]] for i in b["items"] if i["repeat_of"] is None]
        assert len({s.source for s in orig}) == 1  # between participants
        assert Counter(s.visual_emotion for s in orig) == {"anger": 1, "happiness": 1}  # "complete": each cell once
        got.append(orig[0].source)
    assert got == ["A", "B", "A", "B"]
    with pytest.raises(DesignError, match="multiple of 2"):
        compile_plan(parse_spec(BETWEEN.replace("batches = 4", "batches = 3"), where="b.toml"), m, 3)


@pytest.mark.parametrize("edit, needle", [
    (("visual_emotion = {", "colour = {"), "'colour' is not a stimulus attribute"),
    (('levels = ["anger", "happiness", "sadness"] }\naudio', 'levels = ["anger", "joyful"] }\naudio'),
     "'joyful' is not an emotion"),
    (('counterbalance = "latin-square"', 'counterbalance = "balanced"'), "'balanced' is not one of"),
    (('measures = "perceived_emotion"', 'measures = "realness"'), "needs a question of type scale"),
    (('task = "factorial"\n', 'task = "factorial"\n'), None),
])
def test_spec_errors_name_the_key(edit, needle):
    text = THREE.replace(*edit)
    if needle is None:
        parse_spec(text)
        return
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="s.toml")
    assert needle in str(exc.value) and str(exc.value).startswith("s.toml: key '")


def test_factorial_task_needs_factors():
    text = THREE[:THREE.index("[design]")] + "[design]\nbatches = 1\n" + THREE[THREE.index("[examples]"):]
    with pytest.raises(SpecError, match="design.factors.*missing"):
        parse_spec(text, where="s.toml")


def test_plan_preview_prints_the_design_table(tmp_path, write_set):
    from emostudy.cli import main

    set_dir = write_set(three_emotion_rows(), "x")
    spec = tmp_path / "three.toml"
    spec.write_text(THREE)
    r = CliRunner().invoke(main, ["plan", "--spec", str(spec), "--set", str(set_dir), "--seed", "5", "--preview"])
    assert r.exit_code == 0, r.output
    assert "36 cells over 3 batch(es)" in r.output and "preview only: no plan written" in r.output
    assert not list(tmp_path.glob("*.json"))
    r = CliRunner().invoke(main, ["plan", "--spec", str(spec), "--set", str(set_dir), "--seed", "5"])
    assert r.exit_code != 0 and "--preview" in r.output


def test_the_documented_design_of_ones_own_compiles():
    """docs/running-a-study.md's spec from scratch, compiled on a set of its shape (source WARP)."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "running-a-study.md").read_text()
    text = re.search(r"```toml\n(quota_per_batch = 10\n.*?)```", doc, re.S).group(1)
    rows = [dict(r, source="WARP") if r["source"] == "OURS" else r for r in three_emotion_rows()]
    m = build_manifest("/nonexistent/x", rows, name="x")
    plan = compile_plan(parse_spec(text, where="face-voice-3.toml"), m, 11)
    table = format_design_table(design_table(plan, m))
    assert "36 cells over 3 batch(es)" in table
    for line in ("visual_emotion: balanced (anger 4..4, happiness 4..4, sadness 4..4)",
                 "identity: balanced (1001 6..6, 1002 6..6)", "items per batch"):
        assert line in table and line in doc
