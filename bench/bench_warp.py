"""Frames per second of the warp renderer (issue 4 benchmark: >= 200 frames/s at 128x128 on 2 cores).

    .venv/bin/python bench/bench_warp.py --seconds 8 --sizes 128 256 --workers 2

Renders ``--clips`` clips of ``--seconds`` of synthetic speech per size from the shipped
Grace Hopper photo (emotion cycling over the six, seed = clip index), after one warm-up render that
pays for face detection, alignment and the mesh (cached per photo and size, as in a stimulus set).
Reports, per size: wall-clock frames/s with ``--workers`` processes (one renderer each, one thread
each), CPU seconds per frame, and the split of one process's CPU time between the stages.
The machine is shared: the 1-minute load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

EMOTIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness")


def _speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 8000)) / 8000
    env = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None) ** 0.7
    x = env * sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 10))
    return (x / np.abs(x).max()).astype(np.float32)


_STATE: dict = {}


def _init(size: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    from generator.align import shipped_faces
    from generator.warp.renderer import WarpRenderer

    face = dict(shipped_faces())["matplotlib:grace_hopper.jpg"]
    r = WarpRenderer()
    r.render(face, _speech(0.4, 0), "neutral", 0, size=size)  # warm-up: detect, align, mesh
    _STATE.update(renderer=r, face=face, size=size)


def _job(args: tuple[int, float]) -> tuple[int, float]:
    i, seconds = args
    x = _speech(seconds, i)
    t0 = time.process_time()
    res = _STATE["renderer"].render(_STATE["face"], x, EMOTIONS[i % 6], i, size=_STATE["size"])
    return len(res.frames), time.process_time() - t0


def stages(size: int, seconds: float) -> dict[str, float]:
    """CPU seconds per frame of each stage, in this process."""
    import cv2

    cv2.setNumThreads(1)
    from generator.align import shipped_faces
    from generator.warp.cavity import paint_mouth
    from generator.warp.renderer import WarpRenderer

    face = dict(shipped_faces())["matplotlib:grace_hopper.jpg"]
    r = WarpRenderer()
    prepared = r.prepare(face, size)
    r.render(face, _speech(0.4, 0), "happiness", 0, size=size)  # warm-up (first-use imports)
    x = _speech(seconds, 1)
    t0 = time.process_time()
    anim = r.animate(prepared, x, "happiness", 1, size=size)
    t1 = time.process_time()
    frames = [prepared.mesh.warp(prepared.image, anim.displacement[t], anim.head[t]) for t in range(len(x) // 320)]
    t2 = time.process_time()
    for t, f in enumerate(frames):
        paint_mouth(f, anim.landmarks[t], prepared.base_gap, prepared.style, prepared.unit,
                    float(anim.mouth.spreading[t]), float(anim.mouth.rounding[t]))
    t3 = time.process_time()
    n = len(frames)
    return {"animate": (t1 - t0) / n, "warp": (t2 - t1) / n, "mouth": (t3 - t2) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clips", type=int, default=4, help="clips per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    print(f"cores={os.cpu_count()} workers={a.workers} load={os.getloadavg()[0]:.1f}")
    for size in a.sizes:
        with ProcessPoolExecutor(a.workers, initializer=_init, initargs=(size,)) as pool:
            list(pool.map(_job, [(100 + k, 0.4) for k in range(a.workers)]))  # all workers warm
            t0 = time.perf_counter()
            out = list(pool.map(_job, [(k, a.seconds) for k in range(a.clips)]))
            wall = time.perf_counter() - t0
        frames = sum(n for n, _ in out)
        cpu = sum(c for _, c in out)
        st = stages(size, min(a.seconds, 4.0))
        print(f"{size}x{size}: {frames / wall:.0f} frames/s wall ({frames} frames, {wall:.2f} s, {a.workers} workers), "
              f"{1000 * cpu / frames:.2f} ms CPU/frame -> {a.workers * frames / cpu:.0f} frames/s on {a.workers} idle cores; "
              "stages ms/frame: " + ", ".join(f"{k} {1000 * v:.2f}" for k, v in st.items())
              + f"; load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
