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


def test_field_is_the_exact_piecewise_affine_interpolation(mesh):
    # Independent route: scipy's point location and barycentric transform for every pixel.
    tri = Delaunay(mesh.vertices, qhull_options="QJ")
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    pix = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    simplex = tri.find_simplex(pix)
    t = tri.transform[simplex]
    b01 = np.einsum("pij,pj->pi", t[:, :2], pix - t[:, 2])
    bary = np.concatenate([b01, 1 - b01.sum(1, keepdims=True)], axis=1)
    for name in ("happiness", "disgust", "fear"):
        d = expression_displacement(emotion_vector(name), mesh.landmarks)
        full = np.zeros((len(mesh.vertices), 2))
        full[:68] = d
        exact = (bary[..., None] * full[tri.simplices[simplex]]).sum(1).reshape(SIZE, SIZE, 2)
        np.testing.assert_allclose(mesh.displacement_field(d), exact, atol=0.02)


def test_no_tearing_and_border_fixed(mesh):
    d = expression_displacement(emotion_vector("fear"), mesh.landmarks)
    field = mesh.displacement_field(d)
    # Continuous: neighbouring pixels never differ by more than the largest landmark move's gradient.
    assert np.abs(np.diff(field, axis=0)).max() < 1.0 and np.abs(np.diff(field, axis=1)).max() < 1.0
    # The frame's edges barely move (the border vertices sit one pixel outside and are fixed).
    edges = np.concatenate([field[0], field[-1], field[:, 0], field[:, -1]])
    assert np.abs(edges).max() < 0.25 * np.abs(d).max()
    img = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(mesh.warp(img, np.zeros((68, 2))), img)


def test_points_land_where_they_were_sent(mesh):
    d = expression_displacement(emotion_vector("happiness"), mesh.landmarks)
    head = head_matrix(np.array([2.0, 1.5, -1.0, 0.01]), mesh.landmarks[30])
    src = mesh.source_map(d, head)
    for i in (17, 21, 30, 36, 45, 48, 54, 8):  # brows, nose, eye and mouth corners, chin
        target = head[:, :2] @ (mesh.landmarks[i] + d[i]) + head[:, 2]
        sampled = np.array([cv2.remap(src[..., c], np.float32([[target[0]]]), np.float32([[target[1]]]),
                                      cv2.INTER_LINEAR)[0, 0] for c in (0, 1)])
        np.testing.assert_allclose(sampled, mesh.landmarks[i], atol=0.35)
