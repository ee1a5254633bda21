"""Honest QC flags: the rater's disagreement is its own flag, its probability a second one (never called "p");
posed photos and recordings are expected to show their emotion."""

from __future__ import annotations

from types import SimpleNamespace

from generator.check.report import flag_counts
from generator.check.run import Thresholds, expression_expected, flag_reasons


def rec(top: str, intended: str, prob: float, expected: bool = True) -> dict:
    return {"face_fraction": 1.0, "landmark_plausible_fraction": 1.0,
            "identity_check": {"distance_max": 0.3, "reference": "photo"},
            "lipsync": {"expected": True, "corr": 0.8, "lag_frames": 0},
            "rater": {"top": top, "intended": intended, "intended_prob": prob, "expected": expected}}


def test_rater_disagreement_and_probability_are_two_flags():
    th = Thresholds()
    assert flag_reasons(rec("happy", "happy", 0.9), th) == []
    only = flag_reasons(rec("fear", "sad", 0.30), th)  # the top class differs; the probability is not tiny
    assert only == ["rater_disagrees: the rater's top class is fear, the intended emotion sad"]
    both = flag_reasons(rec("fear", "sad", 0.02), th)
    assert [r.split(":")[0] for r in both] == ["rater_disagrees", "rater_probability"]
    assert "the rater's probability of sad is 0.02 (< 0.05)" in both[1]
    assert not any("p =" in r for r in both)
    assert flag_reasons(rec("fear", "sad", 0.02, expected=False), th) == []  # LIPS / STILL: no expression rendered


def test_flag_counts_count_clips_not_reasons():
    records = [{"reasons": ["rater_disagrees: a", "rater_probability: b"]}, {"reasons": ["rater_disagrees: c"]},
               {"reasons": ["lip sync: d", "lip sync: e"]}, {"reasons": []}]
    assert flag_counts(records) == {"rater_disagrees": 2, "lip sync": 1, "rater_probability": 1}


def test_photos_and_recordings_are_expected_to_show_their_emotion():
    lips = {"renderer": {"components": ["mouth", "life"]}}
    base = dict(visual_emotion="fear", provenance=SimpleNamespace(parameters=lips))
    assert not expression_expected(SimpleNamespace(**base, visual_emotion_origin=None))  # LIPS on a neutral photo
    assert expression_expected(SimpleNamespace(**base, visual_emotion_origin="photo"))
    assert expression_expected(SimpleNamespace(**base, visual_emotion_origin="recording"))


def test_contact_sheet_frames_are_at_least_128_px_wide(tmp_path):
    import numpy as np
    from PIL import Image

    from generator.check.clip import contact_sheet

    frames = np.zeros((20, 96, 96, 3), np.uint8)  # black frames: the strip is the one wide dark band
    contact_sheet(tmp_path / "s.png", frames, np.linspace(0, 1, 20), np.linspace(1, 0, 20), 25.0, n=8, title="t")
    img = np.asarray(Image.open(tmp_path / "s.png").convert("RGB")).astype(int)
    dark_rows = np.flatnonzero((img.sum(2) < 100).mean(1) > 0.5)
    row = dark_rows[len(dark_rows) // 2]
    cols = np.flatnonzero(img[row].sum(1) < 100)
    assert (cols.max() - cols.min() + 1) / 8 >= 128
    assert len(dark_rows) >= 128  # and as tall (square frames)
