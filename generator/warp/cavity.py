"""The inner mouth: a dark cavity and a hint of teeth painted where the lips have parted.

Warping alone would fill a newly opened mouth with stretched lip skin. Wherever the inner lips
(points 60-67, drawn as a smooth Catmull-Rom curve through them) are open by more than they are in
the photo, we paint the opening: a dark red-brown cavity (the photo's lip colour, darkened; darker
towards the bottom, where tongue and throat are in shadow), a soft-edged upper-teeth band hanging
from the upper lip and a fainter lower one, both fading towards the corners. Opacity ramps in with the
extra opening (see :func:`paint_mouth`), drawing is anti-aliased at 1/4 px and limited to the
mouth's bounding box.
"""

from __future__ import annotations

import numpy as np

INNER = list(range(60, 68))
UPPER_INNER_LINE = [60, 61, 62, 63, 64]
LOWER_INNER_LINE = [64, 65, 66, 67, 60]
_SHIFT = 2  # cv2 fixed-point bits: 1/4 px vertices
TEETH_RGB = np.array([232.0, 226.0, 212.0])
CAVITY_GAIN = np.array([0.42, 0.22, 0.22])  # lip colour -> mouth interior (darker, redder)


def inner_gap(lm68: np.ndarray) -> float:
    """Mean vertical distance between the inner lips (pairs 61-67, 62-66, 63-65), pixels."""
    lm = np.asarray(lm68, dtype=np.float64)
    return float(np.mean(lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]))


def lip_colour(image: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """Mean RGB of the outer-lip ring (between the outer and inner lip contours) of the base image."""
    import cv2

    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(lm68)[48:60]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(np.asarray(lm68)[60:68]).astype(np.int32)], 0)
    if mask.sum() < 4:
        cv2.fillPoly(mask, [np.round(np.asarray(lm68)[48:60]).astype(np.int32)], 1)
    if mask.sum() == 0:
        return np.array([150.0, 80.0, 80.0])
    return image[mask.astype(bool)].reshape(-1, 3).mean(0).astype(np.float64)


def smooth_contour(pts: np.ndarray, samples: int = 6, closed: bool = True) -> np.ndarray:
    """Catmull-Rom curve through ``pts`` (N, 2): ``samples`` points per segment (lips are curves,
    the 8 inner-lip landmarks a polygon)."""
    p = np.asarray(pts, dtype=np.float64)
    if closed:
        ext = np.vstack([p[-1:], p, p[:2]])
        n_seg = len(p)
    else:
        ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
        n_seg = len(p) - 1
    u = np.arange(samples) / samples
    u2, u3 = u * u, u * u * u
    # Uniform Catmull-Rom basis (tension 0.5).
    basis = 0.5 * np.stack([-u3 + 2 * u2 - u, 3 * u3 - 5 * u2 + 2, -3 * u3 + 4 * u2 + u, u3 - u2], axis=1)
    out = [basis @ ext[i:i + 4] for i in range(n_seg)]
    if not closed:
        out.append(p[-1:])
    return np.vstack(out)


def _poly_mask(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return m.astype(np.float32) / 255.0


def photo_teeth(image: np.ndarray, lm68: np.ndarray, unit: float) -> tuple[np.ndarray | None, float]:
    """(teeth RGB, visible upper-teeth height in px) when the photo's mouth is open and shows teeth
    (bright pixels between the inner lips, brighter than the lips), else (None, 0)."""
    import cv2

    lm = np.asarray(lm68, dtype=np.float64)
    gap = inner_gap(lm)
    if gap < 0.06 * unit:
        return None, 0.0
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[INNER]).astype(np.int32)], 1)
    inside = image[mask.astype(bool)].reshape(-1, 3).astype(np.float64)
    if len(inside) < 8:
        return None, 0.0
    luma = inside @ [0.299, 0.587, 0.114]
    bright = inside[luma >= np.percentile(luma, 60)]
    lips = lip_colour(image, lm) @ [0.299, 0.587, 0.114]
    if bright.mean(0) @ [0.299, 0.587, 0.114] < 1.15 * lips:
        return None, 0.0
    return bright.mean(0), 0.5 * gap


def paint_mouth(frame: np.ndarray, lm68: np.ndarray, base_gap: float, lip_rgb: np.ndarray,
                unit: float, teeth_rgb: np.ndarray | None = None, teeth_h: float = 0.0) -> np.ndarray:
    """Paint the cavity and teeth into ``frame`` (in place; returned) for output landmarks ``lm68``.

    ``base_gap`` is the photo's own inner-lip gap; ``unit`` the eye distance in pixels;
    ``teeth_rgb`` / ``teeth_h``: the photo's own teeth (:func:`photo_teeth`), so that a mouth opened
    beyond the photo's shows teeth of the same colour and size as the photo."""
    lm = np.asarray(lm68, dtype=np.float64)
    gap = inner_gap(lm)
    # Paint when the lips have parted beyond the photo's own opening: by > 0.4 px (fully from 2.4 px),
    # and by more than 1.3x (fully from 2x), so that a photo with an open mouth keeps its own teeth
    # and mouth interior, warped, in small openings.
    extra = float(np.clip((gap - base_gap - 0.4) / 2.0, 0.0, 1.0))
    stretch = float(np.clip((gap / max(base_gap, 0.5) - 1.3) / 0.7, 0.0, 1.0))
    alpha = min(extra, stretch)
    if alpha <= 0.0:
        return frame
    h, w = frame.shape[:2]
    pts = lm[INNER]
    x0, y0 = np.floor(pts.min(0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return frame
    off = np.array([x0, y0], dtype=np.float64)
    roi_shape = (y1 - y0, x1 - x0)
    cavity = _poly_mask(roi_shape, smooth_contour(pts) - off)
    if not cavity.any():
        return frame
    import cv2

    # Upper teeth: a band hanging from the upper inner lip, soft-edged; a fainter lower band.
    own_teeth = teeth_rgb is not None
    teeth_h = max(min(0.065 * unit, 0.35 * gap), min(teeth_h, 0.6 * gap))
    soft = max(0.3, 0.3 * teeth_h)
    upper = smooth_contour(lm[UPPER_INNER_LINE], closed=False) - off
    upper_teeth = _poly_mask(roi_shape, np.vstack([upper - [0.0, 2.0], upper[::-1] + [0.0, teeth_h]]))
    upper_teeth = cv2.GaussianBlur(upper_teeth, (0, 0), soft) * cavity
    lower = smooth_contour(lm[LOWER_INNER_LINE], closed=False) - off
    lower_teeth = _poly_mask(roi_shape, np.vstack([lower + [0.0, 2.0], lower[::-1] - [0.0, 0.4 * teeth_h]]))
    lower_teeth = cv2.GaussianBlur(lower_teeth, (0, 0), soft) * cavity * (0.6 if own_teeth else 0.3)
    # Teeth show in the middle of the mouth and recede into shadow towards the corners.
    xs = np.arange(roi_shape[1], dtype=np.float32)[None, :] + x0
    cx, half = 0.5 * (lm[60, 0] + lm[64, 0]), max(0.5 * abs(lm[64, 0] - lm[60, 0]), 1.0)
    fade = np.clip(1.4 * (1.0 - np.abs(xs - cx) / half), 0.0, 1.0)
    upper_teeth *= fade
    lower_teeth *= fade

    ys = np.arange(roi_shape[0], dtype=np.float32)[:, None] + y0
    top, bottom = float(lm[[61, 62, 63], 1].mean()), float(lm[[65, 66, 67], 1].mean())
    depth = np.clip((ys - top) / max(bottom - top, 1.0), 0.0, 1.0)  # 0 at the upper lip, 1 at the lower
    dark = (np.asarray(lip_rgb, dtype=np.float32) * CAVITY_GAIN)[None, None, :] * (1.0 - 0.5 * depth[..., None])
    colour = np.broadcast_to(dark, roi_shape + (3,)).copy()
    # Teeth sit in the mouth's shade: dimmer than white, tinted by the lips.
    if own_teeth:
        teeth = np.asarray(teeth_rgb, dtype=np.float32)
    else:
        teeth = (0.85 * TEETH_RGB + 0.1 * np.asarray(lip_rgb)).astype(np.float32)
    shade = 0.8 + 0.2 * (1.0 - depth[..., None])
    colour = colour * (1 - upper_teeth[..., None]) + teeth * shade * upper_teeth[..., None]
    colour = colour * (1 - lower_teeth[..., None]) + teeth * 0.8 * lower_teeth[..., None]
    a = (cavity * alpha)[..., None]
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)
    return frame
