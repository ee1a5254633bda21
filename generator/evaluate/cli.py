"""`emostudy evaluate`, `emostudy train-classifier`: thin click commands over
``generator.evaluate.metrics`` and ``generator.evaluate.classifier``.
    emostudy evaluate --generated OURS=out/ours --generated BL=out/baseline --ground-truth out/gt --out eval
    emostudy train-classifier --data corpus --out classifier --generated out/ours

The rich console is taken from ``ctx.obj["console"]`` when the caller gives one (tests), else stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from generator.data.cli import _console, _size
from generator.errors import GeneratorError
from stimuli.errors import StimuliError


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
    from rich.progress import Progress  # optional heavy dependency: imported only when used

    from generator.evaluate.metrics import evaluate  # lazy: keeps the command table light

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
    from rich.markdown import Markdown  # optional heavy dependency: imported only when used

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
    from rich.progress import Progress  # optional heavy dependency: imported only when used

    # lazy: keeps the command table light
    from generator.evaluate.classifier import (
        ClassifierConfig,
        classify,
        corpus_videos,
        load_classifier,
        train_classifier,
        video_files,
        write_report,
    )

    console = _console(ctx)
    if device == "auto":
        import torch  # optional heavy dependency: imported only when used

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
    from rich.markdown import Markdown  # optional heavy dependency: imported only when used

    console.print(Markdown(files["table_md"].read_text(encoding="utf-8")))
    console.print(f"figure: {files['figure']}")
