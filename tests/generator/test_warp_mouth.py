"""Lip sync: the mouth follows the speech envelope and is closed in pauses."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("dlib")

from generator.align import shipped_faces  # noqa: E402
from generator.warp.cavity import inner_gap  # noqa: E402
from generator.warp.mouth import speech_features  # noqa: E402
from generator.warp.renderer import WarpRenderer  # noqa: E402

RATE = 8000


def utterance(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic utterance: three 'words' of voiced syllables (harmonics of a wobbling f0 with a
    syllabic 3-5 Hz envelope) separated by 0.4 s pauses. Returns (samples, speech mask per sample)."""
    rng = np.random.default_rng(seed)
    parts, mask = [np.zeros(int(0.3 * RATE))], [np.zeros(int(0.3 * RATE), bool)]
    for word in range(3):
        dur = 0.5 + 0.2 * word
        t = np.arange(int(dur * RATE)) / RATE
        rate = rng.uniform(3.0, 5.0)
        env = np.sin(np.pi * t / dur) * (0.35 + 0.65 * np.abs(np.sin(np.pi * rate * t)))
        f0 = 120 + 20 * np.sin(2 * np.pi * 1.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        parts += [env * voiced, np.zeros(int(0.4 * RATE))]
        mask += [np.ones(len(t), bool), np.zeros(int(0.4 * RATE), bool)]
    x = np.concatenate(parts)
    return (x / np.abs(x).max()).astype(np.float32), np.concatenate(mask)


def frame_envelope(x: np.ndarray) -> np.ndarray:
    """RMS per 40 ms frame, computed directly on the frame's own 320 samples (not the renderer's
    windowed route)."""
    n = -(-len(x) // 320)
    xp = np.pad(x.astype(np.float64), (0, n * 320 - len(x)))
    return np.sqrt((xp.reshape(n, 320) ** 2).mean(1))


@pytest.fixture(scope="module")
def clip():
    x, mask = utterance()
    face = dict(shipped_faces())["matplotlib:grace_hopper.jpg"]
    r = WarpRenderer()
    anim = r.animate(face, x, "neutral", 5)
    result = r.render(face, x, "neutral", 5)
    return x, mask, anim, result


def test_mouth_opening_follows_the_envelope(clip):
    x, _, anim, _ = clip
    env = frame_envelope(x)
    gaps = np.array([inner_gap(lm) for lm in anim.landmarks])
    r = np.corrcoef(gaps, env)[0, 1]
    assert r >= 0.6, r
    assert np.corrcoef(anim.mouth.opening, env)[0, 1] >= 0.6


def test_mouth_is_closed_in_pauses(clip):
    x, mask, anim, result = clip
    n = len(anim.landmarks)
    speaking = np.array([mask[t * 320:(t + 1) * 320].any() for t in range(n)])
    # Frames at least 2 frames (80 ms) away from any speech.
    near = np.convolve(speaking.astype(int), np.ones(5, int), mode="same") > 0
    pauses = np.flatnonzero(~near)
    assert len(pauses) >= 15
    assert np.all(anim.mouth.opening[pauses] == 0.0)
    base_gap = inner_gap(anim.landmarks[0] if not speaking[0] else anim.landmarks[pauses[0]])
    gaps = np.array([inner_gap(lm) for lm in anim.landmarks])
    np.testing.assert_allclose(gaps[pauses], base_gap, atol=0.2)
    assert gaps[speaking].max() > base_gap + 4.0  # and it does open when speaking (px at 128)


def test_rendered_mouth_darkens_with_the_envelope(clip):
    # Independent of the landmarks: the painted cavity makes the mouth region darker in the pixels.
    x, _, anim, result = clip
    frames = result.frames.astype(np.float64).mean(-1)
    lm0 = anim.landmarks[0]
    x0, y0 = np.floor(lm0[48:68].min(0)).astype(int) - 3
    x1, y1 = np.ceil(lm0[48:68].max(0)).astype(int) + 8
    region = frames[:, y0:y1, x0:x1]
    darkness = np.clip(region[0][None] - region, 0, None).mean((1, 2))
    assert np.corrcoef(darkness, frame_envelope(x))[0, 1] >= 0.6


def test_silence_and_short_speech_give_a_closed_mouth():
    track = speech_features(np.zeros(4000, np.float32))
    assert len(track.opening) == 13 and not track.opening.any()
    short = speech_features(np.sin(np.arange(800) / 3.0).astype(np.float32))  # 0.1 s
    assert len(short.opening) == 3 and short.opening.max() > 0.5


def test_front_and_back_vowels_spread_and_round():
    t = np.arange(RATE) / RATE
    f0 = 2 * np.pi * 120 * t
    # /i/-like: strong energy near 2.3 kHz (high F2); /u/-like: energy below 1 kHz only.
    i_like = np.sin(f0) + 0.2 * np.sin(2 * np.pi * 280 * t) + 0.8 * np.sin(2 * np.pi * 2300 * t)
    u_like = np.sin(f0) + 0.8 * np.sin(2 * np.pi * 300 * t) + 0.5 * np.sin(2 * np.pi * 700 * t)
    x = np.concatenate([i_like, u_like])
    track = speech_features((x / np.abs(x).max()).astype(np.float32))
    first, second = slice(5, 20), slice(30, 45)
    assert track.spreading[first].mean() > 0.2 > track.spreading[second].mean()
    assert track.rounding[second].mean() > 0.2 > track.rounding[first].mean()


def test_cavity_is_painted_only_where_the_lips_parted():
    from generator.align import template
    from generator.warp.cavity import paint_mouth

    lm = template((128, 128)).astype(np.float64)
    lm[[65, 66, 67], 1] = lm[[63, 62, 61], 1]  # a closed mouth: inner lips touch
    skin = np.full((128, 128, 3), 200, np.uint8)
    lips = np.array([170.0, 90.0, 90.0])
    closed = paint_mouth(skin.copy(), lm, inner_gap(lm), lips, 40.0)
    np.testing.assert_array_equal(closed, skin)
    opened = lm.copy()
    opened[[65, 66, 67, 56, 57, 58], 1] += 8.0
    frame = paint_mouth(skin.copy(), opened, inner_gap(lm), lips, 40.0)
    inside = frame[int(opened[62, 1]) + 4:int(opened[66, 1]) - 1, 60:68].astype(float)
    assert inside.mean() < 100 and (inside[..., 0] >= inside[..., 2]).all()  # dark, reddish
    assert np.array_equal(frame[:60], skin[:60]) and np.array_equal(frame[105:], skin[105:])
    # A photo whose mouth is already open by 6 px keeps its own interior for a 1.2x opening.
    wide = lm.copy()
    wide[[65, 66, 67], 1] += 6.0
    wider = wide.copy()
    wider[[65, 66, 67], 1] += 1.2
    np.testing.assert_array_equal(paint_mouth(skin.copy(), wider, inner_gap(wide), lips, 40.0), skin)


def test_photo_teeth_are_found_only_in_an_open_smile():
    r = WarpRenderer()
    faces = dict(shipped_faces())
    smile = r.prepare(faces["skimage:astronaut"], 128)  # open smile showing teeth
    closed = r.prepare(faces["matplotlib:grace_hopper.jpg"], 128)
    assert smile.teeth_rgb is not None and smile.teeth_rgb.mean() > 180 and smile.teeth_h > 1.5
    assert closed.teeth_rgb is None and closed.teeth_h == 0.0


def test_speech_and_expression_share_the_jaw():
    from generator.align import template
    from generator.warp.expression import eye_distance
    from generator.warp.mouth import MouthTrack, mouth_displacement

    lm = template((128, 128)).astype(np.float64)
    unit = eye_distance(lm)
    one, z = np.ones(1), np.zeros(1)
    track = MouthTrack(one, z, z, z)
    free = mouth_displacement(track, lm)[0]
    gap = lambda d: float(np.mean((lm + d)[[67, 66, 65], 1] - (lm + d)[[61, 62, 63], 1]))  # noqa: E731
    # Fear holds the lower lip down (AU25/26): a loud vowel opens a little more than without it, not by the sum.
    held = np.zeros((1, 68, 2))
    held[0, [65, 66, 67], 1] = 0.09 * unit
    both = held[0] + mouth_displacement(track, lm, held=held)[0]
    assert gap(free) < gap(both) < gap(free) + 0.09 * unit - 1.0
    # and the speech still moves it: closed vs open differ by more than half the free movement
    assert gap(both) - gap(held[0]) > 0.5 * (gap(free) - gap(np.zeros((68, 2))))
    # Anger presses the lips (AU23/24): opening the jaw parts them as it would without the press.
    press = np.zeros((1, 68, 2))
    press[0, [61, 62, 63], 1] = 0.02 * unit
    press[0, [65, 66, 67], 1] = -0.02 * unit
    pressed = press[0] + mouth_displacement(track, lm, held=press)[0]
    assert abs(gap(pressed) - gap(free)) < 0.05
    half = press[0] + mouth_displacement(MouthTrack(0.5 * one, z, z, z), lm, held=press)[0]
    assert gap(press[0]) < gap(half) < gap(pressed)
