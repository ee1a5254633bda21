"""Command line of the analysis: ``emostudy analyze`` and ``emostudy power`` (thin over the library)."""

from __future__ import annotations

from pathlib import Path

import click

from analysis.errors import AnalysisError

QUESTION_ROLES = ("emotion", "realness", "aspects", "primary", "secondary")


@click.command("analyze")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, results.json, tables/ and figures/.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap (same seed, same numbers).")
@click.option("--n-boot", default=2000, show_default=True, help="Bootstrap resamples of participants.")
@click.option("--ci", default=0.95, show_default=True, help="Confidence level of the bootstrap intervals.")
@click.option("--compare", nargs=2, default=None, metavar="A B",
              help="Sources of the realness Wilcoxon test (A - B). Default: OURS BL when present, else the first "
                   "two non-GT sources.")
@click.option("--pairing", "pairing_unit", type=click.Choice(["participant", "item", "response"]),
              default="participant", show_default=True, help="Pairing unit of the Wilcoxon test.")
@click.option("--zero-method", type=click.Choice(["pratt", "wilcox", "zsplit"]), default="pratt", show_default=True,
              help="Zero differences in the Wilcoxon test.")
@click.option("--alternative", type=click.Choice(["two-sided", "greater", "less"]), default="two-sided",
              show_default=True, help="Alternative of the Wilcoxon tests (greater: A > B).")
@click.option("--wilcoxon-method", type=click.Choice(["approx", "exact"]), default="approx", show_default=True,
              help="p of the Wilcoxon tests: normal approximation, or the exact sign-flip permutation distribution.")
@click.option("--continuity/--no-continuity", default=False, show_default=True,
              help="Continuity correction of the normal approximation.")
@click.option("--chance", type=float, default=None,
              help="Chance accuracy of the binomial test. Default: 1 / number of emotion options (1/6).")
@click.option("--verdicts", "verdict_source", type=click.Choice(["recomputed", "server"]), default="recomputed",
              show_default=True, help="Which verdict excludes surveys.")
@click.option("--mixed-models/--no-mixed-models", default=True, show_default=True,
              help="Fit the mixed-effects logit and the ordinal model (slow on large studies).")
@click.option("--question", "questions", nargs=2, multiple=True, metavar="ROLE ID",
              help="Question id playing a role when the plan's ids differ from the defaults; ROLE is one of "
                   f"{', '.join(QUESTION_ROLES)} (e.g. --question realness real). Repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing report in --out.")
@click.option("--pdf", "pdf", is_flag=True,
              help="Also print report.pdf with Chromium (headless; EMOSTUDY_CHROMIUM or chromium on PATH).")
def analyze_command(export_dir: Path, out_dir: Path, seed: int, n_boot: int, ci: float, compare, pairing_unit: str,
                    zero_method: str, alternative: str, wilcoxon_method: str, continuity: bool, chance: float | None,
                    verdict_source: str, mixed_models: bool, questions: tuple[tuple[str, str], ...],
                    overwrite: bool, pdf: bool = False) -> None:
    """Write the analysis report of EXPORT_DIR (an `emostudy export` folder) into --out."""
    from rich.console import Console

    from analysis.report import AnalysisOptions, analyze, chromium_or_error, print_pdf

    ids = {}
    for role, qid in questions:
        if role not in QUESTION_ROLES:
            raise click.BadParameter(f"{role!r} is not a role; use one of {', '.join(QUESTION_ROLES)}",
                                     param_hint="--question")
        ids[f"{role}_question"] = qid
    options = AnalysisOptions(seed=seed, n_boot=n_boot, ci=ci, compare=tuple(compare) if compare else None,
                              pairing_unit=pairing_unit, zero_method=zero_method, alternative=alternative,
                              correction=continuity, wilcoxon_method=wilcoxon_method, chance=chance,
                              verdict_source=verdict_source,
                              mixed_models=mixed_models, **ids)
    console = Console(stderr=True)
    try:
        chromium = chromium_or_error() if pdf else None  # before minutes of analysis, not after
        result = analyze(export_dir, out_dir, options, overwrite=overwrite, console=console, progress=True)
        if pdf:
            print_pdf(out_dir / "report.html", out_dir / "report.pdf", chromium=chromium)
    except AnalysisError as exc:
        raise click.ClickException(str(exc)) from None
    c = result.results["cleaning"]
    click.echo(f"{c['n_answers_used']} answers of {c['n_surveys_valid']} valid surveys analysed; "
               f"report: {out_dir / 'report.html'}" + (f", {out_dir / 'report.pdf'}" if pdf else ""))


@click.group("power")
def power_command() -> None:
    """Plan the number of participants for a target effect."""


def _fail(exc: AnalysisError) -> click.ClickException:
    return click.ClickException(str(exc))


@power_command.command("accuracy")
@click.option("--p1", type=float, required=True, help="Expected accuracy (e.g. 0.3).")
@click.option("--chance", "p0", type=float, default=1 / 6, show_default=True, help="Chance accuracy.")
@click.option("--answers-per-participant", type=int, default=15, show_default=True)
@click.option("--icc", type=float, default=0.0, show_default=True,
              help="Intra-participant correlation of correctness (design effect 1 + (m-1) ICC).")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--power", "target", type=float, default=0.8, show_default=True)
def power_accuracy(p1: float, p0: float, answers_per_participant: int, icc: float, alpha: float, target: float) -> None:
    """Accuracy above chance (exact one-sided binomial test; analytic)."""
    from analysis.power import n_binomial_vs_chance

    try:
        r = n_binomial_vs_chance(p1, p0=p0, alpha=alpha, power=target,
                                 answers_per_participant=answers_per_participant, icc=icc)
    except AnalysisError as exc:
        raise _fail(exc) from None
    click.echo(f"participants: {r['n_participants']} ({r['n_answers']} answers; {r['n_answers_independent']} "
               f"independent answers reach power {r['achieved_power']:.3f}; design effect {r['design_effect']:.3g}; "
               f"{r['method']})")


@power_command.command("paired")
@click.option("--effect-size", type=float, required=True, help="mean(diff)/sd(diff) per participant (Cohen's dz).")
@click.option("--test", type=click.Choice(["wilcoxon", "t"]), default="wilcoxon", show_default=True)
@click.option("--alternative", type=click.Choice(["two-sided", "greater"]), default="two-sided", show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--power", "target", type=float, default=0.8, show_default=True)
def power_paired(effect_size: float, test: str, alternative: str, alpha: float, target: float) -> None:
    """A paired comparison per participant (e.g. realness OURS vs BL; analytic)."""
    from analysis.power import n_paired

    try:
        r = n_paired(effect_size, alpha=alpha, power=target, alternative=alternative, test=test)
    except AnalysisError as exc:
        raise _fail(exc) from None
    click.echo(f"participants: {r['n_participants']} (paired t needs {r['n_t']}, power {r['achieved_power_t']:.3f}; "
               f"{r['method']})")


@power_command.command("accuracy-difference")
@click.option("--p-a", type=float, required=True, help="Accuracy on source A.")
@click.option("--p-b", type=float, required=True, help="Accuracy on source B.")
@click.option("--items-per-source", type=int, default=5, show_default=True)
@click.option("--tau", type=float, default=0.5, show_default=True, help="SD of participant ability (logit scale).")
@click.option("--n-sim", type=int, default=500, show_default=True, help="Simulated studies per sample size.")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--power", "target", type=float, default=0.8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def power_accuracy_difference(p_a: float, p_b: float, items_per_source: int, tau: float, n_sim: int, alpha: float,
                              target: float, seed: int) -> None:
    """Accuracy on A vs B per participant (Wilcoxon; by simulation)."""
    from analysis.power import n_accuracy_difference

    try:
        r = n_accuracy_difference(p_a, p_b, items_per_source=items_per_source, tau=tau, alpha=alpha, power=target,
                                  n_sim=n_sim, random_state=seed)
    except AnalysisError as exc:
        raise _fail(exc) from None
    click.echo(f"participants: {r['n_participants']} (simulated power {r['achieved_power']:.3f}; {r['method']})")
