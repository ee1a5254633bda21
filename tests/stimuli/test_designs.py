from __future__ import annotations

from collections import Counter

import pytest
from stimuli_factories import fake_row, task1_rows, task2_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stimuli.designs import (
    AvMismatchDesign,
    EmotionRealnessDesign,
    ExamplesDesign,
    build_design,
    choose_examples,
    clip_key,
    order_with_repeats,
    stimulus_emotion,
)
from stimuli.emotions import EMOTIONS
from stimuli.errors import DesignError
from stimuli.manifest import build_manifest
from stimuli.rng import StableRng

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _stimuli(rows):
    return build_manifest("/nonexistent", rows).stimuli


T1 = _stimuli(task1_rows())
T2 = _stimuli(task2_rows())
BY_ID = {s.stimulus_id: s for s in T1 + T2}


def _check_repeats(batch, min_gap):
    first = {}
    for it in batch.items:
        if it.repeat_of is None:
            assert it.stimulus_id not in first, "a stimulus shown twice must be marked as a repeat"
            first[it.stimulus_id] = it.position
        else:
            assert batch.items[it.repeat_of].stimulus_id == it.stimulus_id
            assert it.position - it.repeat_of >= min_gap
    assert [it.position for it in batch.items] == list(range(len(batch.items)))


# ------------------------------------------------------------------------------------------- Task 1

def test_task1_paper_numbers():
    r = build_design(EmotionRealnessDesign(), T1, seed=1, examples=ExamplesDesign(size_variants=("128x128", "96x128")))
    assert len(r.batches) == 6
    per_source_emotion = Counter()
    all_originals = []
    for b in r.batches:
        assert len(b.items) == 18
        assert len(b.repeats) == 3
        assert sorted(BY_ID[i.stimulus_id].source for i in b.repeats) == ["BL", "GT", "OURS"]
        assert Counter(BY_ID[i.stimulus_id].source for i in b.originals) == {"GT": 5, "BL": 5, "OURS": 5}
        _check_repeats(b, 2)
        # per batch and source, no emotion twice (5 of 6 emotions)
        for src in ("GT", "BL", "OURS"):
            emos = [stimulus_emotion(BY_ID[i.stimulus_id]) for i in b.originals if BY_ID[i.stimulus_id].source == src]
            assert len(set(emos)) == 5
        for i in b.originals:
            s = BY_ID[i.stimulus_id]
            per_source_emotion[(s.source, stimulus_emotion(s))] += 1
            all_originals.append(i.stimulus_id)
    assert len(all_originals) == len(set(all_originals)) == 90  # no video used twice
    assert set(per_source_emotion.values()) == {5} and len(per_source_emotion) == 18
    gt_sizes = Counter(BY_ID[i].size_variant for i in all_originals if BY_ID[i].source == "GT")
    assert gt_sizes == {"128x128": 15, "96x128": 15}
    # examples: 2 per emotion per size, alphabetical within each size set, none used in the batches
    assert [(e.size_variant, e.emotion) for e in r.examples] == [
        (v, emo) for v in ("128x128", "96x128") for emo in sorted(EMOTIONS) for _ in range(2)]
    assert not {e.stimulus_id for e in r.examples} & set(all_originals)
    for e in r.examples:
        s = BY_ID[e.stimulus_id]
        assert s.source == "GT" and s.visual_emotion == e.emotion and s.size_variant == e.size_variant
    # the same clips (identity) in both sizes
    ids = [BY_ID[e.stimulus_id].identity for e in r.examples]
    assert ids[:12] == ids[12:]
    # a recording is never shown twice in two sizes, neither in the batches nor as an example
    gt_clips = [clip_key(BY_ID[i]) for i in all_originals if BY_ID[i].source == "GT"]
    assert len(gt_clips) == len(set(gt_clips)) == 30
    assert not {clip_key(BY_ID[e.stimulus_id]) for e in r.examples} & set(gt_clips)
    assert any("all unused" in n for n in r.notes)


@FAST
@given(seed=st.integers(0, 2**32), shape=st.sampled_from([(6, 5), (3, 4), (2, 3), (4, 3), (1, 6), (12, 1)]),
       repeats=st.integers(0, 1), gap=st.integers(1, 3))
def test_task1_balance_property(seed, shape, repeats, gap):
    batches, per_source = shape
    d = EmotionRealnessDesign(batches=batches, per_source=per_source, repeats_per_source=repeats, min_repeat_gap=gap)
    r = build_design(d, T1, seed)
    counts = Counter()
    for b in r.batches:
        assert len(b.items) == 3 * (per_source + repeats)
        _check_repeats(b, gap)
        for i in b.originals:
            s = BY_ID[i.stimulus_id]
            counts[(s.source, stimulus_emotion(s))] += 1
    assert set(counts.values()) == {batches * per_source // 6}
    assert len(counts) == 18
    sizes = Counter(BY_ID[i.stimulus_id].size_variant for b in r.batches for i in b.originals
                    if BY_ID[i.stimulus_id].source == "GT")
    assert max(sizes.values()) - min(sizes.values()) <= 1 and len(sizes) == 2  # GT mixes both sizes evenly
    assert build_design(d, T1, seed) == r  # deterministic


def test_task1_seed_changes_the_plan_and_stream_is_stable():
    a = build_design(EmotionRealnessDesign(), T1, 1)
    b = build_design(EmotionRealnessDesign(), T1, 2)
    assert a != b
    # Pinned first draws of the stable RNG (SHA-256 counter mode); computed independently below.
    import hashlib
    rng = StableRng(5, "x")
    digest = hashlib.sha256(b"5\x00x\x000").digest()
    x = int.from_bytes(digest[:2], "big")
    assert x < 65536 - 65536 % 10  # not rejected for this seed
    assert rng.randbelow(10) == x % 10


def test_task1_too_few_stimuli_names_what_is_missing():
    rows = [r for r in task1_rows() if not (r["source"] == "BL" and r["audio_emotion"] == "fear")]
    rows += [fake_row("extra-bl-fear", "BL", None, "fear")]
    with pytest.raises(DesignError) as exc:
        build_design(EmotionRealnessDesign(), _stimuli(rows), 0)
    msg = str(exc.value)
    assert "source 'BL', emotion fear: have 1, need 5" in msg


def test_task1_missing_source_and_unbalanceable_numbers():
    with pytest.raises(DesignError, match="source 'LIPS' has no stimuli"):
        build_design(EmotionRealnessDesign(sources=("GT", "LIPS")), T1, 0)
    with pytest.raises(DesignError, match="not a multiple of the 6 emotions"):
        build_design(EmotionRealnessDesign(batches=5, per_source=5), T1, 0)
    # Acceptance finding: the message ended mid-sentence ("choose numbers whose product is").
    with pytest.raises(DesignError, match=r"choose numbers whose product is a multiple of 6 \(the paper: 6 x 5 = 30\)$"):
        build_design(EmotionRealnessDesign(batches=7, per_source=5), T1, 0)
    with pytest.raises(DesignError, match="min_repeat_gap"):
        build_design(EmotionRealnessDesign(batches=6, per_source=1, min_repeat_gap=5), T1, 0)


def test_task1_size_variant_shortage_is_named():
    rows = [r for r in task1_rows() if not (r["source"] == "GT" and r["size_variant"] == "96x128"
                                            and r["visual_emotion"] == "sadness")]
    rows.append(fake_row("gt-sad-96", "GT", "sadness", "sadness", size_variant="96x128"))
    with pytest.raises(DesignError, match=r"source 'GT', emotion sadness, size variant 96x128: have 1, need [23]"):
        build_design(EmotionRealnessDesign(), _stimuli(rows), 0)


# ------------------------------------------------------------------------------------------- Task 2

def test_task2_paper_numbers():
    r = build_design(AvMismatchDesign(sources=("OURS",)), T2, seed=3, examples=ExamplesDesign(size_variants=("128x128",)))
    assert len(r.batches) == 6
    pairs = Counter()
    for b in r.batches:
        assert len(b.items) == 14 and len(b.repeats) == 2 and len(b.originals) == 12
        _check_repeats(b, 2)
        vis = Counter(BY_ID[i.stimulus_id].visual_emotion for i in b.originals)
        aud = Counter(BY_ID[i.stimulus_id].audio_emotion for i in b.originals)
        assert set(vis.values()) == {2} and set(aud.values()) == {2}
        bp = [(BY_ID[i.stimulus_id].visual_emotion, BY_ID[i.stimulus_id].audio_emotion) for i in b.originals]
        assert len(set(bp)) == 12  # no pair twice in a batch
        pairs.update(bp)
    assert len(pairs) == 36 and set(pairs.values()) == {2}
    originals = [i.stimulus_id for b in r.batches for i in b.originals]
    assert len(set(originals)) == 72
    assert all(BY_ID[i].source == "OURS" for i in originals)
    assert [e.emotion for e in r.examples] == [e for e in sorted(EMOTIONS) for _ in range(2)]
    assert all(BY_ID[e.stimulus_id].source == "GT" for e in r.examples)


@FAST
@given(seed=st.integers(0, 2**32), batches=st.sampled_from([1, 2, 3, 4, 6, 8, 12]), balanced=st.booleans(),
       repeats=st.integers(0, 3))
def test_task2_every_pair_exactly_r_times(seed, batches, balanced, repeats):
    d = AvMismatchDesign(batches=batches, per_pair=2, repeats_per_batch=repeats, balanced=balanced, sources=("OURS",))
    r = build_design(d, T2, seed)
    pairs = Counter()
    for b in r.batches:
        assert len(b.originals) == 72 // batches and len(b.repeats) == repeats
        _check_repeats(b, 2)
        pairs.update((BY_ID[i.stimulus_id].visual_emotion, BY_ID[i.stimulus_id].audio_emotion) for i in b.originals)
        if balanced and (72 // batches) % 6 == 0:
            vis = Counter(BY_ID[i.stimulus_id].visual_emotion for i in b.originals)
            assert set(vis.values()) == {72 // batches // 6}
    assert len(pairs) == 36 and set(pairs.values()) == {2}
    assert build_design(d, T2, seed) == r


def test_task2_missing_pairs_are_listed():
    rows = [r for r in task2_rows() if not (r["visual_emotion"] == "fear" and r["audio_emotion"] == "happiness")]
    with pytest.raises(DesignError) as exc:
        build_design(AvMismatchDesign(sources=("OURS",)), _stimuli(rows), 0)
    assert "missing 1 of 36 pairs: visual fear + audio happiness: have 0, need 2" in str(exc.value)
    with pytest.raises(DesignError, match="cannot split 36 pairs x 2 = 72 videos evenly over 5 batches"):
        build_design(AvMismatchDesign(batches=5), T2, 0)


def test_task2_source_filter():
    with pytest.raises(DesignError, match="among sources BL"):
        build_design(AvMismatchDesign(sources=("BL",)), T2, 0)
    # Acceptance finding: a set made by `emostudy generate --backend warp` (source WARP) planned with
    # paper-task2 (sources OURS) listed 36 "have 0" pairs without saying why; the error names the set's sources.
    with pytest.raises(DesignError, match=r"no stimulus of those sources; its sources are GT, OURS: name them in "
                                          r"the spec's design.sources"):
        build_design(AvMismatchDesign(sources=("WARP",)), T2, 0)


# ---------------------------------------------------------------------------------------- examples

def test_examples_reuse_batch_items_only_when_allowed_and_say_so():
    stim = T2
    gt = [s for s in stim if s.source == "GT"]
    used = {s.stimulus_id for s in gt if s.visual_emotion == "fear"}  # all 3 fear GT clips are "used"
    allow = ExamplesDesign(per_emotion=2, allow_example_reuse=True)
    ex, notes = choose_examples(stim, allow, used, seed=0)
    assert len(ex) == 12
    assert sum(1 for e in ex if e.stimulus_id in used) == 2
    assert any("2 of 2 fear examples are also batch items" in n for n in notes)
    partially = set(list(used)[:2])
    ex2, _ = choose_examples(stim, allow, partially, seed=0)
    assert sum(1 for e in ex2 if e.stimulus_id in partially) == 1
    # Without allow_example_reuse a labelled example never shows a trial's clip: refused, naming the fix.
    for u in (used, partially):
        with pytest.raises(DesignError, match=r"same clip as a trial.*fear.*allow_example_reuse = true"):
            choose_examples(stim, ExamplesDesign(per_emotion=2), u, seed=0)
    # One unused fear clip left and one needed: no reuse, no refusal.
    one_left = set(list(used)[:1])
    ex3, _ = choose_examples(stim, ExamplesDesign(per_emotion=1), used - one_left, seed=0)
    assert not {e.stimulus_id for e in ex3} & (used - one_left)


def test_examples_fall_back_to_different_clips_per_size():
    rows = task1_rows(gt_per_emotion=2)
    for r in rows:  # make the 96x128 GT clips other recordings than the 128x128 ones
        if r["source"] == "GT" and r["size_variant"] == "96x128":
            r["identity"] = "2" + r["identity"]
    ex, notes = choose_examples(_stimuli(rows), ExamplesDesign(size_variants=("128x128", "96x128")), set(), 0)
    assert len(ex) == 24 and "different clips per size" in notes[0]


def test_examples_missing_and_disabled():
    with pytest.raises(DesignError, match="emotion anger, size variant 96x128: have 0, need 2"):
        choose_examples(T2, ExamplesDesign(size_variants=("96x128",)), set(), 0)
    assert choose_examples(T2, ExamplesDesign(per_emotion=0), set(), 0)[0] == ()


# ------------------------------------------------------------------------------------------- order

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(0, 4), gap=st.integers(1, 4), seed=st.integers(0, 10**9))
def test_order_with_repeats_property(n, k, gap, seed):
    ids = [f"x{i}" for i in range(n)]
    k = min(k, n)
    rng = StableRng(seed)
    reps = rng.sample(ids, k)
    try:
        items = order_with_repeats(ids, reps, gap, rng.child("o"))
    except DesignError as exc:
        assert "lower min_repeat_gap" in str(exc)
        assert k > 0 and gap > 1
        return
    assert Counter(i.stimulus_id for i in items) == Counter(ids + reps)
    seen = {}
    for it in items:
        if it.repeat_of is None:
            seen[it.stimulus_id] = it.position
        else:
            assert it.repeat_of == seen[it.stimulus_id] and it.position - it.repeat_of >= gap


def test_duplicate_ids_refused():
    s = T1[0]
    with pytest.raises(DesignError, match="duplicate stimulus ids"):
        build_design(EmotionRealnessDesign(), list(T1) + [s], 0)
