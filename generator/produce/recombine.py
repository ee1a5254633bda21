"""Recombined recordings: a real face of one emotion speaking a real voice of another.

``emostudy generate --design mismatched --recordings DIR --recombine``: for one speaker and one sentence
recorded in several emotions (CREMA-D, RAVDESS, MEAD style; labels from CREMA-D names or ``--labels``),
the video of visual emotion V is re-timed to the audio of emotion A:

1. both recordings' audio -> MFCC (librosa, 13 coefficients, 10 ms hop, each coefficient standardised
   per recording so that loudness and voice quality differences weigh less than the phonetic sequence);
2. dynamic time warping of the two MFCC sequences (``librosa.sequence.dtw``, Euclidean cost) gives the
   path: which instant of V's recording says what A's says at each instant;
3. the output has A's audio and duration; its frame at time t is V's frame at the instant the path maps
   t to (the nearest frame of V's own frame rate; no frame is repeated more than the path requires).

The alignment cost (the path's mean step cost, in standardised MFCC units), the path summary (the
local rate of V against A: its median and range) and the lip-sync measure of ``emostudy check`` (mouth
opening vs A's speech envelope) before and after the re-timing are recorded in the row's provenance; a pair whose cost
is above ``MAX_ALIGNMENT_COST`` is refused with the number (different sentences, or too different
delivery).
Matched clips (V == A) are the recordings themselves, at 25 fps. Rows: ``visual_emotion_origin =
"recording"``, both source files in ``extra``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from generator.audio import read_audio, resample
from generator.check.measures import lip_sync, mouth_opening, speech_envelope
from generator.faces import detect_faces
from generator.mediaio import read_video
from generator.produce.jobs import (
    VIDEO_EXTS,
    DesignOptions,
    Job,
    ProduceError,
    _need_labels,
    collect_files,
    label_speech,
    one_hot,
    read_labels_csv,
)
from stimuli.emotions import EMOTIONS

ORIGIN = "recording"
KIND = "recombine"
FEATURE_RATE = 16000
HOP = 160  # 10 ms
N_MFCC = 13
# Mean DTW step cost (standardised MFCC, Euclidean over 13 coefficients). The same sentence by the same
# (synthetic) voice at 140 and 210 words/min: 1.01; two different sentences: 3.91
# (tests/generator/test_recombine.py). Real recordings of one actor in two emotions differ more than a rate
# change: the limit sits between, and the cost of every pair is recorded.
MAX_ALIGNMENT_COST = 2.5
FPS = 25


def mfcc(x: np.ndarray, rate: int) -> np.ndarray:
    """(13, N) standardised MFCC of mono audio, 10 ms hop."""
    import librosa  # optional heavy dependency: imported only when used

    y = resample(np.asarray(x, np.float32), rate, FEATURE_RATE)
    m = librosa.feature.mfcc(y=y, sr=FEATURE_RATE, n_mfcc=N_MFCC, hop_length=HOP, n_fft=512)
    return (m - m.mean(axis=1, keepdims=True)) / (m.std(axis=1, keepdims=True) + 1e-6)


def align(audio_v: tuple[np.ndarray, int], audio_a: tuple[np.ndarray, int]) -> tuple[np.ndarray, float]:
    """DTW of V's audio onto A's: (for each 10 ms step of A, the matching time in V's recording in seconds,
    the mean step cost)."""
    import librosa  # optional heavy dependency: imported only when used

    fa, fv = mfcc(*audio_a), mfcc(*audio_v)
    D, wp = librosa.sequence.dtw(X=fa, Y=fv, metric="euclidean")
    wp = wp[::-1]  # start -> end
    cost = float(D[-1, -1]) / len(wp)
    t_v = np.zeros(fa.shape[1])
    for i in range(fa.shape[1]):
        t_v[i] = wp[wp[:, 0] == i, 1].mean() * HOP / FEATURE_RATE
    return t_v, cost


def retime(frames_v: np.ndarray, fps_v: float, t_v: np.ndarray, duration_a: float) -> tuple[np.ndarray, np.ndarray]:
    """V's frames at 25 fps over A's duration, along the path: (frames, index of V's frame per output frame)."""
    n = max(1, int(round(duration_a * FPS)))
    steps = np.minimum((np.arange(n) / FPS * FEATURE_RATE / HOP).round().astype(int), len(t_v) - 1)
    idx = np.clip((t_v[steps] * fps_v).round().astype(int), 0, len(frames_v) - 1)
    return frames_v[idx], idx


def path_summary(t_v: np.ndarray) -> dict[str, float]:
    """The local rate of V against A (seconds of V per second of A over 200 ms windows)."""
    step = 20
    rate = np.diff(t_v[::step]) / (step * HOP / FEATURE_RATE) if len(t_v) > step else np.array([1.0])
    return {"rate_median": round(float(np.median(rate)), 3), "rate_min": round(float(rate.min()), 3),
            "rate_max": round(float(rate.max()), 3), "steps": int(len(t_v))}


def frame_landmarks(frames: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks of the largest face of each frame (NaN where none is found)."""
    out = np.full((len(frames), 68, 2), np.nan)
    for t, f in enumerate(frames):
        found = detect_faces(f)
        if found:
            out[t] = max(found, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))[1]
    return out


def make_clip(job: Job, *, max_cost: float = MAX_ALIGNMENT_COST) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
    """(frames at 25 fps, audio, audio rate, parameters) of a recombined (or matched) clip."""
    frames_v, fps_v = read_video(job.face)
    audio_a, rate_a = read_audio(job.speech)
    duration = len(audio_a) / rate_a
    if job.face == job.speech:  # matched: the recording itself, at 25 fps
        n = max(1, int(round(duration * FPS)))
        idx = np.minimum((np.arange(n) * fps_v / FPS).round().astype(int), len(frames_v) - 1)
        return frames_v[idx], audio_a, rate_a, {"recombined": False, "source_fps": fps_v}
    t_v, cost = align(read_audio(job.face), (audio_a, rate_a))
    if not cost <= max_cost:
        raise ProduceError(f"{Path(job.face).name} -> {Path(job.speech).name}: alignment cost {cost:.2f} is above "
                           f"{max_cost} (poorly aligned: a different sentence, or too different a delivery); "
                           "this pair is not made")
    frames, idx = retime(frames_v, fps_v, t_v, duration)
    repeats = int(np.bincount(idx).max())
    # The lip-sync measure of `emostudy check` (mouth opening vs A's speech envelope), on V's frames as they
    # are (before) and re-timed (after): landmarks once per frame of V.
    lms = frame_landmarks(frames_v)
    as_is = np.minimum((np.arange(len(idx)) * fps_v / FPS).round().astype(int), len(frames_v) - 1)
    env = speech_envelope(audio_a, rate_a, FPS, len(idx))
    sync = {when: {k: (None if v is None else round(float(v), 4)) for k, v in
                   lip_sync(mouth_opening(lms[which]), env).items()}
            for when, which in (("before", as_is), ("after", idx))}
    return frames, audio_a, rate_a, {"recombined": True, "alignment_cost": round(cost, 4), "lipsync": sync,
                                     "max_cost": max_cost, "path": path_summary(t_v),
                                     "most_repeats_of_a_frame": repeats, "source_fps": fps_v,
                                     "video_file": Path(job.face).name, "audio_file": Path(job.speech).name}


def plan_recombined(opts: DesignOptions) -> list[Job]:
    """Mismatched (and matched) pairs within each speaker x sentence: every (V, A) both recorded."""
    if opts.design not in ("mismatched", "matched"):
        raise ProduceError(f"--recombine makes the designs mismatched and matched, not {opts.design!r}")
    if not opts.recordings or opts.faces or opts.speech:
        raise ProduceError("--recombine needs --recordings DIR (and no --faces/--speech)")
    labels = read_labels_csv(opts.labels) if opts.labels else None
    items = [label_speech(f, labels) for f in collect_files(opts.recordings, VIDEO_EXTS, "recording")]
    _need_labels(items, opts.design)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for s in items:
        groups.setdefault((s.identity, s.sentence), {}).setdefault(s.emotion, s)
    jobs = []
    for (ident, sentence), by_emo in sorted(groups.items()):
        for r in range(opts.repeats):
            for v in EMOTIONS:
                for a in EMOTIONS:
                    if v not in by_emo or a not in by_emo or (opts.design == "matched" and v != a):
                        continue
                    sv, sa = by_emo[v], by_emo[a]
                    jobs.append(Job(face=sv.path, speech=sa.path, visual=one_hot(v), audio_emotion=a, identity=ident,
                                    sentence=sentence, repeat=r, speech_intensity=sa.intensity,
                                    same_recording=(v == a), design=opts.design, kind=KIND, visual_origin=ORIGIN))
    if not jobs:
        raise ProduceError("--recombine found no speaker x sentence recorded in two or more emotions")
    return jobs
