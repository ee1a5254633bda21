"""`emostudy generate`: a whole stimulus set from faces and speech (thin over generator.produce.batch).
    emostudy generate --design mismatched --faces DIR --speech DIR --backend warp --repeats 2 --seed N --out SET
    emostudy generate --design mismatched --recordings DIR --with-gt --out SET
    emostudy generate --design continuum --from neutral --to happiness --steps 5 --faces F --speech S --out SET
    emostudy generate --design jobs --jobs jobs.csv --out SET
    emostudy generate ... --shard 0/4 ; emostudy generate merge SET [OTHER_SHARD_FOLDERS...]
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from generator.errors import GeneratorError
from stimuli.errors import StimuliError


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group(name="generate", invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--design", type=click.Choice(["matched", "mismatched", "factorial", "continuum", "jobs"]),
              help="Which stimuli to make (see the module docs of generator.produce.batch).")
@click.option("--faces", multiple=True, type=click.Path(), help="Face photos or videos (first frame): files or folders.")
@click.option("--speech", multiple=True, type=click.Path(),
              help="Speech files (wav, mp3, flac, m4a, ... or videos): files or folders.")
@click.option("--recordings", multiple=True, type=click.Path(),
              help="Recorded videos: face (first frame) and speech from the same recording.")
@click.option("--labels", type=click.Path(), default=None,
              help="CSV file,emotion[,identity,sentence,intensity,synthetic] (else CREMA-D names: 1001_DFA_ANG_XX.wav).")
@click.option("--face-labels", type=click.Path(), default=None,
              help="Expression photos: CSV file,identity,emotion - each clip starts from the person's photo of its "
                   "visual emotion; speech moves only the mouth, blinks and head.")
@click.option("--expression-photos", is_flag=True,
              help="Expression photos named like KDEF (AF01ANS.JPG) or RaFD (Rafd090_01_..._angry_frontal.jpg).")
@click.option("--recombine", is_flag=True,
              help="With --recordings: re-time the video of each visual emotion to the audio of each audio emotion "
                   "of the same speaker and sentence (DTW on MFCC); matched clips are the recordings themselves.")
@click.option("--jobs", "jobs_csv", type=click.Path(), default=None, help="Explicit job list for --design jobs.")
@click.option("--backend", default="warp", show_default=True, help="Renderer: warp or neural.")
@click.option("--checkpoint", type=click.Path(), default=None, help="Checkpoint of the neural backend.")
@click.option("--device", default=None, help="Device of the neural backend (cpu, cuda, cuda:1).")
@click.option("--components", default=None,
              help="warp only: comma list of expression,mouth,life ('mouth,life' = lips only; 'none' = still face).")
@click.option("--face-policy", type=click.Choice(["single", "largest"]), default=None,
              help="Photos with several faces: refuse them (single, the default) or use the largest face.")
@click.option("--force", is_flag=True,
              help="Render photos the face gate refused (too small, rotated, cut off, ...); recorded in the manifest.")
@click.option("--template", type=click.Choice(["authors", "ours"]), default=None,
              help="neural only: the alignment crop (default: authors for the authors' state dict, ours for ours).")
@click.option("--rest", type=click.Choice(["neutral", "photo"]), default=None,
              help="warp only: start from a neutral mouth (close a smiling photo's lips; the default) or the photo as it is.")
@click.option("--repeats", default=1, show_default=True, type=int, help="Repetitions of the design.")
@click.option("--seed", default=0, show_default=True, type=int, help="Run seed (per-item seeds derive from it).")
@click.option("--emotions", default=",".join(("anger", "disgust", "fear", "happiness", "neutral", "sadness")),
              show_default=True, help="matched, mismatched: the set's emotions (two or more; speech of other "
                                       "emotions is left out); factorial: the visual emotions.")
@click.option("--from", "from_emotion", default=None, help="continuum: the first emotion.")
@click.option("--to", "to_emotion", default=None, help="continuum: the second emotion.")
@click.option("--steps", default=5, show_default=True, type=int, help="continuum: blend steps, ends included.")
@click.option("--intensity", default=1.0, show_default=True, type=float, help="Renderer intensity in [0, 1].")
@click.option("--size", default=None, type=int,
              help="Rendered frame size in px. warp: default the face's own resolution (128-512 px, not upscaled); "
                   "neural: 128 (as trained).")
@click.option("--source", default=None, help="Condition label in the manifest (default from the backend: WARP, LIPS, STILL, OURS).")
@click.option("--with-gt", is_flag=True, help="With --recordings: also the aligned recordings (GT) at 128x128 and 96x128.")
@click.option("--workers", default=0, type=int, help="Processes (0 = all cores on CPU, 1 on a GPU).")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Clips per batch when the renderer batches (GPU).")
@click.option("--shard", default=None, help="i/N: make only the i-th of N parts (0-based); join them with `generate merge`.")
@click.option("--name", default=None, help="Name of the set (default: the folder's name).")
@click.option("--dry-run", is_flag=True, help="List the jobs (and which are already done) and stop.")
@click.option("--out", type=click.Path(), default=None, help="Output folder of the set.")
@click.option("--check", "run_check", is_flag=True,
              help="Then check the set by machine (`emostudy check SET --faces ...`; report in SET/qc).")
@click.pass_context
def generate_command(ctx: click.Context, **kw: Any) -> None:
    """Produce a whole stimulus set from faces and speech (resumable; see --dry-run)."""
    if ctx.invoked_subcommand is not None:
        return
    run_check = kw.pop("run_check")
    if run_check and kw["shard"]:
        raise click.UsageError("--check checks a whole set: run `emostudy check SET` after `generate merge`")
    from generator.produce import batch as P  # lazy: keeps the command table light

    if not kw["design"]:
        raise click.UsageError("give --design (matched, mismatched, factorial, continuum or jobs)")
    if not kw["out"]:
        raise click.UsageError("give --out SET (the folder of the stimulus set)")
    continuum = None
    if kw["from_emotion"] or kw["to_emotion"]:
        if not (kw["from_emotion"] and kw["to_emotion"]):
            raise click.UsageError("a continuum needs both --from and --to")
        continuum = (kw["from_emotion"], kw["to_emotion"])
    from generator.renderers import BACKENDS  # lazy: keeps the command table light

    # Checked before anything is planned or written: a bad backend would otherwise leave an empty set behind,
    # and neural without a checkpoint crashed with a TypeError.
    if kw["backend"] not in BACKENDS:
        raise click.ClickException(f"unknown renderer backend {kw['backend']!r}: use one of {', '.join(BACKENDS)}")
    if kw["backend"] == "neural" and not kw["checkpoint"]:
        raise click.ClickException("--backend neural needs --checkpoint PATH (a generator checkpoint)")
    options: dict[str, Any] = {}
    if kw["checkpoint"]:
        options["checkpoint"] = kw["checkpoint"]
    if kw["device"]:
        options["device"] = kw["device"]
    if kw["face_policy"]:
        options["policy"] = kw["face_policy"]
    if kw["force"]:
        options["force"] = True
    if kw["rest"]:
        if kw["backend"] != "warp":
            raise click.ClickException("--rest applies to --backend warp only")
        options["rest"] = kw["rest"]
    if kw["template"]:
        if kw["backend"] != "neural":
            raise click.ClickException("--template chooses the neural backend's crop; --backend warp uses its own")
        options["template"] = kw["template"]
    if kw["components"] is not None:
        text = kw["components"].strip().lower()
        options["components"] = () if text in ("", "none") else tuple(c.strip() for c in text.split(",") if c.strip())
    photos = bool(kw["face_labels"] or kw["expression_photos"])
    if photos and kw["backend"] == "warp":
        from generator.produce.photos import PHOTO_COMPONENTS  # lazy: keeps the command table light

        if "expression" in options.get("components", ()):
            raise click.ClickException("expression photos carry the expression: leave 'expression' out of "
                                       "--components (the default is mouth,life)")
        options.setdefault("components", PHOTO_COMPONENTS)
        options.setdefault("rest", "photo")  # the posed mouth is part of the expression: keep it
    try:
        design = P.DesignOptions(
            design=kw["design"], faces=kw["faces"], speech=kw["speech"], recordings=kw["recordings"],
            labels=kw["labels"], jobs_csv=kw["jobs_csv"], repeats=kw["repeats"], seed=kw["seed"],
            emotions=tuple(e.strip() for e in kw["emotions"].split(",") if e.strip()), continuum=continuum,
            steps=kw["steps"], intensity=kw["intensity"], with_gt=kw["with_gt"],
            face_labels=kw["face_labels"], expression_photos=kw["expression_photos"])
        size = kw["size"] if kw["size"] is not None else (0 if kw["backend"] == "warp" else 128)  # 0: the face's own
        spec = P.RendererSpec(backend=kw["backend"], options=options, size=size,
                              source=kw["source"] or ("PHOTO" if photos else None))
        shard = P.parse_shard(kw["shard"])
        if kw["recombine"]:
            from generator.produce.recombine import plan_recombined  # lazy: keeps the command table light

            jobs = plan_recombined(design)
        elif photos:
            from generator.produce.photos import plan_photo_jobs  # lazy: keeps the command table light

            notes: list[str] = []
            jobs = plan_photo_jobs(design, notes=notes)
            for note in notes:
                click.echo(f"note: {note}", err=True)
        else:
            jobs = P.plan_jobs(design)
        items = P.plan_items(jobs, spec, kw["seed"], shard=shard)
        if kw["dry_run"]:
            rows = P.describe_jobs(items, P.done_ids(kw["out"], shard))
            for row in rows:
                click.echo(json.dumps(row, sort_keys=True))
            todo = sum(r["status"] == "todo" for r in rows)
            click.echo(f"{len(rows)} jobs ({todo} to do) for {kw['out']}; nothing written (dry run)", err=True)
            from generator.produce.gate import gate_line, gate_photos  # lazy: keeps the command table light

            faces = [it.job.face for it in items if it.job.kind == "render" and it.stimulus_id not in
                     {r["stimulus_id"] for r in rows if r["status"] == "done"}]
            gated = gate_photos(faces, policy=kw["face_policy"] or "single", force=kw["force"])
            for row in gated:
                click.echo(gate_line(row), err=True)
            refused = sum(r["status"] in ("refused", "unreadable") for r in gated)
            click.echo(f"face gate: {len(gated) - refused} of {len(gated)} photo(s) would render"
                       + (" (see the reasons above; --force renders refused ones)" if refused else ""), err=True)
            return
        record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
        summary = P.produce(items, kw["out"], spec, shard=shard, workers=kw["workers"] or None,
                            batch_size=kw["batch_size"], name=kw["name"],
                            description=f"emostudy generate --design {kw['design']}", options=record)
    except (GeneratorError, StimuliError) as exc:
        raise _fail(exc) from None
    if summary.failed:
        click.echo(f"{summary.failed} of {summary.total} items failed", err=True)
        ctx.exit(1)
    if run_check:
        from rich.console import Console  # optional heavy dependency: imported only when used

        from generator.check.cli import print_summary  # lazy: keeps the command table light
        from generator.check.run import check_set  # lazy: keeps the command table light

        console = Console(highlight=False, soft_wrap=True)
        try:
            report = check_set(kw["out"], jobs=kw["workers"] or os.cpu_count() or 1,
                               faces=kw["faces"], console=console)
        except (GeneratorError, StimuliError) as exc:
            raise _fail(exc) from None
        print_summary(console, report)


@generate_command.command(name="merge")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.argument("others", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--name", default=None, help="Name of the merged set (default: the folder's name).")
def merge_command(out: str, others: tuple[str, ...], name: str | None) -> None:
    """Join shard manifests in OUT (and shard folders OTHERS, whose media are copied) into OUT/manifest.json."""
    from generator.produce.batch import merge_shards  # lazy: keeps the command table light

    try:
        path = merge_shards(out, others, name=name)
    except (GeneratorError, StimuliError) as exc:
        raise _fail(exc) from None
    click.echo(f"merged into {path}")
