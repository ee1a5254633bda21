"""Benchmark: `prepare crema-d` clips/minute and `evaluate` frames/s.

    .venv/bin/python bench/bench_prepare.py                 # 8 clips of 2.5 s, --jobs 2
    .venv/bin/python bench/bench_prepare.py --clips 16 --jobs 2 --seconds 2.5

Inputs are made here, with no download: a CREMA-D-shaped tree (VideoFlash/*.flv 480x360 at 30 fps,
FLV1 codec like CREMA-D's; AudioWAV/*.wav 44.1 kHz) whose videos are scikit-image's astronaut photo
moving and zooming slightly from frame to frame. CREMA-D clips last 2.5 s on average, hence the
default. Prepare timing covers everything `emostudy prepare crema-d` does: worker start-up (process
spawn, dlib models), decoding, 25 fps selection, audio resampling, detection on the first frame,
alignment, landmarks on every aligned frame, writing the clips and the index.

Evaluate timing: the prepared clips' ground truth written as 128x128 mp4s against noisy copies of
themselves (2 worker processes, their start-up included); covers decoding, alignment of both videos, landmarks on every frame of both, PSNR, SSIM,
NLMD, LMD. Reported as compared frames per second (one frame = one generated + one GT frame).
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

import numpy as np



def make_tree(root: Path, n_clips: int, seconds: float) -> list[str]:
    import av
    import cv2
    from skimage import data

    from generator.audio import write_wav

    (root / "VideoFlash").mkdir(parents=True, exist_ok=True)
    (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
    face = data.astronaut()[:210]  # above the suit: its round patch is detected as a face as large as hers
    names = [f"{1001 + i // 2}_{('DFA', 'IEO')[i % 2]}_{('ANG', 'HAP')[i % 2]}_XX" for i in range(n_clips)]
    n = int(round(seconds * 30))
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        container = av.open(str(root / "VideoFlash" / f"{name}.flv"), "w", format="flv")
        stream = container.add_stream("flv", rate=30)
        stream.width, stream.height, stream.pix_fmt = 480, 360, "yuv420p"
        stream.bit_rate = 800_000
        for i in range(n):
            s = 0.6 + 0.02 * np.sin(i / 7 + k)
            m = np.array([[s, 0, 110 + 10 * np.sin(i / 11)], [0, s, 15 + 5 * np.cos(i / 13)]])
            img = cv2.warpAffine(face, m, (480, 360), borderMode=cv2.BORDER_REPLICATE)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        t = np.arange(int(seconds * 44100)) / 44100
        x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=len(t))
        write_wav(root / "AudioWAV" / f"{name}.wav", x, 44100)
    return names


def _cpu_s() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--eval-videos", type=int, default=4)
    ap.add_argument("--eval-jobs", type=int, default=2)
    args = ap.parse_args()

    from rich.console import Console

    from generator.data.corpus import read_clip, read_index
    from generator.data.prepare import prepare_crema
    from generator.evaluate.metrics import evaluate
    from generator.mediaio import write_mp4

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "crema"
        make_tree(root, args.clips, args.seconds)
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        res = prepare_crema(root, Path(tmp) / "corpus", jobs=args.jobs, console=Console(file=open(os.devnull, "w")))
        prep_s = time.perf_counter() - t0
        prep_cpu = _cpu_s() - cpu0
        if res.failed:
            raise SystemExit(f"prepare failed on {res.failed}")

        gt, gen = Path(tmp) / "gt", Path(tmp) / "gen"
        gt.mkdir()
        gen.mkdir()
        rng = np.random.default_rng(1)
        for info in read_index(Path(tmp) / "corpus")[: args.eval_videos]:
            rgb = np.ascontiguousarray(read_clip(Path(tmp) / "corpus", info).video[..., ::-1])
            write_mp4(gt / f"{info.clip_id}.mp4", rgb)
            noisy = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
            write_mp4(gen / f"{info.clip_id}.mp4", noisy)
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        ev = evaluate({"noisy": gen}, gt, Path(tmp) / "eval", workers=args.eval_jobs)
        eval_s = time.perf_counter() - t0
        eval_cpu = _cpu_s() - cpu0
        frames = sum(s.n_frames for s in ev.scores)

    print(json.dumps({
        "bench": "prepare+evaluate", "clips": args.clips, "seconds_per_clip": args.seconds, "jobs": args.jobs,
        "prepare_s": round(prep_s, 2), "prepare_clips_per_minute": round(60 * args.clips / prep_s, 1),
        "evaluate_videos": len(ev.scores), "evaluate_jobs": args.eval_jobs, "evaluate_frames": frames, "evaluate_s": round(eval_s, 2),
        "evaluate_frames_per_s": round(frames / eval_s, 1),
        # CPU seconds (this process + worker processes): what an idle machine would need; the shared
        # development machine is often oversubscribed, which stretches the wall-clock numbers above.
        "prepare_cpu_s_per_clip": round(prep_cpu / args.clips, 3),
        "evaluate_cpu_ms_per_frame": round(1000 * eval_cpu / frames, 1),
        "cpu_count": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2), "machine": platform.machine(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
