"""The piecewise-affine warp: exact field, no tearing, points land where they were sent."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from scipy.spatial import Delaunay  # noqa: E402

from generator.align import template  # noqa: E402
from generator.renderers import emotion_vector  # noqa: E402
from generator.warp.expression import expression_displacement  # noqa: E402
from generator.warp.life import head_matrix  # noqa: E402
from generator.warp.mesh import FaceMesh  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def mesh():
    return FaceMesh(template((SIZE, SIZE)), (SIZE, SIZE))


def test_source_map_is_the_exact_inverse_of_the_piecewise_affine_warp(mesh):
    # Independent route: send base points forward with scipy's point location and barycentric
    # coordinates on the base mesh, then read the source map at the arrival points.
    tri = Delaunay(mesh.vertices, qhull_options="QJ")
    rng = np.random.default_rng(3)
    pts = rng.uniform(20, 108, (400, 2))
    simplex = tri.find_simplex(pts)
    t = tri.transform[simplex]
    b01 = np.einsum("pij,pj->pi", t[:, :2], pts - t[:, 2])
    bary = np.concatenate([b01, 1 - b01.sum(1, keepdims=True)], axis=1)
    head = head_matrix(np.array([1.5, 1.0, -0.5, 0.01]), mesh.landmarks[30])
    for name in ("happiness", "disgust", "fear"):
        d = expression_displacement(emotion_vector(name), mesh.landmarks)
        out = mesh.output_vertices(d, head)
        arrival = (bary[..., None] * out[tri.simplices[simplex]]).sum(1)
        src = mesh.source_map(d, head)
        sampled = np.stack([cv2.remap(src[..., c], arrival[:, :1].astype(np.float32),
                                      arrival[:, 1:].astype(np.float32), cv2.INTER_LINEAR)[:, 0]
                            for c in (0, 1)], axis=1)
        # Bilinear reading of an affine map is exact inside a triangle up to cv2.remap's 1/32 px
        # weights; pixels on triangle edges read a blend of two maps.
        err = np.linalg.norm(sampled - pts, axis=1)
        assert np.median(err) < 0.03 and np.percentile(err, 95) < 0.3, name


def test_no_tearing_and_border_fixed(mesh):
    from generator.warp.mouth import OPEN_TABLE

    d = expression_displacement(emotion_vector("fear"), mesh.landmarks)
    d = d + OPEN_TABLE * 1.0 * np.linalg.norm(mesh.landmarks[36:42].mean(0) - mesh.landmarks[42:48].mean(0))
    src = mesh.source_map(d)
    # Continuous: neighbouring output pixels read neighbouring base pixels. A tear would jump by about
    # a landmark's displacement (up to ~12 px here); the largest local squeeze is ~2x (measured 2.06).
    assert np.abs(np.diff(src, axis=0)).max() < 3.0 and np.abs(np.diff(src, axis=1)).max() < 3.0
    # The frame's edges stay put (the border vertices sit one pixel outside and never move).
    grid = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE)), axis=-1).astype(np.float32)
    for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
        assert np.abs(src[edge] - grid[edge]).max() < 0.25 * np.abs(d).max()
    img = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(mesh.warp(img, np.zeros((68, 2))), img)
    np.testing.assert_allclose(mesh.source_map(np.zeros((68, 2))), grid, atol=1e-4)


def test_points_land_where_they_were_sent(mesh):
    d = expression_displacement(emotion_vector("happiness"), mesh.landmarks)
    head = head_matrix(np.array([2.0, 1.5, -1.0, 0.01]), mesh.landmarks[30])
    src = mesh.source_map(d, head)
    for i in (17, 21, 30, 36, 45, 48, 54, 8):  # brows, nose, eye and mouth corners, chin
        target = head[:, :2] @ (mesh.landmarks[i] + d[i]) + head[:, 2]
        sampled = np.array([cv2.remap(src[..., c], np.float32([[target[0]]]), np.float32([[target[1]]]),
                                      cv2.INTER_LINEAR)[0, 0] for c in (0, 1)])
        np.testing.assert_allclose(sampled, mesh.landmarks[i], atol=0.35)


def test_closed_form_triangle_inverses_and_contours_match_the_reference():
    from generator.warp.cavity import smooth_contour
    from generator.warp.mesh import _inverse_corners

    rng = np.random.default_rng(4)
    dst = rng.uniform(0, 128, (400, 3, 2))
    e1, e2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    corners = np.concatenate([dst, np.ones((400, 3, 1))], axis=2).transpose(0, 2, 1)
    np.testing.assert_allclose(_inverse_corners(dst, det), np.linalg.inv(corners), rtol=1e-7, atol=1e-9)

    def catmull_rom(p, samples, closed):  # one segment at a time
        ext = np.vstack([p[-1:], p, p[:2]]) if closed else np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
        u = np.arange(samples) / samples
        basis = 0.5 * np.stack([-u ** 3 + 2 * u ** 2 - u, 3 * u ** 3 - 5 * u ** 2 + 2,
                                -3 * u ** 3 + 4 * u ** 2 + u, u ** 3 - u ** 2], axis=1)
        out = [basis @ ext[i:i + 4] for i in range(len(p) if closed else len(p) - 1)]
        return np.vstack(out + ([] if closed else [p[-1:]]))

    for n, samples, closed in ((8, 6, True), (5, 6, False), (12, 3, True), (3, 4, False)):
        p = rng.normal(size=(n, 2)) * 20
        np.testing.assert_allclose(smooth_contour(p, samples, closed), catmull_rom(p, samples, closed), atol=1e-12)
