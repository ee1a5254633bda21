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
from functools import lru_cache
from pathlib import Path

import numpy as np

from generator.errors import InputError, NoFaceError

N_LANDMARKS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
POLICIES = ("largest", "single")
DETECT_MAX_SIDE = 1600

Box = tuple[int, int, int, int]  # (left, top, right, bottom), pixels


def predictor_path() -> Path:
    """Path of dlib's 68-point shape predictor inside the installed ``face-recognition-models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the package 'face-recognition-models' is not installed (it ships dlib's 68-point "
                         "landmark model): pip install 'emostudy[generator]'")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise InputError(f"{PREDICTOR_FILE} not found in the 'face-recognition-models' package "
                     f"({list(spec.submodule_search_locations)}); reinstall it")


@lru_cache(maxsize=1)
def _models():
    """(detector, predictor), loaded once per process (the predictor file is ~100 MB)."""
    import dlib

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
    from PIL import Image, ImageOps, UnidentifiedImageError

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
    import dlib

    detector, predictor = _models()
    img = as_rgb(image_rgb, where=where)
    scale = min(1.0, DETECT_MAX_SIDE / max(img.shape[:2]))
    search = img
    if scale < 1.0:
        import cv2

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
