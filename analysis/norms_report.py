"""``emostudy norms EXPORT --out DIR``: the norms of a stimulus set as ``report.html``, ``norms.json``,
``tables/*.csv`` and ``figures/*.png|pdf`` (the conventions of ``emostudy analyze``: one self-contained HTML
file, every number also in the JSON, all columns in the CSV files, same inputs and seed, same bytes).

``norms.json`` keys: ``schema_version``, ``input`` (study, task, export, warnings), ``options`` (ci,
n_splits, seed), ``summary``, ``machine``, ``stimuli`` (one record per clip: the columns of
:func:`analysis.norms.stimulus_norms`), ``emotions``, ``identities``, ``reliability``, ``confusion``,
``raters``, ``sentences``. ``emostudy select`` reads ``stimuli`` from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from analysis import figures, report_text
from analysis.errors import AnalysisError
from analysis.io import Export, load_export
from analysis.norms import NORMS_SCHEMA_VERSION, Norms, compute_norms, read_qc
from analysis.report import _jsonable, _markup, _png_base64
from stimuli.emotions import EMOTIONS

NORMS_JSON = "norms.json"
_COLOURS = dict(zip(EMOTIONS, ("#c44e52", "#8c8c3c", "#8172b3", "#dd8452", "#937860", "#4c72b0")))


# ------------------------------------------------------------------------------------------ figures

def recognition_figure(per: pd.DataFrame, chance: float | None) -> Any:
    """Every rated clip's recognition rate with its Wilson interval, sorted, coloured by intended emotion."""
    from matplotlib.figure import Figure

    d = per[per["n_ratings"] > 0].sort_values(["recognition", "stimulus_id"]).reset_index(drop=True)
    fig = Figure(figsize=(8.0, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(d))
    for emo, g in d.groupby("intended", sort=True):
        ax.errorbar(g.index, g["recognition"] * 100, yerr=[((g["recognition"] - g["ci_low"]) * 100).clip(lower=0),
                                                           ((g["ci_high"] - g["recognition"]) * 100).clip(lower=0)],
                    fmt="o", ms=3.5, lw=0.8, color=_COLOURS.get(emo, "#555"), label=emo)
    if chance:
        ax.axhline(chance * 100, ls="--", lw=0.8, color="#777")
        ax.text(len(d) - 0.5 if len(d) else 0, chance * 100 + 1.5, "chance", ha="right", fontsize=8, color="#555")
    ax.set_xlim(-1, max(len(x), 1))
    ax.set_ylim(0, 100)
    ax.set_xticks([])
    ax.set_xlabel(f"clips, sorted by recognition (n = {len(d)})")
    ax.set_ylabel("% recognised (Wilson CI)")
    ax.set_title("Recognition of the intended emotion per clip")
    ax.legend(fontsize=7, frameon=False, ncol=3, loc="upper left")
    return fig


def confusion_figure(conf: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    k = conf["answer"].nunique()
    fig = Figure(figsize=(1.2 + 0.62 * k, 0.9 + 0.62 * conf["truth"].nunique()), dpi=100)
    figures.confusion_heatmap(conf, ax=fig.add_subplot(1, 1, 1), truth_label="Intended emotion",
                              answer_label="Answer", title="Answers per intended emotion (row %)")
    return fig


def machine_figure(per: pd.DataFrame, machine: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    d = per[per["machine_prob"].notna() & (per["n_ratings"] > 0)]
    fig = Figure(figsize=(4.8, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for emo, g in d.groupby("intended", sort=True):
        ax.scatter(g["machine_prob"], g["recognition"] * 100, s=14, color=_COLOURS.get(emo, "#555"), label=emo)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("machine rater: probability of the intended emotion")
    ax.set_ylabel("people: % recognised")
    rho = machine.get("spearman_rho")
    ax.set_title("Machine check vs people" + ("" if rho is None or not np.isfinite(rho) else f" (Spearman {rho:.2f})"))
    ax.legend(fontsize=7, frameon=False)
    return fig


def valence_arousal_figure(per: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for emo, g in per[per["valence_mean"].notna()].groupby("intended", sort=True):
        ax.scatter(g["valence_mean"], g["arousal_mean"], s=14, color=_COLOURS.get(emo, "#555"), label=emo)
    ax.set_xlim(1, 9)
    ax.set_ylim(1, 9)
    ax.set_xlabel("valence (1 unpleasant - 9 pleasant), clip mean")
    ax.set_ylabel("arousal (1 calm - 9 excited), clip mean")
    ax.set_title("Valence and arousal per clip")
    ax.legend(fontsize=7, frameon=False)
    return fig


def make_figures(norms: Norms) -> dict[str, Any]:
    out: dict[str, Any] = {}
    per = norms.stimuli
    if "recognition" in per and (per["n_ratings"] > 0).any():
        out["norms_recognition"] = recognition_figure(per, norms.summary.get("chance"))
        out["norms_confusion"] = confusion_figure(norms.confusion)
        if norms.machine.get("available"):
            out["norms_machine"] = machine_figure(per, norms.machine)
    if {"valence_mean", "arousal_mean"} <= set(per.columns) and per["valence_mean"].notna().any():
        out["norms_valence_arousal"] = valence_arousal_figure(per)
    return out


# ------------------------------------------------------------------------------------------ words

def _pct(v: Any) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


def _num(v: Any, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def sentences(norms: Norms, ci: float) -> list[dict[str, str]]:
    s, out = norms.summary, []
    text = (f"{s['n_stimuli']} clips; {s['n_stimuli_rated']} rated by {s['n_participants_valid']} valid participants "
            f"({s['n_surveys_rejected']} surveys rejected as inconsistent, {s['n_surveys_incomplete']} incomplete)")
    if "ratings_per_stimulus_median" in s:
        text += (f", {s['ratings_per_stimulus_min']} to {s['ratings_per_stimulus_max']} ratings per clip "
                 f"(median {s['ratings_per_stimulus_median']:g})")
    if s["n_stimuli_unrated"]:
        text += f"; {s['n_stimuli_unrated']} clip(s) had no valid rating: {', '.join(s['unrated'][:10])}"
    out.append({"topic": "Sample", "text": text + "."})
    if s.get("n_raters_straight_lining"):
        out.append({"topic": "Raters", "text": (
            f"{s['n_raters_straight_lining']} valid rater(s) gave the same score to every clip on every scale "
            f"({', '.join(s['straight_lining'][:5])}): the consistency check cannot see this; they are kept, see the "
            "raters table before deciding.")})
    if "recognition_mean" in s:
        per = norms.stimuli[norms.stimuli["n_ratings"] > 0]
        above = int((per["ci_low"] > s["chance"]).sum())
        out.append({"topic": "Recognition", "text": (
            f"The intended emotion was chosen in {_pct(s['recognition_pooled'])} of the ratings (mean over clips "
            f"{_pct(s['recognition_mean'])}; chance {_pct(s['chance'])} with {len(s['options'])} options); "
            f"{above} of {len(per)} clips lie above chance by their {100 * ci:g}% Wilson interval; 'other / none' "
            f"was chosen in {_pct(s['other_share'])} of the ratings.")})
        best = norms.emotions.sort_values("recognition_pooled", ascending=False)
        out.append({"topic": "Per emotion", "text": "Recognition (pooled) and unbiased hit rate Hu per emotion: "
                    + "; ".join(f"{r.intended} {_pct(r.recognition_pooled)}, Hu {_num(r.hu_pooled)}"
                                for r in best.itertuples()) + "."})
    for r in norms.reliability.itertuples():
        what = "recognition (hit = 1)" if r.measure == "recognition" else r.measure
        retest = ("" if not r.n_retest else
                  f"; test-retest {'agreement' if r.measure == 'recognition' else 'r'} {_num(r.retest)} "
                  f"over {r.n_retest} repeats")
        out.append({"topic": f"Reliability: {what}", "text": (
            f"Split-half reliability (Spearman-Brown) of {what}: {_num(r.sb_random)} (mean r of random splits "
            f"{_num(r.r_random)}; odd-even {_num(r.sb_oddeven)}) over {r.n_stimuli} clips; ICC(1) = {_num(r.icc1)}, "
            f"ICC(1,k) = {_num(r.icck)} for the mean of k = {_num(r.k0, 1)} ratings{retest}.")})
    m = norms.machine
    if m.get("available"):
        out.append({"topic": "Machine check vs people", "text": (
            f"Over {m['n_stimuli']} clips, the machine rater's probability of the intended emotion and the people's "
            f"recognition rate correlate with Spearman rho = {_num(m['spearman_rho'])} "
            f"({report_text.p_clause(m['p_value'])}); the machine's top class is the people's modal label for "
            f"{_pct(m['top_agreement'])} of the clips (ties share the credit). The machine names the intended "
            f"emotion for {_pct(m['machine_top_is_intended'])} of the clips, the people's unique modal label for "
            f"{_pct(m['people_modal_is_intended'])}.")})
    elif "reason" in m:
        out.append({"topic": "Machine check vs people", "text": f"Not computed: {m['reason']}."})
    return out


METHODS = (
    "Answers of valid surveys only (complete and consistent by the plan's rules, recomputed from the raw answers); "
    "the repeated showings serve only the test-retest figures. A clip's intended emotion is its visual emotion "
    "(its audio emotion when it has no visual one). Recognition is the share of ratings naming the intended "
    "emotion, with a Wilson score interval; 'other / none' counts as a rating that is not a hit. The modal label "
    "lists tied labels joined by ';'. Label entropy is in bits over the question's options. Hu per clip is the "
    "clip's hit rate times the precision of its emotion's label over the study (Wagner 1993), so that the "
    "ratings-weighted mean over an emotion's clips is that emotion's Hu of the pooled confusion table.",
    "Split-half reliability: each clip's ratings split into two halves (odd-even by participant id, and random "
    "splits averaged), half-means correlated over clips with two or more ratings, stepped up by Spearman-Brown. "
    "ICC: one-way random effects (every clip has its own raters), ICC(1) for a single rating and ICC(1,k) for a "
    "clip's mean rating, k adjusted for unequal numbers of ratings (McGraw & Wong 1996).",
    "Machine check: the probability of the intended emotion and the top class that `emostudy check` recorded in "
    "the set's manifest (a class the question did not offer counts as 'other'), compared with the people's "
    "recognition rate (Spearman) and modal label.",
)

SHOWN = {
    "stimuli": ["stimulus_id", "source", "identity", "intended", "n_ratings", "recognition", "ci_low", "ci_high",
                "modal_label", "modal_share", "other_share", "hu", "entropy_bits"],
    "emotions": None, "identities": None, "reliability": None,
}
LABELS = {"r_oddeven": "r odd-even", "sb_oddeven": "Spearman-Brown odd-even", "r_random": "r random halves",
          "sb_random": "Spearman-Brown random halves", "icc1": "ICC(1)", "icck": "ICC(1,k)",
          "k0": "k (ratings per clip)", "n_retest": "n repeats", "retest": "test-retest", "hu": "Hu",
          "hu_pooled": "Hu (pooled)", "ci_low": "CI low", "ci_high": "CI high", "entropy_bits": "entropy (bits)",
          "intended": "intended emotion", "n_stimuli_rated": "n stimuli rated"}
PERCENT = {"consensus", "recognition", "ci_low", "ci_high", "modal_share", "other_share", "recognition_mean", "recognition_sd",
           "recognition_min", "recognition_median", "recognition_pooled"}


def _readable(df: pd.DataFrame, shown: list[str] | None) -> pd.DataFrame:
    d = df[[c for c in (shown or df.columns) if c in df.columns and not c.endswith("_n")]]
    out = pd.DataFrame(index=d.index)
    numeric = []
    for c in d.columns:
        s = d[c]
        if s.dtype == bool:
            cells = s.map(lambda v: "yes" if v else "no")
        elif c in PERCENT:
            cells = s.map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
        elif pd.api.types.is_integer_dtype(s):
            cells = s.map(str)
        elif pd.api.types.is_numeric_dtype(s):
            cells = s.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        else:
            cells = s.map(lambda v: "" if pd.isna(v) else str(v))
        label = LABELS.get(c, c.replace("_", " "))
        out[label] = cells.to_numpy()
        if pd.api.types.is_numeric_dtype(s) and s.dtype != bool:
            numeric.append(label)
    out.attrs["numeric"] = numeric
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------------ files

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<p>Study <code>{{ study }}</code>, task <code>{{ task }}</code>. Every number is also in <code>norms.json</code>;
tables are in <code>tables/</code> (all columns), figures (PNG, PDF) in <code>figures/</code>. Choose the clips
that pass with <code>emostudy select SET --norms {{ out_name }} --min-recognition 0.7 --out NEWSET</code>.</p>
{% for w in warnings %}<p class="note"><strong>Note:</strong> {{ w }}</p>{% endfor %}
<nav class="toc" aria-label="Contents"><ol>
<li><a href="#results-in-words">Results in words</a></li><li><a href="#methods">Methods</a></li>
{% for section in sections %}<li><a href="#{{ section.id }}">{{ section.title }}</a></li>{% endfor %}
</ol></nav>
<h2 id="results-in-words">Results in words</h2>
<ul class="sentences">{% for s in sentences %}
<li class="sentence"><p><span class="topic">{{ s.topic }}</span><span id="s-{{ loop.index }}">{{ s.text }}</span></p>
<button type="button" class="copy" data-target="s-{{ loop.index }}" aria-label="Copy: {{ s.topic }}">Copy</button></li>
{% endfor %}</ul>
<h2 id="methods">Methods</h2>
<div class="methods">{% for p in methods %}<p>{{ p }}</p>{% endfor %}</div>
{% for section in sections %}
<h2 id="{{ section.id }}">{{ section.title }}</h2>
{% if section.text %}<p>{{ section.text }}</p>{% endif %}
{% for fig in section.figures %}<figure>
<img alt="{{ fig.alt }}" width="{{ fig.width }}" src="data:image/png;base64,{{ fig.data }}">
<figcaption>{{ fig.alt }}</figcaption></figure>{% endfor %}
{% for t in section.tables %}<h3>{{ t.title }}</h3>
<div class="table-box" role="region" aria-label="{{ t.title }}" tabindex="0">{{ t.html }}</div>
<p class="more"><small>All columns: <code>tables/{{ t.name }}.csv</code>.</small></p>
{% endfor %}
{% endfor %}
<script>{{ script }}</script>
</body></html>
"""


def norms_json(norms: Norms, export: Export, *, ci: float, n_splits: int, seed: int) -> dict[str, Any]:
    rec = lambda df: [{k: _jsonable(v) for k, v in r.items()} for r in df.to_dict(orient="records")]
    return _jsonable({
        "schema_version": NORMS_SCHEMA_VERSION,
        "input": {"study": str(export.plan.get("study", {}).get("name", "")), "task": export.task,
                  "set_name": str(export.plan.get("set_name", "")), "warnings": list(export.warnings)},
        "options": {"ci": ci, "n_splits": n_splits, "seed": seed},
        "summary": norms.summary, "machine": norms.machine, "stimuli": rec(norms.stimuli),
        "emotions": rec(norms.emotions), "identities": rec(norms.identities), "reliability": rec(norms.reliability),
        "confusion": rec(norms.confusion), "raters": rec(norms.raters), "sentences": sentences(norms, ci),
    })


def render_html(norms: Norms, results: dict[str, Any], figs: dict[str, Any], figure_dir: Path | None,
                out_name: str) -> str:
    import jinja2

    from analysis.report_template import CSS, SCRIPT

    def fig(name: str, alt: str) -> dict[str, Any] | None:
        if name not in figs:
            return None
        data = _png_base64(figs[name], figure_dir / f"{name}.png" if figure_dir else None)
        import base64

        width = int.from_bytes(base64.b64decode(data[:32])[16:20], "big") * 2 // 3
        return {"alt": alt, "data": data, "width": width}

    def tab(name: str, title: str, df: pd.DataFrame) -> dict[str, Any]:
        return {"name": name, "title": title, "html": _markup(report_text.table_html(_readable(df, SHOWN.get(name))))}

    sections = []

    def sec(sid: str, title: str, f: list[tuple[str, str]], t: list[dict[str, Any]], text: str = "") -> None:
        sections.append({"id": sid, "title": title, "text": text,
                         "figures": [x for x in (fig(n, a) for n, a in f) if x], "tables": t})

    sec("recognition", "Recognition per clip", [("norms_recognition", "Recognition of the intended emotion per clip "
                                                 "with its Wilson interval; dashed: chance")], [])
    sec("per-emotion", "Per emotion", [("norms_confusion", "Answers per intended emotion (row %)"),
                                       ("norms_valence_arousal", "Valence and arousal per clip (clip means)")],
        [tab("emotions", "Per intended emotion", norms.emotions)])
    sec("per-identity", "Per identity", [], [tab("identities", "Per identity", norms.identities)])
    sec("reliability", "Reliability", [], [tab("reliability", "Split-half, ICC and test-retest per measure",
                                               norms.reliability)])
    m = norms.machine
    sec("machine", "Machine check vs people", [("norms_machine", "Machine rater's probability of the intended "
                                                "emotion vs the people's recognition rate, per clip")], [],
        text="" if m.get("available") else f"Not computed: {m.get('reason', '')}.")
    level = f"{100 * results['options']['ci']:g}%"
    sec("raters", "Raters", [], [tab("raters", "Per valid rater: recognition, agreement with the other raters, "
                                               "spread of the scales", norms.raters)],
        text="consensus: agreement with the modal label of the other raters of the same clips; r others: "
             "correlation of the rater's scores with the other raters' clip means; straight lining: the same "
             "score for every clip on every scale.")
    sec("clips", "Every clip", [], [tab("stimuli", f"Norms per clip ({level} Wilson intervals; the scales: "
                                                   "tables/stimuli.csv)", norms.stimuli)])
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        title=f"emostudy norms: {results['input']['set_name'] or results['input']['study'] or 'stimulus set'}",
        study=results["input"]["study"], task=results["input"]["task"], warnings=results["input"]["warnings"],
        methods=METHODS, sentences=results["sentences"], sections=sections, out_name=out_name,
        css=_markup(CSS), script=_markup(SCRIPT))


def write_norms(export_dir: str | Path, out_dir: str | Path, *, ci: float = 0.95, n_splits: int = 200, seed: int = 0,
                overwrite: bool = False, qc_json: str | Path | None = None) -> Norms:
    """Read the export, compute the norms, write report.html, norms.json, tables/ and figures/ into ``out_dir``."""
    from stimuli.manifest import atomic_write_bytes

    out = Path(out_dir)
    if (out / "report.html").exists() and not overwrite:
        raise AnalysisError(f"{out} already holds a report; choose a new --out folder or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"{out} is a file; give a folder for --out")
    export = load_export(export_dir)
    norms = compute_norms(export, ci=ci, n_splits=n_splits, seed=seed,
                          qc=read_qc(qc_json) if qc_json is not None else None)
    results = norms_json(norms, export, ci=ci, n_splits=n_splits, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("stimuli", norms.stimuli), ("emotions", norms.emotions), ("identities", norms.identities),
                     ("reliability", norms.reliability), ("confusion", norms.confusion), ("raters", norms.raters)):
        atomic_write_bytes(out / "tables" / f"{name}.csv", df.to_csv(index=False, lineterminator="\n").encode())
    figs = make_figures(norms)
    for name, f in figs.items():
        figures.save_figure(f, out / "figures", name)
    atomic_write_bytes(out / NORMS_JSON, (json.dumps(results, indent=1, sort_keys=True, allow_nan=False)
                                          + "\n").encode())
    atomic_write_bytes(out / "report.html", render_html(norms, results, figs, out / "figures", out.name).encode())
    return norms


@click.command("norms")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, norms.json, tables/ and figures/.")
@click.option("--ci", default=0.95, show_default=True, help="Confidence level of the Wilson intervals.")
@click.option("--splits", "n_splits", default=200, show_default=True, type=click.IntRange(min=0),
              help="Random split-halves averaged for the split-half reliability.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the random split-halves (same seed, same numbers).")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing report in --out.")
@click.option("--qc", "qc_json", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The set's check report (SET/qc/qc.json of `emostudy check`), for clips whose manifest row "
                   "carries no check results (a check run with --no-manifest).")
def norms_command(export_dir: Path, out_dir: Path, ci: float, n_splits: int, seed: int, overwrite: bool,
                  qc_json: Path | None) -> None:
    """Per-clip norms of a stimulus set from a norming study's EXPORT_DIR (an `emostudy export` folder)."""
    try:
        norms = write_norms(export_dir, out_dir, ci=ci, n_splits=n_splits, seed=seed, overwrite=overwrite,
                            qc_json=qc_json)
    except AnalysisError as exc:
        raise click.ClickException(str(exc)) from None
    s = norms.summary
    click.echo(f"norms of {s['n_stimuli']} clips ({s['n_stimuli_rated']} rated, {s['n_participants_valid']} valid "
               f"participants): {out_dir / 'report.html'}")
    if "recognition_pooled" in s:
        click.echo(f"  recognition {100 * s['recognition_pooled']:.1f}% of ratings (chance {100 * s['chance']:.1f}%)")
    m = norms.machine
    if m.get("available"):
        click.echo(f"  machine check vs people: Spearman rho {m['spearman_rho']:.2f}, top-class agreement "
                   f"{100 * m['top_agreement']:.0f}% over {m['n_stimuli']} clips")
