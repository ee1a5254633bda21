"""One interface for every talking-face renderer: ``render(face, speech, emotion, seed) -> RenderResult``.

Backends (``get_renderer``):

- ``warp``: :class:`generator.warp.renderer.WarpRenderer`, training-free, landmark-driven (the default).
- ``neural``: ``generator.neural.renderer:NeuralRenderer``, the paper's generator from a checkpoint (imports torch).

Inputs: ``face`` is one photo, (H, W, 3) uint8 RGB (grayscale and RGBA are converted); ``speech`` is
mono float32 at 8 kHz (``generator.audio.MODEL_RATE``), mean-removed and peak-normalised
(``generator.audio.load_speech`` makes it from a file). The output has T = ceil(L / 320) frames at
25 fps for L samples (NOTES.md), RGB, with the speech it was rendered from.

Emotion: a name or CREMA-D code (``"sadness"``, ``"SAD"``), a blend string
(``"happiness=0.7,neutral=0.3"``), a mapping ``{emotion: weight}`` or a 6-vector in the order of
:data:`stimuli.emotions.EMOTIONS` (anger, disgust, fear, happiness, neutral, sadness). Weights are
non-negative and are normalised to sum to 1; ``intensity`` in [0, 1] then scales the whole vector
(1 = the full expression; the neural backend feeds the scaled vector to the network as it is).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from generator.errors import InputError
from stimuli.emotions import EMOTIONS, parse_emotion

FPS = 25

EmotionSpec = str | Mapping[str, float] | Sequence[float] | np.ndarray


@dataclass(frozen=True, kw_only=True)
class RenderResult:
    """A rendered clip: frames (T, H, W, 3) uint8 RGB at ``fps``, and its mono float32 audio."""

    frames: np.ndarray
    audio: np.ndarray
    audio_rate: int
    fps: int = FPS
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


@runtime_checkable
class Renderer(Protocol):
    """What every backend provides. ``checkpoint_sha256`` is None for training-free backends."""

    name: str
    checkpoint_sha256: str | None

    def render(self, face: np.ndarray, speech: np.ndarray, emotion: EmotionSpec, seed: int, *,
               intensity: float = 1.0, size: int = 128) -> RenderResult: ...


def _weights_from_mapping(items: Mapping[str, Any], what: str) -> np.ndarray:
    vec = np.zeros(len(EMOTIONS), dtype=np.float64)
    for key, value in items.items():
        try:
            idx = EMOTIONS.index(parse_emotion(key))
        except ValueError as exc:
            raise InputError(f"emotion {what}: {exc}") from None
        try:
            w = float(value)
        except (TypeError, ValueError):
            raise InputError(f"emotion {what}: the weight of {key!r} is {value!r}, not a number") from None
        vec[idx] += w
    return vec


def emotion_vector(emotion: EmotionSpec, intensity: float = 1.0) -> np.ndarray:
    """The (6,) float64 emotion vector (module docstring): weights normalised to sum 1, times intensity.

    >>> emotion_vector("happiness=0.7,neutral=0.3").round(2).tolist()
    [0.0, 0.0, 0.0, 0.7, 0.3, 0.0]
    """
    if isinstance(emotion, str):
        text = emotion.strip()
        if not text:
            raise InputError("emotion is empty: give a name (e.g. sadness) or a blend (happiness=0.7,neutral=0.3)")
        if "=" in text or "," in text or ":" in text:
            items: dict[str, str] = {}
            for part in text.split(","):
                part = part.strip()
                if not part:
                    continue
                sep = "=" if "=" in part else ":"
                if sep not in part:
                    raise InputError(f"emotion {text!r}: {part!r} has no weight; write name=weight, e.g. "
                                     "happiness=0.7,neutral=0.3")
                k, v = part.split(sep, 1)
                if k.strip() in items:
                    raise InputError(f"emotion {text!r}: {k.strip()!r} is given twice")
                items[k.strip()] = v.strip()
            vec = _weights_from_mapping(items, repr(text))
        else:
            vec = _weights_from_mapping({text: 1.0}, repr(text))
    elif isinstance(emotion, Mapping):
        vec = _weights_from_mapping(emotion, repr(dict(emotion)))
    else:
        try:
            vec = np.asarray(emotion, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"emotion {emotion!r}: expected a name, a blend string, a mapping or "
                             "a 6-vector") from None
        if vec.shape != (len(EMOTIONS),):
            raise InputError(f"emotion vector has shape {vec.shape}; expected {len(EMOTIONS)} weights in the "
                             f"order {', '.join(EMOTIONS)}")
    if not np.all(np.isfinite(vec)):
        raise InputError(f"emotion weights must be finite numbers, got {vec.tolist()}")
    if np.any(vec < 0):
        raise InputError(f"emotion weights must be non-negative, got {dict(zip(EMOTIONS, vec.tolist()))}")
    total = float(vec.sum())
    if total <= 0:
        raise InputError("emotion weights sum to 0: give at least one positive weight")
    try:
        k = float(intensity)
    except (TypeError, ValueError):
        raise InputError(f"intensity must be a number in [0, 1], got {intensity!r}") from None
    if not (0.0 <= k <= 1.0) or math.isnan(k):
        raise InputError(f"intensity must be in [0, 1], got {intensity}")
    return vec / total * k


def dominant_emotion(vec: np.ndarray) -> str:
    """The name of the largest component (first one on ties)."""
    return EMOTIONS[int(np.argmax(np.asarray(vec)))]


BACKENDS: dict[str, str] = {
    "warp": "generator.warp.renderer:WarpRenderer",
    "neural": "generator.neural.renderer:NeuralRenderer",
}


def get_renderer(backend: str, **options: Any) -> Renderer:
    """Make a renderer by name (``warp``, ``neural``); ``options`` go to its constructor
    (neural: ``checkpoint=PATH, device=...``; warp: ``components=(...)``)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown renderer backend {backend!r}: use one of {', '.join(BACKENDS)}")
    module_name, attr = BACKENDS[backend].split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(**options)
