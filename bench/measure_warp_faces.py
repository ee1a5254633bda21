"""How the machine reads warp renders of the shipped faces (issue 18): emotion, identity, lip sync, and
whether open mouths cost identity.

    PYTHONPATH=. .venv/bin/python bench/measure_warp_faces.py --jobs 2 [--json out.json]

The measurement set: the two faces that ship in installed packages (scikit-image's astronaut, matplotlib's
Grace Hopper) and their mirror images, three CREMA-D sentences spoken by the project's espeak-ng voice with
each emotion's prosody preset (``generator.data.tts``; resampled to the model rate), rendered by
``WarpRenderer(policy="largest")`` in all six emotions: 4 x 3 x 6 = 72 clips of ~2 s at 128x128.

Every frame is measured in memory with the models of ``generator.check.clip.ClipChecker`` (what
``emostudy check`` runs on an mp4; the clip is not encoded): dlib finds the face and its 68 landmarks, the
lip-sync r is ``generator.check.measures.lip_sync`` of the landmarks' inner-lip opening against the speech
envelope (best lag, and at lag 0), the rater's top class is the argmax of its mean probabilities over the
frames with a face (``rec["rater"]["top"]``), and the identity distance is that of dlib's face descriptor
to the source photo's (mirrored for a mirrored face), on every ``--id-step``-th frame.

Open vs closed: per clip, the identity frames are split by the rendered inner-lip gap (the renderer's own
landmarks); the mean distance of the top third minus that of the bottom third is the clip's open-mouth
identity cost (issue 18: at most +0.05).

Prints: the rater's confusion matrix (rows: intended emotion, columns: FER classes), identity mean/max per
emotion, lip-sync r per clip (min/median, and the lowest clips), and the open-vs-closed delta per face.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SENTENCES = ("IEO", "TIE", "DFA")
FACES = ("astronaut", "hopper", "astronaut-mirror", "hopper-mirror")


def face_images() -> dict[str, np.ndarray]:
    from generator.align import shipped_faces

    d = dict(shipped_faces())
    a, h = d["skimage:astronaut"], d["matplotlib:grace_hopper.jpg"]
    return {"astronaut": a, "hopper": h, "astronaut-mirror": np.ascontiguousarray(a[:, ::-1]),
            "hopper-mirror": np.ascontiguousarray(h[:, ::-1])}


def speech_set(sentences: tuple[str, ...], emotions: tuple[str, ...]) -> dict[tuple[str, str], np.ndarray]:
    """{(sentence code, emotion): (N,) float32 at the model rate}: the demo's TTS voice and presets."""
    from generator.audio import MODEL_RATE, normalise, resample
    from generator.data.tts import synthesize_emotion
    from generator.produce.demo_assets import SENTENCES as TEXT

    out = {}
    for code in sentences:
        for emo in emotions:
            x, rate = synthesize_emotion(TEXT[code] + ".", emo)
            out[(code, emo)] = normalise(resample(x, rate, MODEL_RATE))
    return out


_W: dict = {}


def _init(onset_s: float | None = None) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from generator.check.clip import ClipChecker
    from generator.warp.renderer import WarpRenderer

    _W["checker"] = ClipChecker()
    _W["renderer"] = WarpRenderer(policy="largest") if onset_s is None else WarpRenderer(policy="largest", onset_s=onset_s)
    _W["faces"] = face_images()
    _W["refs"] = {}


def _reference(face: str) -> np.ndarray:
    ck = _W["checker"]
    if face not in _W["refs"]:
        img = _W["faces"][face]
        found = ck._detect(img)
        lm = ck._landmarks(img, found[0])
        _W["refs"][face] = ck._descriptor(img, lm)
    return _W["refs"][face]


def measure_clip(job: tuple) -> dict:
    """Render one clip and measure it (in a worker: ``_init`` first)."""
    from generator.audio import MODEL_RATE
    from generator.check import measures as M
    from generator.check.clip import EMOTION_TO_FER
    from generator.check.rater import FER_CLASSES, face_crop
    from generator.warp.cavity import inner_gap

    face, sentence, emotion, seed, speech, id_step = job
    ck, r = _W["checker"], _W["renderer"]
    img = _W["faces"][face]
    t0 = time.perf_counter()
    res = r.render(img, speech, emotion, seed)
    anim = r.animate(img, speech, emotion, seed)
    t_render = time.perf_counter() - t0
    frames = res.frames
    T = len(frames)
    gap = np.array([inner_gap(anim.landmarks[t]) for t in range(T)])
    lms = np.full((T, 68, 2), np.nan)
    boxes = [None] * T
    for t in range(T):
        found = ck._detect(frames[t])
        if found is not None:
            boxes[t] = found[1]
            lms[t] = ck._landmarks(frames[t], found[0])
    found_idx = [t for t in range(T) if boxes[t] is not None]
    mouth = M.mouth_opening(lms)
    env = M.speech_envelope(speech, MODEL_RATE, 25.0, T)
    ls = M.lip_sync(mouth, env, 12)
    ref = _reference(face)
    id_t = [t for t in found_idx if t % id_step == 0]
    dist = np.array([float(np.linalg.norm(ck._descriptor(frames[t], lms[t]) - ref)) for t in id_t])
    probs = ck.rate(np.stack([face_crop(frames[t], boxes[t]) for t in found_idx])).mean(0)
    g = gap[id_t]
    lo, hi = np.percentile(g, [100 / 3, 200 / 3]) if len(g) else (0, 0)
    open_d = dist[g >= hi] if len(g) else dist
    closed_d = dist[g <= lo] if len(g) else dist
    return {
        "face": face, "sentence": sentence, "emotion": emotion, "seed": seed, "n_frames": T,
        "face_fraction": len(found_idx) / T, "render_s": t_render,
        "lipsync": ls, "rater_top": FER_CLASSES[int(np.argmax(probs))],
        "rater_intended": EMOTION_TO_FER[emotion],
        "identity_mean": float(dist.mean()) if len(dist) else None,
        "identity_max": float(dist.max()) if len(dist) else None,
        "identity_open": float(open_d.mean()) if len(open_d) else None,
        "identity_closed": float(closed_d.mean()) if len(closed_d) else None,
        "open_delta": float(open_d.mean() - closed_d.mean()) if len(open_d) and len(closed_d) else None,
        "gap_px": [round(float(v), 2) for v in gap],
        "mouth_detected": [None if not np.isfinite(v) else round(float(v), 4) for v in mouth],
        "envelope": [round(float(v), 5) for v in env],
        "identity_frames": id_t, "identity": [round(float(v), 4) for v in dist],
    }


def _run(jobs: list[tuple], n_jobs: int, onset_s: float | None = None) -> list[dict]:
    if n_jobs <= 1:
        _init(onset_s)
        return [measure_clip(j) for j in jobs]
    with ProcessPoolExecutor(n_jobs, initializer=_init, initargs=(onset_s,)) as ex:
        return list(ex.map(measure_clip, jobs, chunksize=3))


def report(recs: list[dict], emotions: tuple[str, ...]) -> None:
    from generator.check.rater import FER_CLASSES

    print(f"\n## Rater confusion ({len(recs)} clips): rows intended, columns the rater's top class")
    w = max(len(c) for c in FER_CLASSES) + 1
    print(f"{'intended':<10}" + "".join(f"{c:>{w}}" for c in FER_CLASSES) + f"{'hit':>6}")
    hits = 0
    for emo in emotions:
        rs = [r for r in recs if r["emotion"] == emo]
        row = [sum(r["rater_top"] == c for r in rs) for c in FER_CLASSES]
        hit = sum(r["rater_top"] == r["rater_intended"] for r in rs)
        hits += hit
        print(f"{emo:<10}" + "".join(f"{v:>{w}}" for v in row) + f"{hit:>4}/{len(rs)}")
    print(f"intended emotion on top: {hits}/{len(recs)} ({100 * hits / max(len(recs), 1):.0f} %)")

    print("\n## Identity (dlib descriptor distance to the photo) per emotion")
    print(f"{'emotion':<10}{'mean':>7}{'max':>7}{'open-closed':>13}")
    for emo in emotions:
        rs = [r for r in recs if r["emotion"] == emo and r["identity_mean"] is not None]
        if rs:
            print(f"{emo:<10}{np.mean([r['identity_mean'] for r in rs]):7.3f}"
                  f"{np.max([r['identity_max'] for r in rs]):7.3f}"
                  f"{np.mean([r['open_delta'] for r in rs if r['open_delta'] is not None]):+13.3f}")

    print("\n## Open-mouth identity cost (top vs bottom third of each clip's mouth opening; target <= +0.05)")
    print(f"{'face':<18}{'closed':>8}{'open':>8}{'delta':>8}{'worst clip':>12}")
    faces = list(dict.fromkeys(r["face"] for r in recs))
    for f in faces + ["all"]:
        rs = [r for r in recs if (f == "all" or r["face"] == f) and r["open_delta"] is not None]
        if rs:
            print(f"{f:<18}{np.mean([r['identity_closed'] for r in rs]):8.3f}"
                  f"{np.mean([r['identity_open'] for r in rs]):8.3f}"
                  f"{np.mean([r['open_delta'] for r in rs]):+8.3f}{max(r['open_delta'] for r in rs):+12.3f}")

    print("\n## Lip sync r per clip (best lag within +-12 frames; target >= 0.8)")
    corr = np.array([r["lipsync"]["corr"] if r["lipsync"]["corr"] is not None else np.nan for r in recs])
    zero = np.array([r["lipsync"]["corr_at_zero"] if r["lipsync"]["corr_at_zero"] is not None else np.nan
                     for r in recs])
    print(f"best lag: min {np.nanmin(corr):.3f}  median {np.nanmedian(corr):.3f}  below 0.8: "
          f"{int(np.sum(~(corr >= 0.8)))}/{len(recs)};  at lag 0: min {np.nanmin(zero):.3f}  "
          f"median {np.nanmedian(zero):.3f}")
    print(f"{'face':<18}{'sentence':<9}{'emotion':<10}{'r':>7}{'lag':>5}{'r@0':>7}{'faces':>7}")
    for i in np.argsort(np.nan_to_num(corr, nan=-9))[:8]:
        r = recs[i]
        ls = r["lipsync"]
        print(f"{r['face']:<18}{r['sentence']:<9}{r['emotion']:<10}{corr[i]:7.3f}{ls['lag_frames'] or 0:>5}"
              f"{zero[i]:7.3f}{r['face_fraction']:7.2f}")
    print(f"\nframes with a face: {np.mean([r['face_fraction'] for r in recs]):.3f} (min "
          f"{min(r['face_fraction'] for r in recs):.3f})")


def main() -> None:
    from stimuli.emotions import EMOTIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one renderer and checker each)")
    ap.add_argument("--faces", nargs="+", default=list(FACES), choices=FACES)
    ap.add_argument("--sentences", nargs="+", default=list(SENTENCES))
    ap.add_argument("--emotions", nargs="+", default=list(EMOTIONS), choices=EMOTIONS)
    ap.add_argument("--id-step", type=int, default=2, help="identity on every N-th frame")
    ap.add_argument("--onset-s", type=float, default=None, help="the renderer's expression onset ramp, s (default: the renderer's)")
    ap.add_argument("--json", help="write the per-clip records here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    speech = speech_set(tuple(args.sentences), tuple(args.emotions))
    jobs = []
    for face in args.faces:
        for s in args.sentences:
            for emo in args.emotions:
                jobs.append((face, s, emo, len(jobs), speech[(s, emo)], args.id_step))
    recs = _run(jobs, args.jobs, args.onset_s)
    secs = [len(speech[k]) / 8000 for k in speech]
    print(f"{len(recs)} clips ({len(args.faces)} faces x {len(args.sentences)} sentences x {len(args.emotions)} "
          f"emotions; speech {min(secs):.2f}-{max(secs):.2f} s) in {time.perf_counter() - t0:.1f} s, "
          f"{args.jobs} workers, load {os.getloadavg()[0]:.2f}")
    report(recs, tuple(args.emotions))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(recs, f)


if __name__ == "__main__":
    main()
