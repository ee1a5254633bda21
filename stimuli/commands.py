"""`emostudy import ...` and `emostudy plan ...`: thin click commands over stimuli.imports and stimuli.plan."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from stimuli.emotions import EMOTIONS
from stimuli.errors import StimuliError


def _console() -> Console:
    # Created per call so that click's test runner (which swaps stdout) sees the output.
    return Console(highlight=False, soft_wrap=True)


def _print_import(console: Console, report) -> None:  # report: stimuli.imports.ImportReport
    m = report.manifest
    console.print(f"[bold]{len(m)}[/bold] stimuli -> {report.out} "
                  f"({report.linked} hard-linked, {report.copied} copied)")
    table = Table("source", *EMOTIONS, "none", "total", title="visual emotion per source")
    for src in sorted({s.source for s in m}):
        rows = [s for s in m if s.source == src]
        counts = [sum(1 for s in rows if s.visual_emotion == e) for e in EMOTIONS]
        table.add_row(src, *map(str, counts), str(sum(1 for s in rows if s.visual_emotion is None)), str(len(rows)))
    console.print(table)
    for line in report.skipped[:10]:
        console.print(f"[yellow]skipped[/yellow] {line}")
    if len(report.skipped) > 10:
        console.print(f"[yellow]... and {len(report.skipped) - 10} more skipped[/yellow]")
    if report.unlisted:
        console.print(f"[yellow]{len(report.unlisted)} video(s) in the folder are not in the labels CSV and "
                      f"were not imported[/yellow], e.g. {report.unlisted[0]}")


@click.group(name="import")
def import_group() -> None:
    """Import recordings into a new stimulus set (manifest.json + media/ under opaque names)."""


@import_group.command(name="folder")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with columns file, source, visual_emotion, audio_emotion, identity, sentence "
                   "(optional: intensity, size_variant, stimulus_id; others go to 'extra').")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New set folder (must not exist).")
@click.option("--name", default="", help="Set name (default: the folder name of --out).")
@click.option("--copy", "copy", is_flag=True, help="Copy the videos instead of hard-linking them.")
def import_folder_command(folder: Path, labels: Path, out: Path, name: str, copy: bool) -> None:
    """Import a FOLDER of videos labelled by a CSV."""
    from stimuli.imports import import_folder

    console = _console()
    try:
        report = import_folder(folder, labels, out, name=name, mode="copy" if copy else "auto", console=console)
    except StimuliError as exc:
        raise click.ClickException(str(exc)) from None
    _print_import(console, report)


@import_group.command(name="crema-d")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New set folder (must not exist).")
@click.option("--source", default="GT", show_default=True, help="Source/condition label of the clips.")
@click.option("--size-variant", default=None, help="size_variant of every clip (e.g. 128x128).")
@click.option("--name", default="", help="Set name (default: the folder name of --out).")
@click.option("--copy", "copy", is_flag=True, help="Copy the videos instead of hard-linking them.")
@click.option("--skip-bad-names", is_flag=True, help="Skip videos whose names are not CREMA-D names.")
@click.option("--skip-unreadable", is_flag=True, help="Skip videos that cannot be decoded (and list them).")
def import_crema_command(folder: Path, out: Path, source: str, size_variant: str | None, name: str, copy: bool,
                         skip_bad_names: bool, skip_unreadable: bool) -> None:
    """Import the CREMA-D videos under FOLDER (names like 1001_DFA_ANG_XX)."""
    from stimuli.imports import import_crema_d

    console = _console()
    try:
        report = import_crema_d(folder, out, source=source, size_variant=size_variant, name=name,
                                mode="copy" if copy else "auto", skip_bad_names=skip_bad_names,
                                skip_unreadable=skip_unreadable, console=console)
    except StimuliError as exc:
        raise click.ClickException(str(exc)) from None
    _print_import(console, report)


@click.command(name="plan")
@click.option("--spec", "spec_name", required=True,
              help="A study spec: paper-task1, paper-task2 or the path of a TOML file.")
@click.option("--set", "set_dir", required=True, type=click.Path(exists=True, path_type=Path),
              help="The stimulus set folder (or its manifest.json).")
@click.option("--seed", required=True, type=click.IntRange(min=0), help="Seed of every random choice.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="plan.json to write (required unless --preview).")
@click.option("--force", is_flag=True, help="Replace an existing, different plan file.")
@click.option("--exclude-flagged", is_flag=True,
              help="Leave out the clips that `emostudy check` flagged (the plan's notes say how many and why).")
@click.option("--preview", is_flag=True,
              help="Print the design table (cells, clips per cell, per-batch counts, balance); with --out the "
                   "plan is also written, without it nothing is.")
def plan_command(spec_name: str, set_dir: Path, seed: int, out: Path | None, force: bool, exclude_flagged: bool,
                 preview: bool) -> None:
    """Compile a study spec + stimulus set + seed into a study plan (JSON). Same inputs, same bytes."""
    if out is None and not preview:
        raise click.UsageError("give --out plan.json (or --preview to see the design table without writing)")
    from stimuli.manifest import load_manifest
    from stimuli.plan import compile_plan, disclosure_warnings, plan_to_bytes, write_plan
    from stimuli.spec import load_spec

    console = _console()
    try:
        spec = load_spec(spec_name)
        manifest = load_manifest(set_dir, check_media=True)
        plan = compile_plan(spec, manifest, seed, exclude_flagged=exclude_flagged)
        data = plan_to_bytes(plan)
        if out is not None:
            if out.exists() and out.read_bytes() != data and not force:
                raise click.ClickException(f"{out} exists and holds a different plan; pass --force to replace it "
                                           "or choose another --out")
            write_plan(plan, out)
    except StimuliError as exc:
        raise click.ClickException(str(exc)) from None
    if preview:
        from stimuli.factors import design_table, format_design_table

        click.echo(format_design_table(design_table(plan, manifest)), nl=False)
        if out is None:
            click.echo("(preview only: no plan written; add --out plan.json to write it)")
            return
    print_plan_summary(console, plan, manifest, out)
    for warning in disclosure_warnings(plan, manifest):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    missing = spec.study.missing_dataset_metadata()
    if missing:  # a warning, not a refusal: specs without them keep working
        click.echo(f"warning: [study] of {spec.source} has no {', '.join(missing)}: the Psych-DS export "
                   f"(`emostudy export --format psych-ds`) describes the data set with them (dataset_description.json "
                   f"recommends author, license, citation, url). Add e.g. authors = [\"A. Researcher\"], "
                   f"license = \"CC-BY-4.0\", citation = \"...\", url = \"https://...\" to [study].", err=True)


def print_plan_summary(console: Console, plan: dict, manifest, out: Path | None = None) -> None:
    from stimuli.plan import summarize_plan

    s = summarize_plan(plan, manifest)
    study = plan["study"]
    console.print(f"[bold]{study['name']}[/bold] ({study['task']}), set {plan['set_name'] or manifest.root}, "
                  f"seed {plan['seed']}" + (f" -> {out}" if out else ""))
    sources = sorted(s.by_source_emotion)
    bt = Table("batch", "items", "repeats", *sources, title="batches (originals per source; repeats)")
    for b in s.batches:
        bt.add_row(b.batch_id, str(b.n_items), str(b.n_repeats),
                   *(f"{b.by_source.get(src, 0)} (+{b.repeats_by_source.get(src, 0)})" for src in sources))
    console.print(bt)
    et = Table("source", *EMOTIONS, "total", title="originals per emotion and source (all batches)")
    for src in sources:
        row = s.by_source_emotion[src]
        et.add_row(src, *(str(row.get(e, 0)) for e in EMOTIONS), str(sum(row.values())))
    console.print(et)
    if study["task"] == "av-mismatch":
        counts = [s.pairs.get((v, a), 0) for v in EMOTIONS for a in EMOTIONS]
        console.print(f"(visual, audio) pairs: {sum(1 for c in counts if c)} of 36 present, "
                      f"{min(counts)}..{max(counts)} videos each")
    reps = ", ".join(f"{k} {v}" for k, v in sorted(s.repeats_by_source.items())) or "none"
    console.print(f"repeats: {sum(s.repeats_by_source.values())} ({reps}); examples: {s.n_examples}")
    for note in plan["notes"]:
        console.print(f"note: {note}")
