"""Fixtures for the stimuli tests: fake stimulus sets (JSON rows, fake sha256, no media) for designs and
plans, and tiny real mp4 files for import tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from stimuli_factories import fake_row, task1_rows, task2_rows  # noqa: F401 (re-exported)
from stimuli.manifest import Manifest, build_manifest, save_manifest


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
