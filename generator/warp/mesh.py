"""Piecewise-affine warp of one face image by moved landmarks, precomputed once per face and size.

The mesh is a Delaunay triangulation of the face's 68 landmarks, a few fixed anchors above the brows
and points on (just outside) the frame border, so every pixel lies in one triangle. For each pixel of
the *base* frame (the aligned photo) we store once its triangle's three vertices and its barycentric
coordinates, as a sparse (H*W, V) matrix ``B``. A frame's vertex displacements ``D`` (V, 2) then give the
piecewise-affine displacement field ``d = B @ D`` in one sparse product: continuous across triangle
edges (no tearing), affine inside each triangle.

``d`` maps base pixels forward (base p -> p + d(p)). Sampling needs the backward map: for each output
pixel q, the base pixel s with s + d(s) = q. We solve it by the fixed-point iteration
s <- q - d(s), starting from s = q, with ``d`` sampled bilinearly (cv2.remap); it converges where the
warp does not fold (|grad d| < 1), i.e. everywhere but inside a mouth opening, which
:mod:`generator.warp.cavity` paints over. A global head motion (a similarity) is composed in front.
"""

from __future__ import annotations

import numpy as np

from generator.warp.expression import eye_distance

N_ITER = 4  # fixed-point iterations; off the lips the residual is < 0.3 px at full expression
UPPER_INNER = (61, 62, 63)
LOWER_INNER = (67, 66, 65)


class FaceMesh:
    """The warp of one base image of ``size = (W, H)`` whose 68 landmarks are ``landmarks``."""

    def __init__(self, landmarks: np.ndarray, size: tuple[int, int]):
        from scipy import sparse
        from scipy.spatial import Delaunay

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
        # Fixed anchors high on the forehead keep brow movements local.
        forehead = lm[17:27] - np.array([0.0, 0.9 * unit])
        border = []
        for k in range(5):
            fx, fy = -1.0 + k * (w + 1) / 4.0, -1.0 + k * (h + 1) / 4.0
            border += [(fx, -1.0), (fx, float(h)), (-1.0, fy), (float(w), fy)]
        border = np.unique(np.array(border), axis=0)
        self.vertices = np.vstack([lm, forehead, border])  # (V, 2)
        self.n_fixed = len(self.vertices) - 68
        tri = Delaunay(self.vertices, qhull_options="QJ")
        self.triangles = tri.simplices.astype(np.int32)

        ys, xs = np.mgrid[0:h, 0:w]
        pix = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
        simplex = self._rasterise(tri, (w, h))
        bary = self._barycentric(tri, simplex, pix)
        # Rasterising puts edge pixels in either neighbour; where that is the wrong one by more than
        # a hair (thin triangles, e.g. between closed lips), look the pixel up exactly.
        off = (simplex < 0) | ~(bary.min(1) >= -1e-3)  # (NaN: a degenerate triangle)
        if off.any():
            simplex[off] = self._locate(tri, pix[off])
            bary[off] = self._barycentric(tri, simplex[off], pix[off])
        verts = tri.simplices[simplex]
        rows = np.repeat(np.arange(len(pix)), 3)
        self.B = sparse.csr_matrix((bary.ravel(), (rows, verts.ravel())), shape=(len(pix), len(self.vertices)))
        self.grid = np.stack([xs, ys], axis=-1).astype(np.float32)  # (H, W, 2) pixel centres

    @staticmethod
    def _barycentric(tri, simplex: np.ndarray, pix: np.ndarray) -> np.ndarray:
        t = tri.transform[np.maximum(simplex, 0)]  # (P, 3, 2)
        b01 = np.einsum("pij,pj->pi", t[:, :2], pix - t[:, 2])
        return np.concatenate([b01, 1.0 - b01.sum(1, keepdims=True)], axis=1)

    @staticmethod
    def _locate(tri, pts: np.ndarray) -> np.ndarray:
        """Exact triangle of each point: the one whose smallest barycentric is largest (all
        triangles tested at once; used for the few pixels rasterising leaves in doubt)."""
        best = np.empty(len(pts), np.int64)
        t = tri.transform  # (F, 3, 2)
        for start in range(0, len(pts), 2048):
            p = pts[start:start + 2048]
            b01 = np.einsum("fij,pfj->pfi", t[:, :2], p[:, None, :] - t[None, :, 2])
            bmin = np.minimum(b01.min(-1), 1.0 - b01.sum(-1))
            best[start:start + 2048] = np.nan_to_num(bmin, nan=-np.inf).argmax(1)  # NaN: degenerate
        return best

    @staticmethod
    def _rasterise(tri, size: tuple[int, int]) -> np.ndarray:
        """(H*W,) index of the triangle holding each pixel centre, drawn with OpenCV at 1/16 px.

        Pixels on or near an edge may land in the neighbour; the caller checks the barycentrics."""
        import cv2

        w, h = size
        labels = np.full((h, w), -1, np.int32)
        pts = np.round(tri.points[tri.simplices] * 16).astype(np.int32)  # (F, 3, 2), 4 fractional bits
        for i, p in enumerate(pts):
            cv2.fillConvexPoly(labels, p, int(i), lineType=cv2.LINE_8, shift=4)
        return labels.ravel()

    def displacement_field(self, landmark_disp: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 forward displacement for (68, 2) landmark displacements."""
        w, h = self.size
        full = np.zeros((len(self.vertices), 2))
        full[:68] = landmark_disp
        return np.asarray(self.B @ full, dtype=np.float32).reshape(h, w, 2)

    def source_map(self, landmark_disp: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 2) float32: for each output pixel, the base-image position to sample.

        ``head`` is a 2x3 similarity applied after the local deformation (base -> output)."""
        import cv2

        field = self.displacement_field(landmark_disp)
        q = self.grid
        if head is not None:
            m3 = np.vstack([np.asarray(head, dtype=np.float64), [0, 0, 1]])
            inv = np.linalg.inv(m3)[:2].astype(np.float32)
            q = (self.grid @ inv[:, :2].T + inv[:, 2]).astype(np.float32)
        if not np.any(field):
            return np.ascontiguousarray(q)
        s = q - field if head is None else q - cv2.remap(field, q[..., 0], q[..., 1], cv2.INTER_LINEAR,
                                                         borderMode=cv2.BORDER_REPLICATE)
        for _ in range(N_ITER - 1):
            s = q - cv2.remap(field, s[..., 0], s[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return s

    def warp(self, image: np.ndarray, landmark_disp: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """The base ``image`` warped so that its landmarks move by ``landmark_disp`` (then ``head``)."""
        import cv2

        s = self.source_map(landmark_disp, head)
        return cv2.remap(image, s[..., 0], s[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
