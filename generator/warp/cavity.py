"""The inner mouth: a dark cavity and a hint of teeth painted where the lips have parted.

Warping alone would fill a newly opened mouth with stretched lip skin. Wherever the inner-lip
polygon (points 60-67) is open by more than it is in the photo, we paint it: a dark red-brown cavity
(the photo's lip colour, darkened; darker towards the bottom, where the tongue and throat are in
shadow), an upper-teeth band hanging from the upper lip and a fainter lower-teeth band on the lower
lip. Drawing is anti-aliased at 1/4-pixel precision and limited to the mouth's bounding box.
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


def _poly_mask(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return m.astype(np.float32) / 255.0


def paint_mouth(frame: np.ndarray, lm68: np.ndarray, base_gap: float, lip_rgb: np.ndarray,
                unit: float) -> np.ndarray:
    """Paint the cavity and teeth into ``frame`` (in place; returned) for output landmarks ``lm68``.

    ``base_gap`` is the photo's own inner-lip gap; ``unit`` the eye distance in pixels."""
    lm = np.asarray(lm68, dtype=np.float64)
    gap = inner_gap(lm)
    alpha = float(np.clip((gap - base_gap - 0.4) / 2.0, 0.0, 1.0))
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
    cavity = _poly_mask(roi_shape, pts - off)
    if not cavity.any():
        return frame
    # Upper teeth: the upper inner lip line and the same line lowered by the teeth height.
    teeth_h = min(0.06 * unit, 0.3 * gap)
    upper = lm[UPPER_INNER_LINE] - off
    upper_teeth = _poly_mask(roi_shape, np.vstack([upper, upper[::-1] + [0.0, teeth_h]])) * cavity
    lower = lm[LOWER_INNER_LINE] - off
    lower_teeth = _poly_mask(roi_shape, np.vstack([lower, lower[::-1] - [0.0, 0.4 * teeth_h]])) * cavity * 0.3

    ys = np.arange(roi_shape[0], dtype=np.float32)[:, None] + y0
    top, bottom = float(lm[[61, 62, 63], 1].mean()), float(lm[[65, 66, 67], 1].mean())
    depth = np.clip((ys - top) / max(bottom - top, 1.0), 0.0, 1.0)  # 0 at the upper lip, 1 at the lower
    dark = (np.asarray(lip_rgb, dtype=np.float32) * CAVITY_GAIN)[None, None, :] * (1.0 - 0.5 * depth[..., None])
    colour = np.broadcast_to(dark, roi_shape + (3,)).copy()
    # Teeth sit in the mouth's shade: dimmer than white, tinted by the lips.
    teeth = (0.78 * TEETH_RGB + 0.12 * np.asarray(lip_rgb)).astype(np.float32)
    shade = 0.8 + 0.2 * (1.0 - depth[..., None])
    colour = colour * (1 - upper_teeth[..., None]) + teeth * shade * upper_teeth[..., None]
    colour = colour * (1 - lower_teeth[..., None]) + teeth * 0.8 * lower_teeth[..., None]
    a = (cavity * alpha)[..., None]
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)
    return frame
