"""The skin's folds and furrows of each action unit, shaded into the photo before it is warped.

Moving landmarks changes the face's shape, but several action units are recognised as much by what they do
to the skin's surface: the FACS manual lists, for each AU, its *appearance changes* (Ekman, Friesen &
Hager 2002, *Facial Action Coding System: The Manual*, chapters 2-4), among them

- AU1 (inner brow raiser): horizontal wrinkles across the centre of the forehead;
- AU2 (outer brow raiser): horizontal wrinkles across the lateral forehead;
- AU4 (brow lowerer): vertical (or oblique) furrows between the brows, and a horizontal fold at the root
  of the nose;
- AU6 (cheek raiser): crow's-foot wrinkles fanning out from the eye's outer corner, the skin under the
  lower lid bagged, the infraorbital furrow deepened;
- AU9 (nose wrinkler): wrinkles across the sides and bridge of the nose, the nasolabial furrow deepened in
  its upper part;
- AU10 (upper lip raiser): the nasolabial furrow deepened, its upper part raised;
- AU12 (lip corner puller): the nasolabial furrow deepened and bowed out towards the corners;
- AU15 (lip corner depressor): small folds below and beside the lip corners;
- AU17 (chin raiser): the chin boss wrinkled, a furrow below the lower lip.

:func:`wrinkle_map` draws these as soft dark lines (a fold's shadow) with a fainter highlight on the side
that catches the light, in the coordinates of the aligned photo: the warp then moves them with the skin
they belong to. Their positions come from the photo's landmarks (module functions below: each furrow is a
short polyline between landmark-derived points), their width and softness from the eye distance (a furrow
is ~0.03 eye distances wide: ~2 mm at an interpupillary distance of ~63 mm). The depth (at most
:data:`MAX_DARKEN`, a 30 % darkening at the deepest point of a fold at full intensity) is ours, set by eye
on the shipped faces so that a drawn fold looks no deeper than the folds the photos themselves show.

The result is a multiplicative shading field ``(S, S)`` float32 around 1.0 per emotion vector; the renderer
multiplies the aligned photo by ``1 + strength * (field - 1)`` per frame (the onset ramp), so the folds
deepen as the expression forms.
"""

from __future__ import annotations

import numpy as np

MAX_DARKEN = 0.30
FOLD_WIDTH = 0.03   # eye distances: the sigma of a fold's shadow
HIGHLIGHT = 0.35     # of the shadow's depth, offset by one fold width

# AU -> list of (furrow function name, depth in [0, 1] at the AU's full weight).
AU_FOLDS: dict[int, list[tuple[str, float]]] = {
    1: [("forehead_centre", 0.7)],
    2: [("forehead_sides", 0.6)],
    4: [("glabella", 0.7), ("nose_root", 0.4)],
    6: [("crows_feet", 0.7), ("under_eye", 0.6)],
    9: [("nose_bridge", 0.7), ("nasolabial_upper", 0.8)],
    10: [("nasolabial", 0.8)],
    12: [("nasolabial", 0.7)],
    15: [("below_corners", 0.7)],
    17: [("chin", 0.6)],
}


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def _furrows(lm: np.ndarray, unit: float) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Each furrow's polylines (in image pixels) and the unit vector towards its lit side."""
    up = np.array([0.0, -1.0])
    brow_l, brow_r = lm[17:22], lm[22:27]
    inner_l, inner_r = lm[21], lm[22]
    mid_brow = 0.5 * (inner_l + inner_r)
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    # Forehead: horizontal lines 0.25 / 0.45 eye distances above the brows (centre or the outer thirds).
    centre = []
    sides = []
    for k in (0.28, 0.48):
        a, b = brow_l[2] - [0, k * unit], brow_r[2] - [0, k * unit]
        centre.append((np.stack([a, 0.5 * (a + b) - [0, 0.04 * unit], b]), up))
        sides.append((np.stack([brow_l[0] - [0, (k + 0.05) * unit], brow_l[2] - [0, (k + 0.08) * unit]]), up))
        sides.append((np.stack([brow_r[2] - [0, (k + 0.08) * unit], brow_r[4] - [0, (k + 0.05) * unit]]), up))
    out["forehead_centre"], out["forehead_sides"] = centre, sides
    # Glabella: two short near-vertical furrows just inside the inner brow ends, converging downwards.
    gl = []
    for inner, sgn in ((inner_l, 1.0), (inner_r, -1.0)):
        top = _lerp(inner, mid_brow, 0.5) - [0, 0.03 * unit]
        bottom = _lerp(inner, mid_brow, 0.62) + [0, 0.11 * unit]
        gl.append((np.stack([top, bottom]), np.array([-sgn, 0.0])))
    out["glabella"] = gl
    # Root of the nose: a short horizontal fold between the eyes, at point 27/28.
    root = _lerp(lm[27], lm[28], 0.5)
    out["nose_root"] = [(np.stack([root - [0.12 * unit, 0], root + [0.12 * unit, 0]]), up)]
    # Nose bridge wrinkles: two or three short oblique lines across the bridge (AU9).
    nb = []
    for t in (0.15, 0.45, 0.75):
        c = _lerp(lm[27], lm[29], t)
        half = (0.08 + 0.04 * t) * unit
        nb.append((np.stack([c - [half, -0.03 * unit], c, c + [half, 0.03 * unit]]), up))
    out["nose_bridge"] = nb
    # Nasolabial furrow: from above the nose wing, round it, out to beside the lip corner.
    nl, nlu = [], []
    for wing, corner, sgn in ((lm[31], lm[48], -1.0), (lm[35], lm[54], 1.0)):
        start = wing + [sgn * 0.10 * unit, -0.10 * unit]
        knee = wing + [sgn * 0.16 * unit, 0.02 * unit]
        end = corner + [sgn * 0.10 * unit, 0.02 * unit]
        lit = np.array([-sgn, 0.0])  # the cheek's bulge is outside, the lit ridge inside (towards the lips)
        nl.append((np.stack([start, knee, _lerp(knee, end, 0.5) + [sgn * 0.03 * unit, 0], end]), lit))
        nlu.append((np.stack([start, knee, _lerp(knee, end, 0.35) + [sgn * 0.02 * unit, 0]]), lit))
    out["nasolabial"], out["nasolabial_upper"] = nl, nlu
    # Crow's feet: three short rays from beyond each eye's outer corner; under-eye: an arc below the lid.
    cf, ue = [], []
    for outer, sgn, eye in ((lm[36], -1.0, lm[36:42]), (lm[45], 1.0, lm[42:48])):
        o = outer + [sgn * 0.08 * unit, 0]
        for ang in (-0.45, 0.0, 0.45):
            d = np.array([sgn * np.cos(ang), np.sin(ang)])
            cf.append((np.stack([o, o + 0.14 * unit * d]), up))
        lower = eye[[3, 4, 5, 0]] if sgn < 0 else eye[[0, 5, 4, 3]]
        ue.append((lower + [0, 0.12 * unit], np.array([0.0, 1.0])))
    out["crows_feet"], out["under_eye"] = cf, ue
    # Below the corners: short folds going down and out from each lip corner (AU15).
    bc = []
    for corner, sgn in ((lm[48], -1.0), (lm[54], 1.0)):
        bc.append((np.stack([corner + [sgn * 0.04 * unit, 0.04 * unit],
                             corner + [sgn * 0.07 * unit, 0.22 * unit]]), np.array([-sgn, 0.0])))
    out["below_corners"] = bc
    # Chin: a furrow below the lower lip (the mentolabial sulcus deepened) and a short one on the boss.
    c = _lerp(lm[57], lm[8], 0.35)
    out["chin"] = [(np.stack([c - [0.18 * unit, -0.02 * unit], c, c + [0.18 * unit, 0.02 * unit]]), up)]
    return out


def au_weights(emotion_aus: dict[str, dict[int, float]], names: tuple[str, ...], vec: np.ndarray) -> dict[int, float]:
    """The weight of each AU in an emotion vector (the prototypes' AU weights, summed)."""
    w: dict[int, float] = {}
    for name, v in zip(names, np.asarray(vec, dtype=np.float64)):
        if v <= 0:
            continue
        for au, aw in emotion_aus[name].items():
            w[au] = w.get(au, 0.0) + float(v) * aw
    return w


def wrinkle_map(shape: tuple[int, int], lm68: np.ndarray, unit: float, weights: dict[int, float]) -> np.ndarray | None:
    """(H, W) float32 multiplicative shading (1 = unchanged) of the AUs in ``weights`` (AU -> weight), or
    None when none of them changes the skin's surface."""
    import cv2  # optional heavy dependency: imported only when used

    depth_of: dict[str, float] = {}
    for au, w in weights.items():
        for furrow, d in AU_FOLDS.get(au, []):
            depth_of[furrow] = min(1.0, depth_of.get(furrow, 0.0) + d * min(float(w), 1.0))
    depth_of = {k: v for k, v in depth_of.items() if v > 1e-3}
    if not depth_of:
        return None
    h, w = shape
    lm = np.asarray(lm68, dtype=np.float64)
    shadow = np.zeros((h, w), np.float32)
    light = np.zeros((h, w), np.float32)
    width = max(FOLD_WIDTH * unit, 0.6)
    shift = 2  # 1/4 px vertices
    thick = max(1, int(round(width)))
    furrows = _furrows(lm, unit)
    for name, depth in depth_of.items():
        for line, lit in furrows[name]:
            pts = np.round(line * (1 << shift)).astype(np.int32)
            layer = np.zeros((h, w), np.float32)
            cv2.polylines(layer, [pts], False, float(depth), thick, cv2.LINE_AA, shift)
            np.maximum(shadow, layer, out=shadow)
            lit_pts = np.round((line + lit * 1.5 * width) * (1 << shift)).astype(np.int32)
            layer[:] = 0
            cv2.polylines(layer, [lit_pts], False, float(depth), thick, cv2.LINE_AA, shift)
            np.maximum(light, layer, out=light)
    shadow = cv2.GaussianBlur(shadow, (0, 0), width)
    light = cv2.GaussianBlur(light, (0, 0), 1.5 * width)
    peak = float(shadow.max())
    if peak > 0:  # the deepest point of a full-depth fold darkens by MAX_DARKEN
        scale = max(depth_of.values()) / peak
        shadow *= scale
        light *= scale
    return (1.0 - MAX_DARKEN * shadow + HIGHLIGHT * MAX_DARKEN * 0.5 * light).astype(np.float32)
