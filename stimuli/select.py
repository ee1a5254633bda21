"""``emostudy select SET --norms DIR --min-recognition 0.7 [--per-cell N] [--balance identity,emotion] --out NEWSET``:
a new stimulus set of the clips whose norms pass a rule.

The norms are ``DIR/norms.json`` written by ``emostudy norms`` (analysis/norms_report.py). A clip *passes*
when it was rated at least ``min_ratings`` times and its recognition rate (the share of raters who chose
its intended emotion) is at least ``min_recognition``. A clip of the set that was not normed, or whose
normed media file is not the set's (another sha256), never passes; the summary counts them.

Balance: ``balance`` names the fields whose combinations are the *cells* (``identity``, ``emotion``: the
intended emotion, ``source``, ``sentence``, ``intensity``, ``size_variant``); every cell that the normed
clips of the set fill must get the same number of clips: ``per_cell`` when given, else the most that every
cell can give. Within a cell the clips with the highest recognition are kept (ties: the higher Hu, more
ratings, then the id). When a cell has too few passing clips the selection is refused, listing every such
cell with what it has and needs, before anything is written. Without ``balance`` every passing clip is
kept (``per_cell``: the best N of them).

The new set: each kept row of the old manifest with its ``norms`` (manifest schema version 3: n_ratings,
n_hits, recognition and its Wilson interval, modal label and share, other share, Hu, entropy, and the
mean, SD and n of every scale) and a top-level ``selection`` (the rule, the old set's name and manifest
sha256, the norms file's sha256 and study, the counts). Media (and posters) are hard-linked, or copied
across file systems; the old set is never changed or moved. ``NEWSET`` must not exist or be empty.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import click

from stimuli.designs import stimulus_emotion
from stimuli.errors import StimuliError
from stimuli.imports import _place
from stimuli.manifest import Manifest, Stimulus, build_manifest, load_manifest, save_manifest

BALANCE_FIELDS = ("identity", "emotion", "source", "sentence", "intensity", "size_variant")
NORMS_JSON = "norms.json"
# Columns of norms.json's clip records carried into the manifest (plus every "<scale>_mean|_sd|_n").
NORM_KEYS = ("n_ratings", "n_hits", "recognition", "ci_low", "ci_high", "modal_label", "n_modal", "modal_share",
             "other_share", "hu", "entropy_bits")


class SelectError(StimuliError):
    """The norms cannot be read, or the rule cannot fill the balance asked for."""


@dataclass(frozen=True)
class Rule:
    min_recognition: float
    min_ratings: int = 1
    per_cell: int | None = None
    balance: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"min_recognition": self.min_recognition, "min_ratings": self.min_ratings,
                "per_cell": self.per_cell, "balance": list(self.balance)}


@dataclass(frozen=True)
class Selection:
    manifest: Manifest  # the new set's (not yet written when dry)
    kept: tuple[str, ...]
    cells: dict[tuple[str, ...], tuple[int, int]]  # cell -> (passing, kept)
    n_not_normed: int
    n_changed: int
    n_failed: int


def read_norms(folder: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """(norms.json, its sha256) of an ``emostudy norms`` folder; errors name the file and the fix."""
    p = Path(folder)
    p = p / NORMS_JSON if p.is_dir() else p
    if not p.is_file():
        raise SelectError(f"{p}: no norms here; write them with `emostudy norms EXPORT --out DIR` and pass that DIR")
    raw = p.read_bytes()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SelectError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("stimuli"), list):
        raise SelectError(f"{p}: expected the 'stimuli' list of `emostudy norms`")
    for i, r in enumerate(data["stimuli"]):
        if not isinstance(r, dict) or not isinstance(r.get("stimulus_id"), str):
            raise SelectError(f"{p}: stimuli[{i}] has no stimulus_id")
        if "recognition" not in r or "n_ratings" not in r:
            raise SelectError(f"{p}: stimuli[{i}] ({r['stimulus_id']}) has no recognition / n_ratings: the norming "
                              "study needs an emotion question")
    return data, hashlib.sha256(raw).hexdigest()


def _cell(s: Stimulus, fields: Sequence[str]) -> tuple[str, ...]:
    return tuple((stimulus_emotion(s) or "-") if f == "emotion" else (getattr(s, f) or "-") for f in fields)


def _clip_norms(record: dict[str, Any]) -> dict[str, Any]:
    keep = [k for k in record if k in NORM_KEYS or k.rsplit("_", 1)[-1] in ("mean", "sd", "n")
            and not k.startswith("machine")]
    out = {}
    for k in keep:
        v = record[k]
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    return out


def select(manifest: Manifest, norms: dict[str, Any], rule: Rule, out: str | os.PathLike, *,
           norms_sha256: str = "") -> Selection:
    """Choose the clips (see the module docstring). Returns the new manifest rooted at ``out``, unwritten."""
    if not 0 <= rule.min_recognition <= 1:
        raise SelectError(f"--min-recognition {rule.min_recognition!r} must be a share between 0 and 1 (e.g. 0.7)")
    bad = [f for f in rule.balance if f not in BALANCE_FIELDS]
    if bad:
        raise SelectError(f"--balance {bad[0]!r} is not a field; use some of {', '.join(BALANCE_FIELDS)}")
    if rule.per_cell is not None and rule.per_cell < 1:
        raise SelectError(f"--per-cell {rule.per_cell} must be at least 1")
    by_id = {r["stimulus_id"]: r for r in norms["stimuli"]}
    normed = [s for s in manifest.stimuli if s.stimulus_id in by_id]
    if not normed:
        raise SelectError(f"none of the {len(manifest)} clips of {manifest.root} is in the norms (they rate "
                          f"{len(by_id)} other clips): give the set that the norming study showed")
    changed = {s.stimulus_id for s in normed if by_id[s.stimulus_id].get("media_sha256")
               and by_id[s.stimulus_id]["media_sha256"] != s.sha256}

    def passes(s: Stimulus) -> bool:
        r = by_id[s.stimulus_id]
        rec = r.get("recognition")
        return (s.stimulus_id not in changed and (r.get("n_ratings") or 0) >= rule.min_ratings and rec is not None
                and rec >= rule.min_recognition)

    def rank(s: Stimulus) -> tuple[Any, ...]:
        r = by_id[s.stimulus_id]
        return (-(r.get("recognition") or 0.0), -(r.get("hu") or 0.0), -(r.get("n_ratings") or 0), s.stimulus_id)

    cells: dict[tuple[str, ...], list[Stimulus]] = defaultdict(list)
    for s in normed:
        cells.setdefault(_cell(s, rule.balance), [])  # every cell the normed clips fill, passing or not
        if passes(s):
            cells[_cell(s, rule.balance)].append(s)
    if rule.balance:
        need = rule.per_cell if rule.per_cell is not None else min(len(v) for v in cells.values())
        short = sorted((k, len(v)) for k, v in cells.items() if len(v) < max(need, 1))
        if short:
            what = " x ".join(rule.balance)
            listed = "; ".join(f"{' x '.join(k)}: {n} pass, need {max(need, 1)}" for k, n in short)
            raise SelectError(
                f"the rule (recognition >= {rule.min_recognition:g}, at least {rule.min_ratings} rating(s)) cannot fill "
                f"{len(cells)} {what} cells with {max(need, 1)} clip(s) each: {len(short)} cell(s) fall short: {listed}. "
                "Lower --min-recognition or --per-cell, balance over fewer fields, or make and norm more clips "
                "for those cells")
        kept = [s for k in sorted(cells) for s in sorted(cells[k], key=rank)[:need]]
    else:
        passing = sorted((s for v in cells.values() for s in v), key=rank)
        if not passing:
            raise SelectError(f"no clip passes the rule (recognition >= {rule.min_recognition:g}, at least "
                              f"{rule.min_ratings} rating(s)); the best normed clip has "
                              f"{max((by_id[s.stimulus_id].get('recognition') or 0) for s in normed):.2f}")
        kept = passing[:rule.per_cell] if rule.per_cell is not None else passing
    kept_ids = {s.stimulus_id for s in kept}
    rows = [replace(s, norms=_clip_norms(by_id[s.stimulus_id])) for s in manifest.stimuli if s.stimulus_id in kept_ids]
    n_failed = sum(1 for s in normed if not passes(s) and s.stimulus_id not in changed)
    selection = {
        "rule": rule.as_dict(), "from_set": manifest.name, "from_manifest_sha256": manifest.sha256(),
        "norms_sha256": norms_sha256, "norms_study": str((norms.get("input") or {}).get("study", "")),
        "n_set": len(manifest), "n_normed": len(normed), "n_passing": sum(len(v) for v in cells.values()),
        "n_selected": len(rows), "n_cells": len(cells) if rule.balance else None,
    }
    new = build_manifest(out, rows, name=f"{manifest.name or manifest.root.name}-selected",
                         description=(f"{manifest.description} | " if manifest.description else "")
                         + f"selected by emostudy select: recognition >= {rule.min_recognition:g}",
                         selection=selection)
    counts = {k: (len(v), sum(1 for s in v if s.stimulus_id in kept_ids)) for k, v in cells.items()}
    return Selection(manifest=new, kept=tuple(s.stimulus_id for s in rows), cells=counts,
                     n_not_normed=len(manifest) - len(normed), n_changed=len(changed), n_failed=n_failed)


def write_selection(old: Manifest, sel: Selection) -> dict[str, int]:
    """Place the media (hard link, else copy) and write the new manifest; the old set is left as it is."""
    out = sel.manifest.root
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SelectError(f"{out}: already exists and is not an empty folder; select writes a new set and never "
                          "overwrites one: choose another --out")
    if out.resolve() == old.root.resolve():
        raise SelectError(f"{out}: is the set itself; choose another --out")
    counts = {"linked": 0, "copied": 0}
    for s in sel.manifest.stimuli:
        for rel in (s.media, s.poster):
            if rel is None:
                continue
            src, dst = old.root / rel, out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                counts[_place(src, dst, "auto")] += 1
    save_manifest(sel.manifest)
    load_manifest(out, check_media=True)  # the new set loads and its media match
    return counts


@click.command("select")
@click.argument("set_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--norms", "norms_dir", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder written by `emostudy norms` (its norms.json).")
@click.option("--min-recognition", type=float, required=True,
              help="Keep clips whose recognition rate (share of raters choosing the intended emotion) is at least this.")
@click.option("--min-ratings", type=click.IntRange(min=0), default=1, show_default=True,
              help="Keep only clips rated at least this often.")
@click.option("--per-cell", type=click.IntRange(min=1), default=None,
              help="Clips per balance cell (default: the most every cell can give).")
@click.option("--balance", default="", help=f"Comma-separated fields whose combinations must hold equally many clips "
                                            f"({', '.join(BALANCE_FIELDS)}), e.g. identity,emotion.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The new set's folder (must not exist, or be empty).")
@click.option("--dry-run", is_flag=True, help="Show what would be kept; write nothing.")
def select_command(set_dir: Path, norms_dir: Path, min_recognition: float, min_ratings: int, per_cell: int | None,
                   balance: str, out: Path, dry_run: bool) -> None:
    """A new stimulus set of the clips of SET_DIR whose norms pass the rule (media linked or copied, never moved)."""
    fields = tuple(f.strip() for f in balance.split(",") if f.strip())
    try:
        manifest = load_manifest(set_dir, check_media=True)
        norms, sha = read_norms(norms_dir)
        sel = select(manifest, norms, Rule(min_recognition=min_recognition, min_ratings=min_ratings,
                                           per_cell=per_cell, balance=fields), out, norms_sha256=sha)
        click.echo(f"{len(sel.kept)} of {len(manifest)} clips kept ({sel.n_failed} below the rule, "
                   f"{sel.n_not_normed} not normed, {sel.n_changed} changed since they were normed)")
        if fields:
            for cell, (n_pass, n_kept) in sorted(sel.cells.items()):
                click.echo(f"  {' x '.join(cell)}: {n_pass} pass, {n_kept} kept")
        if dry_run:
            click.echo("dry run: nothing written")
            return
        counts = write_selection(manifest, sel)
    except StimuliError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new set: {out / 'manifest.json'} ({counts['linked']} media hard-linked, {counts['copied']} copied)")
