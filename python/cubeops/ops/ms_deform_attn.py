"""Multi-scale deformable attention: mmcv's `MultiScaleDeformableAttnFunction` (the core of
`mmcv.ops.MultiScaleDeformableAttention`, Deformable DETR, Mask2Former's pixel decoder, BEV
encoders) on cubeops kernels.

Same shape as every op (`_registration`): the `_run_*` functions call the kernels,
`cubeops::ms_deform_attn` is a torch.library custom op (fake impl + autograd) for
torch.compile, eager calls take a plain autograd.Function over the same kernels, and ONNX
export traces `export_graph` (mmcv's own grid_sample formulation).
"""

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _native
from .._bridge import SUPPORTED_DTYPES, describe, describe_index, stream
from ._registration import call, custom_op, eager_function


def _run_forward(value: Tensor, shapes: Tensor, starts: Tensor, locations: Tensor, weights: Tensor) -> Tensor:
    n, _, m, d = value.shape
    lq = locations.shape[1]
    out = value.new_empty((n, lq, m * d))
    _native.ms_deform_attn_forward(
        describe(value), describe_index(shapes), describe_index(starts), describe(locations), describe(weights),
        describe(out.view(n, lq, m, d)), stream(value),
    )
    return out


def _run_backward(
    grad_output: Tensor, value: Tensor, shapes: Tensor, starts: Tensor, locations: Tensor, weights: Tensor,
    need_value: bool = True, need_sampling: bool = True,
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """The gradients asked for (None for the others). On CUDA the value gradient is added up
    in a zeroed float32 (float64) buffer, then cast: by atomics, or under
    torch.use_deterministic_algorithms(True) by the kernel without them."""
    n, _, m, d = value.shape
    grad = grad_output.reshape(n, locations.shape[1], m, d)
    grad_value = grad_locations = grad_weights = None
    if need_value:
        if value.device.type == "cpu":
            grad_value = value.new_empty(value.shape)
        else:
            acc = torch.float64 if value.dtype == torch.float64 else torch.float32
            grad_value = torch.zeros(value.shape, dtype=acc, device=value.device)
    if need_sampling:
        grad_locations = locations.new_empty(locations.shape)
        grad_weights = weights.new_empty(weights.shape)
    _native.ms_deform_attn_backward(
        describe(grad), describe(value), describe_index(shapes), describe_index(starts), describe(locations),
        describe(weights), None if grad_value is None else describe(grad_value),
        None if grad_locations is None else describe(grad_locations),
        None if grad_weights is None else describe(grad_weights), torch.are_deterministic_algorithms_enabled(),
        stream(value),
    )
    if grad_value is not None:
        grad_value = grad_value.to(value.dtype)
    return grad_value, grad_locations, grad_weights


def _all_gradients(
    grad_output: Tensor, value: Tensor, shapes: Tensor, starts: Tensor, locations: Tensor, weights: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    return _run_backward(grad_output, value, shapes, starts, locations, weights)


def _fake_forward(value, shapes, starts, locations, weights):
    n, _, m, d = value.shape
    return value.new_empty((n, locations.shape[1], m * d))


def _fake_backward(grad_output, value, shapes, starts, locations, weights):
    return value.new_empty(value.shape), locations.new_empty(locations.shape), weights.new_empty(weights.shape)


_forward = custom_op("ms_deform_attn", _run_forward, _fake_forward)
_backward_op = custom_op("ms_deform_attn_backward", _all_gradients, _fake_backward)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_output):
    value, shapes, starts, locations, weights = ctx.saved_tensors
    gv, gl, gw = _backward_op(grad_output, value, shapes, starts, locations, weights)
    return gv, None, None, gl, gw


def _eager_backward(ctx, grad_output):
    # Only the gradients asked for: the value's and the sampling's are separate kernels.
    value, shapes, starts, locations, weights = ctx.saved_tensors
    need = ctx.needs_input_grad
    gv, gl, gw = _run_backward(grad_output, value, shapes, starts, locations, weights, need[0], need[3] or need[4])
    return gv, None, None, gl if need[3] else None, gw if need[4] else None


_forward.register_autograd(_backward, setup_context=_setup_context)
_EagerMsDeformAttn = eager_function("_EagerMsDeformAttn", _run_forward, _eager_backward, _setup_context)


def export_graph(value: Tensor, shapes: Tensor, locations: Tensor, weights: Tensor) -> Tensor:
    """mmcv's `multi_scale_deformable_attn_pytorch`: grid_sample per level over 2 * loc - 1,
    weighted and summed. What ONNX export traces (ONNX GridSample); also the plain-torch
    definition the tests compare with."""
    n, _, m, d = value.shape
    _, lq, _, levels, points, _ = locations.shape
    sizes = [int(h) * int(w) for h, w in shapes.tolist()]
    grids = 2 * locations - 1
    sampled = []
    for level, (h, w) in enumerate(shapes.tolist()):
        v = value.split(sizes, dim=1)[level].flatten(2).transpose(1, 2).reshape(n * m, d, int(h), int(w))
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    w = weights.transpose(1, 2).reshape(n * m, 1, lq, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * w).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


Shapes = Union[Tensor, Sequence[Sequence[int]]]


def _index_tensors(
    value: Tensor, spatial_shapes: Shapes, level_start_index: Optional[Tensor], num_levels: int
) -> Tuple[Tensor, Tensor]:
    """int64, contiguous, on the value's device. Level areas are checked against the value's
    keys when that needs no wait on the GPU (a list, or tensors on the CPU; not while
    torch.compile traces)."""
    on_host = not isinstance(spatial_shapes, Tensor) or spatial_shapes.device.type == "cpu"
    on_host = on_host and not torch.compiler.is_compiling()
    if isinstance(spatial_shapes, Tensor):
        if spatial_shapes.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"ms_deform_attn(): `value_spatial_shapes` must be int64 or int32, got {spatial_shapes.dtype}")
        shapes = spatial_shapes
    else:
        shapes = torch.as_tensor(spatial_shapes, dtype=torch.int64)
    if shapes.dim() != 2 or shapes.shape[1] != 2 or shapes.shape[0] != num_levels:
        raise ValueError(
            f"ms_deform_attn(): `value_spatial_shapes` must be (L, 2) with L = {num_levels} (the levels of "
            f"`sampling_locations`), got shape {tuple(shapes.shape)}"
        )
    if on_host:
        areas = (shapes[:, 0].long() * shapes[:, 1].long())
        if bool((shapes < 0).any()) or int(areas.sum()) != value.shape[1]:
            raise ValueError(
                f"ms_deform_attn(): levels {shapes.tolist()} hold {int(areas.sum())} keys, `value` has {value.shape[1]}"
            )
    if level_start_index is None:
        areas = shapes[:, 0].long() * shapes[:, 1].long()
        level_start_index = torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))
    elif not isinstance(level_start_index, Tensor) or level_start_index.dtype not in (torch.int64, torch.int32):
        raise TypeError("ms_deform_attn(): `value_level_start_index` must be an int64 or int32 tensor")
    if level_start_index.shape != (shapes.shape[0],):
        raise ValueError(
            f"ms_deform_attn(): `value_level_start_index` must be ({shapes.shape[0]},), got {tuple(level_start_index.shape)}"
        )
    device = value.device
    shapes = shapes.to(device=device, dtype=torch.int64, non_blocking=True).contiguous()
    starts = level_start_index.to(device=device, dtype=torch.int64, non_blocking=True).contiguous()
    return shapes, starts


def _prepare(value: Tensor, spatial_shapes, level_start_index, sampling_locations: Tensor,
             attention_weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Checks the operands and returns the int64 shapes and starts, and the locations and
    weights in the value's dtype (as mmcv casts them), for the op and mmcv's `_ext` functions."""
    _check(value, sampling_locations, attention_weights)
    shapes, starts = _index_tensors(value, spatial_shapes, level_start_index, sampling_locations.shape[3])
    return shapes, starts, sampling_locations.to(value.dtype), attention_weights.to(value.dtype)


def _check(value: Tensor, locations: Tensor, weights: Tensor) -> None:
    for name, t in (("value", value), ("sampling_locations", locations), ("attention_weights", weights)):
        if not isinstance(t, Tensor):
            raise TypeError(f"ms_deform_attn(): `{name}` must be a torch.Tensor, got {type(t).__name__}")
    if value.dim() != 4:
        raise ValueError(f"ms_deform_attn(): `value` must be 4-D (N, S, M, D), got shape {tuple(value.shape)}")
    if value.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"ms_deform_attn(): `value` must be float16, bfloat16, float32 or float64, got {value.dtype}")
    n, _, m, _ = value.shape
    if locations.dim() != 6 or locations.shape[0] != n or locations.shape[2] != m or locations.shape[5] != 2 \
            or locations.shape[3] == 0:
        raise ValueError(
            f"ms_deform_attn(): `sampling_locations` must be (N, Lq, M, L, P, 2) = ({n}, Lq, {m}, L, P, 2), "
            f"got shape {tuple(locations.shape)}"
        )
    if tuple(weights.shape) != tuple(locations.shape[:5]):
        raise ValueError(
            f"ms_deform_attn(): `attention_weights` must have shape {tuple(locations.shape[:5])}, got {tuple(weights.shape)}"
        )
    for name, t in (("sampling_locations", locations), ("attention_weights", weights)):
        if not t.is_floating_point():
            raise TypeError(f"ms_deform_attn(): `{name}` must be a floating-point tensor, got {t.dtype}")
        if t.device != value.device:
            raise ValueError(f"ms_deform_attn(): `{name}` is on {t.device}, `value` on {value.device}")


def ms_deform_attn(
    value: Tensor,
    value_spatial_shapes: Shapes,
    value_level_start_index: Optional[Tensor],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Multi-scale deformable attention, as mmcv's `MultiScaleDeformableAttnFunction`.

    Args:
        value: (N, S, M, D): M heads of D channels at S keys, the levels' H x W maps one
            after the other (row-major).
        value_spatial_shapes: (L, 2) int64 tensor (or a list) of each level's (H, W).
        value_level_start_index: (L,) first key of each level, or None to derive it.
        sampling_locations: (N, Lq, M, L, P, 2), (x, y) normalised to [0, 1].
        attention_weights: (N, Lq, M, L, P).

    Returns:
        (N, Lq, M * D): per query and head, the sum over levels and points of the attention
        weight times the bilinear sample of the value (grid_sample's align_corners=False,
        zeros outside the level). Locations and weights are cast to the value's dtype first,
        as mmcv does. Differentiable with respect to value, locations and weights.
    """
    shapes, starts, locations, weights = _prepare(value, value_spatial_shapes, value_level_start_index,
                                                  sampling_locations, attention_weights)
    return call(lambda v, s, _, lo, w: export_graph(v, s, lo, w), _forward, _EagerMsDeformAttn, value, shapes, starts,
                locations, weights)
