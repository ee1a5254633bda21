"""`make bench`: run every benchmark script of ``bench/`` and keep each one's output.

    python -m bench.run_all                 # every bench/bench_*.py, then bench/server_load.py
    python -m bench.run_all --list          # what would run, with the command line of each
    python -m bench.run_all --only warp --only analysis
    python -m bench.run_all --full          # do not pass --quick even to scripts that accept it

Each script runs as its own child process (``sys.executable script [--quick]``), one after the other (a
benchmark that shares the CPU with another measures nothing). ``--quick`` is passed to a script only
when its ``--help`` lists that option; the others run with their own defaults. The output of each goes
to ``OUT/<name>.log`` (default ``OUT``: ``bench-results/<UTC time>/``) and a summary with exit codes and
wall-clock times to ``OUT/summary.json``. The numbers themselves are read off the logs into
``docs/benchmarks.md``, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
EXTRA_SCRIPTS = ("server_load.py",)


@dataclass
class Outcome:
    name: str
    argv: list[str]
    log: str
    returncode: int | None
    seconds: float


def discover(bench_dir: Path = BENCH_DIR) -> list[Path]:
    """``bench_*.py`` in name order, then the extra scripts that exist (server_load.py)."""
    scripts = sorted(bench_dir.glob("bench_*.py"))
    scripts += [bench_dir / name for name in EXTRA_SCRIPTS if (bench_dir / name).is_file()]
    return scripts


def short_name(script: Path) -> str:
    return script.stem.removeprefix("bench_")


def supports_quick(script: Path, *, timeout_s: float = 120.0) -> bool:
    """True when ``script --help`` lists a ``--quick`` option. A script whose ``--help`` fails gets no
    ``--quick`` (its run then shows the failure in its own log)."""
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                          timeout=timeout_s, cwd=REPO, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        print(f"warning: {script.name} --help failed (exit code {proc.returncode}): "
              f"{proc.stderr.strip()[-300:]}", file=sys.stderr)
        return False
    return any(token.strip(",[]") == "--quick" for token in proc.stdout.split())


def command(script: Path, quick: bool) -> list[str]:
    return [sys.executable, str(script), *(["--quick"] if quick and supports_quick(script) else [])]


def select(scripts: list[Path], only: list[str]) -> list[Path]:
    if not only:
        return scripts
    names = {short_name(s): s for s in scripts}
    unknown = [o for o in only if o not in names and o not in {s.stem for s in scripts}]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(names)}")
    return [s for s in scripts if short_name(s) in only or s.stem in only]


def run_one(script: Path, argv: list[str], out: Path) -> Outcome:
    log = out / f"{short_name(script)}.log"
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(argv) + "\n")
        fh.flush()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        for line in proc.stdout:  # shown live and kept
            sys.stdout.write(line)
            fh.write(line)
        rc = proc.wait()
    return Outcome(short_name(script), argv, str(log), rc, round(time.perf_counter() - t0, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark of bench/ and keep the outputs.")
    parser.add_argument("--out", type=Path, default=None,
                        help="Folder for the logs and summary.json (default: bench-results/<UTC time>).")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="Run only this benchmark (e.g. warp, analysis, server_load); repeatable.")
    parser.add_argument("--full", action="store_true", help="Never pass --quick to the scripts.")
    parser.add_argument("--list", action="store_true", help="Print the command lines and stop.")
    args = parser.parse_args(argv)

    scripts = select(discover(), args.only)
    plan = [(s, command(s, quick=not args.full)) for s in scripts]
    if args.list:
        for s, cmd in plan:
            print(f"{short_name(s):12s} {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}")
        return 0
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or (REPO / "bench-results" / stamp)
    out.mkdir(parents=True, exist_ok=True)
    print(f"benchmark results go to {out}")
    outcomes = []
    for script, cmd in plan:
        print(f"\n=== {short_name(script)}: {' '.join(cmd[1:])}", flush=True)
        outcomes.append(run_one(script, cmd, out))
        o = outcomes[-1]
        print(f"=== {o.name}: exit code {o.returncode} in {o.seconds} s; log {o.log}", flush=True)
    summary = {"started_utc": stamp, "python": sys.version.split()[0], "machine": platform.platform(),
               "processor": platform.processor() or platform.machine(),
               "results": [asdict(o) for o in outcomes]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    failed = [o.name for o in outcomes if o.returncode != 0]
    print(f"\nlogs and summary.json in {out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
