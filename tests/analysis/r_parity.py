"""Run the Psych-DS export's ``analysis/analysis.R`` and compare every number it computes with the Python
report's (``emostudy analyze --verdicts server``), within the tolerances below. Used by
tests/analysis/test_analysis_r_parity.py (simulated studies of the demo's size) and tests/test_demo.py
(the demo's own datasets).

Tolerances (each a deliberate choice, not a fit to the data):
- counts (correct answers, pairs, zeros) and the Wilcoxon V (= R+ of the zero-dropping test): exact;
- binomial and Wilcoxon p-values: relative 1e-6 (the same formulas, floating point only);
- Pratt z (coin vs our Cureton formula): 1e-6;
- mixed logit (lme4::glmer vs analysis.glmm, both Laplace): estimates 0.01, SE 2% relative, |delta z| < 0.1
  (the issue's bound), p within 0.01 absolute or 10% relative, random-effect SDs 0.03; singular flags equal;
- ordinal model (ordinal::clm vs statsmodels): estimates 1e-4, both SEs 0.5% relative.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

REL_P = 1e-6
TOL_PRATT_Z = 1e-6
TOL_ML_EST, TOL_ML_SE_REL, TOL_ML_Z, TOL_ML_SD = 0.01, 0.02, 0.1, 0.03
TOL_ORD_EST, TOL_ORD_SE_REL = 1e-4, 0.005


def run_r(rscript: str, dataset: Path, out_csv: Path) -> dict[str, float]:
    proc = subprocess.run([rscript, str(dataset / "analysis" / "analysis.R"), str(out_csv)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    df = pd.read_csv(out_csv)
    return dict(zip(df["name"], df["value"].astype(float)))


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def compare(r: dict[str, float], results: dict, wilcox_dominance: dict | None = None) -> list[str]:
    """Every number both computed, compared; returns the names compared (asserts on a mismatch)."""
    done: list[str] = []

    def check(name: str, ok: bool, ours, theirs) -> None:
        assert ok, f"{name}: Python {ours!r} vs R {theirs!r}"
        done.append(name)

    t1 = results.get("task1") or {}
    for row in t1.get("accuracy", []):
        s = row["source"]
        check(f"accuracy.{s}.n_correct", row["n_correct"] == r[f"accuracy.{s}.n_correct"], row["n_correct"],
              r[f"accuracy.{s}.n_correct"])
        check(f"accuracy.{s}.n_answers", row["n_answers"] == r[f"accuracy.{s}.n_answers"], row["n_answers"],
              r[f"accuracy.{s}.n_answers"])
        for k in ("binom_p", "binom_p_holm"):
            check(f"accuracy.{s}.{k}", _close(row[k], r[f"accuracy.{s}.{k}"], REL_P), row[k], r[f"accuracy.{s}.{k}"])
    if t1.get("accuracy_all"):
        a = t1["accuracy_all"]
        check("accuracy.ALL.n_correct", a["n_correct"] == r["accuracy.ALL.n_correct"], a["n_correct"],
              r["accuracy.ALL.n_correct"])
        check("accuracy.ALL.binom_p", _close(a["binom_p"], r["accuracy.ALL.binom_p"], REL_P), a["binom_p"],
              r["accuracy.ALL.binom_p"])
    ml = t1.get("mixed_logit")
    if ml and ml.get("fixed"):
        for f in ml["fixed"]:
            t = "(Intercept)" if f["term"] == "Intercept" else f["term"].replace("source[", "source").rstrip("]")
            g = lambda k: r[f"mixed_logit.{t}.{k}"]  # noqa: E731
            check(f"mixed_logit.{t}.estimate", abs(f["estimate"] - g("estimate")) < TOL_ML_EST, f["estimate"],
                  g("estimate"))
            check(f"mixed_logit.{t}.se", _close(f["se"], g("se"), TOL_ML_SE_REL), f["se"], g("se"))
            check(f"mixed_logit.{t}.z", abs(f["z"] - g("z")) < TOL_ML_Z, f["z"], g("z"))
            check(f"mixed_logit.{t}.p", abs(f["p"] - g("p")) < 0.01 or _close(f["p"], g("p"), 0.1), f["p"], g("p"))
        for k in ("participant", "item"):
            check(f"mixed_logit.sd.{k}", abs(ml["random_sd"][k] - r[f"mixed_logit.sd.{k}"]) < TOL_ML_SD,
                  ml["random_sd"][k], r[f"mixed_logit.sd.{k}"])
        check("mixed_logit.singular", bool(ml["singular"]) == bool(r["mixed_logit.singular"]), ml["singular"],
              r["mixed_logit.singular"])
    om = t1.get("ordinal_realness")
    if om and om.get("coefficients"):
        for c in om["coefficients"]:
            t = c["term"].replace("source[", "source").rstrip("]")
            check(f"ordinal.{t}.estimate", abs(c["estimate"] - r[f"ordinal.{t}.estimate"]) < TOL_ORD_EST,
                  c["estimate"], r[f"ordinal.{t}.estimate"])
            for k in ("se_model", "se_cluster"):
                check(f"ordinal.{t}.{k}", _close(c[k], r[f"ordinal.{t}.{k}"], TOL_ORD_SE_REL), c[k], r[f"ordinal.{t}.{k}"])
    sens = {(row["unit"], row["zero_method"]): row for row in t1.get("wilcoxon_sensitivity") or []}
    if sens and "realness.n" in r:
        _signed_rank(check, "realness", r, sens[("participant", "wilcox")], sens[("participant", "pratt")])
    t2 = results.get("task2") or {}
    dom = next((d for d in t2.get("dominance", []) if d["counting"] == "primary"), None)
    if dom is not None and wilcox_dominance is not None:
        _signed_rank(check, "dominance", r, wilcox_dominance, dom)
    return done


def _signed_rank(check, label: str, r: dict[str, float], wilcox: dict, pratt: dict) -> None:
    check(f"{label}.n", pratt["n"] == r[f"{label}.n"], pratt["n"], r[f"{label}.n"])
    check(f"{label}.n_zeros", pratt["n_zeros"] == r[f"{label}.n_zeros"], pratt["n_zeros"], r[f"{label}.n_zeros"])
    if f"{label}.wilcox.V" not in r:  # every difference zero: R computes no test
        check(f"{label}.no_test", pratt["n_zeros"] == pratt["n"], pratt["n_zeros"], pratt["n"])
        return
    check(f"{label}.wilcox.V", wilcox["r_plus"] == r[f"{label}.wilcox.V"], wilcox["r_plus"], r[f"{label}.wilcox.V"])
    check(f"{label}.wilcox.p", _close(wilcox["p"], r[f"{label}.wilcox.p"], REL_P), wilcox["p"], r[f"{label}.wilcox.p"])
    if f"{label}.pratt.z" in r:
        check(f"{label}.pratt.z", abs(pratt["z"] - r[f"{label}.pratt.z"]) < TOL_PRATT_Z, pratt["z"],
              r[f"{label}.pratt.z"])
        check(f"{label}.pratt.p", _close(pratt["p"], r[f"{label}.pratt.p"], REL_P), pratt["p"], r[f"{label}.pratt.p"])


def python_results(export: Path, out: Path) -> tuple[dict, dict | None]:
    """The report's results.json (server verdicts, as the R script) and the zero-dropping dominance test."""
    from analysis import task2
    from analysis.cleaning import clean
    from analysis.io import load_export
    from analysis.report import AnalysisOptions, analyze

    analyze(export, out, AnalysisOptions(verdict_source="server", n_boot=200, mixed_models=True))
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    wilcox = None
    if results.get("task2"):
        ans = clean(load_export(export), verdict_source="server").answers
        resp = task2.label_responses(ans)
        wilcox = task2.dominance_test(resp, subset="mismatched", counting="primary", zero_method="wilcox").iloc[0].to_dict()
    return results, wilcox
