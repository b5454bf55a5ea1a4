"""cubeops: mmcv-compatible GPU ops written once in Rust/cubecl.

    import cubeops
    out = cubeops.point_sample(input, points, align_corners=False)
    attention = cubeops.psamask(mask, "collect", mask_size=(15, 15))

`import cubeops.mmcv_compat` makes an installed pure-Python mmcv (mmcv-lite) import
`mmcv.ops` and run point_sample and PSAMask on cubeops.
"""

from ._native import __version__
from .ops.point_sample import point_sample
from .ops.psamask import psamask

__all__ = ["point_sample", "psamask", "__version__"]
