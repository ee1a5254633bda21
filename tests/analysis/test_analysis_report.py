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


# ------------------------------------------------------------------ issue 21: the report a researcher pastes
@pytest.fixture(scope="module")
def task2_report(task2_export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("r2") / "report"
    analyze(task2_export, out, AnalysisOptions(n_boot=200, mixed_models=False))
    return out


def test_p_values_and_bounded_statistics_are_formatted_the_apa_way():
    from analysis.report_text import fmt_bounded, fmt_num, fmt_p, p_clause

    # by hand (APA 7: three decimals, no leading zero, "< .001" below .001)
    assert [fmt_p(v) for v in (0.048, 0.0004, 0.001, 0.5, 1.0, None, float("nan"))] == [
        ".048", "< .001", ".001", ".500", "1.000", "n/a", "n/a"]
    assert (p_clause(0.048), p_clause(1e-9)) == ("p = .048", "p < .001")
    assert (fmt_bounded(0.256), fmt_bounded(-0.314), fmt_bounded(1.0)) == (".26", "-.31", "1.00")
    assert (fmt_num(0.012345), fmt_num(3.14159), fmt_num(123.4), fmt_num(5.0), fmt_num(1234)) == (
        "0.0123", "3.14", "123", "5", "1234")


def test_every_test_has_a_sentence_built_from_its_numbers(task1_report, task2_report):
    from analysis.report_text import fmt_bounded, fmt_p

    res1 = json.loads((task1_report / "results.json").read_text())
    res2 = json.loads((task2_report / "results.json").read_text())
    by_id = {s["id"]: s["text"] for s in res1["sentences"] + res2["sentences"]}
    w = res1["task1"]["wilcoxon"]
    text = by_id["realness-wilcoxon"]
    # each number of the sentence is the one in results.json, formatted by the rules pinned above
    assert f"z = {w['z']:.2f}" in text and f"p {fmt_p(w['p'])}".replace("p .", "p = .") in text
    assert f"r = {fmt_bounded(w['effect_r'])}" in text and f"n = {w['n']} participants" in text
    lo, hi = w["rank_biserial_ci_low"], w["rank_biserial_ci_high"]
    assert lo <= w["rank_biserial"] <= hi and f"95% CI [{fmt_bounded(lo)}, {fmt_bounded(hi)}]" in text
    assert f"{w['a']}" in text and f"{w['b']}" in text and "Wilcoxon signed-rank" in text
    scores = sorted({r["score"] for r in res1["task1"]["realness_distribution"]})
    assert f"on the {scores[0]:g}-{scores[-1]:g} scale" in text  # the plan's scores, not a fixed 1-5
    for r in res1["task1"]["accuracy"]:
        s = by_id[f"accuracy-{r['source']}"]
        assert f"{100 * r['accuracy']:.1f}%" in s and f"n = {r['n_answers']} answers" in s
        assert f"[{100 * r['ci_low']:.1f}%, {100 * r['ci_high']:.1f}%]" in s
    for d in res2["task2"]["dominance"]:
        s = by_id[f"dominance-{d['counting']}"]
        assert f"z = {d['z']:.2f}" in s and f"n = {d['n']} participants" in s and "Holm-adjusted" in s
        assert d["rank_biserial_ci_low"] <= d["rank_biserial"] <= d["rank_biserial_ci_high"]
    # significance words follow p: a non-significant test never reads as a difference
    if w["p"] >= 0.05:
        assert "did not differ significantly" in text
    else:
        assert "more real" in text or "less real" in text
    html = (task2_report / "report.html").read_text()
    assert html.count('class="copy"') == len(res2["sentences"]) and "Results in words" in html
    assert "<h2 id=\"methods\">Methods</h2>" in html


def test_tables_show_labels_never_internal_keys(task1_report, task2_report):
    import re

    for out in (task1_report, task2_report):
        res = json.loads((out / "results.json").read_text())
        html = (out / "report.html").read_text()
        headers = re.findall(r"<th[^>]*>(.*?)</th>", html)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
        assert headers and cells
        for key in res["cleaning"]:  # n_answers_excluded_surveys & co. appear nowhere in the page's tables
            assert key not in headers and key not in cells
        assert not [h for h in headers if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", h)]
        assert "Answers of excluded (not valid) surveys" in cells
        assert not [c for c in cells if re.fullmatch(r"0\.\d{5,}", c)]  # no raw long floats
        assert "< .001" in html.replace("&lt;", "<")


def _rewrite_participants(export: Path, change) -> None:
    with open(export / "participants.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    change(rows)
    with open(export / "participants.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_participant_flow_counts_come_from_the_export(task1_export, tmp_path):
    import shutil

    src = tmp_path / "export"
    shutil.copytree(task1_export, src)
    extra = []

    def change(rows):
        # three arrivals who never answered (returned, expired, still allocated) and one started then returned
        base = dict(rows[0])
        for i, status in enumerate(("returned", "expired", "allocated")):
            extra.append({**base, "participant": f"x{i}", "assignment": f"extra-{i}", "status": status,
                          "started_at": "", "completed_at": "", "verdict": "incomplete", "n_inconsistent": "",
                          "n_answers": "0"})
        extra.append({**base, "participant": "x3", "assignment": "extra-3", "status": "returned",
                      "completed_at": "", "verdict": "incomplete", "n_inconsistent": "", "n_answers": "0"})
        rows.extend(extra)

    _rewrite_participants(src, change)
    a = compute(load_export(src), AnalysisOptions(n_boot=50, mixed_models=False))
    f = a.results["flow"]
    with open(src / "participants.csv", newline="") as fh:
        parts = list(csv.DictReader(fh))
    valid = sum(p["verdict"] == "valid" for p in parts)  # the server verdicts agree with the recomputed ones here
    rejected = sum(p["verdict"] == "rejected" for p in parts)
    assert f["arrived"] == len(parts) and f["started"] == len(parts) - 3
    assert (f["valid"], f["rejected"]) == (valid, rejected)
    assert f["not_started"] == {"total": 3, "returned": 1, "expired": 1, "incomplete": 1}
    assert f["not_completed"]["returned"] == 1 and f["returned"] == 2 and f["expired"] == 1
    assert f["arrived"] == f["valid"] + f["rejected"] + f["other"] + f["returned"] + f["expired"] + f["incomplete"]
    assert f["analysed_answers"] == a.results["cleaning"]["n_answers_used"]
    assert "participant_flow" in a.figures


def _paper_export(tmp_path: Path, task: str, sources=("GT", "BL", "OURS"), name_only: bool = False) -> Path:
    import hashlib

    from analysis.simulate import make_plan, simulate_answers, write_export
    from stimuli.spec import resolve_spec

    spec = "paper-task1" if task == "emotion-realness" else "paper-task2"
    kw = {"sources": sources} if task == "emotion-realness" else {}
    plan, stimuli = make_plan(task, n_batches=2 if task == "emotion-realness" else 3, **kw)
    if name_only:
        plan["study"]["name"] = spec
    else:
        plan["spec_sha256"] = hashlib.sha256(resolve_spec(spec)[1]).hexdigest()
    rows, parts = simulate_answers(plan, stimuli, participants_per_batch=5, random_state=4)
    return write_export(tmp_path / f"{spec}-{'-'.join(sources)}-{name_only}", plan, stimuli, rows, parts)


def test_compared_with_the_paper_only_for_the_papers_plans(tmp_path, task1_report):
    a = compute(load_export(_paper_export(tmp_path, "emotion-realness")), AnalysisOptions(n_boot=100, mixed_models=False))
    cmp = a.results["paper_comparison"]
    assert cmp["spec"] == "paper-task1" and "spec_sha256" in cmp["notes"][0]
    by = {r["measure"]: r for r in cmp["rows"]}
    acc = {r["source"]: r for r in a.results["task1"]["accuracy"]}
    assert by["Emotion accuracy, GT"]["paper"] == "59.2%"
    assert by["Emotion accuracy, OURS"]["ours"] == f"{100 * acc['OURS']['accuracy']:.1f}%"
    assert by["Emotion accuracy, BL"]["ours_ci"] == f"[{100 * acc['BL']['ci_low']:.1f}%, {100 * acc['BL']['ci_high']:.1f}%]"
    assert by["Mean realness (1-5), BL"]["paper"] == "3.71"
    assert by["Wilcoxon realness OURS vs BL"]["paper"].startswith("p = .048")
    assert by["Aspect votes (without 'none'), BL"]["paper"].startswith("337")
    assert not any("not all GT/BL/OURS" in n for n in cmp["notes"])
    html = render_html_of(a)
    assert "Compared with the paper" in html and "59.2%" in html
    # other sources: the section says which of ours stood for the paper's
    b = compute(load_export(_paper_export(tmp_path, "emotion-realness", sources=("FULL", "LIPS", "STILL"))),
                AnalysisOptions(n_boot=50, mixed_models=False))
    notes = " ".join(b.results["paper_comparison"]["notes"])
    assert "the paper's GT with our FULL" in notes and "the paper's OURS with our STILL" in notes
    # Task 2, recognised by the study's name only: said so
    c = compute(load_export(_paper_export(tmp_path, "av-mismatch", name_only=True)),
                AnalysisOptions(n_boot=50, mixed_models=False))
    rows = {r["measure"]: r for r in c.results["paper_comparison"]["rows"]}
    assert rows["Primary label matches the visual emotion, all videos"]["paper"] == "35.2%"
    assert rows["Primary or secondary label matches the audio emotion, mismatched videos"]["paper"] == "28.2%"
    assert rows["Responses with two distinct labels"]["paper"].startswith("426 of 840")
    assert "spec differs" in c.results["paper_comparison"]["notes"][0]
    # a plan not made from the paper's specs has no such section
    res = json.loads((task1_report / "results.json").read_text())
    assert res["paper_comparison"] is None
    assert "Compared with the paper" not in (task1_report / "report.html").read_text()


def render_html_of(analysis) -> str:
    from analysis.report import render_html

    return render_html(analysis)


def test_pdf_without_chromium_says_what_to_do(task2_export, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOSTUDY_CHROMIUM", str(tmp_path / "no-chromium"))
    result = CliRunner().invoke(analyze_command, [str(task2_export), "--out", str(tmp_path / "o"), "--pdf",
                                                  "--n-boot", "50", "--no-mixed-models"])
    assert result.exit_code == 1
    assert "--pdf prints the report with Chromium" in result.output and "apt-get install chromium" in result.output
    assert not (tmp_path / "o").exists()  # refused before the analysis ran


@pytest.mark.browser
def test_pdf_is_printed_with_chromium(task2_export, tmp_path, chromium_path, monkeypatch):
    monkeypatch.setenv("EMOSTUDY_CHROMIUM", chromium_path)
    result = CliRunner().invoke(analyze_command, [str(task2_export), "--out", str(tmp_path / "o"), "--pdf",
                                                  "--n-boot", "50", "--no-mixed-models"])
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "o" / "report.pdf").read_bytes()
    assert pdf[:4] == b"%PDF" and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page/") + \
        pdf.count(b"/Type /Page ") + pdf.count(b"/Type/Page") >= 2


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_report_never_scrolls_sideways(task1_report, task2_report, chromium_path, width):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            context = browser.new_context(viewport={"width": width, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            for report in (task1_report, task2_report):
                errors: list[str] = []
                page = context.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto((report / "report.html").as_uri())
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, f"{report.name}: page is {scroll} px wide at a {width} px viewport"
                # the wide tables scroll inside their own box instead
                boxes = page.eval_on_selector_all(".table-box", "bs => bs.map(b => [b.clientWidth, b.scrollWidth])")
                assert boxes and all(client <= width for client, _ in boxes)
                if width == 390:
                    assert any(sw > cw for cw, sw in boxes)
                # the copy button puts exactly the sentence (not its topic line) on the clipboard
                sentences = json.loads((report / "results.json").read_text())["sentences"]
                button = page.locator("button.copy").nth(len(sentences) - 1)
                button.click()
                page.wait_for_function("b => b.textContent === 'Copied'", arg=button.element_handle(), timeout=3000)
                assert page.evaluate("navigator.clipboard.readText()") == sentences[-1]["text"]
                assert errors == []
                # print media: figures and sentences are never split across pages, the buttons are not printed
                page.emulate_media(media="print")
                assert page.eval_on_selector_all("figure", "fs => fs.map(f => getComputedStyle(f).breakInside)") \
                    == ["avoid"] * page.locator("figure").count()
                assert page.evaluate("getComputedStyle(document.querySelector('button.copy')).display") == "none"
                # and nothing is cut off at the right edge of an A4 page (210 mm - 2 x 15 mm = 680 CSS px)
                page.set_viewport_size({"width": 680, "height": 900})
                assert page.evaluate("document.documentElement.scrollWidth") <= 680
                page.close()
        finally:
            browser.close()


@pytest.mark.parametrize("zero_method", ["pratt", "wilcox", "zsplit"])
def test_vectorised_rank_biserial_equals_the_tests_own(zero_method):
    # independent route: the Wilcoxon function of analysis.stats, one resample at a time
    import numpy as np

    from analysis.report import rank_biserial_rows
    from analysis.stats import wilcoxon_signed_rank

    rng = np.random.default_rng(3)
    d = rng.integers(-3, 4, size=(200, 15)) / 2.0  # many ties and zeros
    d[0] = 0.0  # all zero: r = 0 by definition
    want = [wilcoxon_signed_rank(row, zero_method=zero_method)["rank_biserial"] for row in d]
    assert rank_biserial_rows(d, zero_method) == pytest.approx(want, abs=1e-12)


def test_flow_diagram_shows_every_count():
    from analysis.figures import flow_diagram

    flow = {"arrived": 80, "started": 75, "completed": 66, "valid": 60, "rejected": 5, "other": 1,
            "not_started": {"total": 5, "returned": 2, "expired": 3, "incomplete": 0},
            "not_completed": {"total": 9, "returned": 3, "expired": 1, "incomplete": 5},
            "analysed_surveys": 60, "analysed_participants": 58, "analysed_answers": 1044}
    ax = flow_diagram(flow, title="Task 1")
    text = "\n".join(t.get_text() for t in ax.texts)
    for needle in ("n = 80", "n = 75", "n = 66", "n = 60", "Did not start: 5", "returned 2, expired 3",
                   "Did not complete: 9", "returned 3, expired 1", "incomplete 5", "Rejected (inconsistent): 5",
                   "other verdict: 1", "60 surveys", "58 participants, 1044 answers"):
        assert needle in text, needle
    assert len(ax.patches) == 5 + 3 + 4 + 3  # boxes, side boxes, main arrows, side arrows
