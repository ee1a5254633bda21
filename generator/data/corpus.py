"""The on-disk format of prepared training data (real CREMA-D clips and the synthetic corpus alike).

A corpus folder holds::

    index.jsonl        one JSON object per clip: clip_id, actor, sentence, emotion (canonical name),
                       intensity, split (train|val|test), n_frames, source ("crema-d", "synthetic", ...)
    clips/<clip_id>.npz  video (N,128,128,3) uint8 **BGR** aligned frames (NOTES.md convention),
                       landmarks (N,68,2) float32 on the aligned frames (x, y in pixels),
                       audio (L,) float32 at 8 kHz, mean-removed and peak-normalised,
                       with N == ceil(L / 320) (the audio is padded with zeros to N*320 if shorter).

No torch here: the training code wraps this in a Dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from generator.errors import DataError

INDEX_NAME = "index.jsonl"
CLIPS_DIR = "clips"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClipInfo:
    clip_id: str
    actor: str
    sentence: str
    emotion: str
    intensity: str
    split: str
    n_frames: int
    source: str = "crema-d"


@dataclass
class Clip:
    info: ClipInfo
    video: np.ndarray  # (N, 128, 128, 3) uint8 BGR
    landmarks: np.ndarray  # (N, 68, 2) float32
    audio: np.ndarray  # (N*320,) float32, 8 kHz


def clip_path(root: str | os.PathLike, clip_id: str) -> Path:
    return Path(root) / CLIPS_DIR / f"{clip_id}.npz"


def write_clip(root: str | os.PathLike, info: ClipInfo, video: np.ndarray, landmarks: np.ndarray,
               audio: np.ndarray) -> Path:
    """Write one clip atomically (temporary name, then rename). Does not touch the index."""
    video = np.asarray(video)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise DataError(f"clip {info.clip_id}: video must be (N,H,W,3) uint8 BGR, got {video.shape} {video.dtype}")
    n = video.shape[0]
    if landmarks.shape != (n, 68, 2):
        raise DataError(f"clip {info.clip_id}: landmarks must be ({n},68,2), got {landmarks.shape}")
    need = n * 320
    if len(audio) > need:
        raise DataError(f"clip {info.clip_id}: {len(audio)} audio samples is more than {n} frames x 320")
    audio = np.pad(audio, (0, need - len(audio)))
    path = clip_path(root, info.clip_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, video=video, landmarks=landmarks, audio=audio)
    os.replace(tmp, path)
    return path


def read_clip(root: str | os.PathLike, info: ClipInfo) -> Clip:
    path = clip_path(root, info.clip_id)
    if not path.is_file():
        raise DataError(f"{path}: missing; re-run the preparation (done clips are skipped)")
    with np.load(path) as z:
        return Clip(info=info, video=z["video"], landmarks=z["landmarks"], audio=z["audio"])


def write_index(root: str | os.PathLike, clips: list[ClipInfo]) -> Path:
    """Write index.jsonl atomically, sorted by clip_id (deterministic)."""
    path = Path(root) / INDEX_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{INDEX_NAME}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for c in sorted(clips, key=lambda c: c.clip_id):
            fh.write(json.dumps(asdict(c), sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_index(root: str | os.PathLike, split: str | None = None) -> list[ClipInfo]:
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise DataError(f"{path}: no corpus index; run `emostudy prepare` (or make the synthetic corpus) first")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            info = ClipInfo(**json.loads(line))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{path}: line {lineno}: not a clip record ({exc})") from None
        if split is None or info.split == split:
            out.append(info)
    return out
