"""Benchmark: `emostudy analyze` on a large simulated export (issue 7: 100,000 answers, mixed models
excluded, < 10 s on 2 cores), and the time of the mixed-effects models on the same answers.

    .venv/bin/python bench/bench_analysis.py                       # Task 1, ~100,000 answers
    .venv/bin/python bench/bench_analysis.py --task av-mismatch    # Task 2, ~100,000 answers
    .venv/bin/python bench/bench_analysis.py --answers 20000 --mixed

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
    print(json.dumps(out))


if __name__ == "__main__":
    main()
