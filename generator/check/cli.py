"""`emostudy check SET`: thin click command over ``generator.check.run.check_set``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from generator.check.clip import MeasureSettings
from generator.check.report import flag_counts
from generator.check.run import Thresholds

_T = Thresholds()


def threshold_options(f):
    """The flagging thresholds as options (shared with `emostudy generate --check`)."""
    opts = [
        click.option("--min-face-fraction", type=click.FloatRange(0, 1), default=_T.min_face_fraction, show_default=True,
                     help="Flag when a face is found in fewer of the frames."),
        click.option("--min-plausible-fraction", type=click.FloatRange(0, 1), default=_T.min_plausible_fraction,
                     show_default=True, help="Flag when fewer frames have plausible landmarks."),
        click.option("--max-identity-distance", type=click.FloatRange(0), default=_T.max_identity_distance,
                     show_default=True, help="Flag when a compared frame is further from the reference face "
                                             "(dlib's same-person threshold is 0.6)."),
        click.option("--min-sync-corr", type=float, default=_T.min_sync_corr, show_default=True,
                     help="Flag when mouth opening and speech envelope correlate less (at the best lag)."),
        click.option("--max-sync-lag", type=click.IntRange(0), default=_T.max_sync_lag, show_default=True,
                     help="Flag when the best lip-sync lag is larger (frames)."),
        click.option("--min-rater-prob", type=click.FloatRange(0, 1), default=_T.min_rater_prob, show_default=True,
                     help="Flag when the emotion rater's top class differs from the intended emotion and "
                          "gives it less probability."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def thresholds_from(kw: dict) -> Thresholds:
    return Thresholds(**{k: kw.pop(k) for k in list(kw) if k in Thresholds.__dataclass_fields__})


def print_summary(console, report) -> None:
    from rich.table import Table  # optional heavy dependency: imported only when used

    n, bad = len(report.records), report.flagged
    console.print(f"[bold]{n}[/bold] clips checked ({report.measured} measured, {report.reused} reused from an "
                  f"earlier run) in {report.seconds:.1f} s; [bold]{len(bad)}[/bold] flagged -> "
                  f"{report.out / 'qc.html'}")
    if bad:
        console.print("clips per flag: " + ", ".join(f"{k} {v}" for k, v in flag_counts(report.records).items()))
        t = Table("clip", "source", "visual", "audio", "reasons", title="flagged clips")
        for r in bad[:30]:
            t.add_row(r["stimulus_id"], str(r.get("source", "")), str(r.get("visual_emotion")),
                      str(r.get("audio_emotion")), "; ".join(r["reasons"]))
        console.print(t)
        if len(bad) > 30:
            console.print(f"... and {len(bad) - 30} more in qc.html")


@click.command(name="check")
@click.argument("set_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of qc.json, qc.html and the contact sheets (default: SET/qc).")
@click.option("--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Processes checking clips in parallel (0 = one per core).")
@click.option("--faces", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="The source photos (files or folders) of generated clips, found by their sha256 in the "
                   "manifest; a clip whose photo is not given is compared with its own first frame.")
@click.option("--identity-frames", type=click.IntRange(min=1), default=MeasureSettings.identity_frames,
              show_default=True, help="Frames per clip compared with the reference face.")
@click.option("--no-manifest", is_flag=True, help="Do not record the results in the set's manifest.json.")
@threshold_options
def check_command(set_dir: Path, out: Path | None, jobs: int, faces: tuple[Path, ...], identity_frames: int,
                  no_manifest: bool, **kw) -> None:
    """Measure every clip of the stimulus set SET and flag the doubtful ones (see docs/running-a-study.md)."""
    from rich.console import Console  # optional heavy dependency: imported only when used

    from generator.check.run import check_set  # lazy: keeps the command table light
    from generator.errors import GeneratorError  # lazy: keeps the command table light
    from stimuli.errors import StimuliError  # lazy: keeps the command table light

    console = Console(highlight=False, soft_wrap=True)
    try:
        report = check_set(set_dir, out, jobs=jobs or os.cpu_count() or 1, faces=faces,
                           thresholds=thresholds_from(kw),
                           settings=MeasureSettings(identity_frames=identity_frames),
                           update_manifest=not no_manifest, console=console)
    except (GeneratorError, StimuliError) as exc:
        raise click.ClickException(str(exc)) from None
    print_summary(console, report)
