"""``WarpRenderer``: the training-free ``warp`` backend of :mod:`generator.renderers`.

One render: detect the face and its landmarks (once per photo), align the photo to the template at
the output size, then for each 25 fps frame move the landmarks (the face at rest, the expression with an
onset ramp if any, the speech-driven mouth, blinks), warp the aligned photo piecewise-affinely to them, apply the
head motion, and paint the inner mouth where the lips have parted.

The face at rest (``rest="neutral"``, the default): a smiling photo's parted lips are closed, its lip
corners lowered and its mouth narrowed to neutral limits before anything else moves
(:func:`generator.warp.expression.rest_displacement`; its open mouth is covered in its own lip colour so
no line of teeth stays between the closed lips); a photo within the limits is left exactly as it is.
``rest="photo"`` keeps the photo's own expression. The expression's skin folds (furrows between the brows,
forehead lines, the nasolabial furrow, crow's feet: :mod:`generator.warp.wrinkles`) are shaded into the
photo before the warp, deepening with the onset ramp, so they move with the skin.

Every photo goes through the face gate (:func:`generator.faces.find_face`): ``policy`` says what
to do with several faces (``"single"``, the default: refuse; ``"largest"``: use the largest), and
``force=True`` renders a photo the gate refused, recording the overridden problems in the render's
parameters (``face_gate``), which the manifest keeps.

``components`` chooses what moves, so a study can make honest control conditions from one code path:
``("expression", "mouth", "life")`` (everything, the default), ``("mouth", "life")`` (lips only: no
emotion on the face), ``()`` (a still face: the aligned photo repeated).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from generator.align import align_image, align_transform, template, transform_points
from generator.audio import MODEL_RATE, n_frames
from generator.errors import InputError
from generator.faces import FACE_POLICIES, as_rgb, find_face
from generator.renderers import FPS, EmotionSpec, RenderResult, emotion_vector
from generator.warp.cavity import (
    MouthStyle,
    inner_gap,
    lip_colour,
    mouth_style,
    paint_mouth,
    photo_teeth,
    smooth_contour,
)
from generator.warp.expression import EMOTION_AUS, expression_displacement, eye_distance, onset_ramp, rest_displacement
from generator.warp.life import blink_displacement, head_matrix, life_track
from generator.warp.mesh import FaceMesh
from generator.warp.mouth import MouthTrack, mouth_displacement, speech_features
from generator.warp.wrinkles import au_weights, wrinkle_map
from stimuli.emotions import EMOTIONS

COMPONENTS = ("expression", "mouth", "life")
RESTS = ("neutral", "photo")
# The expression is on the face from the first frame, as in posed stimulus sets (CREMA-D's actors are already in
# the emotion when the clip starts) and in the paper's generator. A ramp during the speech is a slow drift of the
# lips (disgust raises the upper lip, fear holds the jaw) on top of the articulation: with a 0.4 s ramp, 26 of 72
# clips of bench/measure_warp_faces.py fell under r = 0.8 of lip sync, 22 with 0.2 s, 12 with none (same clips,
# same rater reading). ``onset_s`` > 0 keeps a smooth onset for clips that begin with a pause.
ONSET_S = 0.0
VERSION = 3  # bump when the same inputs would render different frames
_CACHE_SIZE = 16
# Gated faces per (photo hash, face policy, force), shared by all renderers of the process: a stimulus set
# renders the same few faces many times. Aligned faces and meshes are cached per renderer.
_FACES: OrderedDict[tuple[str, str, bool], object] = OrderedDict()


@dataclass(frozen=True)
class PreparedFace:
    """A photo aligned at one output size, with its mesh (cached per photo and size)."""

    image: np.ndarray       # (S, S, 3) uint8 RGB, the aligned photo
    landmarks: np.ndarray   # (68, 2) float64, in the aligned frame
    mesh: FaceMesh
    style: MouthStyle       # the person's mouth colours and the photo's blur (generator.warp.cavity)
    base_gap: float
    unit: float             # eye distance, pixels
    teeth_rgb: np.ndarray | None  # the photo's own teeth colour, when its mouth shows them
    teeth_h: float
    gate: dict              # what the face gate found and what ``force`` overrode (provenance)
    rest: np.ndarray        # (68, 2) displacement of the face at rest (zeros: the photo as it is)


@dataclass(frozen=True)
class Animation:
    """Everything that moves, per frame: landmarks (T, 68, 2) in output pixels, head poses (T, 2, 3),
    the mouth controls, blink closure (T,) and expression strength (T,)."""

    landmarks: np.ndarray
    head: np.ndarray
    mouth: MouthTrack
    blink: np.ndarray
    expression: np.ndarray
    displacement: np.ndarray  # (T, 68, 2) local (pre-head-motion) landmark displacement, base pixels
    blink_displacement: np.ndarray | None = None  # (T, 68, 2) the part of ``displacement`` due to blinks


def image_key(image: np.ndarray) -> str:
    """sha256 of an image's shape, dtype and bytes (the cache key of a photo)."""
    h = hashlib.sha256()
    h.update(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


class WarpRenderer:
    """Landmark-driven talking faces from one photo (module docstring)."""

    name = "warp"
    checkpoint_sha256: str | None = None

    def __init__(self, components: tuple[str, ...] | list[str] = COMPONENTS, *, onset_s: float = ONSET_S,
                 expression_gain: float = 1.0, policy: str = "single", force: bool = False,
                 rest: str = "neutral"):
        unknown = [c for c in components if c not in COMPONENTS]
        if unknown:
            raise InputError(f"unknown warp components {unknown}: use any of {', '.join(COMPONENTS)}")
        self.components = tuple(c for c in COMPONENTS if c in components)
        self.onset_s = float(onset_s)
        self.expression_gain = float(expression_gain)
        if policy not in FACE_POLICIES:
            raise InputError(f"unknown face policy {policy!r}: use one of {', '.join(FACE_POLICIES)}")
        self.policy = policy
        if rest not in RESTS:
            raise InputError(f"unknown rest {rest!r}: use one of {', '.join(RESTS)}")
        self.rest = rest
        self.force = bool(force)
        self._prepared: OrderedDict[tuple[str, int], PreparedFace] = OrderedDict()

    # -- faces --------------------------------------------------------------------------------------
    def prepare(self, face: np.ndarray, size: int = 128, *, where: str = "face image") -> PreparedFace:
        """Detect (once per photo) and align (once per photo and size); cached by the image's hash.

        ``size=FACE_SIZE`` (0): the face's own resolution (:func:`face_resolution`), up to ``MAX_FACE_SIZE``."""
        img = as_rgb(face, where=where)
        key = image_key(img)
        face_key = (key, self.policy, self.force)
        if size == FACE_SIZE and face_key not in _FACES:
            _FACES[face_key] = find_face(img, policy=self.policy, force=self.force, where=where)
            _trim(_FACES)
        size = _check_size(face_resolution(_FACES[face_key].landmarks) if size == FACE_SIZE else size)
        if (key, size) in self._prepared:
            self._prepared.move_to_end((key, size))
            return self._prepared[(key, size)]
        if face_key not in _FACES:
            _FACES[face_key] = find_face(img, policy=self.policy, force=self.force, where=where)
            _trim(_FACES)
        checked = _FACES[face_key]
        lm = checked.landmarks
        M = align_transform(lm, (size, size))
        aligned = align_image(img, M, (size, size))
        aligned_lm = transform_points(lm.astype(np.float64), M)
        mesh = FaceMesh(aligned_lm, (size, size))
        unit = eye_distance(mesh.landmarks)
        teeth_rgb, teeth_h = photo_teeth(aligned, mesh.landmarks, unit)
        style = mouth_style(aligned, mesh.landmarks, unit)  # the photo's own teeth, before any closing
        rest = rest_displacement(mesh.landmarks) if self.rest == "neutral" else np.zeros((68, 2))
        if inner_gap(mesh.landmarks + rest) < inner_gap(mesh.landmarks) - 0.5:
            aligned = _close_lips(aligned, mesh.landmarks)
        prepared = PreparedFace(image=aligned, landmarks=mesh.landmarks, mesh=mesh,
                                style=style, base_gap=inner_gap(mesh.landmarks + rest),
                                unit=unit, teeth_rgb=teeth_rgb, teeth_h=teeth_h, gate=checked.provenance(),
                                rest=rest)
        self._prepared[(key, size)] = prepared
        _trim(self._prepared)
        return prepared

    # -- motion -------------------------------------------------------------------------------------
    def animate(self, face: np.ndarray | PreparedFace, speech: np.ndarray, emotion: EmotionSpec, seed: int, *,
                intensity: float = 1.0, size: int = 128) -> Animation:
        """The per-frame landmarks and poses of a render, without drawing it."""
        x = _check_speech(speech)
        vec = emotion_vector(emotion, intensity)
        prepared = face if isinstance(face, PreparedFace) else self.prepare(face, size)
        return self._animate(prepared, x, vec, seed)

    def _animate(self, prepared: PreparedFace, x: np.ndarray, vec: np.ndarray, seed: int) -> Animation:
        n = n_frames(len(x))
        base = prepared.landmarks
        s = prepared.image.shape[0]
        mouth = speech_features(x, MODEL_RATE, n)
        ramp = np.zeros(n)
        expression = np.zeros((n, 68, 2))
        if "expression" in self.components:
            ramp = onset_ramp(n, FPS, self.onset_s)
            expression = ramp[:, None, None] * (self.expression_gain * expression_displacement(vec, base))[None]
        disp = prepared.rest[None] + expression  # the face at rest, then what moves
        if "mouth" in self.components:
            disp += mouth_displacement(mouth, base, held=expression)
        else:
            zero = np.zeros(n)
            mouth = MouthTrack(zero, zero, zero, mouth.level_db)
        if "life" in self.components:
            life = life_track(n, seed, s, mouth.opening, FPS)
            blink = life.blink
            lids = np.zeros((n, 68, 2))
            for t in np.flatnonzero(blink):
                lids[t] = blink_displacement(base + disp[t], float(blink[t]))
            disp += lids
            centre = base[30]
            heads = np.stack([head_matrix(p, centre) for p in life.head]) if n else np.zeros((0, 2, 3))
        else:
            blink = np.zeros(n)
            lids = np.zeros((n, 68, 2))
            heads = np.repeat(np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), n, axis=0)
        moved = base[None] + disp
        out = np.einsum("tij,tkj->tki", heads[:, :, :2], moved) + heads[:, None, :, 2]
        return Animation(landmarks=out, head=heads, mouth=mouth, blink=blink, expression=ramp, displacement=disp,
                         blink_displacement=lids)

    # -- rendering ----------------------------------------------------------------------------------
    def _folds(self, prepared: PreparedFace, vec: np.ndarray) -> np.ndarray | None:
        """The shading of the expression's folds at full strength (None: no expression, or no folds)."""
        if "expression" not in self.components:
            return None
        weights = au_weights(EMOTION_AUS, EMOTIONS, self.expression_gain * np.asarray(vec, dtype=np.float64))
        s = prepared.image.shape[0]
        return wrinkle_map((s, s), prepared.landmarks, prepared.unit, weights)

    def render(self, face: np.ndarray, speech: np.ndarray, emotion: EmotionSpec, seed: int, *,
               intensity: float = 1.0, size: int = 128) -> RenderResult:
        """Render a clip: (T, size, size, 3) uint8 RGB at 25 fps, T = ceil(len(speech) / 320)."""
        x = _check_speech(speech)  # cheap checks first, then the face
        vec = emotion_vector(emotion, intensity)
        prepared = self.prepare(face, size)
        anim = self._animate(prepared, x, vec, seed)
        n = len(anim.landmarks)
        s = prepared.image.shape[0]
        frames = np.empty((n, s, s, 3), np.uint8)
        identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        source = _SkinSource(prepared, self._folds(prepared, vec))
        still = np.isclose(anim.head, identity[None]).all(axis=(1, 2)) if n else np.zeros(0, bool)
        scales = np.sqrt(np.abs(np.linalg.det(anim.head[:, :, :2]))) if n else np.zeros(0)
        for t in range(n):
            head = None if still[t] else anim.head[t]
            frames[t] = prepared.mesh.warp(source.at(float(anim.expression[t])), anim.displacement[t], head)
            if anim.blink[t] > 0 and anim.blink_displacement is not None:
                _occlude_eyes(frames[t], prepared, anim, t, head)
            if "mouth" in self.components or "expression" in self.components:
                scale = float(scales[t])
                paint_mouth(frames[t], anim.landmarks[t], prepared.base_gap * scale, prepared.style,
                            prepared.unit * scale, float(anim.mouth.spreading[t]), float(anim.mouth.rounding[t]))
        params = {
            "backend": self.name,
            "version": VERSION,
            "components": list(self.components),
            "emotion_vector": [round(float(v), 6) for v in vec],
            "intensity": float(intensity),
            "size": s,
            "seed": int(seed),
            "onset_s": self.onset_s,
            "expression_gain": self.expression_gain,
            "face_policy": self.policy,
            "rest": self.rest,
            "rest_shift_px": round(float(np.linalg.norm(prepared.rest, axis=1).max()), 3),
            "face_gate": dict(prepared.gate),
        }
        return RenderResult(frames=frames, audio=x.copy(), audio_rate=MODEL_RATE, fps=FPS, parameters=params)


def _close_lips(image: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """The photo with its open mouth (teeth, tongue) covered in its own lip colour, a little darker, for a
    face at rest whose lips the rest displacement closes: squeezed shut by the warp, an open mouth would
    leave a line of teeth between the lips. Speech and expressions paint the interior anew
    (generator.warp.cavity) wherever the lips part from there."""
    import cv2  # optional heavy dependency: imported only when used

    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(smooth_contour(lm68[60:68]) * 4).astype(np.int32)], 255, cv2.LINE_AA, 2)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    a = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 0.8)[..., None]
    lips = 0.85 * lip_colour(image, lm68).astype(np.float32)
    return np.clip(image * (1 - a) + lips * a + 0.5, 0, 255).astype(np.uint8)


class _SkinSource:
    """The aligned photo with the expression's folds (generator.warp.wrinkles) at a strength in [0, 1]:
    the photo itself at 0, the fully shaded photo at 1 (both made once), a blend during the onset."""

    def __init__(self, prepared: PreparedFace, field: np.ndarray | None):
        self.image = prepared.image
        self.field = field
        self.full = None if field is None else _shade(prepared.image, field, 1.0)

    def at(self, strength: float) -> np.ndarray:
        if self.field is None or strength <= 0.0:
            return self.image
        if strength >= 1.0:
            return self.full
        return _shade(self.image, self.field, strength)


# A fold's shadow on skin is warmer than a grey darkening (the light that reaches it has passed through
# skin: red is absorbed least): per-channel weights of the darkening, R G B.
_SHADOW_TINT = np.array([0.8, 1.0, 1.1], np.float32)


def _shade(image: np.ndarray, field: np.ndarray, strength: float) -> np.ndarray:
    gain = 1.0 + strength * (field[..., None] - 1.0) * _SHADOW_TINT
    return np.clip(image * gain + 0.5, 0, 255).astype(np.uint8)


def _occlude_eyes(frame: np.ndarray, prepared: PreparedFace, anim: Animation, t: int, head: np.ndarray | None
                  ) -> None:
    """A closing lid covers the eye, it does not squash it: inside the still-open part of each eye (the
    blinked lid contours) show the eye warped *without* the blink, so iris and eye white keep their
    shape and the lid slides over them (in place)."""
    import cv2  # optional heavy dependency: imported only when used

    open_eye = prepared.mesh.warp(prepared.image, anim.displacement[t] - anim.blink_displacement[t], head)
    h, w = frame.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for eye in (anim.landmarks[t][36:42], anim.landmarks[t][42:48]):
        cv2.fillPoly(mask, [np.round(eye * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    if not mask.any():
        return
    a = (mask.astype(np.float32) / 255.0)[..., None]
    frame[:] = np.clip(frame * (1 - a) + open_eye * a + 0.5, 0, 255).astype(np.uint8)


def _trim(cache: OrderedDict) -> None:
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


FACE_SIZE = 0  # render at the face's own resolution (face_resolution)
MIN_FACE_SIZE, MAX_FACE_SIZE = 128, 512


def face_resolution(lm68: np.ndarray) -> int:
    """The output size (even, MIN_FACE_SIZE..MAX_FACE_SIZE px) at which the aligned face has the photo's own
    pixel density: the template puts the eyes ``eye_distance(template) * size / 128`` px apart, so a photo whose
    eyes are E px apart fills ``128 * E / eye_distance(template)`` px without being magnified."""
    native = 128.0 * eye_distance(np.asarray(lm68, np.float64)) / eye_distance(template().astype(np.float64))
    return int(min(MAX_FACE_SIZE, max(MIN_FACE_SIZE, 2 * round(native / 2))))


def _check_size(size: int) -> int:
    try:
        s = int(size)
    except (TypeError, ValueError):
        raise InputError(f"size must be an integer number of pixels (128 or 256), got {size!r}") from None
    if s != size or s < 64 or s > 1024 or s % 2:
        raise InputError(f"size must be an even number of pixels from 64 to 1024 (128 or 256), got {size!r}")
    return s


def _check_speech(speech: np.ndarray) -> np.ndarray:
    x = np.asarray(speech)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise InputError(f"speech must be mono samples (N,) at {MODEL_RATE} Hz, got shape {x.shape}; load files "
                         "with generator.audio.load_speech (it mixes down and resamples)")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"speech must be float samples in [-1, 1], got {x.dtype}; use generator.audio.load_speech")
    if len(x) == 0:
        raise InputError("speech is empty: at least one 40 ms frame (320 samples at 8 kHz) is needed")
    if not np.all(np.isfinite(x)):
        raise InputError("speech contains NaN or infinite samples")
    if float(np.abs(x).max()) > 1.0 + 1e-4:
        raise InputError(f"speech peaks at {float(np.abs(x).max()):.3g}, beyond [-1, 1]: normalise it "
                         "(generator.audio.normalise, or load it with generator.audio.load_speech)")
    return x.astype(np.float32, copy=False)
