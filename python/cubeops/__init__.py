"""cubeops: mmcv-compatible GPU ops written once in Rust/cubecl.

    import cubeops
    out = cubeops.point_sample(input, points, align_corners=False)
    attention = cubeops.psamask(mask, "collect", mask_size=(15, 15))
    out = cubeops.ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)

`import cubeops.mmcv_compat` makes an installed pure-Python mmcv (mmcv-lite) import
`mmcv.ops` and run point_sample, PSAMask and MultiScaleDeformableAttention on cubeops.
"""

from ._native import __version__
from .ops.ms_deform_attn import ms_deform_attn
from .ops.point_sample import point_sample
from .ops.psamask import psamask

__all__ = ["ms_deform_attn", "point_sample", "psamask", "__version__"]
