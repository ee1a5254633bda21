"""`emostudy norms` (analysis/norms.py, analysis/norms_report.py) on a small export with known answers.

Every expected number is computed here by an independent route: plain Python loops over the raw answer
rows (statistics and math only, no pandas, no scipy), or by hand in a comment. The export has a tie
(s2: two anger, two happiness), "other" answers, a clip nobody rated validly (s5: its batch had no
participant), a rejected survey whose answers must not count (p5) and a repeat (test-retest).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.io import load_export
from analysis.norms import compute_norms, wilson_interval
from analysis.norms_report import write_norms

EMO = {"id": "emotion", "type": "single", "prompt": "Which emotion?", "required": True,
       "options": [{"value": v, "label": v, "score": None, "exclusive": False} for v in ("anger", "happiness", "other")]}
INT = {"id": "intensity", "type": "scale", "prompt": "How intense?", "required": True,
       "options": [{"value": f"i{k}", "label": str(k), "score": k, "exclusive": False} for k in range(1, 8)]}
STIM = {"s1": ("anger", "A"), "s2": ("anger", "B"), "s3": ("happiness", "A"), "s4": ("happiness", "B"),
        "s5": ("anger", "A")}
MACHINE = {"s1": (0.8, "angry"), "s2": (0.5, "happy"), "s3": (0.9, "happy"), "s4": (0.2, "surprise"),
           "s5": (0.3, "sad")}
# participant -> answers (emotion, intensity) to s1, s2, s3, s4 and the repeat of s1 (position 4)
ANSWERS = {
    "p1": [("anger", 6), ("anger", 5), ("happiness", 4), ("other", 2), ("anger", 6)],
    "p2": [("anger", 7), ("happiness", 3), ("happiness", 5), ("happiness", 3), ("anger", 5)],
    "p3": [("happiness", 4), ("anger", 4), ("other", 1), ("anger", 2), ("happiness", 4)],
    "p4": [("anger", 5), ("happiness", 6), ("happiness", 6), ("happiness", 4), ("anger", 5)],
    "p5": [("anger", 7), ("anger", 7), ("anger", 7), ("anger", 7), ("happiness", 7)],  # inconsistent: rejected
}
ITEMS = ["s1", "s2", "s3", "s4", "s1"]


def _plan():
    return {"schema_version": 1, "study": {"name": "norms-test", "title": "t", "task": "norming", "description": ""},
            "design": {"kind": "norming", "emotion_question": "emotion"}, "questions": [EMO, INT],
            "consistency": {"max_inconsistent": 0, "rules": [{"question": "emotion", "kind": "equal", "tolerance": 0}]},
            "batches": [{"batch_id": "b01", "index": 0, "items": [
                {"position": i, "stimulus_id": s, "repeat_of": 0 if i == 4 else None} for i, s in enumerate(ITEMS)]},
                {"batch_id": "b02", "index": 1, "items": [{"position": 0, "stimulus_id": "s5", "repeat_of": None}]}],
            "examples": [], "quota_per_batch": 4, "seed": 0, "set_name": "known"}


def _stimuli():
    rows = []
    for sid, (emo, ident) in STIM.items():
        prob, top = MACHINE[sid]
        rows.append({"stimulus_id": sid, "media": f"media/{sid}.mp4", "sha256": "0" * 64, "duration_s": 2.0,
                     "fps": 25.0, "width": 64, "height": 64, "audio_rate": None, "source": "FULL",
                     "visual_emotion": emo, "audio_emotion": None, "identity": ident, "sentence": "S",
                     "check": {"flagged": False, "reasons": [], "rater_intended_prob": prob, "rater_top": top}})
    return rows


@pytest.fixture
def known_export(export_writer):
    rows, parts = [], []
    for p, given in ANSWERS.items():
        verdict = "rejected" if p == "p5" else "valid"
        for pos, (sid, (emo, inten)) in enumerate(zip(ITEMS, given)):
            e, ident = STIM[sid]
            for q, a, score in (("emotion", emo, ""), ("intensity", f"i{inten}", inten)):
                rows.append({"answer_id": f"{p}-{pos}", "study": "norms-test", "task": "norming", "batch_id": "b01",
                             "participant": p, "assignment": f"a-{p}", "position": pos, "is_repeat": int(pos == 4),
                             "repeat_of": 0 if pos == 4 else "", "stimulus_id": sid, "source": "FULL",
                             "visual_emotion": e, "audio_emotion": "", "identity": ident, "sentence": "S",
                             "question": q, "answer": a, "score": score, "verdict": verdict})
        parts.append({"participant": p, "assignment": f"a-{p}", "batch_id": "b01", "status": "completed",
                      "verdict": verdict, "n_inconsistent": int(p == "p5"), "n_repeat_answers": 1})
    return export_writer(_plan(), _stimuli(), rows, parts)


# ------------------------------------------------------------------ the independent computation

def _valid_original():
    """[(participant, stimulus, emotion answer, intensity)] of valid surveys, originals only."""
    out = []
    for p, given in ANSWERS.items():
        if p == "p5":
            continue
        for pos in range(4):
            out.append((p, ITEMS[pos], given[pos][0], given[pos][1]))
    return out


def _wilson(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def _pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return num / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def expected_per_stimulus():
    rows = _valid_original()
    chosen = {}
    hits_of = {}
    for p, s, a, _ in rows:
        chosen[a] = chosen.get(a, 0) + 1
        if a == STIM[s][0]:
            hits_of[STIM[s][0]] = hits_of.get(STIM[s][0], 0) + 1
    out = {}
    for sid in ["s1", "s2", "s3", "s4"]:
        mine = [(a, i) for p, s, a, i in rows if s == sid]
        n = len(mine)
        counts = {o: sum(1 for a, _ in mine if a == o) for o in ("anger", "happiness", "other")}
        hits = counts[STIM[sid][0]]
        top = max(counts.values())
        tied = [o for o in ("anger", "happiness", "other") if counts[o] == top]
        ent = -sum(c / n * math.log2(c / n) for c in counts.values() if c)
        e = STIM[sid][0]
        out[sid] = {"n_ratings": n, "n_hits": hits, "recognition": hits / n, "ci": _wilson(hits, n),
                    "modal_label": ";".join(tied), "modal_share": top / n, "other_share": counts["other"] / n,
                    "entropy_bits": ent, "hu": (hits / n) * (hits_of.get(e, 0) / chosen[e]),
                    "intensity_mean": statistics.mean(i for _, i in mine),
                    "intensity_sd": statistics.stdev(i for _, i in mine)}
    return out


def test_per_stimulus_norms_equal_the_loops(known_export):
    norms = compute_norms(load_export(known_export))
    per = norms.stimuli.set_index("stimulus_id")
    exp = expected_per_stimulus()
    for sid, e in exp.items():
        row = per.loc[sid]
        assert row["n_ratings"] == e["n_ratings"] == 4  # p5 (rejected) and the repeat do not count
        assert row["n_hits"] == e["n_hits"]
        assert row["recognition"] == pytest.approx(e["recognition"])
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(e["ci"])
        assert row["modal_label"] == e["modal_label"]
        assert row["modal_share"] == pytest.approx(e["modal_share"])
        assert row["other_share"] == pytest.approx(e["other_share"])
        assert row["entropy_bits"] == pytest.approx(e["entropy_bits"])
        assert row["hu"] == pytest.approx(e["hu"])
        assert row["intensity_mean"] == pytest.approx(e["intensity_mean"])
        assert row["intensity_sd"] == pytest.approx(e["intensity_sd"])
    # By hand: s1 3 of 4 anger; s2 a tie of anger and happiness (2 each); s3 3 of 4 happiness and one
    # "other"; anger was chosen 6 times with 5 hits (precision 5/6), so Hu(s1) = 0.75 * 5/6 = 0.625.
    assert per.loc["s2", "modal_label"] == "anger;happiness" and per.loc["s2", "n_modal"] == 2
    assert per.loc["s1", "hu"] == pytest.approx(0.625)
    assert per.loc["s3", "entropy_bits"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    # Wilson 95% of 3/4 (z = 1.96): [0.3006, 0.9544]
    assert (per.loc["s1", "ci_low"], per.loc["s1", "ci_high"]) == pytest.approx((0.3006, 0.9544), abs=1e-4)


def test_a_stimulus_rated_by_nobody_is_listed_with_empty_measures(known_export):
    norms = compute_norms(load_export(known_export))
    s5 = norms.stimuli.set_index("stimulus_id").loc["s5"]
    assert s5["n_ratings"] == 0 and s5["modal_label"] == "" and math.isnan(s5["recognition"])
    assert math.isnan(s5["ci_low"]) and math.isnan(s5["hu"]) and math.isnan(s5["entropy_bits"])
    assert norms.summary["unrated"] == ["s5"] and norms.summary["n_stimuli_rated"] == 4
    anger = norms.emotions.set_index("intended").loc["anger"]
    assert anger["n_stimuli"] == 3 and anger["n_stimuli_rated"] == 2
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_emotion_and_identity_summaries_and_pooled_hu(known_export):
    norms = compute_norms(load_export(known_export))
    emo = norms.emotions.set_index("intended")
    # Pooled Hu (Wagner 1993) of anger: hits 5, shown 8 times, chosen 6 times -> 25 / 48.
    assert emo.loc["anger", "hu_pooled"] == pytest.approx(25 / 48)
    assert emo.loc["happiness", "hu_pooled"] == pytest.approx(25 / (8 * 8))  # 5 hits, 8 shown, 8 chosen
    assert emo.loc["anger", "recognition_mean"] == pytest.approx((0.75 + 0.5) / 2)
    ident = norms.identities.set_index("identity")
    exp = expected_per_stimulus()
    assert ident.loc["A", "recognition_pooled"] == pytest.approx((3 + 3) / 8)  # s1, s3 (s5 unrated)
    assert ident.loc["B", "intensity_mean"] == pytest.approx((exp["s2"]["intensity_mean"]
                                                              + exp["s4"]["intensity_mean"]) / 2)
    conf = norms.confusion.set_index(["truth", "answer"])
    assert conf.loc[("happiness", "other"), "count"] == 2 and conf.loc[("anger", "other"), "count"] == 0


def test_reliability_equals_the_loops(known_export):
    norms = compute_norms(load_export(known_export), n_splits=20, seed=3)
    rel = norms.reliability.set_index("measure").loc["intensity"]
    rows = _valid_original()
    groups = {sid: [i for p, s, a, i in sorted(rows) if s == sid] for sid in ["s1", "s2", "s3", "s4"]}
    # odd-even halves in participant order (p1, p3 | p2, p4)
    a = [statistics.mean(g[0::2]) for g in groups.values()]
    b = [statistics.mean(g[1::2]) for g in groups.values()]
    r = _pearson(a, b)
    assert rel["r_oddeven"] == pytest.approx(r)
    assert rel["sb_oddeven"] == pytest.approx(2 * r / (1 + r))
    # One-way ICC, 4 clips x 4 ratings (balanced: k0 = 4).
    allv = [x for g in groups.values() for x in g]
    grand = statistics.mean(allv)
    ssb = sum(len(g) * (statistics.mean(g) - grand) ** 2 for g in groups.values())
    ssw = sum((x - statistics.mean(g)) ** 2 for g in groups.values() for x in g)
    msb, msw = ssb / 3, ssw / 12
    assert rel["k0"] == pytest.approx(4)
    assert rel["icc1"] == pytest.approx((msb - msw) / (msb + 3 * msw))
    assert rel["icck"] == pytest.approx((msb - msw) / msb)
    # Test-retest: the repeat of s1 against the original, over the four valid participants.
    orig = [ANSWERS[p][0][1] for p in ("p1", "p2", "p3", "p4")]
    rep = [ANSWERS[p][4][1] for p in ("p1", "p2", "p3", "p4")]
    assert rel["n_retest"] == 4 and rel["retest"] == pytest.approx(_pearson(orig, rep))
    rec = norms.reliability.set_index("measure").loc["recognition"]
    assert rec["retest"] == pytest.approx(1.0)  # every valid participant repeated the emotion


def test_machine_check_vs_people_equals_the_loops(known_export):
    norms = compute_norms(load_export(known_export))
    m = norms.machine
    exp = expected_per_stimulus()
    sids = ["s1", "s2", "s3", "s4"]  # s5 has a machine probability but no rating
    probs = [MACHINE[s][0] for s in sids]
    rates = [exp[s]["recognition"] for s in sids]
    assert m["n_stimuli"] == 4
    assert m["spearman_rho"] == pytest.approx(_pearson(_ranks(probs), _ranks(rates)))
    # Machine tops: s1 angry = anger (modal anger: 1), s2 happy (tie anger;happiness: 1/2), s3 happy (1),
    # s4 surprise -> other (modal happiness: 0) -> (1 + 0.5 + 1 + 0) / 4.
    assert m["top_agreement"] == pytest.approx(2.5 / 4)
    per = norms.stimuli.set_index("stimulus_id")
    # FER's "surprise" and an emotion the question did not offer ("sad" in a set of anger and happiness): other
    assert per.loc["s4", "machine_top"] == "other" and per.loc["s5", "machine_top"] == "other"
    assert per.loc["s1", "machine_top"] == "anger" and per.loc["s3", "machine_top"] == "happiness"


def test_norms_command_writes_report_json_tables_figures(known_export, tmp_path):
    from emostudy.cli import main

    out = tmp_path / "norms"
    res = CliRunner().invoke(main, ["norms", str(known_export), "--out", str(out), "--splits", "10"])
    assert res.exit_code == 0, res.output
    assert "recognition" in res.output
    data = json.loads((out / "norms.json").read_text())
    assert {r["stimulus_id"] for r in data["stimuli"]} == {"s1", "s2", "s3", "s4", "s5"}
    assert {p.name for p in (out / "tables").iterdir()} >= {"stimuli.csv", "emotions.csv", "reliability.csv"}
    assert (out / "figures" / "norms_recognition.png").is_file()
    html = (out / "report.html").read_text()
    assert "Machine check vs people" in html and "anger;happiness" in html
    again = CliRunner().invoke(main, ["norms", str(known_export), "--out", str(out)])
    assert again.exit_code != 0 and "already holds a report" in again.output
    # Same inputs and seed, same bytes.
    out2 = tmp_path / "norms2"
    CliRunner().invoke(main, ["norms", str(known_export), "--out", str(out2), "--splits", "10"])
    assert (out2 / "norms.json").read_bytes() == (out / "norms.json").read_bytes()


def test_an_export_without_emotion_or_scale_questions_is_refused(known_export, tmp_path):
    plan = json.loads((Path(known_export) / "plan.json").read_text())
    plan["questions"] = [dict(EMO, id="pick", options=[{"value": "x", "label": "x", "score": None, "exclusive": False},
                                                       {"value": "y", "label": "y", "score": None,
                                                        "exclusive": False}])]
    plan["design"]["emotion_question"] = "pick_other"
    plan["consistency"]["rules"] = []
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("manifest.json", "participants.csv"):
        (bad / f).write_bytes((Path(known_export) / f).read_bytes())
    (bad / "plan.json").write_text(json.dumps(plan))
    rows = [line.replace(",emotion,anger,", ",pick,x,").replace(",emotion,happiness,", ",pick,y,")
            .replace(",emotion,other,", ",pick,x,") for line in (Path(known_export) / "answers.csv").read_text().splitlines()]
    (bad / "answers.csv").write_text("\n".join(rows[:1] + [r for r in rows[1:] if ",intensity,i" not in r]) + "\n")
    from analysis.errors import AnalysisError

    with pytest.raises(AnalysisError, match="no emotion question and no scale question"):
        write_norms(bad, tmp_path / "out")


@pytest.mark.browser
def test_norms_report_opens_in_chromium_without_errors_or_sideways_scroll(known_export, tmp_path, chromium_path):
    from playwright.sync_api import sync_playwright

    write_norms(known_export, tmp_path / "norms", n_splits=10)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((tmp_path / "norms" / "report.html").as_uri())
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            assert len(widths) >= 3 and all(w > 100 for w in widths)
            body = page.inner_text("body")
            assert "Machine check vs people" in body and "Split-half reliability" in body
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        finally:
            browser.close()
    assert errors == []


def test_scales_only_when_the_plan_has_no_emotion_question(known_export, tmp_path):
    import shutil

    folder = tmp_path / "scales-only"
    shutil.copytree(known_export, folder)
    plan = json.loads((folder / "plan.json").read_text())
    plan["design"]["emotion_question"] = "absent"  # named but not asked: no recognition, scales still normed
    (folder / "plan.json").write_text(json.dumps(plan))
    norms = compute_norms(load_export(folder), n_splits=5)
    assert "recognition" not in norms.stimuli and not norms.machine["available"]
    exp = expected_per_stimulus()
    per = norms.stimuli.set_index("stimulus_id")
    assert per.loc["s3", "intensity_mean"] == pytest.approx(exp["s3"]["intensity_mean"])
    assert list(norms.reliability["measure"]) == ["intensity"]
    write_norms(folder, tmp_path / "out", n_splits=5)  # the report is written without the recognition parts
    assert "Machine check vs people" in (tmp_path / "out" / "report.html").read_text()


def test_random_split_halves_average_like_a_loop_over_permutations(known_export):
    import random

    norms = compute_norms(load_export(known_export), n_splits=3000, seed=1)
    rows = _valid_original()
    groups = [[i for p, s, a, i in rows if s == sid] for sid in ["s1", "s2", "s3", "s4"]]
    rnd = random.Random(7)
    rs = []
    for _ in range(3000):  # every clip's four ratings shuffled, first two vs last two (any halving is alike)
        halves = [rnd.sample(g, len(g)) for g in groups]
        a = [statistics.mean(h[:2]) for h in halves]
        b = [statistics.mean(h[2:]) for h in halves]
        if len(set(a)) > 1 and len(set(b)) > 1:
            rs.append(_pearson(a, b))
    # two Monte Carlo estimates of the same expectation: about 4 standard errors apart at most
    assert norms.reliability.set_index("measure").loc["intensity", "r_random"] == pytest.approx(
        statistics.mean(rs), abs=0.06)


def test_norms_without_the_manifest_take_the_labels_from_the_answers(known_export, tmp_path):
    import shutil

    folder = tmp_path / "no-manifest"
    shutil.copytree(known_export, folder)
    (folder / "manifest.json").unlink()
    norms = compute_norms(load_export(folder), n_splits=5)
    per = norms.stimuli.set_index("stimulus_id")
    exp = expected_per_stimulus()
    assert per.loc["s1", "recognition"] == pytest.approx(exp["s1"]["recognition"])
    assert per.loc["s5", "intended"] == "" and per.loc["s5", "n_ratings"] == 0  # unrated and unlabelled
    assert not norms.machine["available"] and "check results" in norms.machine["reason"]


def test_a_straight_lining_rater_passes_the_consistency_check_and_is_listed(known_export, tmp_path):
    """p6 answers "other" and 4 to everything, repeats included: consistent, so valid; the raters table shows it."""
    import csv
    import shutil

    folder = tmp_path / "with-p6"
    shutil.copytree(known_export, folder)
    with open(folder / "answers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    for r in [r for r in rows if r["participant"] == "p1"]:
        rows.append({**r, "participant": "p6", "assignment": "a-p6", "answer_id": r["answer_id"].replace("p1", "p6"),
                     "answer": "other" if r["question"] == "emotion" else "i4",
                     "score": "" if r["question"] == "emotion" else "4"})
    with open(folder / "answers.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with open(folder / "participants.csv", newline="") as fh:
        parts = list(csv.DictReader(fh))
    parts.append({**parts[0], "participant": "p6", "assignment": "a-p6", "n_inconsistent": "0"})
    with open(folder / "participants.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(parts[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(parts)
    norms = compute_norms(load_export(folder), n_splits=5)
    raters = norms.raters.set_index("participant")
    assert bool(raters.loc["p6", "straight_lining"]) and not raters.drop("p6")["straight_lining"].any()
    assert raters.loc["p6", "intensity_sd"] == 0 and raters.loc["p6", "recognition"] == 0
    assert norms.summary["straight_lining"] == ["p6"]
    # consensus of p1 by hand: s1 others (p2 anger, p3 happiness, p4 anger, p6 other) -> anger, p1 said anger: 1;
    # s2 others: happiness 2, anger 1, other 1 -> happiness, p1 said anger: 0; s3 others: happiness 2, other 2 -> a
    # tie, p1 said happiness: 1/2; s4 others: happiness 2, anger 1, other 1 -> p1 said other: 0.
    assert raters.loc["p1", "consensus"] == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    # p1's intensity against the others' clip means (p2, p3, p4, p6)
    others = [statistics.mean([7, 4, 5, 4]), statistics.mean([3, 4, 6, 4]), statistics.mean([5, 1, 6, 4]),
              statistics.mean([3, 2, 4, 4])]
    assert raters.loc["p1", "intensity_r_others"] == pytest.approx(_pearson([6, 5, 4, 2], others))
    write_norms(folder, tmp_path / "out", n_splits=5)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "same score to every clip on every scale (p6)" in html


def test_the_check_report_gives_the_machine_opinion_when_the_manifest_has_none(known_export, tmp_path):
    """A check run with --no-manifest (the demo's background check) leaves the manifest without check results:
    `emostudy norms --qc SET/qc/qc.json` reads them from the check's report and gives the same comparison."""
    import shutil

    from analysis.norms import read_qc
    from analysis.norms_report import norms_command

    folder = tmp_path / "unchecked"
    shutil.copytree(known_export, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for row in manifest["stimuli"]:
        row.pop("check", None)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert not compute_norms(load_export(folder), n_splits=5).machine["available"]
    qc = tmp_path / "qc.json"
    qc.write_text(json.dumps({"records": [{"stimulus_id": s, "rater": {"intended_prob": p, "top": top}}
                                          for s, (p, top) in MACHINE.items()]}))
    assert read_qc(qc) == {s: (p, top) for s, (p, top) in MACHINE.items()}
    with_qc = compute_norms(load_export(folder), n_splits=5, qc=read_qc(qc)).machine
    reference = compute_norms(load_export(known_export), n_splits=5).machine
    assert with_qc["available"] and with_qc["n_stimuli"] == reference["n_stimuli"] == 4
    assert with_qc["spearman_rho"] == pytest.approx(reference["spearman_rho"])
    assert with_qc["top_agreement"] == pytest.approx(reference["top_agreement"])
    out = CliRunner().invoke(norms_command, [str(folder), "--out", str(tmp_path / "r"), "--qc", str(qc)])
    assert out.exit_code == 0 and "machine check vs people" in out.output, out.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    out = CliRunner().invoke(norms_command, [str(folder), "--out", str(tmp_path / "r2"), "--qc", str(bad)])
    assert out.exit_code != 0 and "not a check report" in out.output
