"""Benchmark: a Task-2-sized stimulus set (72 clips of 3 s: 36 pairs x 2) made end to end.

    .venv/bin/python bench/bench_produce.py                       # warp backend, all cores
    .venv/bin/python bench/bench_produce.py --backend neural --checkpoint CKPT [--clips 8]
    .venv/bin/python bench/bench_produce.py --make-random-checkpoint CKPT   # paper config, random weights

Inputs are made here, with no download: the two shipped face photos and six 3-second espeak-ng
utterances (one per emotion preset, padded with silence to 3.00 s). Timing covers planning, worker
start-up (process spawn, face detector and renderer loading), rendering, H.264/AAC encoding, posters,
probing, hashing and the manifest: what `emostudy generate` does. Prints one JSON line with the wall
time, the CPU time of this process and its workers (``cpu_s``: on an otherwise idle 2-core machine
the wall time is about cpu_s / 2), and the 1-minute load average (other work on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def make_inputs(root: Path, seconds: float = 3.0) -> tuple[Path, Path]:
    from generator.audio import write_wav
    from generator.data.tts import synthesize_emotion
    from generator.produce.demo_assets import SENTENCES, make_face_pool, speech_name
    from stimuli.emotions import EMOTIONS

    faces, speech = root / "faces", root / "speech"
    make_face_pool(faces)
    speech.mkdir(parents=True, exist_ok=True)
    codes = list(SENTENCES)
    for i, emo in enumerate(EMOTIONS):
        code = codes[i]
        x, rate = synthesize_emotion(SENTENCES[code] + ".", emo)
        n = int(round(seconds * rate))
        x = np.pad(x, (0, max(0, n - len(x))))[:n]
        write_wav(speech / speech_name(code, emo), x, rate)
    return faces, speech


def make_random_checkpoint(path: str) -> None:
    """A checkpoint of the paper's generator config with random (seed 0) weights: the same compute as
    trained weights, for timing only."""
    import torch

    from generator.neural.checkpoint import save_checkpoint
    from generator.neural.model import Generator, GeneratorConfig

    torch.manual_seed(0)
    cfg = GeneratorConfig()
    save_checkpoint(path, {"model_config": cfg.to_dict(), "generator": Generator(cfg).state_dict()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="warp")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clips", type=int, default=0,
                    help="make only the first N of the 72 clips (0 = all; for slow backends, then extrapolate)")
    ap.add_argument("--quick", action="store_true", help="12 clips instead of 72 (a smoke run)")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--make-random-checkpoint", default=None, metavar="PATH",
                    help="write a paper-config generator with random weights to PATH and stop")
    args = ap.parse_args()
    if args.make_random_checkpoint:
        make_random_checkpoint(args.make_random_checkpoint)
        return

    from rich.console import Console

    from generator.produce.batch import DesignOptions, RendererSpec, plan_items, plan_jobs, produce

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        faces, speech = make_inputs(root / "inputs")
        options = {k: v for k, v in (("checkpoint", args.checkpoint), ("device", args.device)) if v}
        spec = RendererSpec(args.backend, options)
        out = Path(args.out) if args.out else root / "set"
        t0 = time.perf_counter()
        cpu0 = sum(r.ru_utime + r.ru_stime for r in
                   (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
        jobs = plan_jobs(DesignOptions("mismatched", faces=(str(faces),), speech=(str(speech),),
                                       repeats=args.repeats, seed=1))
        items = plan_items(jobs, spec, 1)
        if args.clips or args.quick:
            items = items[: args.clips or 12]
        summary = produce(items, out, spec, workers=args.workers or None, console=Console(stderr=True))
        wall = time.perf_counter() - t0
        ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        cpu = sum(r.ru_utime + r.ru_stime for r in ru) - cpu0
        frames = sum(round(s["duration_s"] * 25) for s in
                     json.loads((out / "manifest.json").read_text())["stimuli"])
    print(json.dumps({"backend": args.backend, "clips": summary.produced, "failed": summary.failed,
                      "frames": frames, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "clips_per_s": round(summary.produced / wall, 2),
                      "frames_per_s": round(frames / wall, 1), "workers": args.workers or os.cpu_count(),
                      "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
