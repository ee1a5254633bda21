"""3-point similarity alignment of faces onto our 128x128 template (paper IV-A, NOTES.md).

The three points (0-based 68-point indices, as in the reference code): mean of landmarks (39, 40),
mean of (42, 47) (the "eye centres") and mean of (30..35) (nose tip and nostrils). A clip is aligned
with one transform, estimated on its first frame and applied to every frame, so the head can still
move within the crop (paper IV-A).

Sizes are ``(width, height)`` in pixels. ``SIZE_OURS = (128, 128)`` is the paper's generator size;
``SIZE_BASELINE = (96, 128)`` is the baseline's (Vougioukas et al. 2019, whose released code resizes to
``(128, 96)`` rows x columns, i.e. 96 wide and 128 high). Every size uses the same template scaled by
``height / 128`` and centred horizontally, so 96x128 shows the same face at the same scale with
16 px less background on each side, and 256x256 is the 128 template doubled.

The template (``generator/assets/template_68.npy``, 68x2 float32, pixels of a 128x128 frame) is ours,
made by :func:`generator.faces.build_template` from the two face photos that ship inside installed packages
(scikit-image's ``astronaut`` and matplotlib's ``grace_hopper.jpg``):

1. detect their 68 landmarks; remove position, scale and rotation (least-squares similarity of all
   68 points onto the first face), and average;
2. make it left-right symmetric: average it with its mirror image (x -> -x, with the 68-point
   left/right correspondence :data:`MIRROR`);
3. place it upright (eye points on one row), scaled so that the brows (mean of points 19 and 24)
   are 0.625 H above the chin (point 8), centred horizontally, with the chin at y = 0.87 H; in a
   128x128 frame: brows at y ~ 31, chin at y ~ 111, jaw ~ 0.66 W wide, forehead and some hair in
   the frame, like the paper's Fig. 2 crops.
Two templates
-------------
``template="ours"`` (above) frames the face for the warp renderer and for the data our own training
prepares. ``template="authors"`` is the crop the released weights were trained on: the three template
points of the reference implementation (NOTES.md, "Data preparation as coded") at
:data:`AUTHORS_POINTS_128`. Its face is ~7 % smaller and 6-11 px higher than ours (eye line near row 41,
mouth near row 80, chin near row 106). :func:`align_authors` reproduces the reference's recipe: the
similarity is estimated *from the template points to the photo's points* (a least-squares fit in that
direction, not the inverse of the other direction's fit), used as the inverse map of a bilinear warp
with a black border, and the float result in [0, 1] times 255 is truncated to uint8.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

SIZE_OURS = (128, 128)
SIZE_BASELINE = (96, 128)
TEMPLATE_PATH = Path(__file__).with_name("assets") / "template_68.npy"

LEFT_EYE = (39, 40)   # image-left eye (the subject's right), reference code's choice
RIGHT_EYE = (42, 47)
NOSE = (30, 31, 32, 33, 34, 35)

# The reference implementation's template points in a 128x128 crop, (x, y) pixels (NOTES.md): the mean of
# landmarks (39, 40), the mean of (42, 47), the mean of 30..35.
AUTHORS_POINTS_128 = np.array([[51.20, 41.10], [76.61, 40.90], [63.91, 64.27]])
TEMPLATES = ("authors", "ours")

# Left/right correspondence of the 68 iBUG points (index -> index of its mirror image).
MIRROR = np.array(
    list(range(16, -1, -1))                                  # jaw 0..16
    + list(range(26, 21, -1)) + list(range(21, 16, -1))      # brows 17..21 <-> 26..22
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]                # nose bridge, nostrils
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]    # eyes
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55]    # outer lips
    + [64, 63, 62, 61, 60] + [67, 66, 65],                   # inner lips
    dtype=np.int64,
)

# Placement of the template in a square frame (step 3 above), as fractions of its height.
_BROW_TO_CHIN = 0.625
_CHIN_Y = 0.87


def alignment_points(lm68: np.ndarray) -> np.ndarray:
    """(3, 2) float64: left-eye, right-eye and nose points of 68 landmarks (module docstring)."""
    lm = np.asarray(lm68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape (68, 2), got {lm.shape}")
    return np.stack([lm[list(LEFT_EYE)].mean(0), lm[list(RIGHT_EYE)].mean(0), lm[list(NOSE)].mean(0)])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``src``
    points onto ``dst``: a 2x3 float64 matrix M with dst ~ src @ M[:, :2].T + M[:, 2].

    Umeyama (1991), "Least-squares estimation of transformation parameters between two point patterns".
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("the source points coincide; no transform can be estimated")
    # In the plane a scaled rotation is multiplication by one complex number z = a + ib; the least-squares z
    # is sum(conj(s0) d0) / sum|s0|^2, the same optimum as Umeyama's SVD (no reflection) in closed form (the
    # warp's mouth fits one per frame).
    n2 = var_s * len(src)
    a = float((s0[:, 0] * d0[:, 0] + s0[:, 1] * d0[:, 1]).sum()) / n2
    b = float((s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0]).sum()) / n2
    m = np.empty((2, 3))
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = a, -b, b, a
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def transform_points(pts: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points (returns float32 for float32 input, else float64)."""
    p = np.asarray(pts)
    out = p.astype(np.float64) @ np.asarray(M, dtype=np.float64)[:, :2].T + np.asarray(M, dtype=np.float64)[:, 2]
    return out.astype(np.float32) if p.dtype == np.float32 else out


def invert_transform(M: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix."""
    m3 = np.vstack([np.asarray(M, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(m3)[:2]


@lru_cache(maxsize=1)
def _template_128() -> np.ndarray:
    if not TEMPLATE_PATH.is_file():
        raise FileNotFoundError(f"{TEMPLATE_PATH} is missing; rebuild it with generator.faces.build_template()")
    t = np.load(TEMPLATE_PATH)
    if t.shape != (68, 2):
        raise ValueError(f"{TEMPLATE_PATH}: expected (68, 2), got {t.shape}")
    t.setflags(write=False)
    return t


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if w < 16 or h < 16:
        raise ValueError(f"size {w}x{h} is too small (at least 16x16)")
    return w, h


def template(size: tuple[int, int] = SIZE_OURS) -> np.ndarray:
    """The 68 template landmarks (68, 2) float32 in pixels of a ``(width, height)`` frame."""
    w, h = _check_size(size)
    t = _template_128().astype(np.float64)
    s = h / 128.0
    out = np.empty_like(t)
    out[:, 0] = (t[:, 0] - 64.0) * s + w / 2.0
    out[:, 1] = t[:, 1] * s
    return out.astype(np.float32)


def template_points(name: str = "ours", size: tuple[int, int] = SIZE_OURS) -> np.ndarray:
    """(3, 2) float64: the three alignment points of template ``name`` ("ours" or "authors") in pixels
    of a ``(width, height)`` frame (scaled by height / 128, centred horizontally, as :func:`template`)."""
    w, h = _check_size(size)
    if name == "ours":
        return alignment_points(template((w, h)))
    if name == "authors":
        s = h / 128.0
        pts = AUTHORS_POINTS_128.copy()
        pts[:, 0] = (pts[:, 0] - 64.0) * s + w / 2.0
        pts[:, 1] = pts[:, 1] * s
        return pts
    raise ValueError(f"unknown template {name!r}: use one of {', '.join(TEMPLATES)}")


def align_transform(lm68: np.ndarray, size: tuple[int, int] = SIZE_OURS, *, template_name: str = "ours") -> np.ndarray:
    """2x3 matrix taking image pixels onto the template of ``size`` (3-point similarity).

    For ``"authors"`` the fit runs from the template to the photo and is inverted, as the reference does."""
    if template_name == "authors":
        return invert_transform(similarity_transform(template_points("authors", size), alignment_points(lm68)))
    return similarity_transform(alignment_points(lm68), template_points(template_name, size))


def align_authors(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int] = SIZE_OURS, *,
                  antialias: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crop the released weights expect (module docstring): returns (aligned uint8, landmarks, M).

    ``antialias=False`` is the reference's recipe exactly (``skimage.transform.warp``, order 1, black
    border, x255 and truncation). ``antialias=True`` (default) first blurs the photo with a Gaussian of
    sigma (1/scale - 1)/2 when it is reduced by more than 2x, as ``skimage.transform.rescale`` does:
    the reference's training videos (480x360 CREMA-D) were reduced by ~2x, a 12-megapixel photo by 10x
    or more, and bilinear sampling alone would then alias (docs/training.md lists this difference).
    """
    from skimage.transform import AffineTransform, warp  # optional heavy dependency: imported only when used

    w, h = _check_size(size)
    img = np.asarray(image)
    inv = similarity_transform(template_points("authors", (w, h)), alignment_points(landmarks))  # crop -> photo
    M = invert_transform(inv)
    src = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if antialias and scale < 0.5:
        from scipy.ndimage import gaussian_filter  # optional heavy dependency: imported only when used

        sigma = (1.0 / scale - 1.0) / 2.0
        src = gaussian_filter(src, sigma=(sigma, sigma) + (0,) * (src.ndim - 2), mode="nearest")
    tform = AffineTransform(matrix=np.vstack([inv, [0.0, 0.0, 1.0]]))
    out = warp(src, tform, output_shape=(h, w) + src.shape[2:], order=1, mode="constant", cval=0.0,
               preserve_range=True)
    aligned = (np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)  # truncation, as the reference
    return aligned, transform_points(np.asarray(landmarks, dtype=np.float32), M), M


def align_image(img: np.ndarray, M: np.ndarray, size: tuple[int, int] = SIZE_OURS, *,
                border: str = "replicate") -> np.ndarray:
    """Warp an image (H, W[, C]) with the 2x3 matrix ``M`` into a ``(width, height)`` frame.

    Large reductions are area-averaged first (bilinear sampling alone would alias). ``border`` is
    ``"replicate"`` (edge pixels continue; no black wedges in renders) or ``"constant"`` (black).
    """
    import cv2  # optional heavy dependency: imported only when used

    w, h = _check_size(size)
    if border not in ("replicate", "constant"):
        raise ValueError(f"border must be 'replicate' or 'constant', got {border!r}")
    src = np.ascontiguousarray(img)
    m = np.asarray(M, dtype=np.float64).copy()
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.7:
        f = min(1.0, scale * 1.25)
        new_w, new_h = max(1, round(src.shape[1] * f)), max(1, round(src.shape[0] * f))
        fx, fy = new_w / src.shape[1], new_h / src.shape[0]
        src = cv2.resize(src, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # A pixel centre x maps to (x + 0.5) * fx - 0.5 in the reduced image.
        pre = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])
        m = m @ np.vstack([invert_transform(pre), [0.0, 0.0, 1.0]])
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=mode)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int] = SIZE_OURS, *,
               border: str = "replicate") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align one image: returns (aligned image, aligned landmarks (68, 2) float32, M 2x3)."""
    M = align_transform(landmarks, size)
    aligned = align_image(image, M, size, border=border)
    return aligned, transform_points(np.asarray(landmarks, dtype=np.float32), M), M


def align_clip(frames: np.ndarray, first_landmarks: np.ndarray, size: tuple[int, int] = SIZE_OURS, *,
               border: str = "replicate") -> tuple[np.ndarray, np.ndarray]:
    """Align a whole clip (T, H, W, C) with the transform of its first frame: returns (frames, M)."""
    M = align_transform(first_landmarks, size)
    w, h = _check_size(size)
    out = np.empty((len(frames), h, w) + tuple(np.asarray(frames).shape[3:]), dtype=np.asarray(frames).dtype)
    for i, f in enumerate(frames):
        out[i] = align_image(f, M, size, border=border)
    return out, M


def shipped_faces() -> list[tuple[str, np.ndarray]]:
    """The face photos that ship inside installed packages: [(name, (H, W, 3) uint8 RGB)] (copies)."""
    return [(name, img.copy()) for name, img in _shipped_faces()]


@lru_cache(maxsize=1)
def _shipped_faces() -> tuple[tuple[str, np.ndarray], ...]:
    import matplotlib.cbook  # optional heavy dependency: imported only when used
    from PIL import Image  # optional heavy dependency: imported only when used
    from skimage import data  # optional heavy dependency: imported only when used

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    return (("skimage:astronaut", np.asarray(data.astronaut())), ("matplotlib:grace_hopper.jpg", hopper))
