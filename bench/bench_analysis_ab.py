"""Benchmark: `emostudy analyze` on the same simulated 100,000-answer export, this tree against an earlier
commit, side by side (issue 33: the report with the honest mixed model, goal < 5 s with the models).

    .venv/bin/python bench/bench_analysis_ab.py                           # against HEAD~1, 3 rounds, alternating
    .venv/bin/python bench/bench_analysis_ab.py --base a6b1e9d
    .venv/bin/python bench/bench_analysis_ab.py --base HEAD~5 --rounds 5 --answers 20000

The export is simulated once with this tree's analysis.simulate (Task 1 shape, as bench_analysis.py; not
timed). The base commit's files are taken with `git archive` into a temporary folder. Each round runs, in
fresh processes, the report without and with the mixed models for both trees, the order alternating
(base first in odd rounds, this tree first in even ones), so that a change of the machine's load biases
neither side. Timed: `analyze()` inside the process (wall and CPU) and the whole process as a command
(imports included). Reported: the median of the rounds per tree and setting, the load average (1 min)
before and after, the CPU count. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = """
import json, sys, time
from analysis.report import AnalysisOptions, analyze
c0, w0 = time.process_time(), time.perf_counter()
analyze(sys.argv[1], sys.argv[2], AnalysisOptions(seed=0, n_boot=2000, mixed_models=sys.argv[3] == "1"))
print(json.dumps({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}))
"""


def _run(tree: Path, export: Path, out: Path, mixed: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN, str(export), str(out), "1" if mixed else "0"], cwd=tree,
                          env=env, capture_output=True, text=True, check=False)
    command = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"analyze failed in {tree}: {proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "command": command}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="the commit to compare with (default: the previous one)")
    ap.add_argument("--answers", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from analysis.simulate import make_plan, simulate_answers, write_export

    with tempfile.TemporaryDirectory(prefix="emostudy-bench-ab-") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.base], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        base_sha = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=REPO, capture_output=True,
                                  text=True, check=True).stdout.strip()
        head_sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
        n_batches = 6 * max(1, round(args.answers / 54 / 6 / 40))
        per_batch = max(2, round(args.answers / 54 / n_batches / 1.12))
        plan, stimuli = make_plan("emotion-realness", n_batches=n_batches, random_state=0)
        rows, parts = simulate_answers(plan, stimuli, participants_per_batch=per_batch, random_state=0)
        export = write_export(tmp / "export", plan, stimuli, rows, parts)
        trees = {"base": base, "head": REPO}
        times: dict[tuple[str, bool], list[dict]] = {(t, m): [] for t in trees for m in (False, True)}
        load_before = os.getloadavg()[0]
        k = 0
        for r in range(args.rounds):
            order = ("base", "head") if r % 2 == 0 else ("head", "base")
            for mixed in (False, True):
                for which in order:
                    k += 1
                    times[(which, mixed)].append(_run(trees[which], export, tmp / f"out{k}", mixed))
        out = {"answers": len(rows), "rounds": args.rounds, "base": base_sha, "head": head_sha,
               "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
               "cpus": os.cpu_count(), "python": platform.python_version()}
        for (which, mixed), runs in times.items():
            key = f"{which}_{'with' if mixed else 'without'}_models"
            out[key] = {m: round(statistics.median(x[m] for x in runs), 2) for m in ("wall", "cpu", "command")}
            out[key]["walls"] = [round(x["wall"], 2) for x in runs]
        print(json.dumps(out))


if __name__ == "__main__":
    main()
