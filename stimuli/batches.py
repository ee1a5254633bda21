"""The pieces every design kind builds its batches from: a batch and its items, the emotion a design
balances on, batch ids, the checks of a set's ids and a design's numbers, the order rule and its reader, and
the shuffle that keeps each consistency repeat a minimum gap after its original.

``designs`` (the paper's two tasks and the dispatch), ``factors``, ``trial_list`` and ``norming`` stand on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from stimuli.errors import DesignError
from stimuli.manifest import Stimulus
from stimuli.rng import StableRng

ORDERS = ("per-batch", "per-participant")
_MAX_ORDER_TRIES = 20_000


@dataclass(frozen=True)
class BatchItem:
    position: int
    stimulus_id: str
    repeat_of: int | None = None  # position of the original in the same batch


@dataclass(frozen=True)
class Batch:
    batch_id: str
    index: int
    items: tuple[BatchItem, ...]

    @property
    def originals(self) -> tuple[BatchItem, ...]:
        return tuple(i for i in self.items if i.repeat_of is None)

    @property
    def repeats(self) -> tuple[BatchItem, ...]:
        return tuple(i for i in self.items if i.repeat_of is not None)


def stimulus_emotion(s: Stimulus) -> str | None:
    """The emotion a design balances on: visual, or audio when the visual emotion is null."""
    return s.visual_emotion if s.visual_emotion is not None else s.audio_emotion


def clip_key(s: Stimulus) -> tuple[str, str, str, str, str | None, str | None]:
    """What makes two stimuli the same video to a participant (apart from its size variant)."""
    return (s.source, s.identity, s.sentence, s.intensity or "", s.visual_emotion, s.audio_emotion)


def batch_id(index: int) -> str:
    return f"b{index + 1:02d}"


def _check_ids(stimuli: Sequence[Stimulus]) -> None:
    seen: set[str] = set()
    dups = sorted({s.stimulus_id for s in stimuli if s.stimulus_id in seen or seen.add(s.stimulus_id)})
    if dups:
        raise DesignError(f"duplicate stimulus ids {', '.join(dups[:5])}: ids must be unique within a set")


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DesignError(f"design '{name}' is {value!r}: must be an integer >= {minimum}")


def read_order(t: Any, default: str) -> str:
    """``order`` of a spec's ``[design]`` table (``stimuli.spec._Table``); the error names the key."""
    order = t.text("order", default)
    if order not in ORDERS:
        raise t.error("order", f"{order!r} is not one of {', '.join(ORDERS)} (per-batch: every participant of a "
                               "batch sees its items in the plan's order, as in the paper; per-participant: each "
                               "participant gets an own order, drawn by the server from the plan's seed)")
    return order


# --------------------------------------------------------------------------------------------- order

def order_with_repeats(originals: Sequence[str], repeated: Sequence[str], min_gap: int,
                       rng: StableRng) -> tuple[BatchItem, ...]:
    """Shuffle originals + one extra copy of each id in ``repeated`` so that the two showings of a stimulus
    are at least ``min_gap`` positions apart; the first showing is the original.

    Rejection sampling over uniform shuffles, so every valid order is equally likely.
    """
    if len(set(repeated)) != len(repeated) or not set(repeated) <= set(originals):
        raise DesignError("internal: repeats must be distinct batch items")
    if len(set(originals)) != len(originals):
        dup = [k for k, n in Counter(originals).items() if n > 1]
        raise DesignError(f"stimulus {dup[0]!r} appears twice in one batch; a batch shows each stimulus "
                          "once (plus its consistency repeat)")
    tokens = list(originals) + list(repeated)
    rep = set(repeated)
    for _ in range(_MAX_ORDER_TRIES):
        rng.shuffle(tokens)
        if _gaps_ok(tokens, rep, min_gap):
            break
    else:
        raise DesignError(
            f"cannot place {len(repeated)} repeats at least {min_gap} positions after their originals in a "
            f"batch of {len(tokens)} items; lower min_repeat_gap or repeat fewer items")
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for pos, sid in enumerate(tokens):
        items.append(BatchItem(position=pos, stimulus_id=sid, repeat_of=seen.get(sid)))
        seen.setdefault(sid, pos)
    return tuple(items)


def _gaps_ok(tokens: Sequence[str], repeated: set[str], min_gap: int) -> bool:
    first: dict[str, int] = {}
    for pos, sid in enumerate(tokens):
        if sid in first:
            if pos - first[sid] < min_gap:
                return False
        elif sid in repeated:
            first[sid] = pos
    return True
