"""cubeops: mmcv-compatible GPU ops written once in Rust/cubecl.

    import cubeops
    out = cubeops.point_sample(input, points, align_corners=False)
    attention = cubeops.psamask(mask, "collect", mask_size=(15, 15))
    out = cubeops.ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)
    loss = cubeops.sigmoid_focal_loss(logits, target, gamma=2.0, alpha=0.25)
    loss = cubeops.softmax_focal_loss(logits, target, gamma=2.0, alpha=0.25)

`import cubeops.mmcv_compat` makes an installed pure-Python mmcv (mmcv-lite) import
`mmcv.ops` and run point_sample, PSAMask, MultiScaleDeformableAttention and the focal losses
on cubeops.
"""

from ._native import __version__
from .ops.focal_loss import sigmoid_focal_loss, softmax_focal_loss
from .ops.ms_deform_attn import ms_deform_attn
from .ops.point_sample import point_sample
from .ops.psamask import psamask

__all__ = ["ms_deform_attn", "point_sample", "psamask", "sigmoid_focal_loss", "softmax_focal_loss", "__version__"]
