"""The `norming` design kind (stimuli/norming.py) and the ready-made spec stimuli/specs/norming.toml.

The balance is checked by plain counting over the compiled plan, not by the design's own bookkeeping."""

from __future__ import annotations

from collections import Counter

import pytest

from stimuli_factories import fake_row
from stimuli.errors import DesignError, SpecError
from stimuli.plan import compile_plan, plan_to_bytes, validate_plan
from stimuli.spec import builtin_specs, parse_spec, resolve_spec


def demo_like_rows(sources=("FULL", "LIPS"), identities=("f1", "f2"), emotions=("anger", "happiness", "sadness"),
                   sentences=("IEO", "TIE", "DFA")):
    return [fake_row(f"{src}-{i}-{e}-{s}", src, e, e, identity=i, sentence=s)
            for src in sources for i in identities for e in emotions for s in sentences]


def norming_spec(**design: object):
    where, raw = resolve_spec("norming")
    text = raw.decode()
    for key, value in design.items():
        line = next(x for x in text.splitlines() if x.startswith(f"{key} = "))
        text = text.replace(line, f"{key} = {value}")
    return parse_spec(text, where=where)


def test_the_ready_made_spec_is_listed_and_parses():
    assert "norming" in builtin_specs()
    spec = norming_spec()
    assert spec.study.task == "norming" and spec.design.kind == "norming"
    assert [q.id for q in spec.questions] == ["emotion", "intensity", "genuineness", "valence", "arousal"]
    scores = {q.id: [o.score for o in q.options] for q in spec.questions if q.type == "scale"}
    assert scores["intensity"] == scores["genuineness"] == list(range(1, 8))
    assert scores["valence"] == scores["arousal"] == list(range(1, 10))
    assert spec.payment.bonus.rule == "none"


@pytest.mark.parametrize("copies,max_per_cell,per_batch", [(1, 1, 6), (2, 1, 6), (1, 2, 12), (3, 3, 18)])
def test_every_clip_rated_in_copies_batches_and_cells_capped(make_manifest, copies, max_per_cell, per_batch):
    m = make_manifest(demo_like_rows())
    spec = norming_spec(copies=copies, max_per_cell=max_per_cell, clips_per_batch=per_batch)
    plan = compile_plan(spec, m, 7)
    validate_plan(plan, manifest=m)
    shown: Counter[str] = Counter()
    sizes = []
    for b in plan["batches"]:
        originals = [it["stimulus_id"] for it in b["items"] if it["repeat_of"] is None]
        repeats = [it for it in b["items"] if it["repeat_of"] is not None]
        assert len(repeats) == 2
        for it in repeats:  # a repeat is the same clip, at least min_repeat_gap later
            assert b["items"][it["repeat_of"]]["stimulus_id"] == it["stimulus_id"]
            assert it["position"] - it["repeat_of"] >= 3
        shown.update(originals)
        sizes.append(len(originals))
        cells = Counter((m[s].identity, m[s].visual_emotion) for s in originals)
        assert max(cells.values()) <= max_per_cell
        emotions = Counter(m[s].visual_emotion for s in originals)
        assert max(emotions.values()) - min(emotions.values()) <= 1  # each emotion its share
    assert set(shown) == {s.stimulus_id for s in m.stimuli}
    assert set(shown.values()) == {copies}
    assert max(sizes) - min(sizes) <= 1 and max(sizes) <= per_batch
    assert len(plan["batches"]) == copies * -(-36 // per_batch)


def test_same_inputs_same_bytes(make_manifest):
    m = make_manifest(demo_like_rows())
    spec = norming_spec(clips_per_batch=6)
    assert plan_to_bytes(compile_plan(spec, m, 3)) == plan_to_bytes(compile_plan(spec, m, 3))
    assert plan_to_bytes(compile_plan(spec, m, 3)) != plan_to_bytes(compile_plan(spec, m, 4))


def test_a_cell_too_big_for_the_batches_is_refused_naming_cells_and_fix(make_manifest):
    m = make_manifest(demo_like_rows())
    with pytest.raises(DesignError) as err:
        compile_plan(norming_spec(clips_per_batch=12), m, 1)  # 3 batches, but 6 clips per identity x emotion
    msg = str(err.value)
    assert "identity f1 x anger: 6 clips" in msg and "clips_per_batch to 6 or less" in msg
    assert "max_per_cell to 2" in msg


def test_emotion_question_cut_to_the_sets_emotions_plus_other(make_manifest):
    m = make_manifest(demo_like_rows())
    plan = compile_plan(norming_spec(clips_per_batch=6), m, 1)
    emotion = next(q for q in plan["questions"] if q["id"] == "emotion")
    assert [o["value"] for o in emotion["options"]] == ["anger", "happiness", "sadness", "other"]
    assert emotion["options"][-1]["label"] == "Other / none"
    plan_all = compile_plan(norming_spec(clips_per_batch=6, choices='"all"'), m, 1)
    emotion = next(q for q in plan_all["questions"] if q["id"] == "emotion")
    assert len(emotion["options"]) == 7


def test_sources_filter_and_clips_without_emotion(make_manifest):
    rows = demo_like_rows() + [fake_row("still-none", "FULL", None, None, identity="f1")]
    m = make_manifest(rows)
    plan = compile_plan(norming_spec(clips_per_batch=3, sources='["FULL"]'), m, 1)
    ids = {it["stimulus_id"] for b in plan["batches"] for it in b["items"]}
    assert ids == {r["stimulus_id"] for r in rows if r["source"] == "FULL" and r["visual_emotion"]}
    assert any("1 clip(s) without an emotion" in n for n in plan["notes"])
    with pytest.raises(DesignError, match="no clip of sources GT"):
        compile_plan(norming_spec(sources='["GT"]'), m, 1)


def test_switching_a_measure_off_and_the_other_option_required(make_manifest):
    m = make_manifest(demo_like_rows())
    _, raw = resolve_spec("norming")
    text = raw.decode().replace("clips_per_batch = 24", "clips_per_batch = 6")
    # Switch valence off: delete its question and its rule.
    start = text.index('[[questions]]\nid = "valence"')
    end = text.index("[[questions]]", start + 5)
    no_valence = text[:start] + text[end:]
    no_valence = no_valence.replace('  { question = "valence", kind = "max_abs_diff", tolerance = 2 },\n', "")
    plan = compile_plan(parse_spec(no_valence), m, 1)
    assert [q["id"] for q in plan["questions"]] == ["emotion", "intensity", "genuineness", "arousal"]
    no_other = text.replace('  { value = "other", label = "Other / none" },\n', "")
    with pytest.raises(SpecError, match="value 'other'"):
        compile_plan(parse_spec(no_other), m, 1)
    with pytest.raises(SpecError, match="choices"):
        parse_spec(text.replace('choices = "set"', 'choices = "some"'))
