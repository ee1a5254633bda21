"""`emostudy check` on a Task-2 set (issue 17 target: 72 clips of 3 s checked in < 60 s on 2 cores).

    .venv/bin/python bench/bench_check.py --seconds 3 --jobs 2
    .venv/bin/python bench/bench_check.py --quick          # 36 clips of 1 s

Builds the set first (not timed): the paper's Task 2 design (36 visual x audio emotion pairs, 2 repeats
= 72 clips) with the warp renderer from the two shipped photos and speech-like test audio of
``--seconds`` (voiced bursts of random length), 128x128 at 25 fps. Then times ``check_set`` from scratch
(wall clock, ``--jobs`` processes, each loading the models once: the start-up is included) and a
re-run (everything reused). Reports the CPU seconds per frame of each measure (summed over the clips'
records, ``cpu_s`` in qc.json) and the 1-minute load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def build_set(folder: Path, seconds: float, repeats: int) -> Path:
    """Faces, speech files and a mismatched warp set under ``folder``; returns the set folder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "generator"))
    from check_helpers import RATE, syllables

    from generator.audio import write_wav
    from generator.produce.demo_assets import make_face_pool

    faces, speech, out = folder / "faces", folder / "speech", folder / "set"
    make_face_pool(faces)
    speech.mkdir(parents=True, exist_ok=True)
    for i, code in enumerate(CODES):
        write_wav(speech / f"SYN01_BEN_{code}_XX.wav", syllables(seconds, seed=i), RATE)
    argv = [sys.executable, "-m", "emostudy", "generate", "--design", "mismatched", "--faces", str(faces),
            "--speech", str(speech), "--repeats", str(repeats), "--seed", "0", "--workers", "2", "--out", str(out)]
    import subprocess

    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="clip length")
    ap.add_argument("--repeats", type=int, default=2, help="repeats of the 36 pairs (2 = 72 clips)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="build the set here and keep it (reused if present)")
    ap.add_argument("--quick", action="store_true", help="1-s clips, 1 repeat (36 clips)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.repeats = 1.0, 1
    from rich.console import Console

    from generator.check.run import check_set

    tmp = None
    base = args.keep or Path(tmp := tempfile.mkdtemp(prefix="bench-check-"))
    try:
        set_dir = base / "set"
        if not (set_dir / "manifest.json").is_file():
            t0 = time.perf_counter()
            build_set(base, args.seconds, args.repeats)
            print(f"built the set in {time.perf_counter() - t0:.1f} s (not part of the check)")
        shutil.rmtree(set_dir / "qc", ignore_errors=True)  # our own benchmark output: measure from scratch
        quiet = Console(quiet=True)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        rep = check_set(set_dir, jobs=args.jobs, faces=[base / "faces"], console=quiet)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        rep2 = check_set(set_dir, jobs=args.jobs, faces=[base / "faces"], console=quiet)
        wall2 = time.perf_counter() - t1
        load1 = os.getloadavg()[0]
        recs = [r for r in rep.records if not r.get("error")]
        frames = sum(r["n_frames"] for r in recs)
        stages: dict[str, float] = {}
        for r in recs:
            for k, v in r["cpu_s"].items():
                stages[k] = stages.get(k, 0.0) + v
        cpu_total = sum(stages.values())
        result = {
            "clips": len(rep.records), "frames": frames, "seconds_per_clip": args.seconds, "jobs": args.jobs,
            "wall_s": round(wall, 1), "rerun_wall_s": round(wall2, 1), "rerun_measured": rep2.measured,
            "clips_per_s": round(len(rep.records) / wall, 2), "flagged": len(rep.flagged),
            "cpu_ms_per_frame": {k: round(1000 * v / frames, 2) for k, v in stages.items()},
            "cpu_ms_per_frame_total": round(1000 * cpu_total / frames, 1),
            "identity_cpu_ms_per_compared_frame": round(
                1000 * stages.get("identity", 0) / max(1, sum(len(r["identity_check"]["frames"]) for r in recs)), 1),
            "load_avg_1min": [round(load0, 2), round(load1, 2)], "cores": os.cpu_count(),
            "target": "72 clips of 3 s in < 60 s on 2 cores",
        }
        print(json.dumps(result, indent=1))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder


if __name__ == "__main__":
    main()
