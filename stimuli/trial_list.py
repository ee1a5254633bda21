"""A trial list: the batches and their trials written out in a CSV, the convention of Gorilla, jsPsych and
PsychoPy users, for any design the factor language (stimuli.factors) does not express.

``[design] trial_list = "trials.csv"`` (a path relative to the spec file), with ``order`` and
``min_repeat_gap`` as in any design. One row per trial::

    batch,stimulus_id,source,visual_emotion,audio_emotion,identity,sentence,intensity,size_variant,repeat_of
    b01,c007,,,,,,,,
    b01,,OURS,anger,sadness,1001,,,,          <- an attribute filter: one matching clip is drawn (seeded)
    b01,,,,,,,,,1                             <- a consistency repeat of the batch's trial 1

``batch`` (required): the batch's label; batches are numbered in the order they first appear. A trial names
its clip by ``stimulus_id`` or by attribute columns (every non-empty one must match; among the clips that
match and are not yet in the batch, one is drawn from the plan's seed). ``repeat_of`` (optional): the
1-based trial number, within the batch, of the original this row repeats (the row's clip columns empty, or
naming the same clip). An optional ``trial`` column numbers the rows of a batch 1, 2, ... as a check.
Every problem is reported at once, each with its row (the file's line) and column, before anything is
written.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from stimuli.batches import ORDERS, Batch, BatchItem, _check_ids, batch_id
from stimuli.errors import DesignError, SpecError
from stimuli.manifest import Stimulus
from stimuli.rng import StableRng

FILTER_COLUMNS = ("source", "visual_emotion", "audio_emotion", "identity", "sentence", "intensity", "size_variant")
COLUMNS = ("batch", "trial", "stimulus_id", *FILTER_COLUMNS, "repeat_of")
_MAX_ERRORS = 25


@dataclass(frozen=True)
class TrialListDesign:
    """``[design] trial_list``: the rows of the CSV (dicts of its columns, empty cells as ""), where it came
    from and its sha256 (recorded in the plan)."""

    name: str
    rows: tuple[tuple[tuple[str, str], ...], ...]
    sha256: str
    order: str = "per-batch"
    min_repeat_gap: int = 2

    kind = "trial-list"

    def as_plan(self) -> dict[str, Any]:
        return {"trial_list": self.name, "trial_list_sha256": self.sha256, "order": self.order,
                "min_repeat_gap": self.min_repeat_gap}


def read_trial_list(t: Any, spec_where: str) -> TrialListDesign:
    """``[design]`` with ``trial_list`` from the spec's ``_Table`` ``t``; the CSV's structure is checked here
    (columns), its rows against the set when the plan is compiled."""
    rel = t.text("trial_list")
    base = Path(spec_where).parent if Path(spec_where).is_file() else Path.cwd()
    path = (base / rel) if not Path(rel).is_absolute() else Path(rel)
    if not path.is_file():
        raise t.error("trial_list", f"{rel!r}: no such file (looked for {path}); the path is relative to the spec")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise t.error("trial_list", f"{path}: not UTF-8 text (save the CSV as UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise SpecError(f"{path}: column {unknown[0]!r} is not a trial-list column; columns: {', '.join(COLUMNS)}")
    if "batch" not in header:
        raise SpecError(f"{path}: the column 'batch' is missing (the batch of each trial); columns: "
                        f"{', '.join(COLUMNS)}")
    if "stimulus_id" not in header and not set(FILTER_COLUMNS) & set(header):
        raise SpecError(f"{path}: no column names a clip: give stimulus_id or attribute columns "
                        f"({', '.join(FILTER_COLUMNS)})")
    rows = tuple(tuple((k.strip(), (v or "").strip()) for k, v in r.items() if k is not None) for r in reader)
    if not rows:
        raise SpecError(f"{path}: no trials (only a header)")
    order = t.text("order", "per-batch")
    if order not in ORDERS:
        raise t.error("order", f"{order!r} is not one of {', '.join(ORDERS)}")
    return TrialListDesign(name=path.name, rows=rows, sha256=hashlib.sha256(raw).hexdigest(), order=order,
                           min_repeat_gap=t.int("min_repeat_gap", 2, 1))


def build_trial_list(stimuli: Sequence[Stimulus], d: TrialListDesign, seed: int) -> tuple[tuple[Any, ...], list[str]]:
    """The batches the trial list writes out, validated against the set. Returns (batches, notes)."""
    _check_ids(stimuli)
    by_id = {s.stimulus_id: s for s in stimuli}
    errors: list[str] = []
    batches: dict[str, list[tuple[str, int | None]]] = {}
    rng = StableRng(seed, "trial-list")
    drawn = 0

    def err(line: int, column: str | None, msg: str) -> None:
        errors.append(f"{d.name} row {line}" + (f", column {column}" if column else "") + f": {msg}")

    for n, raw in enumerate(d.rows):
        row = dict(raw)
        line = n + 2  # the header is line 1
        bid = row.get("batch", "")
        if not bid:
            err(line, "batch", "empty; every trial names its batch")
            continue
        items = batches.setdefault(bid, [])
        pos = len(items)
        if row.get("trial"):
            if not row["trial"].isdigit() or int(row["trial"]) != pos + 1:
                err(line, "trial", f"{row['trial']!r}, expected {pos + 1} (trials of batch {bid} numbered 1, 2, ... "
                                   "in file order)")
        rep_text = row.get("repeat_of", "")
        rep: int | None = None
        if rep_text:
            if not rep_text.isdigit() or not 1 <= int(rep_text) <= pos:
                err(line, "repeat_of", f"{rep_text!r} must be the number (1..{pos}) of an earlier trial of batch {bid}")
                items.append(("", None))
                continue
            rep = int(rep_text) - 1
            orig_id, orig_rep = items[rep]
            if orig_rep is not None:
                err(line, "repeat_of", f"trial {rep_text} of batch {bid} is itself a repeat; repeat its original "
                                       f"(trial {orig_rep + 1})")
            sid = row.get("stimulus_id", "")
            if sid and sid != orig_id:
                err(line, "stimulus_id", f"{sid!r} differs from the clip of trial {rep_text} ({orig_id!r}) it repeats")
            if any(items[k] == (orig_id, rep) for k in range(pos)):
                err(line, "repeat_of", f"trial {rep_text} of batch {bid} is repeated twice; one repeat per original")
            items.append((orig_id, rep))
            continue
        sid = row.get("stimulus_id", "")
        filters = {c: row[c] for c in FILTER_COLUMNS if row.get(c)}
        if sid:
            if sid not in by_id:
                err(line, "stimulus_id", f"{sid!r} is not a stimulus of the set")
                items.append(("", None))
                continue
            s = by_id[sid]
            bad = [c for c, v in filters.items() if str(getattr(s, c) or "") != v]
            if bad:
                err(line, bad[0], f"{filters[bad[0]]!r} but stimulus {sid} has {getattr(s, bad[0])!r}")
        elif filters:
            used = {i for i, _ in items}
            match = sorted((s for s in stimuli if all(str(getattr(s, c) or "") == v for c, v in filters.items())
                            and s.stimulus_id not in used), key=lambda s: s.stimulus_id)
            if not match:
                what = ", ".join(f"{c}={v}" for c, v in filters.items())
                err(line, ", ".join(filters), f"no clip of the set (not already in batch {bid}) has {what}")
                items.append(("", None))
                continue
            sid = rng.child(f"{bid}/{line}").choice(match).stimulus_id
            drawn += 1
        else:
            err(line, "stimulus_id", "empty, and no attribute column is filled: name the clip or its attributes "
                                     "(or mark the row with repeat_of)")
            items.append(("", None))
            continue
        if any(i == sid and r is None for i, r in items):
            err(line, "stimulus_id", f"{sid!r} is already an original trial of batch {bid}; a second showing is a "
                                     "repeat: fill repeat_of with that trial's number")
        items.append((sid, None))
    if errors:
        more = f" (and {len(errors) - _MAX_ERRORS} more)" if len(errors) > _MAX_ERRORS else ""
        raise DesignError(f"the trial list does not fit the set: {len(errors)} problem(s){more}: "
                          + "; ".join(errors[:_MAX_ERRORS]))
    out = []
    for b, (bid, items) in enumerate(batches.items()):
        out.append(Batch(batch_id=batch_id(b), index=b,
                         items=tuple(BatchItem(position=p, stimulus_id=sid, repeat_of=rep)
                                     for p, (sid, rep) in enumerate(items))))
    labels = ", ".join(f"{b.batch_id} = {lab}" for b, lab in zip(out, batches) if b.batch_id != lab)
    notes = [f"trial list {d.name} (sha256 {d.sha256[:12]}): {len(out)} batch(es), "
             f"{sum(len(b.items) for b in out)} trials" + (f", {drawn} drawn by attribute" if drawn else "")
             + (f"; batches {labels}" if labels else "")]
    return tuple(out), notes

