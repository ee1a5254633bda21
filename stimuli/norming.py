"""The ``norming`` design: validate a stimulus set with people, every clip rated by a set number of raters.

A norming (validation) study shows every clip of a set, not a sample: each clip is rated by
``copies x quota_per_batch`` valid participants, in balanced batches, for the emotion it shows (forced
choice over the set's emotions plus "other / none"), and on whichever scales the spec asks (the ready-made
``stimuli/specs/norming.toml``: intensity 1-7, genuineness 1-7, valence and arousal 1-9, each a question one
may delete). ``emostudy norms`` turns the export into per-clip norms; ``emostudy select`` keeps the clips that
pass.

Layout of a copy (one pass over the set). The clips (of ``sources``, or all; a clip without an emotion is
left out and the notes say so) are grouped into cells of identity x emotion. ``B = ceil(n / clips_per_batch)``
batches; the cells, in emotion-then-identity order, are laid end to end (the clips of a cell shuffled) and the
clips dealt to the batches in turn. A batch then holds ``floor`` or ``ceil`` of ``n / B`` clips, of each
emotion ``floor`` or ``ceil`` of its share, and of each identity x emotion cell at most ``ceil(size / B)``
clips, which must be at most ``max_per_cell``: a set whose largest cell needs more batches is refused, naming
the cells, before anything is written. ``copies`` passes make ``copies x B`` batches; copy ``c`` deals from a
fresh shuffle, so the same clip meets other neighbours. Each batch repeats ``repeats_per_batch`` of its clips
(``min_repeat_gap`` or more positions after the original) for the test-retest reliability that the
consistency check and ``emostudy norms`` read.

The emotion question (``emotion_question``, default ``emotion``) must be a single-choice question with an
``other`` option (the option value; its label is the researcher's, "Other / none" in the ready-made spec).
With ``choices = "set"`` the plan keeps only the emotions that the rated clips show (a set of three
emotions is rated over those three plus "other"); ``choices = "all"`` keeps the spec's options as written.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from stimuli.batches import Batch, _check_ids, _positive, batch_id, order_with_repeats, read_order, stimulus_emotion
from stimuli.emotions import EMOTIONS
from stimuli.errors import DesignError, SpecError
from stimuli.manifest import Stimulus
from stimuli.rng import StableRng

if TYPE_CHECKING:  # annotations only: spec stands on designs, which stands on this module
    from stimuli.spec import Question

KIND = "norming"
OTHER = "other"  # the option value of "other / none" in the emotion question (norms count it as no emotion)
CHOICES = ("set", "all")


@dataclass(frozen=True)
class NormingDesign:
    """``[design]`` of a norming study (see the module docstring)."""

    clips_per_batch: int = 24
    copies: int = 1
    max_per_cell: int = 1
    repeats_per_batch: int = 2
    min_repeat_gap: int = 3
    sources: tuple[str, ...] = ()
    emotion_question: str = "emotion"
    choices: str = "set"
    order: str = "per-participant"

    kind = KIND


def read_design(t: Any) -> NormingDesign:
    """``[design]`` from a spec table (``stimuli.spec._Table``); errors name the key."""
    d = NormingDesign()
    design = NormingDesign(
        clips_per_batch=t.int("clips_per_batch", d.clips_per_batch, 1),
        copies=t.int("copies", d.copies, 1),
        max_per_cell=t.int("max_per_cell", d.max_per_cell, 1),
        repeats_per_batch=t.int("repeats_per_batch", d.repeats_per_batch, 0),
        min_repeat_gap=t.int("min_repeat_gap", d.min_repeat_gap, 1),
        sources=t.strings("sources", list(d.sources)),
        emotion_question=t.text("emotion_question", d.emotion_question),
        choices=t.text("choices", d.choices),
        order=read_order(t, d.order),
    )
    if design.choices not in CHOICES:
        raise t.error("choices", f"{design.choices!r} is not one of {', '.join(CHOICES)} (set: the emotions the "
                                 "rated clips show, plus other; all: the options as written)")
    if design.repeats_per_batch > design.clips_per_batch:
        raise t.error("repeats_per_batch", f"{design.repeats_per_batch} is more than clips_per_batch "
                                           f"({design.clips_per_batch})")
    return design


def rated_clips(stimuli: Sequence["Stimulus"], design: NormingDesign) -> tuple[list["Stimulus"], list[str]]:
    """The clips a norming study rates (of ``design.sources``, with an emotion), and a note on the others."""
    pool = [s for s in stimuli if not design.sources or s.source in design.sources]
    if design.sources and not pool:
        raise DesignError(f"norming: no clip of sources {', '.join(design.sources)} in the set (its sources: "
                          f"{', '.join(sorted({s.source for s in stimuli}))}); fix [design] sources")
    rated = [s for s in pool if stimulus_emotion(s) is not None]
    notes = []
    if len(rated) < len(pool):
        notes.append(f"norming: {len(pool) - len(rated)} clip(s) without an emotion (visual and audio null) are "
                     "not rated: recognition needs an intended emotion")
    if not rated:
        raise DesignError("norming: the set has no clip with an emotion to rate")
    return sorted(rated, key=lambda s: s.stimulus_id), notes


def build_norming(stimuli: Sequence["Stimulus"], design: NormingDesign,
                  seed: int) -> tuple[tuple["Batch", ...], list[str]]:
    """Batches of a norming study (see the module docstring). Returns (batches, notes)."""
    _check_ids(stimuli)
    d = design
    for name in ("clips_per_batch", "copies", "max_per_cell", "min_repeat_gap"):
        _positive(name, getattr(d, name))
    _positive("repeats_per_batch", d.repeats_per_batch, 0)
    clips, notes = rated_clips(stimuli, d)
    n = len(clips)
    n_batches = math.ceil(n / d.clips_per_batch)
    cells: dict[tuple[str, str], list[Stimulus]] = defaultdict(list)
    for s in clips:
        cells[(stimulus_emotion(s), s.identity)].append(s)  # type: ignore[index]
    need = max(math.ceil(len(v) / d.max_per_cell) for v in cells.values())
    if need > n_batches:
        big = sorted(((len(v), k) for k, v in cells.items() if len(v) > n_batches * d.max_per_cell), reverse=True)
        listed = "; ".join(f"identity {k[1]} x {k[0]}: {m} clips" for m, k in big[:8])
        raise DesignError(
            f"norming: {n} clips in batches of at most {d.clips_per_batch} make {n_batches} batch(es), which show "
            f"an identity x emotion cell at most {n_batches * d.max_per_cell} times at max_per_cell = "
            f"{d.max_per_cell}, but {len(big)} cell(s) have more clips ({listed}). Lower clips_per_batch to "
            f"{n // need} or less (-> {need} batches), or raise max_per_cell to "
            f"{math.ceil(max(len(v) for v in cells.values()) / n_batches)}")
    small = n // n_batches
    if d.repeats_per_batch > small:
        raise DesignError(f"norming: repeats_per_batch ({d.repeats_per_batch}) is more than the smallest batch "
                          f"({small} clips)")
    rng = StableRng(seed, KIND)
    emo_rank = {e: i for i, e in enumerate(EMOTIONS)}
    keys = sorted(cells, key=lambda k: (emo_rank.get(k[0], len(EMOTIONS)), k[0], k[1]))
    batches: list[Batch] = []
    for c in range(d.copies):
        crng = rng.child(f"copy{c}")
        seq = [s.stimulus_id for k in keys for s in crng.child(f"cell/{k[0]}/{k[1]}").shuffled(cells[k])]
        # Deal in turn; which group becomes which batch is shuffled so that batch 1 is not always "anger first".
        groups = [seq[j::n_batches] for j in range(n_batches)]
        groups = [groups[j] for j in crng.child("batch-order").shuffled(range(n_batches))]
        for ids in groups:
            index = len(batches)
            brng = crng.child(f"batch{index}")
            repeated = brng.child("repeat").sample(sorted(ids), d.repeats_per_batch)
            items = order_with_repeats(ids, repeated, d.min_repeat_gap, brng.child("order"))
            batches.append(Batch(batch_id=batch_id(index), index=index, items=items))
    sizes = sorted({len(g) for g in groups})
    per_cell = max(math.ceil(len(v) / n_batches) for v in cells.values())
    notes.append(f"norming: {n} clips in {len(batches)} batches of {' or '.join(map(str, sizes))} clips + "
                 f"{d.repeats_per_batch} repeats; each clip in {d.copies} batch{'es' if d.copies > 1 else ''}, so "
                 f"rated by {d.copies} x quota_per_batch valid participants; each identity x emotion at most "
                 f"{per_cell} time{'s' if per_cell > 1 else ''} per participant")
    return tuple(batches), notes


def plan_questions(design: NormingDesign, questions: Sequence["Question"],
                   stimuli: Sequence["Stimulus"]) -> tuple["Question", ...]:
    """The questions as the plan asks them: with ``choices = "set"`` the emotion question keeps only the
    emotions of the rated clips (and ``other``). Raises ``SpecError`` when the emotion question is missing or
    has no ``other`` option."""
    by_id = {q.id: q for q in questions}
    q = by_id.get(design.emotion_question)
    if q is None or q.type != "single":
        raise SpecError(f"[design] emotion_question = {design.emotion_question!r}: a norming study needs that "
                        f"single-choice question (questions: {', '.join(by_id)}); add it or name another")
    values = [o.value for o in q.options]
    if OTHER not in values:
        raise SpecError(f"question {q.id!r}: a norming study's emotion question needs an option with value "
                        f"{OTHER!r} (label e.g. \"Other / none\"), so that nobody is forced to pick a wrong emotion")
    if not any(v in EMOTIONS for v in values):
        raise SpecError(f"question {q.id!r}: no option is an emotion ({', '.join(EMOTIONS)})")
    if design.choices == "all":
        return tuple(questions)
    clips, _ = rated_clips(stimuli, design)
    shown = {stimulus_emotion(s) for s in clips}
    missing = sorted(shown - set(values))
    if missing:
        raise SpecError(f"question {q.id!r}: the set shows {', '.join(missing)}, which the question does not offer; "
                        "add the option(s)")
    kept = tuple(o for o in q.options if o.value not in EMOTIONS or o.value in shown)
    return tuple(replace(x, options=kept) if x.id == q.id else x for x in questions)


# ------------------------------------------------------------------------------ simulated raters

# Simulated raters of a norming study, for tests and the demo (analysis.simulate offline,
# study_server.participant.simulate over HTTP: both call simulated_rating, so that one model serves both). Each clip has a *clarity* in
# [0.3, 0.95], a pure function of its sha256, so that some clips are recognised and some are not: a rater picks
# the intended emotion with probability clarity (plus 0.1 x the rater's ability), else "other" with probability
# SIM_P_OTHER when offered, else another offered emotion at random. Intensity rises with clarity; genuineness is
# centred on the scale (plus half the ability); valence and arousal have a typical mean per emotion (our round
# numbers, in the spirit of published SAM norms). Scale answers are rounded normals (SD 1.1) clipped to the scale.
SIM_VALENCE = {"anger": 2.8, "disgust": 3.0, "fear": 3.0, "happiness": 7.2, "neutral": 5.0, "sadness": 2.6}
SIM_AROUSAL = {"anger": 7.0, "disgust": 5.0, "fear": 6.6, "happiness": 6.0, "neutral": 3.0, "sadness": 3.2}
SIM_P_OTHER = 0.3


def simulated_clarity(stimulus: dict[str, Any]) -> float:
    """How recognisable a simulated clip is: 0.3 .. 0.95, from its sha256 (the same clip, the same clarity)."""
    import hashlib

    u = int(hashlib.sha256(str(stimulus.get("sha256", "")).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 0.3 + 0.65 * u


def simulated_rating(question: dict[str, Any], stimulus: dict[str, Any], *, uniform: Any, normal: Any,
                     ability: float = 0.0) -> str:
    """One attentive simulated rater's answer (an option value) to ``question`` (a plan question) about
    ``stimulus`` (a manifest row). ``uniform()`` draws from [0, 1), ``normal(mean, sd)`` from a normal."""
    values = [o["value"] for o in question["options"]]
    truth = stimulus.get("visual_emotion") or stimulus.get("audio_emotion")
    c = simulated_clarity(stimulus)
    if question["type"] != "scale":
        if truth in values and uniform() < min(0.98, max(0.02, c + 0.1 * ability)):
            return truth
        if OTHER in values and uniform() < SIM_P_OTHER:
            return OTHER
        wrong = [v for v in values if v not in (truth, OTHER)]
        return wrong[min(int(uniform() * len(wrong)), len(wrong) - 1)] if wrong else values[0]
    scored = {o["score"]: o["value"] for o in question["options"] if o.get("score") is not None}
    if not scored:
        return values[0]
    lo, hi = min(scored), max(scored)
    if question["id"] == "valence":
        mean = SIM_VALENCE.get(truth, (lo + hi) / 2)
    elif question["id"] == "arousal":
        mean = SIM_AROUSAL.get(truth, (lo + hi) / 2)
    elif question["id"] == "intensity":
        mean = lo + (hi - lo) * (c - 0.1)
    else:
        mean = (lo + hi) / 2 + 0.5 * ability
    score = min(hi, max(lo, round(normal(mean, 1.1))))
    return scored[min(scored, key=lambda s: abs(s - score))]


__all__ = ["KIND", "OTHER", "NormingDesign", "read_design", "build_norming", "plan_questions", "rated_clips",
           "simulated_rating", "simulated_clarity"]
