"""`emostudy prepare crema-d`, `emostudy evaluate`, `emostudy train-classifier`: thin click commands over
``generator.prepare``, ``generator.evaluate`` and ``generator.classifier``.

    emostudy prepare crema-d --root CREMA-D --out corpus --jobs 2
    emostudy evaluate --generated OURS=out/ours --generated BL=out/baseline --ground-truth out/gt --out eval
    emostudy train-classifier --data corpus --out classifier --generated out/ours

The rich console is taken from ``ctx.obj["console"]`` when the caller gives one (tests), else stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from generator.errors import GeneratorError
from stimuli.errors import StimuliError


def _console(ctx: click.Context):
    from rich.console import Console

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
    from generator.prepare import PrepareOptions, prepare_crema

    console = _console(ctx)
    try:
        options = PrepareOptions(size=_size(size), landmarks=landmarks, face_policy=face_policy)
        prepare_crema(root, out, jobs=jobs, split_file=split_file, seed=seed, options=options, limit=limit,
                      console=console)
    except (GeneratorError, StimuliError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _method_paths(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        label, sep, path = v.partition("=")
        if not sep:
            label, path = Path(v).name or "generated", v
        if not label or not path:
            raise click.BadParameter(f"{v!r}: give LABEL=PATH (a folder of videos or a stimulus set)")
        if label in out:
            raise click.BadParameter(f"method label {label!r} is given twice")
        out[label] = path
    return out


@click.command(name="evaluate")
@click.option("--generated", "generated", multiple=True, required=True,
              help="LABEL=PATH of generated videos (folder or stimulus set); repeat for several methods.")
@click.option("--ground-truth", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ground-truth videos (folder or stimulus set).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for per_video.csv, table1.csv, table1.md.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV generated,ground_truth of keys (ids / file stems) when the names differ.")
@click.option("--size", default="128x128", show_default=True, help="Template and crop WIDTHxHEIGHT both are aligned to.")
@click.option("--match", type=click.Choice(["id", "labels"]), default="id", show_default=True,
              help="Pair by stimulus id / file stem, or by identity|sentence|emotion|intensity "
                   "(manifest labels, or CREMA-D file names).")
@click.option("--gt-source", help="In a stimulus set with several conditions: the source label of the ground truth (e.g. GT).")
@click.option("--no-align", is_flag=True, help="Videos are already aligned crops of --size.")
@click.option("--max-frames", type=click.IntRange(1), help="Compare at most this many frames per video.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(1), help="Worker processes.")
@click.pass_context
def evaluate_command(ctx: click.Context, generated: tuple[str, ...], ground_truth: Path, out: Path, pairs: Path | None,
                     size: str, match: str, gt_source: str | None, no_align: bool, max_frames: int | None, jobs: int) -> None:
    """PSNR, SSIM, NLMD and mouth LMD of generated vs ground-truth videos (paper Table I).

    In a stimulus set with several conditions, --generated OURS=SET keeps the rows whose source is OURS.
    """
    from rich.progress import Progress

    from generator.evaluate import evaluate

    console = _console(ctx)
    methods = _method_paths(generated)
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("evaluate", total=None)
            result = evaluate(methods, ground_truth, out, size=_size(size), align=not no_align, pairs_csv=pairs,
                              max_frames=max_frames, match=match, gt_source=gt_source, workers=jobs,
                              progress=lambda i, n: progress.update(task, completed=i, total=n))
    except (GeneratorError, StimuliError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    from rich.markdown import Markdown

    console.print(Markdown(result.files["table_md"].read_text(encoding="utf-8")))
    for method, keys in result.unmatched.items():
        if keys:
            console.print(f"[yellow]{method}: {len(keys)} video(s) without a ground truth, e.g. {keys[:3]}[/yellow]")
    failed = [s for s in result.scores if s.error]
    for s in failed:
        console.print(f"[red]failed[/red] {s.method} {s.key}: {s.error}")
    console.print(f"wrote {', '.join(str(p) for p in result.files.values())}")


@click.command(name="train-classifier")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Prepared corpus (emostudy prepare crema-d), with train/val/test splits.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for classifier.pt, table2.csv/.md, confusion PNGs, predictions.csv.")
@click.option("--generated", "generated", multiple=True,
              help="LABEL=PATH of generated test videos (stimulus set with visual_emotion, or files named "
                   "with the emotion); repeatable.")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path),
              help="Skip training: classify with this classifier.pt.")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--frames", "n_frames", default=32, show_default=True, type=click.IntRange(1), help="Training window.")
@click.option("--image-size", default=128, show_default=True, type=int, help="Frame size (multiple of 32).")
@click.option("--width", default=64, show_default=True, type=click.IntRange(1), help="64 = the paper's discriminator.")
@click.option("--lr", default=1e-4, show_default=True, type=float)
@click.option("--no-augment", is_flag=True, help="Train without the photometric augmentation.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.pass_context
def train_classifier_command(ctx: click.Context, data: Path, out: Path, generated: tuple[str, ...],
                             checkpoint: Path | None, epochs: int, batch_size: int, n_frames: int, image_size: int,
                             width: int, lr: float, no_augment: bool, seed: int, device: str) -> None:
    """Train the video emotion classifier, then classify the real and generated test sets (Table II, Fig. 4)."""
    from rich.progress import Progress

    from generator.classifier import (ClassifierConfig, classify, corpus_videos, load_classifier, train_classifier,
                                      video_files, write_report)

    console = _console(ctx)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    methods = _method_paths(generated)
    try:
        if checkpoint is None:
            config = ClassifierConfig(image_size=image_size, width=width, n_frames=n_frames, batch_size=batch_size,
                                      epochs=epochs, lr=lr, augment=not no_augment, seed=seed)
            with Progress(console=console) as progress:
                task = progress.add_task("train classifier", total=epochs)

                def on_epoch(epoch: int, total: int, row: dict) -> None:
                    extra = f" val acc {row['val_accuracy']:.3f}" if "val_accuracy" in row else ""
                    progress.update(task, completed=epoch,
                                    description=f"train classifier: loss {row['loss']:.3f}{extra}")

                trained = train_classifier(data, out, config, device=device, progress=on_epoch)
            console.print(f"classifier: {trained.checkpoint} (best epoch {trained.best_epoch})")
            checkpoint = trained.checkpoint
        model, config = load_classifier(checkpoint, device=device)
        sets = [("Ground-truth", corpus_videos(data, "test"))]
        sets += [(label, video_files(path, source_label=label)) for label, path in methods.items()]
        results = []
        with Progress(console=console) as progress:
            for name, videos in sets:
                task = progress.add_task(f"classify {name}", total=len(videos))
                results.append(classify(model, config, videos, name, device,
                                        progress=lambda i, n, task=task: progress.update(task, completed=i)))
        files = write_report(results, out)
    except (GeneratorError, StimuliError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    from rich.markdown import Markdown

    console.print(Markdown(files["table_md"].read_text(encoding="utf-8")))
    console.print(f"figure: {files['figure']}")
