"""A synthetic talking-face corpus, made on the fly on the CPU, in the format of ``generator.data.corpus``.

Each clip is a drawn face (identity: face shape, skin, hair, background, eye spacing) that speaks a
synthetic "utterance": a few syllables, each a voiced burst (harmonics of a pitch that depends on the
identity and the emotion, with a raised-cosine envelope). The mouth opening of every frame is the
audio envelope (RMS of that frame's 320 samples, smoothed), so the mouth motion is fully determined by
the audio; the emotion sets a static expression (smile/frown, brows, eye opening, mouth width) and
the pitch and loudness of the voice. Landmarks (68 points, the dlib layout) are the ones the face is
drawn from, on the aligned 128x128 frame (based on ``generator.align.template``).

Everything is a pure function of the seed. No torch here.

>>> make_corpus(tmp_dir, n_identities=2, clips_per_emotion=1, n_frames=16, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from generator.align import template
from generator.data.corpus import ClipInfo, write_clip, write_index
from stimuli.emotions import EMOTIONS

SIZE = 128
RATE = 8000
SPF = 320  # samples per frame
MOUTH_OUTER = slice(48, 60)
MOUTH_INNER = slice(60, 68)

# Per emotion: smile (+ corners up), brow raise (px, + up), eye opening factor, mouth width factor,
# pitch factor, loudness factor.
EXPRESSION = {
    "anger": (-0.3, -3.0, 0.75, 0.92, 1.05, 1.0),
    "disgust": (-0.6, -1.5, 0.65, 0.95, 0.95, 0.8),
    "fear": (-0.2, 3.5, 1.45, 1.08, 1.25, 0.8),
    "happiness": (1.0, 1.0, 0.8, 1.15, 1.2, 1.0),
    "neutral": (0.0, 0.0, 1.0, 1.0, 1.0, 0.85),
    "sadness": (-1.0, 1.5, 0.8, 0.95, 0.9, 0.6),
}


@dataclass(frozen=True)
class Identity:
    name: str
    scale: tuple[float, float]  # face width, height factors about the template centre
    shift: tuple[float, float]  # px
    eye_spread: float  # px added to each eye's distance from the midline
    skin: tuple[int, int, int]  # BGR
    hair: tuple[int, int, int]
    background: tuple[int, int, int]
    lips: tuple[int, int, int]
    pitch_hz: float


def make_identity(rng: np.random.Generator, name: str) -> Identity:
    skin = rng.uniform([60, 90, 130], [170, 190, 235])
    return Identity(
        name=name,
        scale=(float(rng.uniform(0.9, 1.06)), float(rng.uniform(0.93, 1.05))),
        shift=(float(rng.uniform(-3, 3)), float(rng.uniform(-2, 2))),
        eye_spread=float(rng.uniform(-2, 2.5)),
        skin=tuple(int(v) for v in skin),
        hair=tuple(int(v) for v in rng.uniform(10, 110, 3)),
        background=tuple(int(v) for v in rng.uniform(20, 235, 3)),
        lips=tuple(int(v) for v in (skin * np.array([0.55, 0.5, 0.85]))),
        pitch_hz=float(rng.uniform(95, 230)),
    )


def identity_landmarks(ident: Identity) -> np.ndarray:
    """The identity's neutral, closed-mouth landmarks (68, 2) on the aligned frame."""
    t = template((SIZE, SIZE)).astype(np.float64)
    c = np.array([64.0, 70.0])
    out = (t - c) * np.array(ident.scale) + c + np.array(ident.shift)
    left, right = list(range(36, 42)) + list(range(17, 22)), list(range(42, 48)) + list(range(22, 27))
    out[left, 0] -= ident.eye_spread
    out[right, 0] += ident.eye_spread
    # close the mouth: inner lips meet on the line between the corners
    mid_y = (out[60, 1] + out[64, 1]) / 2
    out[61:64, 1] = mid_y - 0.6
    out[65:68, 1] = mid_y + 0.6
    return out


def expression_landmarks(base: np.ndarray, emotion: str, opening: float, strength: float = 1.0) -> np.ndarray:
    """Deform neutral landmarks by an emotion (``strength`` 0..1) and a mouth opening (0..1)."""
    smile, brow, eye_open, width, _, _ = EXPRESSION[emotion]
    smile, brow = smile * strength, brow * strength
    eye_open = 1 + (eye_open - 1) * strength
    width = 1 + (width - 1) * strength
    lm = base.copy()
    # brows up/down
    lm[17:27, 1] -= brow
    # eyes: scale the vertical distance from each eye's centre
    for eye in (slice(36, 42), slice(42, 48)):
        cy = lm[eye, 1].mean()
        lm[eye, 1] = cy + (lm[eye, 1] - cy) * eye_open
    # mouth: width about its centre, corners up by smile, vertical opening
    mouth = lm[48:68]
    cx, cy = mouth[:, 0].mean(), (lm[48, 1] + lm[54, 1]) / 2
    mouth[:, 0] = cx + (mouth[:, 0] - cx) * width
    half_w = max(abs(lm[54, 0] - cx), 1e-3)
    rel = np.clip(np.abs(mouth[:, 0] - cx) / half_w, 0, 1)
    mouth[:, 1] -= 4.0 * smile * rel ** 2
    gap = 9.0 * float(np.clip(opening, 0, 1))  # px between the inner lips at full opening
    upper = [1, 2, 3, 4, 5, 13, 14, 15]  # outer top 49-53, inner top 61-63 (indices within 48..67)
    lower = [7, 8, 9, 10, 11, 17, 18, 19]
    mouth[upper, 1] -= gap * 0.3 * (1 - 0.5 * rel[upper])
    mouth[lower, 1] += gap * 0.7 * (1 - 0.5 * rel[lower])
    # the jaw drops with the mouth
    lm[5:12, 1] += gap * 0.35 * np.array([0.3, 0.6, 0.9, 1.0, 0.9, 0.6, 0.3])
    lm[48:68] = mouth
    return lm


def draw_face(lm: np.ndarray, ident: Identity) -> np.ndarray:
    """Draw one (128, 128, 3) uint8 BGR frame from landmarks (anti-aliased, sub-pixel)."""
    import cv2  # optional heavy dependency: imported only when used

    shift = 4
    k = float(1 << shift)

    def pts(p: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(p) * k).astype(np.int32).reshape(-1, 1, 2)

    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = ident.background
    aa = cv2.LINE_AA
    jaw = lm[0:17]
    top_c = np.array([(jaw[0, 0] + jaw[16, 0]) / 2, jaw[0, 1]])
    rx, ry = (jaw[16, 0] - jaw[0, 0]) / 2, (jaw[0, 1] - lm[19, 1]) + 14
    ang = np.linspace(0, np.pi, 24)
    forehead = np.stack([top_c[0] + rx * np.cos(ang), top_c[1] - ry * np.sin(ang)], 1)
    hair = np.stack([top_c[0] + (rx + 4) * np.cos(ang), top_c[1] - 6 - (ry + 6) * np.sin(ang)], 1)
    cv2.fillPoly(img, [pts(np.concatenate([hair, hair[[-1, 0]] + [[0, 12], [0, 12]]]))], ident.hair, aa, shift)
    cv2.fillPoly(img, [pts(np.concatenate([jaw, forehead]))], ident.skin, aa, shift)
    dark = tuple(int(v * 0.45) for v in ident.skin)
    for brow in (lm[17:22], lm[22:27]):
        cv2.polylines(img, [pts(brow)], False, ident.hair, 2, aa, shift)
    for eye in (lm[36:42], lm[42:48]):
        cv2.fillPoly(img, [pts(eye)], (235, 235, 235), aa, shift)
        c = eye.mean(0)
        r = max(0.8, min(2.6, (eye[4:6, 1].mean() - eye[1:3, 1].mean()) * 0.45))
        cv2.circle(img, tuple(int(v) for v in np.round(c * k)), int(r * k), (40, 30, 20), -1, aa, shift)
    cv2.polylines(img, [pts(lm[27:31])], False, dark, 1, aa, shift)
    cv2.polylines(img, [pts(lm[31:36])], False, dark, 1, aa, shift)
    cv2.fillPoly(img, [pts(lm[48:60])], ident.lips, aa, shift)
    inner = lm[60:68]
    if inner[5:8, 1].mean() - inner[1:4, 1].mean() > 1.3:
        cv2.fillPoly(img, [pts(inner)], (25, 20, 45), aa, shift)
    return img


def synth_speech(rng: np.random.Generator, n_frames: int, pitch_hz: float, emotion: str) -> np.ndarray:
    """A voiced-syllable waveform (n_frames * 320,) at 8 kHz, mean-removed, peak-normalised.

    Starts with a short silence, so the clip's first frame (the reference image) has a closed mouth.
    """
    _, _, _, _, pitch_f, loud = EXPRESSION[emotion]
    n = n_frames * SPF
    t = np.arange(n) / RATE
    env = np.zeros(n)
    pos = rng.uniform(0.12, 0.3)
    end = n / RATE - 0.05
    while pos < end:
        dur = rng.uniform(0.12, 0.3)
        amp = rng.uniform(0.4, 1.0) * loud
        i0, i1 = int(pos * RATE), min(n, int((pos + dur) * RATE))
        if i1 > i0:
            env[i0:i1] += amp * np.sin(np.linspace(0, np.pi, i1 - i0)) ** 2
        pos += dur + rng.uniform(0.04, 0.2)
    f0 = pitch_hz * pitch_f * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum((0.7 ** h) * np.sin(h * phase + rng.uniform(0, 2 * np.pi)) for h in range(1, 8))
    x = env * voice + 0.003 * rng.standard_normal(n)
    x = x - x.mean()
    return (x / np.abs(x).max()).astype(np.float32)


def mouth_opening(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame opening in [0, 1]: RMS of each frame's samples, scaled and lightly smoothed."""
    frames = np.asarray(audio, np.float64)[: n_frames * SPF].reshape(n_frames, SPF)
    rms = np.sqrt((frames ** 2).mean(1))
    smooth = np.convolve(np.pad(rms, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    return np.clip(smooth / 0.35, 0, 1)


def make_clip(ident: Identity, emotion: str, n_frames: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip: (video (N,128,128,3) uint8 BGR, landmarks (N,68,2) float32, audio (N*320,) float32)."""
    rng = np.random.default_rng(seed)
    audio = synth_speech(rng, n_frames, ident.pitch_hz, emotion)
    opening = mouth_opening(audio, n_frames)
    base = identity_landmarks(ident)
    strength = float(rng.uniform(0.7, 1.0))
    # small smooth head motion (what the noise encoder is meant to model)
    walk = np.cumsum(rng.normal(0, 0.25, (n_frames, 2)), axis=0)
    walk -= walk[0]
    video = np.empty((n_frames, SIZE, SIZE, 3), np.uint8)
    lms = np.empty((n_frames, 68, 2), np.float32)
    for i in range(n_frames):
        lm = expression_landmarks(base, emotion, opening[i], strength) + np.clip(walk[i], -2.5, 2.5)
        video[i] = draw_face(lm, ident)
        lms[i] = lm
    return video, lms, audio


def make_corpus(root: str | os.PathLike, *, n_identities: int = 4, clips_per_emotion: int = 2, n_frames: int = 32,
                seed: int = 0, emotions: tuple[str, ...] = EMOTIONS, held_out: int = 1) -> list[ClipInfo]:
    """Write a synthetic corpus (index.jsonl + clips/*.npz) to ``root`` and return its clip records.

    Every identity gets ``clips_per_emotion`` clips of each emotion. Of each identity's clips per
    emotion, the last ``held_out`` go to the ``test`` split (same identities, new utterances), the
    rest to ``train``. A pure function of the arguments.
    """
    if clips_per_emotion <= held_out:
        raise ValueError(f"clips_per_emotion ({clips_per_emotion}) must exceed held_out ({held_out})")
    rng = np.random.default_rng(seed)
    idents = [make_identity(rng, f"syn{i:02d}") for i in range(n_identities)]
    infos = []
    for ident in idents:
        for emotion in emotions:
            for k in range(clips_per_emotion):
                clip_seed = int(rng.integers(2**31))
                video, lms, audio = make_clip(ident, emotion, n_frames, clip_seed)
                split = "test" if k >= clips_per_emotion - held_out else "train"
                info = ClipInfo(clip_id=f"{ident.name}_S{k:02d}_{emotion[:3].upper()}", actor=ident.name,
                                sentence=f"S{k:02d}", emotion=emotion, intensity="XX", split=split,
                                n_frames=n_frames, source="synthetic")
                write_clip(root, info, video, lms, audio)
                infos.append(info)
    write_index(root, infos)
    return infos


def mouth_centre(landmarks: np.ndarray) -> np.ndarray:
    """Mean of the 20 mouth landmarks (48..67): (..., 68, 2) -> (..., 2)."""
    return np.asarray(landmarks)[..., 48:68, :].mean(-2)


__all__ = ["make_corpus", "make_clip", "make_identity", "Identity", "mouth_opening", "synth_speech",
           "draw_face", "expression_landmarks", "identity_landmarks", "mouth_centre"]
