"""Benchmark: `emostudy norms` on a large simulated norming study (issue 31): CREMA-D-sized by default, 6,552
clips (CREMA-D's 91 actors x 6 emotions x 12 sentences) rated by 10 valid raters each on the ready-made
`norming` spec (emotion + 4 scales: about 400,000 answer rows).

    .venv/bin/python bench/bench_norms.py              # 6,552 clips x 10 raters
    .venv/bin/python bench/bench_norms.py --quick      # 720 clips x 10 raters

The set (synthetic manifest rows, no media), the plan (`stimuli.plan.compile_plan` with the norming spec,
clips_per_batch = 72, 60 with --quick, so that a participant sees each identity x emotion once) and the answers
(`analysis.simulate` with `stimuli.norming.simulated_rating`) are made first, not timed. Timed: the whole
`write_norms` (read + validate the export, cleaning with recomputed verdicts, every per-clip, per-group and
reliability figure with 200 random split-halves, the figures as PNG + PDF, report.html, norms.json, tables),
wall clock and CPU time of this process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--identities", type=int, default=91)
    ap.add_argument("--sentences", type=int, default=12)
    ap.add_argument("--raters", type=int, default=10, help="valid raters per batch (per clip)")
    ap.add_argument("--quick", action="store_true", help="10 identities: 720 clips")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.identities = 10

    from analysis.norms_report import write_norms
    from analysis.simulate import simulate_export
    from stimuli.emotions import EMOTIONS
    from stimuli.manifest import build_manifest
    from stimuli.plan import compile_plan
    from stimuli.spec import parse_spec, resolve_spec

    rows = []
    for i in range(args.identities):
        for e in EMOTIONS:
            for k in range(args.sentences):
                sid = f"{1001 + i}_{e[:3]}_{k:02d}"
                rows.append({"stimulus_id": sid, "media": f"media/{sid}.mp4",
                             "sha256": hashlib.sha256(sid.encode()).hexdigest(), "duration_s": 2.5, "fps": 30.0,
                             "width": 480, "height": 360, "audio_rate": 16000, "source": "GT", "visual_emotion": e,
                             "audio_emotion": e, "identity": str(1001 + i), "sentence": f"S{k:02d}"})
    with tempfile.TemporaryDirectory(prefix="emostudy-bench-norms-") as tmp:
        t0 = time.perf_counter()
        manifest = build_manifest(Path(tmp) / "set", rows, name="bench-norming")
        where, raw = resolve_spec("norming")
        per_batch = b"60" if args.quick else b"72"
        spec = parse_spec(raw.replace(b"clips_per_batch = 24", b"clips_per_batch = " + per_batch), where=where)
        plan = compile_plan(spec, manifest, args.seed)
        export = simulate_export(Path(tmp) / "export", plan=plan, stimuli=[s.to_dict() for s in manifest.stimuli],
                                 participants_per_batch=args.raters, random_state=args.seed)
        simulate_s = time.perf_counter() - t0
        with open(export / "answers.csv", encoding="utf-8") as fh:
            n_rows = sum(1 for _ in fh) - 1
        c0, w0 = time.process_time(), time.perf_counter()
        norms = write_norms(export, Path(tmp) / "norms")
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        out = {"clips": len(rows), "batches": len(plan["batches"]), "answer_rows": n_rows,
               "valid_participants": norms.summary["n_participants_valid"],
               "norms_wall_s": round(wall, 2), "norms_cpu_s": round(cpu, 2), "simulate_s": round(simulate_s, 2),
               "report_bytes": (Path(tmp) / "norms" / "report.html").stat().st_size,
               "load_average": os.getloadavg()[0], "cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
