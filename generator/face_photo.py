"""What the face gate measures in the photo itself (beside the landmarks): is it a photo of skin, is the
face lit enough to see, and is the image's up the face's up (used by :func:`generator.faces.find_face`).

- Drawings: a photographed face has skin: in the face (the hull of the 68 landmarks) most pixels fall in
  the YCrCb skin range (Cr 133-173, Cb 77-127; Chai & Ngan's rule, wide enough for every skin tone it
  was fitted on) and carry fine texture. A line drawing or pencil sketch is grey (no chroma) and
  bimodal: paper and strokes. A greyscale (black-and-white) photo has no skin colour either; it passes
  when its tones are spread like a photo's (few pixels at the paper level), else it is called a drawing.
  Flat-coloured cartoons have skin-like colour but almost no texture in it.
- Light: the mean luma (0-255) of the face and its standard deviation (contrast). A face whose mean is
  below ``MIN_FACE_LUMA`` or whose contrast is below ``MIN_FACE_CONTRAST`` makes a near-black or flat video.
- Up: dlib's detector scores the face crop as it is and turned by 180 degrees; a face that scores
  higher upside down is upside down in the image even when the landmarks (fitted upright) say otherwise.

Thresholds were set on the shipped photos and their darkened, drawn and sketched versions
(tests/generator/test_face_gate_photo.py): measured values are in the messages, with the limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_FACE_LUMA = 45.0  # mean luma of the face (0-255); the shipped faces: 141-173; at 12 % brightness: 15-21
MIN_FACE_CONTRAST = 14.0  # luma standard deviation in the face; the shipped faces: 38-45; at 15 % contrast: 5.5
MIN_SKIN_FRACTION = 0.35  # face pixels in the YCrCb skin range; shipped faces: > 0.8; drawings: ~0
MIN_SKIN_TEXTURE = 1.0  # median |Laplacian| of skin pixels (luma levels); flat cartoon fill: < 0.5
MAX_PAPER_FRACTION = 0.45  # grey images: face pixels within 12 levels of the brightest tone (paper)
GREY_CHROMA = 3.0  # mean |Cr-128| + |Cb-128| below this: a greyscale image


def face_mask(shape: tuple[int, ...], lm68: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the face: the convex hull of the 68 landmarks (clipped to the image)."""
    import cv2  # optional heavy dependency: imported only when used

    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(lm68, np.float64)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def light(img: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mean luma, luma standard deviation) of the face pixels."""
    y = (img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114)[mask]
    if y.size == 0:
        return 0.0, 0.0
    return float(y.mean()), float(y.std())


def skin_stats(img: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Skin colour fraction, texture of the skin pixels, greyness and paper fraction of the face."""
    import cv2  # optional heavy dependency: imported only when used

    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float64)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    skin = (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127) & mask
    n = max(int(mask.sum()), 1)
    lap = np.abs(cv2.Laplacian(y.astype(np.float32), cv2.CV_32F, ksize=3))
    chroma = float((np.abs(cr[mask] - 128) + np.abs(cb[mask] - 128)).mean()) if mask.any() else 0.0
    ym = y[mask]
    paper = float((ym >= np.percentile(ym, 98) - 12).mean()) if ym.size else 1.0
    return {"skin_fraction": float(skin.sum()) / n,
            "skin_texture": float(np.median(lap[skin])) if skin.any() else 0.0,
            "chroma": chroma, "paper_fraction": paper}


def upright_scores(img: np.ndarray, box: tuple[int, int, int, int], detector: Any) -> tuple[float, float]:
    """dlib's detector (``dlib.get_frontal_face_detector()``) score of the face crop as it is and turned by
    180 degrees (-9 when not found)."""
    left, top, right, bottom = box
    mw, mh = 0.3 * (right - left), 0.3 * (bottom - top)
    h, w = img.shape[:2]
    crop = np.ascontiguousarray(img[max(0, int(top - mh)):min(h, int(bottom + mh)),
                                    max(0, int(left - mw)):min(w, int(right + mw))])
    out = []
    for c in (crop, np.ascontiguousarray(crop[::-1, ::-1])):
        _, scores, _ = detector.run(c, 1, -2.0)
        out.append(float(max(scores)) if len(scores) else -9.0)
    return out[0], out[1]


def photo_problems(img: np.ndarray, lm68: np.ndarray, box: tuple[int, int, int, int], detector: Any, *,
                   check_up: bool = True) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """([(code, message)], measures) of the photo around one face. Codes: dark, low_contrast, drawing,
    upside_down (``check_up=False``: not checked; a face cut off by the border scores low either way)."""
    mask = face_mask(img.shape, lm68)
    mean, std = light(img, mask)
    measures = {"face_luma": round(mean, 1), "face_contrast": round(std, 1)}
    out: list[tuple[str, str]] = []
    if mean < MIN_FACE_LUMA:
        out.append(("dark", f"the face is too dark: mean brightness {mean:.0f} of 255, at least {MIN_FACE_LUMA:.0f} "
                            "is needed (the video would be near black); brighten the photo or light the face"))
    elif std < MIN_FACE_CONTRAST:
        out.append(("low_contrast", f"the face has too little contrast: brightness spread {std:.1f}, at least "
                                    f"{MIN_FACE_CONTRAST:.0f} is needed; give a photo with visible features"))
    if not out:  # a dark or flat face has no measurable colour or texture: that is its problem
        stats = skin_stats(img, mask)
        measures.update({k: round(v, 3) for k, v in stats.items()})
        if stats["chroma"] < GREY_CHROMA:
            if stats["paper_fraction"] > MAX_PAPER_FRACTION:
                out.append(("drawing", f"the face looks drawn, not photographed: a grey image where "
                                       f"{stats['paper_fraction']:.0%} of the face is at the paper's tone (a photo: "
                                       f"at most {MAX_PAPER_FRACTION:.0%}); the renderers need a photo of a face"))
        elif stats["skin_fraction"] < MIN_SKIN_FRACTION:
            out.append(("drawing", f"the face looks drawn, not photographed: {stats['skin_fraction']:.0%} of it has "
                                   f"a skin colour (a photo: at least {MIN_SKIN_FRACTION:.0%}); the renderers need a "
                                   "photo of a face"))
        elif stats["skin_texture"] < MIN_SKIN_TEXTURE:
            out.append(("drawing", f"the face looks drawn, not photographed: its skin is flat colour (texture "
                                   f"{stats['skin_texture']:.2f}, a photo: at least {MIN_SKIN_TEXTURE:g}); the "
                                   "renderers need a photo of a face"))
    if not check_up:
        return out, measures
    up, down = upright_scores(img, box, detector)
    measures.update(upright_score=round(up, 3), upside_down_score=round(down, 3))
    if down > max(up, 0.0):  # found upside down, and more surely than upright
        out.append(("upside_down", f"the face is upside down in the image (the detector scores it {down:.2f} turned "
                                   f"by 180 degrees, {up:.2f} as it is) although its landmarks were fitted upright; "
                                   "turn the photo so the face is upright"))
    return out, measures
