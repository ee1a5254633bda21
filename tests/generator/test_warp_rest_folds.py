"""The face at rest (a smiling photo's mouth closed before any emotion) and the folds of the action units."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")

from generator.align import TEMPLATE_PATH, shipped_faces  # noqa: E402
from generator.errors import InputError  # noqa: E402
from generator.warp.cavity import inner_gap  # noqa: E402
from generator.warp.expression import (EMOTION_AUS, REST_CORNER_UP, REST_GAP, REST_MAX, REST_MOUTH_WIDTH,  # noqa: E402
                                       eye_distance, rest_displacement)
from generator.warp.renderer import WarpRenderer  # noqa: E402
from generator.warp.wrinkles import AU_FOLDS, MAX_DARKEN, au_weights, wrinkle_map  # noqa: E402
from stimuli.emotions import EMOTIONS  # noqa: E402

SILENT = np.zeros(8000, np.float32)


@pytest.fixture(scope="module")
def faces():
    return dict(shipped_faces())


@pytest.fixture(scope="module")
def prepared(faces):
    r = WarpRenderer(policy="largest")
    return {name: r.prepare(img) for name, img in faces.items()}


def _corner_up(lm: np.ndarray) -> float:
    return (0.5 * (lm[62, 1] + lm[66, 1]) - 0.5 * (lm[48, 1] + lm[54, 1])) / eye_distance(lm)


def test_a_neutral_photo_is_left_as_it_is(prepared):
    hopper = prepared["matplotlib:grace_hopper.jpg"]
    assert not hopper.rest.any()
    frames = WarpRenderer(components=(), policy="largest").render(
        dict(shipped_faces())["matplotlib:grace_hopper.jpg"], SILENT, "neutral", 0).frames
    assert all(np.array_equal(f, hopper.image) for f in frames)


def test_a_smiling_photo_is_closed_and_lowered_to_rest(prepared):
    astro = prepared["skimage:astronaut"]
    lm, unit = astro.landmarks, astro.unit
    assert inner_gap(lm) > 0.1 * unit and _corner_up(lm) > REST_CORNER_UP + 0.05  # the photo smiles, teeth apart
    at_rest = lm + astro.rest
    assert inner_gap(at_rest) == pytest.approx(REST_GAP * unit, abs=0.03 * unit)
    assert _corner_up(at_rest) <= REST_CORNER_UP + 0.01
    assert np.linalg.norm(at_rest[54] - at_rest[48]) <= REST_MOUTH_WIDTH * unit + 0.5
    assert np.linalg.norm(astro.rest, axis=1).max() <= REST_MAX * unit + 1e-9
    assert np.abs(astro.rest[:48]).max() <= 0.1 * unit  # only the mouth and the chin move
    # The photo's teeth no longer show between the closed lips: the inner mouth is lip-coloured.
    rest_face = astro.mesh.warp(astro.image, astro.rest, None)
    mouth = np.zeros(rest_face.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(at_rest[48:60]).astype(np.int32)], 1)
    grey = cv2.cvtColor(rest_face, cv2.COLOR_RGB2GRAY)
    cheek = grey[int(at_rest[29, 1]), int(at_rest[2, 0] + 0.3 * (at_rest[29, 0] - at_rest[2, 0]))]
    assert grey[mouth.astype(bool)].max() < cheek + 10  # no tooth brighter than the skin


def test_rest_moves_nothing_it_need_not():
    lm = np.load(TEMPLATE_PATH).astype(np.float64)
    # A face already within every limit: closed lips at the mesh's gap, corners and width well inside.
    closed = lm.copy()
    unit = eye_distance(closed)
    closed[[65, 66, 67], 1] = closed[[63, 62, 61], 1] + REST_GAP * unit
    centre = 0.5 * (closed[48] + closed[54])
    closed[48:68] = centre + 0.9 * (closed[48:68] - centre)
    d = rest_displacement(closed)
    assert np.abs(d).max() < 0.03 * unit


def test_rest_photo_keeps_the_photo(faces):
    astro = WarpRenderer(rest="photo", policy="largest").prepare(faces["skimage:astronaut"])
    assert not astro.rest.any()
    params = WarpRenderer(policy="largest").render(faces["skimage:astronaut"], SILENT, "neutral", 0).parameters
    assert params["rest"] == "neutral" and params["rest_shift_px"] > 1.0
    with pytest.raises(InputError, match="rest"):
        WarpRenderer(rest="smile")


def test_every_fold_belongs_to_an_action_unit_of_some_prototype():
    used = {au for aus in EMOTION_AUS.values() for au in aus}
    assert set(AU_FOLDS) <= used
    assert au_weights(EMOTION_AUS, EMOTIONS, np.eye(6)[EMOTIONS.index("neutral")]) == {}


@pytest.mark.parametrize("emotion", ["anger", "disgust", "sadness", "happiness", "fear"])
def test_folds_darken_where_the_action_units_fold_the_skin(prepared, emotion):
    hopper = prepared["matplotlib:grace_hopper.jpg"]
    lm, unit, s = hopper.landmarks, hopper.unit, hopper.image.shape[0]
    field = wrinkle_map((s, s), lm, unit, au_weights(EMOTION_AUS, EMOTIONS, np.eye(6)[EMOTIONS.index(emotion)]))
    assert field is not None and field.shape == (s, s)
    assert 1.0 - MAX_DARKEN - 1e-4 <= field.min() < 0.85  # a visible fold, never deeper than the cap
    assert field.max() <= 1.0 + MAX_DARKEN  # highlights are faint
    dark = field < 0.95
    ys, xs = np.nonzero(dark)
    # Folds stay on the face: between the hairline anchors and the chin, inside the jaw line.
    assert ys.min() >= lm[19, 1] - 1.0 * unit and ys.max() <= lm[8, 1]
    assert xs.min() >= lm[0, 0] - 2 and xs.max() <= lm[16, 0] + 2
    region = {"anger": (lm[21] + lm[22]) / 2, "sadness": lm[19] - [0, 0.3 * unit],
              "happiness": lm[31] + [-0.16 * unit, 0.02 * unit], "disgust": lm[28],
              "fear": lm[19] - [0, 0.3 * unit]}[emotion]
    y, x = np.round(region).astype(int)[::-1]
    win = field[max(y - 5, 0):y + 6, max(x - 5, 0):x + 6]
    assert win.min() < 0.94, f"{emotion}: no fold near {region}"


def test_folds_deepen_with_the_expression_and_leave_neutral_alone(faces, monkeypatch):
    import generator.warp.renderer as mod

    hopper = faces["matplotlib:grace_hopper.jpg"]
    expr = WarpRenderer(components=("expression",), policy="largest", onset_s=0.4)  # a ramp to watch
    base = expr.prepare(hopper)
    x = np.zeros(8000 * 2, np.float32)
    neutral = expr.render(hopper, x, "neutral", 0).frames
    assert all(np.array_equal(f, base.image) for f in neutral)
    anger = expr.render(hopper, x, "anger", 0).frames.astype(float)
    monkeypatch.setattr(mod, "wrinkle_map", lambda *a, **k: None)
    flat = expr.render(hopper, x, "anger", 0).frames.astype(float)
    np.testing.assert_array_equal(anger[0], flat[0])  # no fold before the expression starts
    lm = base.landmarks
    y, x0 = np.round((lm[21] + lm[22]) / 2 + [0, 0.04 * base.unit]).astype(int)[::-1]
    win = (slice(y - 4, y + 5), slice(x0 - 5, x0 + 6))
    darker = [(flat[t][win] - anger[t][win]).mean() for t in (2, 49)]
    assert 0 < darker[0] < darker[1] and darker[1] > 2.5  # deepening with the onset ramp (levels of 255)
    far = (slice(100, 128), slice(0, 20))  # shoulder and background: untouched
    assert np.abs(flat[49][far] - anger[49][far]).max() == 0


def test_a_wide_open_mouth_is_closed_only_as_far_as_the_cap():
    # A shouting or yawning photo: rest moves no landmark further than REST_MAX eye distances (the photo is
    # not rebuilt into another face), and the lips still come closer together.
    lm = np.load(TEMPLATE_PATH).astype(np.float64)
    unit = eye_distance(lm)
    lm[[65, 66, 67, 55, 56, 57, 58, 59], 1] += 0.6 * unit
    d = rest_displacement(lm)
    assert np.linalg.norm(d, axis=1).max() == pytest.approx(REST_MAX * unit)
    assert inner_gap(lm + d) < inner_gap(lm) - 0.2 * unit
