"""`emostudy prepare crema-d`: a thin click command over ``generator.data.prepare``.

    emostudy prepare crema-d --root CREMA-D --out corpus --jobs 2

The rich console is taken from ``ctx.obj["console"]`` when the caller gives one (tests), else stderr.
``_console`` and ``_size`` are shared with the commands of ``generator.evaluate.cli``.
"""

from __future__ import annotations

from pathlib import Path

import click

from generator.errors import GeneratorError
from stimuli.errors import StimuliError


def _console(ctx: click.Context):
    from rich.console import Console  # lazy: keeps the command table light

    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("console") is not None:
        return obj["console"]
    return Console(stderr=True, highlight=False)


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give WIDTHxHEIGHT, e.g. 128x128 or 96x128") from None
    return w, h


@click.group(name="prepare")
def prepare_group() -> None:
    """Prepare training data (resample, detect, align) into a corpus folder."""


@prepare_group.command(name="crema-d")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="CREMA-D folder holding VideoFlash/ and AudioWAV/.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Corpus folder (index.jsonl + clips/); clips already there are skipped (resume).")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(1), help="Worker processes.")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with columns actor,split or clip_id,split (train|val|test). Default: 70/15/15 by actor.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the actor split.")
@click.option("--size", default="128x128", show_default=True, help="Aligned frame size WIDTHxHEIGHT (96x128: baseline).")
@click.option("--face-policy", type=click.Choice(["largest", "single"]), default="largest", show_default=True,
              help="Which face when the first frame shows several: the largest, or refuse the clip.")
@click.option("--landmarks", type=click.Choice(["aligned", "transform"]), default="aligned", show_default=True,
              help="Detect landmarks on every aligned frame, or on the original frames mapped by the clip's transform.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N clips (by name), to try things out.")
@click.pass_context
def prepare_crema_command(ctx: click.Context, root: Path, out: Path, jobs: int, split_file: Path | None, seed: int,
                          size: str, face_policy: str, landmarks: str, limit: int | None) -> None:
    """CREMA-D -> 25 fps, 8 kHz, aligned 128x128 BGR frames, landmarks, speaker-independent splits."""
    from generator.data.prepare import PrepareOptions, prepare_crema  # lazy: keeps the command table light

    console = _console(ctx)
    try:
        options = PrepareOptions(size=_size(size), landmarks=landmarks, face_policy=face_policy)
        prepare_crema(root, out, jobs=jobs, split_file=split_file, seed=seed, options=options, limit=limit,
                      console=console)
    except (GeneratorError, StimuliError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
