"""A training-free renderer: moves the 68 landmarks of one aligned photo (expression, speech-driven
mouth, blinks and head motion) and warps the photo to follow them.

- :mod:`generator.warp.expression`: per-emotion landmark displacements built from FACS action units.
- :mod:`generator.warp.mouth`: speech features -> mouth opening, spreading and rounding per frame.
- :mod:`generator.warp.life`: seeded head motion and blinks.
- :mod:`generator.warp.mesh`: the piecewise-affine warp (precomputed per face and size).
- :mod:`generator.warp.cavity`: the inner mouth (dark cavity + teeth hint) drawn when the mouth opens.
- :mod:`generator.warp.renderer`: :class:`WarpRenderer`, the ``warp`` backend of ``generator.renderers``.

Nothing here imports torch.
"""
