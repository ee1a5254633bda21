"""End to end: simulated export -> `emostudy analyze` -> report.html, figures, tables, results.json; the
numbers re-derived from the CSV files with the csv module; the HTML opened in headless Chromium."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.cli import analyze_command
from analysis.errors import AnalysisError
from analysis.io import load_export
from analysis.report import AnalysisOptions, analyze, compute, results_json_bytes
from analysis.simulate import simulate_export

FAST = dict(n_boot=200)


@pytest.fixture(scope="module")
def task1_export(tmp_path_factory) -> Path:
    return simulate_export(tmp_path_factory.mktemp("t1") / "export", "emotion-realness", n_batches=2,
                           participants_per_batch=5, random_state=11)


@pytest.fixture(scope="module")
def task2_export(tmp_path_factory) -> Path:
    return simulate_export(tmp_path_factory.mktemp("t2") / "export", "av-mismatch", n_batches=3,
                           participants_per_batch=5, random_state=12)


@pytest.fixture(scope="module")
def task1_report(task1_export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("r1") / "report"
    analyze(task1_export, out, AnalysisOptions(**FAST))
    return out


def _valid_original_answers(export: Path) -> list[dict]:
    with open(export / "participants.csv", newline="") as fh:
        valid = {r["assignment"] for r in csv.DictReader(fh) if r["verdict"] == "valid"}
    with open(export / "answers.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["assignment"] in valid and r["is_repeat"] == "0"]


def test_task1_report_files_and_numbers(task1_export, task1_report):
    out = task1_report
    for name in ("task1_confusion", "task1_accuracy", "task1_realness", "task1_aspects"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    for name in ("task1_accuracy", "task1_confusion", "task1_wilcoxon", "cleaning_surveys", "task1_hu",
                 "task1_mixed_logit", "task1_ordinal_realness"):
        assert (out / "tables" / f"{name}.csv").is_file()
    res = json.loads((out / "results.json").read_text())
    # Independent route: the csv module and plain Python over the exported files (server verdicts, which the
    # simulator computes with its own loop and which the recomputed verdicts must match).
    assert res["cleaning"]["n_verdict_disagreements"] == 0
    rows = _valid_original_answers(task1_export)
    assert res["cleaning"]["n_answers_used"] == len(rows)
    n = defaultdict(int)
    k = defaultdict(int)
    score = defaultdict(list)
    aspects = defaultdict(int)
    for r in rows:
        if r["question"] == "emotion":
            n[r["source"]] += 1
            k[r["source"]] += r["answer"] == r["visual_emotion"]
        elif r["question"] == "realness":
            score[r["source"]].append(float(r["score"]))
        elif r["question"] == "aspects":
            for a in r["answer"].split(";"):
                aspects[(r["source"], a)] += 1
    acc = {a["source"]: a for a in res["task1"]["accuracy"]}
    assert list(acc) == ["GT", "BL", "OURS"]
    for s in acc:
        assert (acc[s]["n_answers"], acc[s]["n_correct"]) == (n[s], k[s])
        assert acc[s]["ci_low"] <= acc[s]["accuracy"] <= acc[s]["ci_high"]
    real = {r["source"]: r["mean"] for r in res["task1"]["realness"]}
    assert real == pytest.approx({s: sum(v) / len(v) for s, v in score.items()})
    for a in res["task1"]["aspects"]:
        assert a["count"] == aspects[(a["source"], a["aspect"])]
    assert res["task1"]["aspect_totals_excluding_none"]["GT"] == sum(
        v for (s, a), v in aspects.items() if s == "GT" and a != "none")
    w = res["task1"]["wilcoxon"]
    assert (w["a"], w["b"], w["unit"], w["zero_method"]) == ("OURS", "BL", "participant", "pratt")
    assert "OURS vs BL" in w["comparison_reason"]
    assert len(res["task1"]["wilcoxon_sensitivity"]) == 9
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Pratt" in html and "Holm" in html
    assert f"{res['cleaning']['n_surveys_valid']} valid surveys" in html


def test_same_inputs_same_numbers_and_no_clobber(task1_export, task1_report, tmp_path):
    with pytest.raises(AnalysisError, match="already holds a report"):
        analyze(task1_export, task1_report, AnalysisOptions(**FAST))
    export = load_export(task1_export)
    opts = AnalysisOptions(n_boot=200, mixed_models=False)
    first = results_json_bytes(compute(export, opts).results)
    assert results_json_bytes(compute(load_export(task1_export), opts).results) == first
    other = json.loads(results_json_bytes(compute(export, AnalysisOptions(n_boot=200, seed=5,
                                                                           mixed_models=False)).results))
    a = other["task1"]["accuracy"][0]
    b = json.loads(first)["task1"]["accuracy"][0]
    assert a["accuracy"] == b["accuracy"] and (a["ci_low"], a["ci_high"]) != (b["ci_low"], b["ci_high"])


def test_task2_report_via_cli(task2_export, tmp_path):
    out = tmp_path / "r2"
    result = CliRunner().invoke(analyze_command, [str(task2_export), "--out", str(out), "--n-boot", "100",
                                                  "--no-mixed-models", "--zero-method", "wilcox"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    rows = _valid_original_answers(task2_export)
    by_resp = defaultdict(dict)
    for r in rows:
        by_resp[(r["assignment"], r["position"])][r["question"]] = r
    n_vis = sum(d["primary"]["answer"] == d["primary"]["visual_emotion"] for d in by_resp.values())
    frac = {(f["subset"], f["counting"], f["modality"]): f for f in res["task2"]["match_fractions"]}
    assert frac[("all", "primary", "visual")]["n"] == len(by_resp)
    assert frac[("all", "primary", "visual")]["n_match"] == n_vis
    mism = [d for d in by_resp.values() if d["primary"]["visual_emotion"] != d["primary"]["audio_emotion"]]
    n_aud = sum(d["primary"]["answer"] == d["primary"]["audio_emotion"] for d in mism)
    assert frac[("mismatched", "primary", "audio")]["n_match"] == n_aud
    assert res["task2"]["dominance"][0]["zero_method"] == "wilcox"
    assert (out / "figures" / "task2_confusion.pdf").is_file()
    assert "task1" not in res


def test_question_ids_are_configurable_and_progress_goes_to_the_console(task2_export, tmp_path):
    import io

    from rich.console import Console

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for name in ("participants.csv", "manifest.json"):
        (renamed / name).write_bytes((task2_export / name).read_bytes())
    text = (task2_export / "answers.csv").read_text()
    (renamed / "answers.csv").write_text(text.replace(",primary,", ",first,"))
    plan = json.loads((task2_export / "plan.json").read_text())
    for q in plan["questions"] + plan["consistency"]["rules"]:
        for key in ("id", "question"):
            if q.get(key) == "primary":
                q[key] = "first"
    (renamed / "plan.json").write_text(json.dumps(plan))
    result = CliRunner().invoke(analyze_command, [str(renamed), "--out", str(tmp_path / "bad"), "--no-mixed-models"])
    assert result.exit_code == 1 and "--question ROLE ID" in result.output
    result = CliRunner().invoke(analyze_command, [str(renamed), "--out", str(tmp_path / "ok"), "--no-mixed-models",
                                                  "--n-boot", "50", "--question", "primary", "first"])
    assert result.exit_code == 0, result.output
    # Acceptance finding: a mistyped id (`--question realness real` where the plan says realness) was accepted
    # and silently dropped that part of the report; it is refused, naming the plan's question ids.
    result = CliRunner().invoke(analyze_command, [str(renamed), "--out", str(tmp_path / "typo"), "--no-mixed-models",
                                                  "--n-boot", "50", "--question", "primary", "frist"])
    assert result.exit_code == 1
    assert "--question primary frist: the plan has no question 'frist' (its questions: first, secondary)" in result.output
    assert not (tmp_path / "typo" / "report.html").exists()
    buf = io.StringIO()
    analyze(renamed, tmp_path / "p", AnalysisOptions(n_boot=50, mixed_models=False, primary_question="first"),
            console=Console(file=buf, width=100), progress=True)
    assert "done" in buf.getvalue()


def test_analysis_never_imports_torch_or_the_server():
    import subprocess
    import sys

    code = ("import sys, analysis.cli, analysis.report, analysis.models, analysis.power, analysis.figures, "
            "analysis.simulate; print(sorted(m for m in ('torch', 'flask', 'study_server', 'generator') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_errors_are_click_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(analyze_command, [str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "answers.csv: file not found" in result.output


def test_compare_option_unknown_source(task1_export, tmp_path):
    with pytest.raises(AnalysisError, match="not in the answers"):
        analyze(task1_export, tmp_path / "x", AnalysisOptions(n_boot=50, compare=("WARP", "BL"), mixed_models=False))


def test_single_source_has_no_comparison(tmp_path):
    from analysis.simulate import make_plan, simulate_answers, write_export

    plan, stimuli = make_plan("emotion-realness", n_batches=1, sources=("OURS",))
    rows, parts = simulate_answers(plan, stimuli, participants_per_batch=4, random_state=2)
    a = compute(load_export(write_export(tmp_path / "e", plan, stimuli, rows, parts)),
                AnalysisOptions(n_boot=50, mixed_models=False))
    assert a.results["task1"]["wilcoxon"] is None
    assert any("single source" in m for m in a.methods)
    assert [r["source"] for r in a.results["task1"]["accuracy"]] == ["OURS"]


def test_ceiling_answers_report_the_models_as_not_fitted(task1_export, tmp_path):
    # Acceptance finding: a pilot where every kept realness answer was "Definitely real" crashed `emostudy
    # analyze` with a statsmodels traceback (ValueError: shapes not aligned) from the ordinal model, and one
    # where every emotion answer was right crashed it in the mixed logit ("endog ... not all identical").
    import shutil

    src = tmp_path / "export"
    shutil.copytree(task1_export, src)
    with open(src / "answers.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for r in rows:
        if r["question"] == "realness":
            r["answer"], r["score"] = "definitely_real", "5"
        if r["question"] == "emotion":  # every emotion right too: the mixed logit has nothing to fit either
            r["answer"] = r["visual_emotion"]
    with open(src / "answers.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    a = compute(load_export(src), AnalysisOptions(n_boot=50, mixed_models=True))
    om = a.results["task1"]["ordinal_realness"]
    assert om["fitted"] is False and "at least two different scores" in om["reason"]
    assert any("ordinal model of realness was not fitted" in m for m in a.methods)
    assert a.results["task1"]["realness"][0]["mean"] == 5.0
    ml = a.results["task1"]["mixed_logit"]
    assert ml["fitted"] is False and "all" in ml["reason"] and "answers are correct" in ml["reason"]
    assert all(r["accuracy"] == 1.0 for r in a.results["task1"]["accuracy"])


@pytest.mark.browser
def test_report_opens_in_chromium_without_errors(task1_report, chromium_path):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((task1_report / "report.html").as_uri())
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            assert len(widths) >= 4 and all(w > 100 for w in widths)
            assert "Exclusions" in page.inner_text("body")
        finally:
            browser.close()
    assert errors == []
