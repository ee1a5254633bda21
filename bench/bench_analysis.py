"""Benchmark: `emostudy analyze` on a large simulated export (issue 7: 100,000 answers, mixed models
excluded, < 10 s on 2 cores; issue 19: the full report with the mixed models, < 10 s), and the time of the
mixed-effects models on the same answers.

    .venv/bin/python bench/bench_analysis.py                       # Task 1, ~100,000 answers
    .venv/bin/python bench/bench_analysis.py --task av-mismatch    # Task 2, ~100,000 answers
    .venv/bin/python bench/bench_analysis.py --answers 20000 --mixed
    .venv/bin/python bench/bench_analysis.py --full                # report with mixed models: before / after

--full times, in one run on the same export, the whole report with the mixed models three ways: without
them; "before" (the mixed logit fitted with statsmodels' own BinomialBayesMixedGLM and the process's default
BLAS threads, as before issue 19); "after" (analysis.models as it is now). The order alternates
(before, after, after, before) and each figure is the mean of its two runs, so that a change of the
machine's load during the run biases neither side.

The export is simulated first (analysis.simulate; not timed): a Task-1-shaped plan (5 GT + 5 BL + 5 OURS
+ 3 repeats per batch, 3 questions per item) or a Task-2-shaped one, with enough batches and participants
for the requested number of answers, careless and dropped-out participants included. Timed: the whole
`analyze()` (read + validate the CSVs, cleaning with recomputed verdicts, every statistic, 2000 bootstrap
resamples per interval, figures as PNG + PDF, report.html, tables, results.json), wall clock and CPU
time of this process. With --mixed: the mixed logit and the ordinal model on the cleaned answers.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--answers", type=int, default=100_000, help="approximate number of answers")
    ap.add_argument("--task", choices=["emotion-realness", "av-mismatch"], default="emotion-realness")
    ap.add_argument("--mixed", action="store_true", help="also time the mixed-effects and ordinal models")
    ap.add_argument("--full", action="store_true", help="time the report with mixed models, before and after")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from analysis.cleaning import clean
    from analysis.io import load_export
    from analysis.report import AnalysisOptions, analyze
    from analysis.simulate import make_plan, simulate_answers, write_export

    per_survey = 18 * 3 if args.task == "emotion-realness" else 14 * 2
    # Task 1: more batches of the paper's shape; Task 2: the paper's 6 batches of the 72 videos, more people.
    n_batches = 6 * max(1, round(args.answers / per_survey / 6 / 40)) if args.task == "emotion-realness" else 6
    per_batch = max(2, round(args.answers / per_survey / n_batches / 1.12))
    with tempfile.TemporaryDirectory(prefix="emostudy-bench-analysis-") as tmp:
        t0 = time.perf_counter()
        plan, stimuli = make_plan(args.task, n_batches=n_batches, random_state=args.seed)
        rows, parts = simulate_answers(plan, stimuli, participants_per_batch=per_batch, random_state=args.seed)
        export = write_export(Path(tmp) / "export", plan, stimuli, rows, parts)
        simulate_s = time.perf_counter() - t0

        c0, w0 = time.process_time(), time.perf_counter()
        result = analyze(export, Path(tmp) / "report", AnalysisOptions(seed=args.seed, n_boot=args.n_boot,
                                                                       mixed_models=False))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if args.full and args.task == "emotion-realness":
            full = _full_report_before_after(export, Path(tmp), args)
        out = {"task": args.task, "answers": len(rows), "surveys": len(parts),
               "answers_used": result.results["cleaning"]["n_answers_used"], "n_boot": args.n_boot,
               "analyze_wall_s": round(wall, 2), "analyze_cpu_s": round(cpu, 2), "simulate_s": round(simulate_s, 2),
               "report_bytes": (Path(tmp) / "report" / "report.html").stat().st_size,
               "load_average": os.getloadavg()[0], "cpus": os.cpu_count(), "python": platform.python_version()}
        if args.mixed and args.task == "emotion-realness":
            from analysis.models import correctness_mixed_logit, realness_ordinal

            answers = clean(load_export(export)).answers
            t, c = time.perf_counter(), time.process_time()
            ml = correctness_mixed_logit(answers)
            out["mixed_logit_wall_s"] = round(time.perf_counter() - t, 2)
            out["mixed_logit_cpu_s"] = round(time.process_time() - c, 2)
            out["mixed_logit_size"] = {k: ml[k] for k in ("n_answers", "n_participants", "n_items")}
            t, c = time.perf_counter(), time.process_time()
            realness_ordinal(answers)
            out["ordinal_wall_s"] = round(time.perf_counter() - t, 2)
            out["ordinal_cpu_s"] = round(time.process_time() - c, 2)
        if args.full and args.task == "emotion-realness":
            out.update(full)
            out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out))


def _statsmodels_mixed_logit(answers, *, question="emotion", truth="visual_emotion", reference=None,
                             random_state=0):
    """The mixed logit as fitted before issue 19: statsmodels' own class, default BLAS threads (the same
    model, data, start and optimizer as analysis.models.correctness_mixed_logit)."""
    import warnings

    import numpy as np
    import pandas as pd
    from scipy import sparse
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    from analysis import models

    d = answers[answers["question"] == question]
    reference = reference or "GT"
    y = (d["answer"] == d[truth]).astype(float).to_numpy()
    X, _ = models._design(d["source"], reference)
    X.insert(0, "Intercept", 1.0)
    p_codes, p_uni = pd.factorize(d["participant"])
    i_codes, i_uni = pd.factorize(d["stimulus_id"])
    rows = np.r_[np.arange(len(d)), np.arange(len(d))]
    exog_vc = sparse.csr_matrix((np.ones(len(rows)), (rows, np.r_[p_codes, len(p_uni) + i_codes])),
                                shape=(len(d), len(p_uni) + len(i_uni)))
    ident = np.r_[np.zeros(len(p_uni), dtype=int), np.ones(len(i_uni), dtype=int)]
    model = BinomialBayesMixedGLM(y, X.to_numpy(), exog_vc, ident, vcp_p=1.0, fe_p=2.0,
                                  fep_names=list(X.columns), vcp_names=["participant", "item"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = model.fit_vb(rng=np.random.default_rng(random_state), fit_method="L-BFGS-B",
                           minim_opts={"maxiter": 5000})
    from scipy import stats as sps

    fixed = []
    for n, m, s in zip(X.columns, map(float, res.fe_mean), map(float, res.fe_sd)):
        z = m / s if s > 0 else float("nan")  # the same columns as analysis.models reports (the report reads them)
        fixed.append({"term": n, "estimate": m, "sd": s, "ci_low": m - 1.96 * s, "ci_high": m + 1.96 * s,
                      "odds_ratio": float(np.exp(m)), "z": z, "p_approx": float(2 * sps.norm.sf(abs(z)))})
    return {"formula": "", "reference": reference, "method": "statsmodels (before issue 19)", "n_answers": len(d),
            "n_participants": len(p_uni), "n_items": len(i_uni), "seconds": 0.0, "fixed": fixed,
            "random_sd": {n: float(np.exp(res.vcp_mean[k])) for k, n in enumerate(["participant", "item"])},
            "converged": bool(res.optim_retvals.success)}


def _full_report_before_after(export, tmp: Path, args) -> dict:
    from analysis import models
    from analysis.report import AnalysisOptions, analyze

    current = models.correctness_mixed_logit
    times: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    estimates = {}
    for k, which in enumerate(("before", "after", "after", "before")):
        models.correctness_mixed_logit = _statsmodels_mixed_logit if which == "before" else current
        try:
            c0, w0 = time.process_time(), time.perf_counter()
            res = analyze(export, tmp / f"full-{k}", AnalysisOptions(seed=args.seed, n_boot=args.n_boot,
                                                                     mixed_models=True))
            times[which].append((time.perf_counter() - w0, time.process_time() - c0))
        finally:
            models.correctness_mixed_logit = current
        ml = res.results["task1"]["mixed_logit"]
        estimates[which] = {"fixed": {f["term"]: round(f["estimate"], 4) for f in ml["fixed"]},
                            "random_sd": {n: round(v, 4) for n, v in ml["random_sd"].items()}}
    out = {}
    for which, runs in times.items():
        out[f"full_{which}_wall_s"] = round(sum(w for w, _ in runs) / len(runs), 2)
        out[f"full_{which}_cpu_s"] = round(sum(c for _, c in runs) / len(runs), 2)
        out[f"full_{which}_estimates"] = estimates[which]
    out["full_speedup_wall"] = round(out["full_before_wall_s"] / out["full_after_wall_s"], 2)
    out["full_speedup_cpu"] = round(out["full_before_cpu_s"] / out["full_after_cpu_s"], 2)
    return out


if __name__ == "__main__":
    main()
