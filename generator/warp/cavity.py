"""The inner mouth, built from the person's own colours, painted where the lips have parted.

Warping alone would fill a newly opened mouth with stretched lip skin. Wherever the inner lips
(points 60-67, drawn as a smooth Catmull-Rom curve through them) are open by more than they are in
the photo, we paint the opening (:func:`paint_mouth`) from a :class:`MouthStyle` measured once per
photo (:func:`mouth_style`):

- **colours of the person**: the lips (the ring between the outer and inner lip contours), the skin
  (two cheek patches) and the whites of the eyes (the bright part of each eye, when it is whiter than
  the skin); the teeth are a less saturated version of the skin tone (0.45 of its chroma), mixed with the
  eye whites when measured, held within 1.05-1.35x the skin's luminance, so they follow the photo's
  exposure and white balance instead of a fixed white; the photo's own teeth when its mouth shows them;
- **a shaded cavity**: the lip colour in deep shade (x0.34 red, x0.19 green, x0.18 blue), then never more
  green than red nor more blue than green (no purple or grey-blue cast); darker away from the lips (ambient
  occlusion: a blurred copy of the opening darkens its middle) and towards the bottom;
- **teeth that follow the jaw and the lips**: upper teeth hang from the upper lip by the part of the
  incisors the lip does not cover (~0.02 eye distances at rest, more when the lips spread, less when
  they round) plus a quarter of the opening, at most a crown height (~0.17 eye distances: central
  incisors ~10.5 mm against an interpupillary distance of ~63 mm); lower teeth appear only as the jaw
  opens and the lower lip is pulled down or spread; both follow the dental arch (less visible towards
  the corners, which are in shade), with faint gaps between the incisors (~0.12 eye distances wide);
- **a tongue hint** at wide openings: a low, rounded shape rising from the lower lip, a lighter and
  pinker variant of the cavity colour;
- **soft edges matched to the frame**: the photo's blur is estimated once (:func:`edge_blur`, the
  re-blur gradient ratio of Zhuo & Sim 2011, "Defocus map estimation from a single image", Pattern
  Recognition 44(9)) and every painted edge is blurred by it, so a soft photo does not get a sharp
  painted mouth.

Opacity ramps in with the extra opening, drawing is anti-aliased at 1/4 px and limited to the mouth's
bounding box.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from generator.align import similarity_transform

INNER = list(range(60, 68))
UPPER_INNER_LINE = [60, 61, 62, 63, 64]
LOWER_INNER_LINE = [64, 65, 66, 67, 60]
_SHIFT = 2  # cv2 fixed-point bits: 1/4 px vertices


def inner_gap(lm68: np.ndarray) -> float:
    """Mean vertical distance between the inner lips (pairs 61-67, 62-66, 63-65), pixels."""
    lm = np.asarray(lm68, dtype=np.float64)
    return float(np.mean(lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]))


def lip_colour(image: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """Mean RGB of the outer-lip ring (between the outer and inner lip contours) of the base image."""
    import cv2  # optional heavy dependency: imported only when used

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
        ext = np.concatenate([p[-1:], p, p[:2]])
        n_seg = len(p)
    else:
        ext = np.concatenate([2 * p[0:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
        n_seg = len(p) - 1
    # All segments at once: (n_seg, 4, 2) control windows through the (samples, 4) basis (called a few
    # times per rendered frame, so no Python loop over the segments).
    windows = np.arange(n_seg)[:, None] + np.arange(4)[None, :]
    out = np.einsum("sk,nkd->nsd", _catmull_rom_basis(samples), ext[windows]).reshape(-1, 2)
    if not closed:
        out = np.concatenate([out, p[-1:]])
    return out


@functools.lru_cache(maxsize=8)
def _catmull_rom_basis(samples: int) -> np.ndarray:
    """(samples, 4) uniform Catmull-Rom basis (tension 0.5) at u = 0, 1/samples, ..."""
    u = np.arange(samples) / samples
    u2, u3 = u * u, u * u * u
    return 0.5 * np.stack([-u3 + 2 * u2 - u, 3 * u3 - 5 * u2 + 2, -3 * u3 + 4 * u2 + u, u3 - u2], axis=1)


def _poly_mask(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    import cv2  # optional heavy dependency: imported only when used

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return m.astype(np.float32) / 255.0


def photo_teeth(image: np.ndarray, lm68: np.ndarray, unit: float) -> tuple[np.ndarray | None, float]:
    """(teeth RGB, visible upper-teeth height in px) when the photo's mouth is open and shows teeth
    (bright pixels between the inner lips, brighter than the lips), else (None, 0)."""
    import cv2  # optional heavy dependency: imported only when used

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


def skin_colour(image: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """Median RGB of two cheek patches (between the lower eyelid, the nose wing and the jaw)."""
    import cv2  # optional heavy dependency: imported only when used

    lm = np.asarray(lm68, dtype=np.float64)
    mask = np.zeros(image.shape[:2], np.uint8)
    for poly in ([41, 40, 31, 48, 3, 2, 1], [46, 47, 35, 54, 13, 14, 15]):
        p = lm[poly]
        c = p.mean(0)
        cv2.fillPoly(mask, [np.round(c + 0.6 * (p - c)).astype(np.int32)], 1)  # the patch's inner 60 %
    px = image[mask.astype(bool)].reshape(-1, 3)
    if len(px) < 4:
        return np.array([190.0, 150.0, 130.0])
    return np.median(px, axis=0).astype(np.float64)


def sclera_colour(image: np.ndarray, lm68: np.ndarray, skin: np.ndarray | None = None) -> np.ndarray | None:
    """RGB of the whites of the eyes (the brightest third of the pixels inside both eye contours), or None
    when the eyes are too small, or what was found is no whiter than the skin (narrowed eyes, glasses)."""
    import cv2  # optional heavy dependency: imported only when used

    lm = np.asarray(lm68, dtype=np.float64)
    mask = np.zeros(image.shape[:2], np.uint8)
    for eye in (lm[36:42], lm[42:48]):
        cv2.fillPoly(mask, [np.round(eye).astype(np.int32)], 1)
    px = image[mask.astype(bool)].reshape(-1, 3).astype(np.float64)
    if len(px) < 6:
        return None
    luma = px @ LUMA
    white = px[luma >= np.percentile(luma, 67)].mean(0)
    if skin is not None:
        sat = lambda c: float(np.ptp(c) / max(c.max(), 1.0))  # noqa: E731 (HSV saturation)
        if sat(white) > 0.8 * sat(np.asarray(skin, dtype=np.float64)) or white @ LUMA < 0.8 * (skin @ LUMA):
            return None
    return white


LUMA = np.array([0.299, 0.587, 0.114])


def edge_blur(image: np.ndarray, lm68: np.ndarray) -> float:
    """Blur (Gaussian sigma, px) of the photo's edges around the lower face, by the re-blur ratio:
    an edge blurred by s has gradient ratio R = sqrt(s^2 + s0^2) / s against a copy re-blurred by s0,
    so s = s0 / sqrt(R^2 - 1) (Zhuo & Sim 2011). Median over the strongest 5 % of edges, in [0.35, 2.5]."""
    import cv2  # optional heavy dependency: imported only when used

    lm = np.asarray(lm68, dtype=np.float64)
    # The lower face, from the nose bridge to the jaw line: lips, nostrils and jaw give strong edges.
    x0, y1 = np.floor(lm[1:16, 0].min()).astype(int), int(np.ceil(lm[1:16, 1].max()))
    x1, y0 = np.ceil(lm[1:16, 0].max()).astype(int), int(np.floor(lm[27:36, 1].min()))
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.5
    g = image[y0:y1, x0:x1].astype(np.float32) @ LUMA.astype(np.float32)
    s0 = 1.0

    def grad(a: np.ndarray) -> np.ndarray:
        return np.hypot(cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3))

    g1, g2 = grad(g), grad(cv2.GaussianBlur(g, (0, 0), s0))
    strong = g1 >= max(np.percentile(g1, 95), 1e-3)
    ratio = np.median(g1[strong] / np.maximum(g2[strong], 1e-3))
    if not ratio > 1.0 + 1e-3:
        return 2.5
    return float(np.clip(s0 / np.sqrt(ratio ** 2 - 1.0), 0.35, 2.5))


# Points that move with the skull, not with the jaw or the lips (nose bridge, eye corners): the upper teeth
# are fixed to the skull, so the photo's own upper teeth follow these and nothing else.
SKULL = [27, 28, 29, 36, 39, 42, 45]


@dataclass(frozen=True)
class TeethTexture:
    """The photo's own upper teeth, cut out once so that they can be shown fixed to the skull as the jaw
    opens (:func:`teeth_texture`)."""

    rgb: np.ndarray      # (h, w, 3) float32: the photo around the mouth, teeth extended upwards
    alpha: np.ndarray    # (h, w) float32: 1 on the upper teeth (and their extension under the upper lip)
    origin: np.ndarray   # (2,) top-left of the patch in the aligned photo, pixels
    anchors: np.ndarray  # (len(SKULL), 2): the photo's landmarks at ``SKULL``


def teeth_texture(image: np.ndarray, lm68: np.ndarray, unit: float, teeth_rgb: np.ndarray | None
                  ) -> TeethTexture | None:
    """The photo's upper teeth as a texture, when its mouth shows them (``teeth_rgb`` from
    :func:`photo_teeth`), else None.

    In each column between the mouth corners, the upper teeth are the run of teeth-coloured pixels from the
    upper inner lip downwards: less saturated than the midpoint of the lips' and the teeth's (R - B) /
    luminance, and not darker than 0.8 x the lips (lips and skin can be as bright as teeth, but are
    redder); what lies below
    the run (the lower lip, a dark gap, lower teeth) belongs to the jaw and is left to the warp and the
    painted interior. The teeth are extended upwards by 0.15 eye distances (their top row repeated), so
    that a raised upper lip (AU10, the jaw opening) uncovers teeth rather than a hole."""
    if teeth_rgb is None:
        return None
    lm = np.asarray(lm68, dtype=np.float64)
    h, w = image.shape[:2]
    ext = 0.15 * unit
    pad = 2
    x0 = max(int(np.floor(lm[60, 0])) - pad, 0)
    x1 = min(int(np.ceil(lm[64, 0])) + pad + 1, w)
    y0 = max(int(np.floor(lm[[60, 61, 62, 63, 64], 1].min() - ext)) - pad, 0)
    y1 = min(int(np.ceil(lm[[64, 65, 66, 67, 60], 1].max())) + pad + 1, h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    patch = image[y0:y1, x0:x1].astype(np.float32)
    luma = patch @ LUMA.astype(np.float32)
    xs = np.arange(x0, x1, dtype=np.float64)
    upper = smooth_contour(lm[UPPER_INNER_LINE], closed=False)
    lower = smooth_contour(lm[LOWER_INNER_LINE], closed=False)[::-1]
    y_up = np.interp(xs, upper[:, 0], upper[:, 1]) - y0
    y_lo = np.interp(xs, lower[:, 0], lower[:, 1]) - y0
    lips, own = lip_colour(image, lm), np.asarray(teeth_rgb, dtype=np.float64)
    tint = lambda c: (c[..., 0] - c[..., 2]) / np.maximum(c @ LUMA, 1.0)  # noqa: E731
    cut = 0.5 * (float(tint(lips)) + float(tint(own)))
    white = (tint(patch) <= cut) & (luma >= 0.8 * float(lips @ LUMA))
    inside = (xs > lm[60, 0]) & (xs < lm[64, 0])
    top = np.zeros(len(xs), np.int64)
    bottom = np.zeros(len(xs))  # the lower edge of the teeth, patch rows (float: soft edge)
    for j in np.flatnonzero(inside):
        r0 = int(np.ceil(y_up[j] - 0.5))
        r1 = min(int(np.floor(y_lo[j] + 0.5)), len(luma) - 1)
        r = r0
        while r <= min(r0 + 1, r1) and not white[r, j]:  # the lip's edge, blended into the first rows
            r += 1
        first = r
        while r <= r1 and white[r, j]:
            r += 1
        if r > first:
            top[j], bottom[j] = first, r
    if not (bottom > 0).any():
        return None
    from scipy.ndimage import median_filter  # optional heavy dependency: imported only when used

    # Columns between teeth columns that found none (the darker gaps between incisors) are teeth too.
    found = np.flatnonzero(bottom > 0)
    span = np.arange(found[0], found[-1] + 1)
    top[span] = np.round(np.interp(span, found, top[found])).astype(np.int64)
    bottom[span] = np.interp(span, found, bottom[found])
    run = median_filter(bottom - top, size=5, mode="nearest") * (bottom > 0)
    ys = np.arange(len(luma), dtype=np.float64)[:, None]
    edge = top[None, :] + run[None, :]
    alpha = np.clip(edge - ys, 0.0, 1.0) * (ys >= y_up[None, :] - ext) * (run[None, :] > 0)
    import cv2  # optional heavy dependency: imported only when used

    alpha = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), 0.6)  # no cut-out edge at the ends and tips
    rgb = patch.copy()
    for j in np.flatnonzero(run > 0):  # the teeth's top row, repeated up to the extension
        rgb[:top[j], j] = patch[top[j], j]
    return TeethTexture(rgb=rgb, alpha=alpha.astype(np.float32), origin=np.array([x0, y0], dtype=np.float64),
                        anchors=lm[SKULL].copy())


@dataclass(frozen=True)
class MouthStyle:
    """The colours and softness of one photo's painted mouth (module docstring); RGB float in [0, 255]."""

    lips: np.ndarray
    cavity: np.ndarray
    tongue: np.ndarray
    teeth: np.ndarray
    own_teeth: bool   # the teeth colour was measured on the photo's own teeth
    blur: float       # Gaussian sigma of painted edges, px
    teeth_h: float = 0.0  # visible upper-teeth height in the photo (px), when it shows its teeth
    texture: TeethTexture | None = None  # the photo's own upper teeth, when it shows them
    rest: np.ndarray | None = None  # (68, 2) the photo's landmarks: where the skull holds the upper teeth

    @classmethod
    def from_lips(cls, lip_rgb: np.ndarray, blur: float = 0.5) -> "MouthStyle":
        """A style from the lip colour alone (no photo at hand): skin and teeth guessed from the lips."""
        lips = np.asarray(lip_rgb, dtype=np.float64)
        skin = lips * np.array([1.1, 1.35, 1.35])
        return _style(lips, np.clip(skin, 0, 255), None, None, blur)


def _no_cast(rgb: np.ndarray) -> np.ndarray:
    """Keep a mouth colour warm or neutral: green and blue never above red, blue never above green."""
    r, g, b = (float(v) for v in rgb)
    g = min(g, r)
    b = min(b, g)
    return np.array([r, g, b])


def _style(lips: np.ndarray, skin: np.ndarray, sclera: np.ndarray | None, own: np.ndarray | None,
           blur: float, teeth_h: float = 0.0) -> MouthStyle:
    # Cavity: the lips' colour in deep shade (red kept, green and blue darkened more: light inside the mouth
    # is reflected by red tissue), then no cast; the tongue a lighter variant of it.
    cavity = _no_cast(lips * np.array([0.34, 0.19, 0.18]))
    tongue = _no_cast(lips * np.array([0.62, 0.40, 0.38]))
    skin_l = max(float(skin @ LUMA), 1.0)
    if own is not None:
        teeth = np.asarray(own, dtype=np.float64)
    else:
        # In the photo's light and white balance teeth look like a less saturated version of the skin
        # tone (and like the eye whites, when those are measured).
        chroma = 0.45 * (skin - skin_l)
        base_l = skin_l
        if sclera is not None:
            sc = np.asarray(sclera, dtype=np.float64)
            base_l = float(sc @ LUMA)
            chroma = 0.5 * chroma + 0.5 * (sc - base_l)
        # Teeth sit in the mouth's shade: a little brighter than the skin, never far brighter.
        target = float(np.clip(base_l, 1.05 * skin_l, 1.35 * skin_l))
        teeth = _no_cast(np.clip(target + chroma, 0.0, 245.0))  # warm or neutral, never blue, green or purple
    return MouthStyle(lips=lips, cavity=cavity, tongue=tongue, teeth=np.asarray(teeth, dtype=np.float64),
                      own_teeth=own is not None, blur=float(blur), teeth_h=float(teeth_h))


def mouth_style(image: np.ndarray, lm68: np.ndarray, unit: float) -> MouthStyle:
    """Measure one aligned photo's mouth style (module docstring)."""
    lips = lip_colour(image, lm68)
    own, own_h = photo_teeth(image, lm68, unit)
    skin = skin_colour(image, lm68)
    style = _style(lips, skin, sclera_colour(image, lm68, skin), own, edge_blur(image, lm68), own_h)
    return replace(style, texture=teeth_texture(image, lm68, unit, own),
                   rest=np.asarray(lm68, dtype=np.float64).copy())


def _clip(x, lo, hi):
    """np.clip without its wrapper's overhead (paint_mouth clips ~16 small arrays per frame)."""
    return np.minimum(np.maximum(x, lo), hi)


def paint_mouth(frame: np.ndarray, lm68: np.ndarray, base_gap: float, style: MouthStyle | np.ndarray,
                unit: float, spreading: float = 0.0, rounding: float = 0.0) -> np.ndarray:
    """Paint the mouth interior into ``frame`` (in place; returned) for output landmarks ``lm68``.

    ``base_gap`` is the photo's own inner-lip gap; ``style`` its :class:`MouthStyle` (or a lip colour,
    for :meth:`MouthStyle.from_lips`); ``unit`` the eye distance in pixels; ``spreading`` and
    ``rounding`` in [0, 1] the lip shape of this frame (``generator.warp.mouth``)."""
    if not isinstance(style, MouthStyle):
        style = MouthStyle.from_lips(style)
    lm = np.asarray(lm68, dtype=np.float64)
    gap = inner_gap(lm)
    # Paint when the lips have parted beyond the photo's own opening: by > 0.4 px (fully from 2.4 px),
    # and by more than 1.3x (fully from 2x), so that a photo with an open mouth keeps its own teeth
    # and mouth interior, warped, in small openings.
    extra = float(_clip((gap - base_gap - 0.4) / 2.0, 0.0, 1.0))
    stretch = float(_clip((gap / max(base_gap, 0.5) - 1.3) / 0.7, 0.0, 1.0))
    # With the photo's own teeth cut out (style.texture) the painted mouth shows them unstretched from the
    # first pixel of extra opening; without, small openings keep the warped photo.
    alpha = extra if style.texture is not None else min(extra, stretch)
    if alpha <= 0.0:
        return frame
    import cv2  # optional heavy dependency: imported only when used

    h, w = frame.shape[:2]
    pts = lm[INNER]
    pad = int(np.ceil(3 * style.blur)) + 2
    x0, y0 = np.floor(pts.min(0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return frame
    off = np.array([x0, y0], dtype=np.float64)
    roi_shape = (y1 - y0, x1 - x0)
    opening = _poly_mask(roi_shape, smooth_contour(pts) - off)
    if not opening.any():
        return frame
    ys = np.arange(roi_shape[0], dtype=np.float32)[:, None] + y0
    xs = np.arange(roi_shape[1], dtype=np.float32)[None, :] + x0
    upper = smooth_contour(lm[UPPER_INNER_LINE], closed=False)
    lower = smooth_contour(lm[LOWER_INNER_LINE], closed=False)[::-1]  # left to right, as upper
    y_up = np.interp(xs[0], upper[:, 0], upper[:, 1]).astype(np.float32)[None, :]
    y_lo = np.interp(xs[0], lower[:, 0], lower[:, 1]).astype(np.float32)[None, :]
    cx, half = 0.5 * (lm[60, 0] + lm[64, 0]), max(0.5 * abs(lm[64, 0] - lm[60, 0]), 1.0)
    across = _clip(np.abs(xs - cx) / half, 0.0, 1.0)  # 0 in the middle, 1 at the corners
    arch = np.sqrt(_clip(1.0 - across ** 2, 0.0, 1.0))  # the dental arch turns away from view

    cav, tng, tth = (np.asarray(c, dtype=np.float32) for c in (style.cavity, style.tongue, style.teeth))
    # Cavity: ambient occlusion (darker away from the lips) and darker towards the bottom.
    occl = cv2.GaussianBlur(opening, (0, 0), max(0.8, 0.3 * gap))
    depth = _clip((ys - y_up) / np.maximum(y_lo - y_up, 1.0), 0.0, 1.0)
    colour = cav[None, None, :] * (1.25 - 0.6 * occl[..., None]) * (1.0 - 0.35 * depth[..., None])

    # Tongue at wide openings: a low dome rising from the lower lip over the middle 60 % of the mouth.
    wide = float(_clip((gap / unit - 0.12) / 0.08, 0.0, 1.0))
    if wide > 0:
        t_h = (0.25 + 0.1 * wide) * gap
        dome = y_lo - t_h * np.sqrt(_clip(1.0 - (across / 0.6) ** 2, 0.0, 1.0))
        tongue = _clip((ys - dome) / max(style.blur * 2, 0.8), 0.0, 1.0) * (across < 0.6)
        shade = 0.75 + 0.25 * _clip((ys - dome) / np.maximum(t_h, 1.0), 0.0, 1.0)
        a_t = (wide * tongue)[..., None]
        colour = colour * (1 - a_t) + tng[None, None, :] * shade[..., None] * a_t

    # Teeth. Upper: the uncovered crown below the upper lip.
    crown = 0.17 * unit
    gum = None
    if style.rest is not None:
        # Fixed to the skull: the incisal edge stays where it is at rest (the photo's upper inner lip, moved
        # like the skull, plus the part of the incisors a relaxed lip leaves uncovered, more with spread
        # lips); a rising upper lip (the jaw opening, AU10) uncovers more of the crown, then the gum.
        A = similarity_transform(style.rest[SKULL], lm[SKULL])
        rest_up = smooth_contour(style.rest[UPPER_INNER_LINE] @ A[:, :2].T + A[:, 2], closed=False)
        y_rest = np.interp(xs[0], rest_up[:, 0], rest_up[:, 1]).astype(np.float32)[None, :]
        show_rest = 0.035 * unit * max(1.0 + 2.0 * spreading - 0.8 * rounding, 0.2)
        up_edge = np.maximum(y_rest + show_rest * (0.35 + 0.65 * arch), y_up)
        gum = _clip((up_edge - crown - ys) / 0.7, 0.0, 1.0)
    else:  # no photo: hang the teeth from the upper lip, growing with the opening
        show_up = _clip(0.02 * unit * (1.0 + 2.5 * spreading - 0.8 * rounding) + 0.25 * gap, 0.0, crown)
        show_up = max(show_up, min(style.teeth_h, 0.6 * gap))  # a photo showing its teeth keeps showing them
        up_edge = y_up + show_up * (0.35 + 0.65 * arch)
    corner_fade = _clip(1.6 * (1.0 - across), 0.0, 1.0)  # the arch turns into the corners' shade
    upper_t = _clip((up_edge - ys) / 0.7, 0.0, 1.0) * (ys >= y_up - 2) * corner_fade
    # Lower: only as the jaw opens and the lower lip is drawn down or spread.
    show_lo = _clip(0.3 * (gap - 0.15 * unit) * (1.0 + spreading), 0.0, 0.10 * unit)
    lo_edge = y_lo - show_lo * arch
    lower_t = _clip((ys - lo_edge) / 0.7, 0.0, 1.0) * (ys <= y_lo + 2) * (show_lo > 0.3) * corner_fade
    # Faint gaps between the incisors, ~0.12 eye distances apart, fading towards the corners.
    tooth_w = 0.12 * unit
    k = (xs - cx) / tooth_w
    gaps = np.exp(-0.5 * ((k - np.round(k)) * tooth_w / 0.45) ** 2) * (1.0 - across)
    light = (0.95 - 0.45 * across ** 1.5) * (1.0 - 0.18 * gaps)  # shade towards the corners
    edge_dark = 1.0 - 0.15 * _clip(1.0 - (up_edge - ys) / 1.5, 0.0, 1.0)  # translucent incisal edge
    teeth_up = tth[None, None, :] * (light * edge_dark)[..., None]
    teeth_lo = tth[None, None, :] * (0.8 * light)[..., None]
    if style.texture is None:
        colour = colour * (1 - upper_t[..., None]) + teeth_up * upper_t[..., None]
        if gum is not None and gum.any():  # above the crown: the gum, the lips' colour in some shade
            g = (gum * upper_t)[..., None]
            colour = colour * (1 - g) + (0.8 * np.asarray(style.lips, dtype=np.float32))[None, None, :] * g
    colour = colour * (1 - lower_t[..., None]) + teeth_lo * lower_t[..., None]

    # Soft edges, matched to the frame's blur: blur the painted colour inside the opening and its mask.
    if style.blur > 0.45:
        colour = cv2.GaussianBlur(colour.astype(np.float32), (0, 0), style.blur)
    if style.texture is not None:  # the photo's own upper teeth, where the skull has taken them
        colour = _own_teeth(colour, style.texture, lm, off)
    mask = cv2.GaussianBlur(opening, (0, 0), max(0.35, style.blur))
    a = (mask * alpha)[..., None]
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = _clip(roi * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)
    return frame


def _own_teeth(colour: np.ndarray, tex: TeethTexture, lm: np.ndarray, off: np.ndarray) -> np.ndarray:
    """``colour`` (the painted ROI at ``off``) with the photo's upper teeth laid over it, moved like the
    skull (a similarity fitted on ``SKULL``: head motion, not jaw or lips)."""
    import cv2  # optional heavy dependency: imported only when used
    A = similarity_transform(tex.anchors, lm[SKULL])
    m = np.empty((2, 3))
    m[:, :2] = A[:, :2]
    m[:, 2] = A[:, :2] @ tex.origin + A[:, 2] - off
    size = (colour.shape[1], colour.shape[0])
    rgb = cv2.warpAffine(tex.rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(tex.alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = a[..., None]
    return colour * (1 - a) + rgb * a
