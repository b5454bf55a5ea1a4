"""cubeops: mmcv-compatible GPU ops written once in Rust/cubecl.

    import cubeops
    out = cubeops.point_sample(input, points, align_corners=False)

`import cubeops.mmcv_compat` makes an installed pure-Python mmcv (mmcv-lite) import
`mmcv.ops` and run point_sample on cubeops.
"""

from ._native import __version__
from .ops.point_sample import point_sample

__all__ = ["point_sample", "__version__"]
