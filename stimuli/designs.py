"""Study designs: which stimuli go into which batch, in which order, with which consistency repeats.

Two designs reproduce the paper (section IV-D), plus familiarisation examples:

``emotion-realness`` (Task 1)
    B batches (default 6). Per batch k stimuli of each source (default 5 of GT, BL, OURS), plus
    ``repeats_per_source`` consistency repeats per source (default 1) -> 18 items, shuffled. Across
    the batches every emotion appears equally often per source (6 x 5 = 30 = 5 per emotion). A source
    with several ``size_variant`` values (the paper's GT at 128x128 and 96x128) mixes them evenly.
``av-mismatch`` (Task 2)
    All 36 (visual emotion, audio emotion) pairs x r distinct videos (default 2) = 72, split evenly
    over B batches (default 6 -> 12 each) so that, when the numbers allow, every batch holds each
    visual and each audio emotion equally often and never the same pair twice; plus
    ``repeats_per_batch`` (default 2) repeats -> 14 items.
Familiarisation examples
    n per emotion (default 2) in alphabetical order of emotion, optionally one set per size variant,
    from stimuli that are not batch items. A labelled example that is the same clip as a trial (the same
    stimulus, the same media file by sha256, or the same recording in another size) would show that
    trial's answer, so the design is refused unless ``allow_example_reuse`` is set (the notes say so).

The emotion of a stimulus for balancing is its visual emotion, or its audio emotion when the visual one
is null (a baseline that takes no emotion condition). A repeat shows the same stimulus again, at least
``min_repeat_gap`` positions after its original (2: never next to it). Everything is a pure function of
(stimuli, design, seed): randomness comes from ``stimuli.rng.StableRng``. A design that cannot be met
raises ``DesignError`` listing everything that is missing, before anything is written.

Order (``order``): ``per-batch`` (the paper) shows a batch's items to all its participants in the plan's
order; ``per-participant`` lets the server draw each participant's own order at start
(``participant_order``: the same shuffle with the same repeat gap, seeded by the plan's seed and the
participant), so the plan itself stays deterministic.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from stimuli.batches import (  # noqa: F401
    _MAX_ORDER_TRIES,
    ORDERS,
    Batch,
    BatchItem,
    _check_ids,
    _gaps_ok,
    _positive,
    batch_id,
    clip_key,
    order_with_repeats,
    stimulus_emotion,
)
from stimuli.emotions import EMOTIONS
from stimuli.errors import DesignError
from stimuli.factors import EMOTION_FACTORS, FactorDesign, build_factorial, resolve_levels
from stimuli.manifest import Stimulus
from stimuli.norming import build_norming
from stimuli.rng import StableRng
from stimuli.trial_list import TrialListDesign, build_trial_list

# norming: stimuli/norming.py; factorial: stimuli.factors
DESIGN_KINDS = ("emotion-realness", "av-mismatch", "norming", "factorial")
# per-participant order: the share of shuffles that keep every repeat min_repeat_gap after its original
# must be at least this (estimated on _ORDER_PROBES shuffles at compile time), so that the server's
# rejection sampler (_MAX_ORDER_TRIES tries) cannot fail for a participant: 0.95 ** 20000 < 1e-400.
_MIN_ORDER_ACCEPTANCE = 0.05
_ORDER_PROBES = 400


@dataclass(frozen=True)
class EmotionRealnessDesign:
    """Task 1 numbers. ``per_source`` stimuli of each source per batch."""

    batches: int = 6
    sources: tuple[str, ...] = ("GT", "BL", "OURS")
    per_source: int = 5
    repeats_per_source: int = 1
    min_repeat_gap: int = 2
    mix_size_variants: bool = True
    order: str = "per-batch"

    kind = "emotion-realness"


@dataclass(frozen=True)
class AvMismatchDesign:
    """Task 2 numbers. ``sources`` empty: any stimulus with both emotions set is a candidate."""

    batches: int = 6
    per_pair: int = 2
    repeats_per_batch: int = 2
    min_repeat_gap: int = 2
    sources: tuple[str, ...] = ()
    balanced: bool = True
    order: str = "per-batch"

    kind = "av-mismatch"


@dataclass(frozen=True)
class ExamplesDesign:
    """Familiarisation examples: congruent stimuli (visual = audio emotion, or silent) of ``sources``.
    ``size_variants`` empty: any size, one set; else one alphabetical set per listed variant.
    ``allow_example_reuse``: let an example be the same clip as a trial (its answer is then shown)."""

    per_emotion: int = 2
    sources: tuple[str, ...] = ("GT",)
    size_variants: tuple[str, ...] = ()
    allow_example_reuse: bool = False


@dataclass(frozen=True)
class Example:
    stimulus_id: str
    emotion: str
    size_variant: str | None


@dataclass(frozen=True)
class DesignResult:
    batches: tuple[Batch, ...]
    examples: tuple[Example, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------- order

def participant_order(items: Sequence[tuple[int, int | None]], min_gap: int, seed: int,
                      participant: str) -> tuple[int, ...]:
    """The plan positions of a batch in the order one participant sees them (``order = "per-participant"``).

    ``items``: the batch's (position, repeat_of). The order is ``order_with_repeats`` (uniform over the
    orders that keep every repeat at least ``min_gap`` after its original) drawn from the stream
    (plan ``seed``, ``participant``): the same participant always gets the same order. Returns, for each
    shown position 0..n-1, the plan position of the item shown there.
    """
    originals = [str(pos) for pos, rep in items if rep is None]
    repeated = [str(rep) for _, rep in items if rep is not None]
    repeat_item = {rep: pos for pos, rep in items if rep is not None}
    shown = order_with_repeats(originals, repeated, min_gap, StableRng(seed, "participant-order").child(participant))
    return tuple(int(i.stimulus_id) if i.repeat_of is None else repeat_item[int(i.stimulus_id)] for i in shown)


def check_participant_order(batches: Sequence[Batch], min_gap: int, seed: int) -> None:
    """Refuse a per-participant order that the server's sampler could fail to draw (see _MIN_ORDER_ACCEPTANCE)."""
    for b in batches:
        tokens = [i.stimulus_id for i in b.items]
        rep = {i.stimulus_id for i in b.repeats}
        rng = StableRng(seed, f"order-check/{b.batch_id}")
        ok = sum(_gaps_ok(rng.shuffled(tokens), rep, min_gap) for _ in range(_ORDER_PROBES))
        if ok < _MIN_ORDER_ACCEPTANCE * _ORDER_PROBES:
            raise DesignError(
                f"order = \"per-participant\": in batch {b.batch_id} only {ok} of {_ORDER_PROBES} shuffles keep every "
                f"repeat {min_gap} or more positions after its original (at least "
                f"{_MIN_ORDER_ACCEPTANCE:.0%} are needed to draw an order per participant); lower min_repeat_gap, "
                "repeat fewer items, or use order = \"per-batch\"")


# ------------------------------------------------------------------------------------------ Task 1

def build_emotion_realness(stimuli: Sequence[Stimulus], design: EmotionRealnessDesign,
                           seed: int) -> tuple[tuple[Batch, ...], list[str]]:
    """Task 1 batches (see the module docstring). Returns (batches, notes)."""
    _check_ids(stimuli)
    d = design
    _positive("batches", d.batches)
    _positive("per_source", d.per_source)
    _positive("repeats_per_source", d.repeats_per_source, 0)
    _positive("min_repeat_gap", d.min_repeat_gap)
    if not d.sources:
        raise DesignError("design 'sources' is empty: name at least one source (e.g. GT, BL, OURS)")
    if len(set(d.sources)) != len(d.sources):
        raise DesignError(f"design 'sources' {list(d.sources)} lists a source twice")
    if d.repeats_per_source > d.per_source:
        raise DesignError(f"design 'repeats_per_source' ({d.repeats_per_source}) is larger than "
                          f"'per_source' ({d.per_source})")
    total = d.batches * d.per_source
    n_emo = len(EMOTIONS)
    if total % n_emo:
        raise DesignError(
            f"cannot balance emotions: per source batches x per_source = {d.batches} x {d.per_source} = {total} "
            f"stimuli, not a multiple of the {n_emo} emotions; choose numbers whose product is a multiple of "
            f"{n_emo} (the paper: 6 x 5 = 30)")
    per_emotion = total // n_emo
    rng = StableRng(seed, "emotion-realness")
    notes: list[str] = []

    # Candidates per source, emotion and size variant.
    by_source: dict[str, list[Stimulus]] = defaultdict(list)
    for s in stimuli:
        by_source[s.source].append(s)
    missing: list[str] = []
    plan_per_source: dict[str, list[list[Stimulus]]] = {}
    for src in d.sources:
        pool = [s for s in by_source.get(src, []) if stimulus_emotion(s) is not None]
        if not pool:
            known = ", ".join(sorted(by_source)) or "none"
            missing.append(f"source {src!r} has no stimuli with an emotion (sources in the set: {known})")
            continue
        variants = sorted({s.size_variant for s in pool if s.size_variant is not None})
        mix = d.mix_size_variants and len(variants) > 1
        if mix:
            notes.append(f"{src}: mixes size variants {', '.join(variants)} evenly within each emotion")
        # Slot layout: position i has emotion perm[i % 6] and batch i // per_source, so a batch never holds
        # an emotion twice (per_source <= 6) and every emotion gets exactly per_emotion slots.
        srng = rng.child(src)
        perm = srng.shuffled(list(EMOTIONS))
        slots: list[tuple[str, str | None]] = []
        seen_per_emotion: Counter[str] = Counter()
        for i in range(total):
            emo = perm[i % n_emo]
            t = seen_per_emotion[emo]
            seen_per_emotion[emo] += 1
            variant = variants[(EMOTIONS.index(emo) * per_emotion + t) % len(variants)] if mix else None
            slots.append((emo, variant))
        need = Counter(slots)
        chosen: dict[tuple[str, str | None], list[Stimulus]] = {}
        for key in sorted(need, key=lambda k: (EMOTIONS.index(k[0]), k[1] or "")):
            emo, variant = key
            cands = sorted((s for s in pool if stimulus_emotion(s) == emo
                            and (variant is None or s.size_variant == variant)), key=lambda s: s.stimulus_id)
            if len(cands) < need[key]:
                size = f", size variant {variant}" if variant else ""
                missing.append(f"source {src!r}, emotion {emo}{size}: have {len(cands)}, need {need[key]}")
                continue
            # The same recording in another size is the same video to a participant: avoid picking it twice.
            taken_clips = {clip_key(x) for k2, xs in chosen.items() if k2[0] == emo for x in xs}
            distinct = [s for s in cands if clip_key(s) not in taken_clips]
            if len(distinct) >= need[key]:
                cands = distinct
            elif taken_clips:
                notes.append(f"{src}: some {emo} clips appear in two size variants (too few distinct clips)")
            chosen[key] = srng.child(f"{emo}/{variant}").sample(cands, need[key])
        if missing:
            continue
        taken: Counter[tuple[str, str | None]] = Counter()
        per_batch: list[list[Stimulus]] = [[] for _ in range(d.batches)]
        for i, key in enumerate(slots):
            per_batch[i // d.per_source].append(chosen[key][taken[key]])
            taken[key] += 1
        order = srng.shuffled(range(d.batches))  # which slot group goes to which batch
        plan_per_source[src] = [per_batch[j] for j in order]
    if missing:
        raise DesignError("the set cannot fill the emotion-realness design "
                          f"({d.batches} batches x {d.per_source} per source, {per_emotion} per emotion and "
                          "source): " + "; ".join(missing))

    batches: list[Batch] = []
    for b in range(d.batches):
        brng = rng.child(f"batch{b}")
        originals: list[str] = []
        repeated: list[str] = []
        for src in d.sources:
            ids = [s.stimulus_id for s in plan_per_source[src][b]]
            originals.extend(ids)
            repeated.extend(brng.child(f"repeat/{src}").sample(sorted(ids), d.repeats_per_source))
        items = order_with_repeats(originals, repeated, d.min_repeat_gap, brng.child("order"))
        batches.append(Batch(batch_id=batch_id(b), index=b, items=items))
    return tuple(batches), notes


# ------------------------------------------------------------------------------------------ Task 2

def build_av_mismatch(stimuli: Sequence[Stimulus], design: AvMismatchDesign,
                      seed: int) -> tuple[tuple[Batch, ...], list[str]]:
    """Task 2 batches (see the module docstring). Returns (batches, notes)."""
    _check_ids(stimuli)
    d = design
    _positive("batches", d.batches)
    _positive("per_pair", d.per_pair)
    _positive("repeats_per_batch", d.repeats_per_batch, 0)
    _positive("min_repeat_gap", d.min_repeat_gap)
    n = len(EMOTIONS)
    pairs = [(v, a) for v in EMOTIONS for a in EMOTIONS]
    total = len(pairs) * d.per_pair
    if total % d.batches:
        raise DesignError(f"cannot split {len(pairs)} pairs x {d.per_pair} = {total} videos evenly over "
                          f"{d.batches} batches; choose a number of batches that divides {total}")
    size = total // d.batches
    if d.repeats_per_batch > size:
        raise DesignError(f"design 'repeats_per_batch' ({d.repeats_per_batch}) is larger than a batch ({size})")
    rng = StableRng(seed, "av-mismatch")
    pool = [s for s in stimuli if s.visual_emotion is not None and s.audio_emotion is not None
            and (not d.sources or s.source in d.sources)]
    by_pair: dict[tuple[str, str], list[Stimulus]] = defaultdict(list)
    for s in pool:
        by_pair[(s.visual_emotion, s.audio_emotion)].append(s)  # type: ignore[index]
    missing = [f"visual {v} + audio {a}: have {len(by_pair.get((v, a), []))}, need {d.per_pair}"
               for v, a in pairs if len(by_pair.get((v, a), [])) < d.per_pair]
    if missing:
        where = f" among sources {', '.join(d.sources)}" if d.sources else ""
        hint = ""
        if d.sources and not any(s.source in d.sources for s in stimuli):
            hint = (f" (the set has no stimulus of those sources; its sources are "
                    f"{', '.join(sorted({s.source for s in stimuli}))}: name them in the spec's design.sources)")
        raise DesignError(f"the set cannot fill the av-mismatch design ({d.per_pair} distinct videos per "
                          f"(visual, audio) emotion pair{where}){hint}; missing {len(missing)} of 36 pairs: "
                          + "; ".join(missing) + _fewer_emotions_hint(by_pair, d.per_pair))
    chosen = {p: rng.child(f"pair/{p[0]}/{p[1]}").sample(sorted(by_pair[p], key=lambda s: s.stimulus_id),
                                                         d.per_pair)
              for p in pairs}
    notes: list[str] = []
    if d.balanced:
        # Latin-square blocks: block (c, k) holds copy c of the 6 pairs with pi(v) + rho(a) + c = k (mod 6), i.e.
        # every visual and every audio emotion once. Blocks in the order k-major, c-minor, cut into equal
        # batches: with B = 6 each batch is {copy c of diagonal k - c}, all distinct pairs, each emotion r times.
        pi = rng.child("pi").shuffled(range(n))
        rho = rng.child("rho").shuffled(range(n))
        seq: list[str] = []
        for k in range(n):
            for c in range(d.per_pair):
                block = [chosen[(v, a)][c].stimulus_id for v in EMOTIONS for a in EMOTIONS
                         if (pi[EMOTIONS.index(v)] + rho[EMOTIONS.index(a)] + c) % n == k]
                seq.extend(rng.child(f"block/{k}/{c}").shuffled(block))
        groups = [seq[i * size:(i + 1) * size] for i in range(d.batches)]
        groups = [groups[j] for j in rng.child("batch-order").shuffled(range(d.batches))]
        notes.append("av-mismatch: balanced split (Latin squares): each batch holds every visual and every "
                     "audio emotion equally often when the batch size is a multiple of 6")
    else:
        seq = rng.child("shuffle").shuffled([s.stimulus_id for p in pairs for s in chosen[p]])
        groups = [seq[i * size:(i + 1) * size] for i in range(d.batches)]
        notes.append("av-mismatch: plain shuffle and split (balanced = false)")
    batches = []
    for b, ids in enumerate(groups):
        brng = rng.child(f"batch{b}")
        repeated = brng.child("repeat").sample(sorted(ids), d.repeats_per_batch)
        items = order_with_repeats(ids, repeated, d.min_repeat_gap, brng.child("order"))
        batches.append(Batch(batch_id=batch_id(b), index=b, items=items))
    return tuple(batches), notes


def _fewer_emotions_hint(by_pair: dict[tuple[str, str], list[Stimulus]], per_pair: int) -> str:
    """What would fill a Task 2 design the set cannot: the largest set of emotions (dropping, one at a time,
    the emotion with the most missing pairs) whose pairs all have ``per_pair`` videos, as a factor design."""
    emos = [e for e in EMOTIONS if any(e in p for p in by_pair)]
    full = lambda es: [(v, a) for v in es for a in es if len(by_pair.get((v, a), [])) < per_pair]
    while len(emos) >= 2 and full(emos):
        bad = Counter(x for p in full(emos) for x in p)
        emos.remove(max(emos, key=lambda e: (bad[e], -EMOTIONS.index(e))))
    if len(emos) < 2:
        return ""
    lv = "[" + ", ".join(f'"{e}"' for e in emos) + "]"
    return (f". What would fill it: the {len(emos)} emotions whose pairs are all there, declared by factors "
            f"(task = \"factorial\"; [design] counterbalance = \"latin-square\", clips_per_cell = {per_pair}; "
            f"[design.factors] visual_emotion = {{ levels = {lv} }}, audio_emotion = {{ levels = {lv} }}; "
            "docs/running-a-study.md)")


# ---------------------------------------------------------------------------------------- examples

def _prefer_unused(matches: list[Stimulus], used: set[str]) -> Stimulus:
    fresh = [s for s in matches if s.stimulus_id not in used]
    return (fresh or matches)[0]


def _is_congruent(s: Stimulus) -> bool:
    return s.audio_emotion is None or s.visual_emotion is None or s.audio_emotion == s.visual_emotion


def choose_examples(stimuli: Sequence[Stimulus], design: ExamplesDesign, used: Iterable[str],
                    seed: int, emotions: Sequence[str] = EMOTIONS) -> tuple[tuple[Example, ...], list[str]]:
    """Familiarisation examples: for each size variant (one set each; or one set of any size), emotions in
    alphabetical order, ``per_emotion`` each. Prefers stimuli unused by the batches and, with several size
    variants, the same clip (identity, sentence, intensity) in every size."""
    d = design
    _positive("examples per_emotion", d.per_emotion, 0)
    if d.per_emotion == 0:
        return (), ["examples: none (per_emotion = 0)"]
    used_ids = set(used)
    # A stimulus counts as used when it, the same media file or the same clip in another size is a batch item.
    used_clips = {clip_key(s) for s in stimuli if s.stimulus_id in used_ids}
    used_media = {s.sha256 for s in stimuli if s.stimulus_id in used_ids}
    used = {s.stimulus_id for s in stimuli
            if s.stimulus_id in used_ids or clip_key(s) in used_clips or s.sha256 in used_media}
    rng = StableRng(seed, "examples")
    variants: list[str | None] = list(d.size_variants) or [None]
    pool = [s for s in stimuli if s.source in d.sources and _is_congruent(s) and stimulus_emotion(s) is not None]
    missing: list[str] = []
    picked: dict[tuple[str, str | None], list[Stimulus]] = {}
    notes: list[str] = []
    n_reused = 0
    same_clip = True
    for emo in sorted(emotions):
        cands = {v: sorted((s for s in pool if stimulus_emotion(s) == emo and (v is None or s.size_variant == v)),
                           key=lambda s: s.stimulus_id) for v in variants}
        short = [v for v in variants if len(cands[v]) < d.per_emotion]
        if short:
            for v in short:
                size = f", size variant {v}" if v else ""
                missing.append(f"emotion {emo}{size}: have {len(cands[v])}, need {d.per_emotion}")
            continue
        erng = rng.child(emo)
        done = False
        if len(variants) > 1:
            # The same clip in every size: keys present in all variants, unused ones first.
            def key(s: Stimulus) -> tuple[str, str, str]:
                return (s.identity, s.sentence, s.intensity or "")
            common = set.intersection(*({key(s) for s in cands[v]} for v in variants))

            def fresh(k: tuple[str, str, str]) -> bool:
                return all(s.stimulus_id not in used for v in variants for s in cands[v] if key(s) == k)
            # Without allow_example_reuse, the same clip in every size only from clips no trial shows.
            enough = sum(map(fresh, common)) if not d.allow_example_reuse else len(common)
            if enough >= d.per_emotion:
                ordered = sorted(common)
                keys = [k for k in ordered if fresh(k)]
                keys = erng.sample(keys, min(d.per_emotion, len(keys)))
                rest = [k for k in ordered if k not in keys]
                keys += erng.child("reuse").sample(rest, d.per_emotion - len(keys))
                for v in variants:
                    picked[(emo, v)] = [_prefer_unused([s for s in cands[v] if key(s) == k], used) for k in keys]
                done = True
            else:
                same_clip = False
        if not done:
            for v in variants:
                vrng = erng.child(str(v))
                fresh_c = [s for s in cands[v] if s.stimulus_id not in used]
                take = vrng.sample(fresh_c, min(d.per_emotion, len(fresh_c)))
                reuse = [s for s in cands[v] if s.stimulus_id in used]
                take += vrng.child("reuse").sample(reuse, d.per_emotion - len(take))
                picked[(emo, v)] = take
        for v in variants:
            k = sum(1 for s in picked[(emo, v)] if s.stimulus_id in used)
            if k:
                n_reused += k
                size = f" ({v})" if v else ""
                notes.append(f"examples: {k} of {d.per_emotion} {emo}{size} examples are also batch items, "
                             "their media or the same clip in another size (not enough unused stimuli)")
    if missing:
        raise DesignError(f"the set cannot provide {d.per_emotion} familiarisation examples per emotion from "
                          f"sources {', '.join(d.sources)} (congruent visual and audio emotion): "
                          + "; ".join(missing))
    if n_reused and not d.allow_example_reuse:
        raise DesignError(
            f"{n_reused} familiarisation example(s) would be the same clip as a trial (the same stimulus, the "
            "same media file or the same recording in another size), and a labelled example shows that trial's "
            "answer: " + "; ".join(n.removeprefix("examples: ") for n in notes)
            + f". Add unused congruent clips of sources {', '.join(d.sources)} to the set, draw the examples "
            "from another source ([examples] sources), or set [examples] allow_example_reuse = true")
    examples = tuple(Example(stimulus_id=s.stimulus_id, emotion=emo, size_variant=v)
                     for v in variants for emo in sorted(emotions) for s in picked[(emo, v)])
    sizes = ""
    if variants != [None]:
        sizes = f" x {len(variants)} size variant{'s' if len(variants) > 1 else ''} ({', '.join(map(str, variants))})"
    summary = (f"examples: {len(examples)} ({d.per_emotion} per emotion{sizes}, alphabetical), "
               f"{'all unused in the batches' if not n_reused else f'{n_reused} also batch items'}")
    if len(variants) > 1:
        summary += "; the same clips in every size" if same_clip else "; different clips per size for some emotions"
    return examples, [summary, *notes]


# ---------------------------------------------------------------------------------------- dispatch

def build_design(design: "EmotionRealnessDesign | AvMismatchDesign | FactorDesign", stimuli: Sequence[Stimulus],
                 seed: int, examples: ExamplesDesign | None = None) -> DesignResult:
    """Batches + examples for a design. Raises ``DesignError`` before anything is written."""
    emotions: Sequence[str] = EMOTIONS
    if isinstance(design, FactorDesign):
        batches, notes = build_factorial(stimuli, design, seed)
        levels = resolve_levels(design, stimuli)  # "all" resolved: the examples show the design's emotions
        emotions = next((levels[f.name] for f in design.factors if f.name in EMOTION_FACTORS), EMOTIONS)
    elif isinstance(design, TrialListDesign):
        batches, notes = build_trial_list(stimuli, design, seed)
    elif isinstance(design, EmotionRealnessDesign):
        batches, notes = build_emotion_realness(stimuli, design, seed)
    elif isinstance(design, AvMismatchDesign):
        batches, notes = build_av_mismatch(stimuli, design, seed)
    elif getattr(design, "kind", None) == "norming":
        batches, notes = build_norming(stimuli, design, seed)  # type: ignore[arg-type]
    else:
        raise DesignError(f"unknown design {design!r}; known: {', '.join(DESIGN_KINDS)}")
    if design.order not in ORDERS:
        raise DesignError(f"design 'order' is {design.order!r}; use one of {', '.join(ORDERS)}")
    if design.order == "per-participant":
        check_participant_order(batches, design.min_repeat_gap, seed)
        notes = [*notes, f"order: per participant (drawn by the server from seed {seed} and the participant; "
                         f"repeats {design.min_repeat_gap} or more positions after their originals)"]
    ex: tuple[Example, ...] = ()
    if examples is not None:
        used = {i.stimulus_id for b in batches for i in b.items}
        ex, ex_notes = choose_examples(stimuli, examples, used, seed, emotions)
        notes = [*notes, *ex_notes]
    return DesignResult(batches=batches, examples=ex, notes=tuple(notes))
