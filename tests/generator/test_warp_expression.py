"""Expression fields: each emotion moves the landmarks the way its action units define."""

from __future__ import annotations

import numpy as np
import pytest

from generator.align import MIRROR, template
from generator.renderers import emotion_vector
from generator.warp.expression import (ACTION_UNITS, EMOTION_AUS, expression_displacement, eye_distance,
                                       onset_ramp)
from stimuli.emotions import EMOTIONS

LM = template((128, 128)).astype(np.float64)
CORNERS = [48, 54]
INNER_BROWS = [21, 22]
BROWS = list(range(17, 27))


def disp(name: str) -> np.ndarray:
    return expression_displacement(emotion_vector(name), LM)


def test_happiness_lifts_and_pulls_the_mouth_corners():
    d = disp("happiness")
    assert (d[CORNERS, 1] < -2.0).all()  # up, by > 2 px on the 128 template
    assert d[48, 0] < 0 < d[54, 0]  # outward
    assert (d[[40, 41, 46, 47], 1] < 0).all()  # AU6: lower lids pushed up by the cheeks


def test_sadness_lowers_the_corners_and_raises_the_inner_brows():
    d = disp("sadness")
    assert (d[CORNERS, 1] > 2.0).all()
    assert (d[INNER_BROWS, 1] < -1.0).all()  # AU1 beats AU4 at the inner ends: the oblique "sad" brow
    assert d[21, 1] < d[17, 1]  # inner ends go up more than the outer ones


def test_anger_lowers_and_draws_the_brows_together():
    d = disp("anger")
    assert (d[INNER_BROWS, 1] > 2.0).all()
    assert d[21, 0] > 0 > d[22, 0]  # towards the midline
    assert (d[[40, 41, 46, 47], 1] < 0).all()  # AU7 lid tightener
    # AU23/24: lips narrowed and pressed, not opened.
    assert d[48, 0] > 0 > d[54, 0]


def test_fear_raises_the_brows_and_stretches_the_lips():
    d = disp("fear")
    assert (d[BROWS, 1] < 0).all()
    assert d[21, 0] > 0 > d[22, 0]  # AU4: drawn together
    assert (d[[37, 38, 43, 44], 1] < 0).all()  # AU5 upper lids raised
    assert d[48, 0] < -2.0 and d[54, 0] > 2.0  # AU20 stretched sideways


def test_disgust_wrinkles_the_nose_and_raises_the_upper_lip():
    d = disp("disgust")
    assert (d[[31, 32, 33, 34, 35], 1] < 0).all()
    assert (d[[50, 51, 52], 1] < -2.0).all()


def test_neutral_moves_nothing():
    np.testing.assert_array_equal(disp("neutral"), np.zeros((68, 2)))


def test_fields_are_mirror_symmetric_and_scale_with_the_face():
    for name in EMOTIONS:
        d = disp(name)
        np.testing.assert_allclose(d[MIRROR] * [-1, 1], d, atol=1e-12)
    d2 = expression_displacement(emotion_vector("happiness"), LM * 2.0)
    np.testing.assert_allclose(d2, 2.0 * disp("happiness"))
    assert eye_distance(LM * 2.0) == pytest.approx(2.0 * eye_distance(LM))


def test_blends_are_weighted_sums_and_intensity_scales():
    blend = expression_displacement(emotion_vector("happiness=0.7,sadness=0.3"), LM)
    np.testing.assert_allclose(blend, 0.7 * disp("happiness") + 0.3 * disp("sadness"))
    np.testing.assert_allclose(expression_displacement(emotion_vector("anger", 0.5), LM), 0.5 * disp("anger"))


def test_every_prototype_uses_known_action_units():
    for name, aus in EMOTION_AUS.items():
        assert set(aus) <= set(ACTION_UNITS), name
    assert EMOTION_AUS["neutral"] == {}


def test_onset_ramp():
    r = onset_ramp(25, 25, 0.4)
    assert r[0] == 0.0 and r[10] == 1.0 and np.all(np.diff(r) >= 0)
    assert 0.4 < r[5] < 0.6  # half-way at 0.2 s
