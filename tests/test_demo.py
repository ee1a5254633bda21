"""`emostudy demo` end to end, as a researcher runs it (issue: the main job).

One fresh demo folder per test session: `emostudy demo --simulate 60 --no-serve --dir DIR` builds the
stimuli, plans both tasks, sends simulated participants through the real HTTP API, exports and analyses.
The browser test then starts `emostudy demo --dir DIR` (reusing the build), follows the printed Task 2
participant link in headless Chromium to a completed batch, and reads the admin counts.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EMOSTUDY = str(Path(sys.executable).with_name("emostudy"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "emostudy-demo"
    proc = subprocess.run([EMOSTUDY, "demo", "--simulate", "60", "--no-serve", "--dir", str(root)],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, proc.stdout


def _report(root: Path, task: str) -> Path:
    (folder,) = sorted((root / "reports").glob(f"{task}-*"))
    return folder


def test_demo_checks_its_sets_and_links_the_qc_reports(demo):
    root, out = demo
    for task in ("task1", "task2"):
        qc = json.loads((root / "sets" / task / "qc" / "qc.json").read_text())
        rows = json.loads((root / "sets" / task / "manifest.json").read_text())["stimuli"]
        # checked in the background without touching the manifest (the plans were made from it)
        assert len(qc["records"]) == len(rows) and not any("check" in r for r in rows)
        assert "running" not in (root / "sets" / task / "qc" / "qc.html").read_text()[:300]
        assert all(r["rater"]["top"] for r in qc["records"])
        assert f'href="../sets/{task}/qc/qc.html"' in (root / "reports" / "index.html").read_text()


def test_demo_runs_a_norming_study_and_shows_its_norms(demo):
    root, out = demo
    (report,) = sorted((root / "reports").glob("norming-*"))
    norms = json.loads((report / "norms.json").read_text())
    # the Task 1 set's FULL clips: 2 faces x 6 emotions x 3 sentences, rated through the server
    assert len(norms["stimuli"]) == 36 and {r["source"] for r in norms["stimuli"]} == {"FULL"}
    assert 12 <= norms["summary"]["n_participants_valid"] <= 18  # 3 batches x 6, less the careless
    assert norms["machine"]["available"]  # the check ran before the plan: its probabilities are in the manifest
    assert (report / "report.html").is_file() and f'href="{report.name}/report.html"' in (
        root / "reports" / "index.html").read_text()
    # emostudy select ran: a new set, or a refusal that names the short cells
    assert "new set:" in out or "fall short" in out


def test_demo_builds_simulates_and_reports_both_tasks(demo):
    root, out = demo
    m1 = json.loads((root / "sets" / "task1" / "manifest.json").read_text())["stimuli"]
    m2 = json.loads((root / "sets" / "task2" / "manifest.json").read_text())["stimuli"]
    # The trials' three sources, and clips made only for the labelled examples (a sentence no trial speaks).
    assert {s["source"] for s in m1} == {"FULL", "LIPS", "STILL", "EXAMPLE-FULL"}
    pairs = {}
    for s in m2:
        if s["source"] == "WARP":
            pairs[(s["visual_emotion"], s["audio_emotion"])] = pairs.get((s["visual_emotion"], s["audio_emotion"]), 0) + 1
    assert len(pairs) == 36 and set(pairs.values()) == {2}
    examples = [s for s in m2 if s["source"] == "EXAMPLE-WARP"]
    assert len(examples) == 12 and all(s["visual_emotion"] == s["audio_emotion"] for s in examples)
    for task in ("task1", "task2"):  # and no labelled example is a trial's clip
        plan = json.loads((root / "plans" / f"{task}.json").read_text())
        trials = {i["stimulus_id"] for b in plan["batches"] for i in b["items"]}
        assert trials.isdisjoint(e["stimulus_id"] for e in plan["examples"])
        assert plan["design"]["examples"]["allow_example_reuse"] is False

    r1 = json.loads((_report(root, "task1") / "results.json").read_text())
    r2 = json.loads((_report(root, "task2") / "results.json").read_text())
    # Task 1: a confusion matrix per source and the Wilcoxon signed-rank test of realness.
    conf = r1["task1"]["confusion"]
    assert {row["source"] for row in conf} == {"FULL", "LIPS", "STILL"}
    w = r1["task1"]["wilcoxon"]
    assert {"z", "p", "n", "r_plus", "r_minus", "n_zeros"} <= set(w) and 0 <= w["p"] <= 1
    # The simulated FULL videos are rated more real than STILL ones (response model: 3.2 vs 2.2).
    means = {row["source"]: row["mean"] for row in r1["task1"]["realness"]}
    assert means["FULL"] > means["STILL"]
    # Task 2: two confusion matrices and the visual / audio percentages for all and mismatched videos.
    fr = {(f["modality"], f["subset"], f["counting"]): f["fraction"] for f in r2["task2"]["match_fractions"]}
    for key in [("visual", "all", "primary"), ("audio", "all", "primary"),
                ("visual", "mismatched", "primary"), ("audio", "mismatched", "primary")]:
        assert 0 <= fr[key] <= 1
    assert fr[("visual", "mismatched", "primary")] > fr[("audio", "mismatched", "primary")]  # visual dominates
    assert r2["task2"]["confusion"]
    for task in ("task1", "task2"):
        html = (_report(root, task) / "report.html").read_text()
        assert html.count("data:image/png;base64,") >= 2
    html1 = (_report(root, "task1") / "report.html").read_text()
    assert "Wilcoxon" in html1
    # Nothing acknowledged was lost: the export holds every acknowledged answer (one row per question).
    acked = {m.group(1): int(m.group(2)) for m in re.finditer(r"(demo-task\d): .*?(\d+) answers acknowledged", out)}
    for task, n_questions in (("task1", 3), ("task2", 2)):
        (export,) = sorted((root / "exports").glob(f"{task}-*"))
        with open(export / "answers.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == acked[f"demo-{task}"] * n_questions


@pytest.mark.browser
def test_printed_link_leads_to_a_completed_task2_batch_counted_by_admin(demo, chromium_path):
    from playwright.sync_api import sync_playwright

    from study_server.study.audio_check import expected_word
    from study_server.participant.listening import expected_answers

    root, _ = demo
    secret = (root / "instance" / "secret_key").read_text().strip()
    password = (root / "instance" / "admin_password").read_text().strip()
    server = subprocess.Popen([EMOSTUDY, "demo", "--dir", str(root), "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        links = {}
        for line in server.stdout:
            m = re.search(r"(Task 2 participant link|Admin):\s+(http://\S+)", line)
            if m:
                links[m.group(1)] = m.group(2)
            if len(links) == 2:
                break
        assert len(links) == 2, "the demo did not print its links"
        study_link, admin = links["Task 2 participant link"], links["Admin"]
        base = study_link.split("/s/")[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"])
            page = browser.new_page()
            page.goto(admin)
            page.fill("#user", "admin")
            page.fill("#password", password)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/admin/?$"))
            api = base + "/admin/api/studies"

            def valid_count() -> int:
                studies = page.evaluate("(u) => fetch(u).then(r => r.json())", api)["studies"]
                return next(s for s in studies if s["name"] == "demo-task2")["totals"]["valid"]

            before = valid_count()
            participant = browser.new_page()
            participant.goto(study_link)
            token = participant.url.rsplit("/", 1)[1]
            participant.click("#consent-yes")
            participant.click("#instructions-next")
            # The demo's Task 2 spec: volume calibration, the Huggins headphone screen, then the word.
            participant.wait_for_selector("#step-calibration:not([hidden])")
            participant.click("#calibration-play")
            participant.wait_for_function("() => !document.getElementById('calibration-done').disabled",
                                          timeout=15000)
            participant.click("#calibration-done")
            right = expected_answers(secret, token, "huggins", 0, 6)
            for trial, answer in enumerate(right):
                participant.wait_for_function("(t) => document.getElementById('screen-progress').textContent === t",
                                              arg=f"Sound {trial + 1} of 6", timeout=15000)
                participant.click("#screen-play")
                participant.wait_for_function(
                    "() => !document.querySelector('#screen-choices button').disabled", timeout=30000)
                participant.click(f"#screen-choices button[data-answer='{answer}']")
            participant.wait_for_selector("#step-audio:not([hidden])")
            participant.fill("#audio-answer", expected_word(secret, token, 0))
            participant.click("#audio-submit")
            while True:  # familiarisation examples: play each to its end
                participant.wait_for_selector("#step-examples:not([hidden]), #step-trial:not([hidden])")
                if participant.is_visible("#step-trial"):
                    break
                participant.click("#example-play")
                participant.wait_for_function("() => !document.getElementById('example-next').disabled",
                                              timeout=30000)
                participant.click("#example-next")
            n_trials = 0
            while not re.search(r"/done$", participant.url):
                participant.wait_for_selector("#step-trial:not([hidden])")
                participant.click("#trial-play")
                participant.wait_for_function("() => !document.querySelector('#questions fieldset').disabled",
                                              timeout=30000)
                for fieldset in participant.locator("#questions fieldset").all():
                    fieldset.locator("label").first.click()
                participant.click("#trial-next")
                n_trials += 1
                participant.wait_for_function(
                    "(n) => location.pathname.endsWith('/done') || "
                    "document.getElementById('trial-progress-text').textContent !== `Video ${n} of 14`",
                    arg=n_trials, timeout=30000)
            assert n_trials == 14
            assert participant.text_content("#completion-code").strip()
            assert valid_count() == before + 1  # same answers to the repeats: a valid survey
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.parametrize("task", ["task1", "task2"])
def test_demo_psychds_datasets_are_valid_and_r_computes_the_python_numbers(demo, task, rscript, tmp_path):
    """Issue 33: the demo's studies exported as Psych-DS pass the project's check of the specification's rules
    (every file and column described; only the url the demo spec honestly lacks is missing), and the exported
    analysis.R, run unedited, computes the numbers of the Python report (tests/analysis/r_parity.py)."""
    sys.path.insert(0, str(Path(__file__).parent / "analysis"))
    from r_parity import compare, python_results, run_r

    from study_server.export.psychds import psychds_problems, psychds_warnings

    root, _ = demo
    out = tmp_path / "pds"
    spec = root / "specs" / f"demo-{task}.toml"
    proc = subprocess.run([EMOSTUDY, "export", f"demo-{task}", "--out", str(out), "--format", "psych-ds",
                           "--include-simulated", "--instance", str(root / "instance"), *(["--spec", str(spec)] if spec.is_file() else [])],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert psychds_problems(out) == []
    assert [w for w in psychds_warnings(out) if "'url'" not in w] == []
    desc = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
    csvs = sorted(p.name for p in (out / "data").glob("*.csv"))
    assert sorted(d["name"] for d in desc["distribution"]) == csvs
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert all(f"data/{n}" in readme and (out / "data" / (n[:-4] + ".json")).is_file() for n in csvs)
    check = json.loads((out / "materials" / "plan.json").read_text(encoding="utf-8"))["audio_check"]
    if check.get("enabled") and check.get("kind", "words") != "words":  # a headphone screen: its trials are data
        assert any("headphonescreen" in n for n in csvs)
    assert (out / "materials" / "spec.toml").read_bytes() == spec.read_bytes()
    # Python reads a plain export of the same moment (other tests of this module may have added participants
    # to the demo's database since the demo's own export).
    export = tmp_path / "plain"
    proc = subprocess.run([EMOSTUDY, "export", f"demo-{task}", "--out", str(export), "--include-simulated",
                           "--instance", str(root / "instance")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = run_r(rscript, out, tmp_path / "r.csv")
    results, wilcox_dominance = python_results(export, tmp_path / "report")
    done = compare(r, results, wilcox_dominance)
    assert set(r) <= set(done) | {"realness.no_test", "dominance.no_test"}, sorted(set(r) - set(done))
