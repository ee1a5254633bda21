"""The common renderer interface: emotion vectors and backend lookup."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.errors import InputError
from generator.renderers import RenderResult, dominant_emotion, emotion_vector, get_renderer


@pytest.mark.parametrize(("spec", "expected"), [
    ("sadness", [0, 0, 0, 0, 0, 1]),
    ("SAD", [0, 0, 0, 0, 0, 1]),
    ("ANG", [1, 0, 0, 0, 0, 0]),
    (" Happy ", [0, 0, 0, 1, 0, 0]),
    ("happiness=0.7,neutral=0.3", [0, 0, 0, 0.7, 0.3, 0]),
    ("happiness:7, neutral:3", [0, 0, 0, 0.7, 0.3, 0]),  # normalised to sum 1
    ({"fear": 1, "DIS": 1}, [0, 0.5, 0.5, 0, 0, 0]),
    ([0, 0, 0, 0, 2, 2], [0, 0, 0, 0, 0.5, 0.5]),
    (np.eye(6)[2], [0, 0, 1, 0, 0, 0]),
])
def test_emotion_specs(spec, expected):
    np.testing.assert_allclose(emotion_vector(spec), expected)


def test_intensity_scales_the_vector():
    np.testing.assert_allclose(emotion_vector("fear", 0.25), [0, 0, 0.25, 0, 0, 0])
    assert dominant_emotion(emotion_vector("happiness=0.4,sadness=0.6")) == "sadness"


@pytest.mark.parametrize(("spec", "intensity", "message"), [
    ("", 1.0, "empty"),
    ("calm", 1.0, "unknown emotion 'calm'"),
    ("happiness=lots", 1.0, "not a number"),
    ("happiness", 1.0 + 1e-6, r"\[0, 1\]"),
    ("happiness", -0.1, r"\[0, 1\]"),
    ("happiness", float("nan"), r"\[0, 1\]"),
    ("happiness=0.5,happiness=0.5", 1.0, "twice"),
    ("happiness,sadness", 1.0, "no weight"),
    ({"anger": -1, "fear": 2}, 1.0, "non-negative"),
    ([0, 0, 0, 0, 0, 0], 1.0, "sum to 0"),
    ([1, 0, 0], 1.0, "6 weights"),
    ([np.inf, 0, 0, 0, 0, 0], 1.0, "finite"),
])
def test_bad_emotions_are_refused_clearly(spec, intensity, message):
    with pytest.raises(InputError, match=message):
        emotion_vector(spec, intensity)


def test_render_result_is_frozen_and_backends_are_named():
    r = RenderResult(frames=np.zeros((2, 4, 4, 3), np.uint8), audio=np.zeros(640, np.float32), audio_rate=8000)
    assert r.fps == 25 and r.duration_s == pytest.approx(0.08) and r.parameters == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.fps = 30  # type: ignore[misc]
    with pytest.raises(InputError, match="warp, neural"):
        get_renderer("diffusion")
