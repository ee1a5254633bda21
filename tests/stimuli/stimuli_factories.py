"""Fake stimulus-set rows for the stimuli tests (a module with a unique name, so that test files can import
it whatever other conftest.py files the suite loads)."""

from __future__ import annotations

import hashlib
from typing import Any

from stimuli.emotions import EMOTIONS


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
