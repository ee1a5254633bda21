"""Fixtures for the stimuli tests: fake stimulus sets (JSON rows, fake sha256, no media) for designs and
plans, and tiny real mp4 files for import tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from stimuli.emotions import EMOTIONS
from stimuli.manifest import Manifest, build_manifest, save_manifest


def fake_row(sid: str, source: str, visual: str | None, audio: str | None, *, identity: str = "1001",
             sentence: str = "DFA", intensity: str | None = "XX", size_variant: str | None = None) -> dict[str, Any]:
    return {
        "stimulus_id": sid, "media": f"media/{sid}.mp4", "sha256": hashlib.sha256(sid.encode()).hexdigest(),
        "duration_s": 2.0, "fps": 25.0, "width": 128, "height": 128, "audio_rate": 44100, "source": source,
        "visual_emotion": visual, "audio_emotion": audio, "identity": identity, "sentence": sentence,
        "intensity": intensity, "size_variant": size_variant,
    }


def task1_rows(gt_per_emotion: int = 7, bl_per_emotion: int = 6, ours_per_emotion: int = 6,
               variants: tuple[str, ...] = ("128x128", "96x128")) -> list[dict[str, Any]]:
    """GT clips in every size variant (the same clip in each size), BL without an emotion condition
    (visual_emotion null), OURS conditioned on the clip's emotion."""
    rows = []
    n = 0
    for emo in EMOTIONS:
        for k in range(gt_per_emotion):
            for v in variants:
                n += 1
                rows.append(fake_row(f"s{n:04d}", "GT", emo, emo, identity=f"{1001 + k}", size_variant=v))
        for k in range(bl_per_emotion):
            n += 1
            rows.append(fake_row(f"s{n:04d}", "BL", None, emo, identity=f"{1001 + k}", size_variant="96x128"))
        for k in range(ours_per_emotion):
            n += 1
            rows.append(fake_row(f"s{n:04d}", "OURS", emo, emo, identity=f"{1001 + k}", size_variant="128x128"))
    return rows


def task2_rows(per_pair: int = 3, gt_per_emotion: int = 3) -> list[dict[str, Any]]:
    rows = []
    n = 0
    for v in EMOTIONS:
        for a in EMOTIONS:
            for k in range(per_pair):
                n += 1
                rows.append(fake_row(f"t{n:04d}", "OURS", v, a, identity=f"{1001 + k}", size_variant="128x128"))
    for emo in EMOTIONS:
        for k in range(gt_per_emotion):
            n += 1
            rows.append(fake_row(f"t{n:04d}", "GT", emo, emo, identity=f"{1050 + k}", size_variant="128x128"))
    return rows


@pytest.fixture
def make_manifest(tmp_path: Path) -> Callable[..., Manifest]:
    def make(rows: list[dict[str, Any]], name: str = "fake-set") -> Manifest:
        return build_manifest(tmp_path / name, rows, name=name)
    return make


@pytest.fixture
def write_set(tmp_path: Path) -> Callable[..., Path]:
    """Write a set folder: manifest.json + a small media file per row (arbitrary bytes; sha256 fixed up),
    so that load_manifest(check_media=True) passes. Returns the folder."""
    def write(rows: list[dict[str, Any]], name: str = "set") -> Path:
        root = tmp_path / name
        (root / "media").mkdir(parents=True)
        fixed = []
        for r in rows:
            data = f"not a video: {r['stimulus_id']}".encode()
            (root / r["media"]).write_bytes(data)
            fixed.append({**r, "sha256": hashlib.sha256(data).hexdigest()})
        save_manifest(build_manifest(root, fixed, name=name))
        return root
    return write


@pytest.fixture
def task1_manifest(make_manifest) -> Manifest:
    return make_manifest(task1_rows(), "task1-set")


@pytest.fixture
def task2_manifest(make_manifest) -> Manifest:
    return make_manifest(task2_rows(), "task2-set")


@pytest.fixture(scope="session")
def tiny_video_bytes(tmp_path_factory) -> Callable[[int], bytes]:
    """bytes of a tiny real mp4 (4 frames 16x16, with audio), distinct per ``k``; cached per session."""
    from generator.mediaio import write_mp4

    folder = tmp_path_factory.mktemp("tiny-videos")
    cache: dict[int, bytes] = {}

    def make(k: int) -> bytes:
        if k not in cache:
            frames = np.full((4, 16, 16, 3), (k * 37) % 256, dtype=np.uint8)
            frames[:, : 1 + k % 15, :, 1] = 255 - (k % 200)
            t = np.arange(1280) / 8000.0
            audio = (0.2 * np.sin(2 * np.pi * (200 + 10 * k) * t)).astype(np.float32)
            path = folder / f"v{k}.mp4"
            write_mp4(path, frames, fps=25, audio=audio, audio_rate=8000)
            cache[k] = path.read_bytes()
        return cache[k]
    return make
