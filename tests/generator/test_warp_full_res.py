"""Full resolution: the warp renders at the face's own resolution (128-512 px), not 128 px upscaled."""

from __future__ import annotations

import numpy as np

from generator.align import shipped_faces, template
from generator.faces import detect_landmarks, eye_distance_px
from generator.warp.renderer import FACE_SIZE, MAX_FACE_SIZE, MIN_FACE_SIZE, WarpRenderer, face_resolution


def test_face_resolution_follows_the_photo_and_is_clamped():
    faces = dict(shipped_faces())
    hopper = faces["matplotlib:grace_hopper.jpg"]
    lm = detect_landmarks(hopper)
    size = face_resolution(lm)
    # the aligned face keeps the photo's eye distance (within rounding to an even size)
    assert abs(eye_distance_px(template()) * size / 128 - eye_distance_px(lm)) <= 1.5
    assert size % 2 == 0 and 256 < size < MAX_FACE_SIZE
    assert face_resolution(lm * 10) == MAX_FACE_SIZE and face_resolution(lm / 10) == MIN_FACE_SIZE
    frames = WarpRenderer().render(hopper, np.sin(np.arange(1600) * 0.05).astype(np.float32), "happiness", 0,
                                   size=FACE_SIZE)
    assert frames.frames.shape[1:3] == (size, size) and frames.parameters["size"] == size
