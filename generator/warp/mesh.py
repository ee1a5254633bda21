"""Piecewise-affine warp of one face image by moved landmarks.

The mesh is a Delaunay triangulation (built once per face and size) of the face's 68 landmarks, ten
fixed-to-the-head anchors above the brows and points just outside the frame border, so every pixel
lies in one triangle. A frame moves the landmarks (local deformation) and then all landmarks and
anchors with the head's similarity; the border points stay, so the background near the edges holds
still while the head moves.

Sampling needs the *backward* map (for each output pixel, where to read in the base image). Each
triangle's backward map is the affine map taking its output corners to its base corners, so we
rasterise the output triangles into a label image (OpenCV, 1/16 px vertices) and evaluate each pixel's
affine map with one vectorised gather; ``cv2.remap`` then samples bilinearly. This is the exact
inverse of the piecewise-affine warp: neighbouring triangles share edges and their maps agree there,
so there is no tearing, and strong stretches (an opening jaw stretches the lower lip region by more
than 2x) are handled exactly, where an iterative inversion of a precomputed forward field would
diverge. Small output triangles are drawn first, so a pixel on a shared edge takes the larger
neighbour's map (no extrapolation from slivers). Per frame this costs ~0.2 ms of triangle drawing plus
a few array operations per pixel (see docs/benchmarks.md).

Stretch without smearing. Where a frame magnifies a triangle (a raised brow stretches the skin under
it, a lowered brow the forehead above it, a closing lid the lid skin), bilinear sampling spreads the
photo's fine texture over more pixels and the skin looks smeared. Two measures: the forehead anchors
sit 1.3 eye distances above the brows (the strain of a brow movement spreads over the whole forehead,
as the skin does, not over a narrow band), and :meth:`FaceMesh.warp` restores the detail that
magnification flattens: in each triangle of the upper face (brows, eyes, forehead) whose linear size
grows by s > 1, the frame's high-pass
(frame minus a Gaussian of sigma 1.5 px) is added back with gain min(s - 1, 0.6) x 2.5, which brings the
local gradient energy back near the photo's (tested on the forehead and under the brows).
"""

from __future__ import annotations

import numpy as np

from generator.warp.expression import eye_distance

UPPER_INNER = (61, 62, 63)
LOWER_INNER = (67, 66, 65)
_SHIFT = 4  # fixed-point bits of the rasterised vertices (1/16 px)
FOREHEAD_ANCHOR = 1.3  # eye distances above each brow point (module docstring)
DETAIL_SIGMA = 1.5
DETAIL_GAIN = 2.5
MAX_DETAIL_STRETCH = 0.6
MAX_DETAIL = 24.0  # levels: no halo beyond this


def _inverse_corners(dst: np.ndarray, det: np.ndarray) -> np.ndarray:
    """(F, 3, 3) inverses of [[x0 x1 x2], [y0 y1 y2], [1 1 1]] for triangles ``dst`` (F, 3, 2) whose
    determinants ``det`` (F,) are non-zero."""
    x0, x1, x2 = dst[:, 0, 0], dst[:, 1, 0], dst[:, 2, 0]
    y0, y1, y2 = dst[:, 0, 1], dst[:, 1, 1], dst[:, 2, 1]
    inv = np.empty((len(dst), 3, 3))
    inv[:, 0, 0], inv[:, 0, 1], inv[:, 0, 2] = y1 - y2, x2 - x1, x1 * y2 - x2 * y1
    inv[:, 1, 0], inv[:, 1, 1], inv[:, 1, 2] = y2 - y0, x0 - x2, x2 * y0 - x0 * y2
    inv[:, 2, 0], inv[:, 2, 1], inv[:, 2, 2] = y0 - y1, x1 - x0, x0 * y1 - x1 * y0
    return inv / det[:, None, None]


class FaceMesh:
    """The warp of one base image of ``size = (W, H)`` whose 68 landmarks are ``landmarks``."""

    def __init__(self, landmarks: np.ndarray, size: tuple[int, int]):
        from scipy.spatial import Delaunay  # optional heavy dependency: imported only when used

        w, h = int(size[0]), int(size[1])
        self.size = (w, h)
        lm = np.asarray(landmarks, dtype=np.float64).copy()
        if lm.shape != (68, 2):
            raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
        # A closed mouth puts the inner lips on top of each other; part them by a fraction of a pixel
        # so the upper and lower lip get their own triangles (and can move apart).
        gap = lm[list(LOWER_INNER), 1] - lm[list(UPPER_INNER), 1]
        nudge = np.clip(0.6 - gap / 2, 0.0, None)
        lm[list(UPPER_INNER), 1] -= nudge
        lm[list(LOWER_INNER), 1] += nudge
        self.landmarks = lm
        unit = eye_distance(lm)
        # Anchors high on the forehead keep brow movements local; they move with the head.
        forehead = lm[17:27] - np.array([0.0, FOREHEAD_ANCHOR * unit])
        forehead[:, 1] = np.maximum(forehead[:, 1], 0.5)  # inside the frame (its border vertices sit at -1)
        border = []
        for k in range(5):
            fx, fy = -1.0 + k * (w + 1) / 4.0, -1.0 + k * (h + 1) / 4.0
            border += [(fx, -1.0), (fx, float(h)), (-1.0, fy), (float(w), fy)]
        border = np.unique(np.array(border), axis=0)
        self.vertices = np.vstack([lm, forehead, border])  # (V, 2)
        self.n_head = 68 + len(forehead)  # vertices that follow the head
        tris = Delaunay(self.vertices, qhull_options="QJ").simplices.astype(np.int64)
        # Joggling leaves zero-area slivers along the (collinear) border points; those never move.
        p = self.vertices[tris]
        e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        sliver = (np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 1e-6) & (tris >= self.n_head).all(1)
        self.triangles = tris[~sliver]
        ys, xs = np.mgrid[0:h, 0:w]
        self._gx = xs.astype(np.float32)
        self._gy = ys.astype(np.float32)
        self._src = self.vertices[self.triangles]  # (F, 3, 2) base corners
        e1, e2 = self._src[:, 1] - self._src[:, 0], self._src[:, 2] - self._src[:, 0]
        self._src_area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
        # Detail is restored in the upper face only (brows, eyes, forehead anchors): the mouth's stretch
        # is painted over (generator.warp.cavity), and boosting the lips' edges would ring.
        upper = np.zeros(len(self.vertices), bool)
        upper[17:48] = True
        upper[68:self.n_head] = True
        self._detail_tris = upper[self.triangles].all(1)

    def output_vertices(self, landmark_disp: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """(V, 2): landmarks moved by ``landmark_disp``, then landmarks and anchors by ``head`` (2x3)."""
        v = self.vertices.copy()
        v[:68] += np.asarray(landmark_disp, dtype=np.float64)
        if head is not None:
            m = np.asarray(head, dtype=np.float64)
            v[:self.n_head] = v[:self.n_head] @ m[:, :2].T + m[:, 2]
        return v

    def source_map(self, landmark_disp: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 2) float32: for each output pixel, the base-image position to sample."""
        sx, sy, _ = self._source_xy(landmark_disp, head)
        return np.stack([sx, sy], axis=-1)

    def _source_xy(self, landmark_disp: np.ndarray, head: np.ndarray | None) -> tuple:
        """Backward map (sx, sy) and the detail gain: (per-pixel gain in a box, (y0, y1, x0, x1)), or None
        where nothing is magnified."""
        import cv2  # optional heavy dependency: imported only when used

        w, h = self.size
        dst = self.output_vertices(landmark_disp, head)[self.triangles]  # (F, 3, 2)
        # Backward affine per triangle: A @ [x_out, y_out, 1] = [x_base, y_base], A = base corners @ the inverse
        # of [[x0 x1 x2], [y0 y1 y2], [1 1 1]] (output corners), written out (adjugate over determinant):
        # one pass of array arithmetic instead of a batched LAPACK inverse (docs/benchmarks.md, warp).
        e1, e2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
        cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # the determinant: twice the signed area
        area = 0.5 * np.abs(cross)
        ok = area > 1e-4
        affine = np.zeros((len(dst), 2, 3))
        affine[ok] = self._src[ok].transpose(0, 2, 1) @ _inverse_corners(dst[ok], cross[ok])
        labels = np.full((h, w), -1, np.int32)
        corners = np.round(dst * (1 << _SHIFT)).astype(np.int32)
        for i in np.flatnonzero(ok)[np.argsort(area[ok], kind="stable")]:
            cv2.fillConvexPoly(labels, corners[i], int(i), lineType=cv2.LINE_8, shift=_SHIFT)
        missing = labels < 0  # not expected: the fixed border points enclose the frame
        if missing.any():
            labels[missing] = len(dst)
        # One identity map appended for missing pixels; 6 coefficient rows gathered per pixel.
        coef = np.vstack([affine.reshape(-1, 6), [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]]).T.astype(np.float32)
        c = coef[:, labels]  # (6, H, W)
        sx = c[0] * self._gx + c[1] * self._gy + c[2]
        sy = c[3] * self._gx + c[4] * self._gy + c[5]
        # Linear magnification of each triangle (head scale removed: a head that comes closer is no stretch).
        head_scale = 1.0 if head is None else float(abs(np.linalg.det(np.asarray(head, dtype=np.float64)[:, :2])))
        stretch = np.sqrt(area / np.maximum(self._src_area * head_scale, 1e-6))
        gain = np.clip(stretch - 1.0, 0.0, MAX_DETAIL_STRETCH) * DETAIL_GAIN
        gain[~ok | ~self._detail_tris] = 0.0
        hot = gain >= 0.03
        if not hot.any():
            return sx, sy, None
        # Only the box of the stretched triangles (no full-frame pass): (gain table, box).
        lo = np.floor(dst[hot].reshape(-1, 2).min(0)).astype(int) - 3
        hi = np.ceil(dst[hot].reshape(-1, 2).max(0)).astype(int) + 4
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], w), min(hi[1], h)
        if x1 <= x0 or y1 <= y0:
            return sx, sy, None
        table = np.append(gain, 0.0).astype(np.float32)
        return sx, sy, (table[labels[y0:y1, x0:x1]], (y0, y1, x0, x1))

    def warp(self, image: np.ndarray, landmark_disp: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """The base ``image`` warped so that its landmarks move by ``landmark_disp`` (then ``head``)."""
        import cv2  # optional heavy dependency: imported only when used

        if head is None and not np.any(landmark_disp):
            return image.copy()
        sx, sy, gain = self._source_xy(landmark_disp, head)
        out = cv2.remap(image, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if gain is None:
            return out
        # Restore the detail that magnification flattened, only in the box of the stretched triangles.
        g, (y0, y1, x0, x1) = gain
        roi = out[y0:y1, x0:x1].astype(np.float32)
        detail = np.clip(roi - cv2.GaussianBlur(roi, (0, 0), DETAIL_SIGMA), -MAX_DETAIL, MAX_DETAIL)
        g = g[..., None] if roi.ndim == 3 else g
        boosted = roi + g * detail
        if out.dtype == np.uint8:
            boosted = np.clip(boosted + 0.5, 0, 255)
        out[y0:y1, x0:x1] = boosted.astype(out.dtype)
        return out
