"""PSAMask: mmcv's `mmcv.ops.PSAMask` (PSANet's point-wise spatial attention masks).

Same shape as every op (`_registration`): the `_run_*` functions call the kernels,
`cubeops::psamask` is a torch.library custom op (fake impl + autograd) for torch.compile, eager
calls take a plain autograd.Function over the same kernels, and ONNX export traces `export_graph`.
"""

from typing import Tuple, Union

import torch
from torch import Tensor

from .. import _native
from .._bridge import SUPPORTED_DTYPES, describe, stream
from ._registration import call, custom_op, eager_function

PSA_TYPES = {"collect": False, "distribute": True, 0: False, 1: True}


def _run_forward(input: Tensor, distribute: bool, mask_h: int, mask_w: int) -> Tensor:
    n, _, h, w = input.shape
    out = input.new_empty((n, h * w, h, w))
    _native.psamask_forward(describe(input), describe(out), distribute, mask_h, mask_w, stream(input))
    return out


def _run_backward(grad_output: Tensor, distribute: bool, mask_h: int, mask_w: int) -> Tensor:
    n, _, h, w = grad_output.shape
    grad_input = grad_output.new_empty((n, mask_h * mask_w, h, w))
    _native.psamask_backward(describe(grad_output), describe(grad_input), distribute, mask_h, mask_w, stream(grad_output))
    return grad_input


def _fake_forward(input, distribute, mask_h, mask_w):
    n, _, h, w = input.shape
    return input.new_empty((n, h * w, h, w))


def _fake_backward(grad_output, distribute, mask_h, mask_w):
    n, _, h, w = grad_output.shape
    return grad_output.new_empty((n, mask_h * mask_w, h, w))


_forward = custom_op("psamask", _run_forward, _fake_forward)
_backward_op = custom_op("psamask_backward", _run_backward, _fake_backward)


def _setup_context(ctx, inputs, output):
    _, ctx.distribute, ctx.mask_h, ctx.mask_w = inputs


def _backward(ctx, grad_output):
    return _backward_op(grad_output, ctx.distribute, ctx.mask_h, ctx.mask_w), None, None, None


def _eager_backward(ctx, grad_output):
    return _run_backward(grad_output, ctx.distribute, ctx.mask_h, ctx.mask_w), None, None, None


_forward.register_autograd(_backward, setup_context=_setup_context)
_EagerPsaMask = eager_function("_EagerPsaMask", _run_forward, _eager_backward, _setup_context)


def export_graph(input: Tensor, distribute: bool, mask_h: int, mask_w: int) -> Tensor:
    """PSAMask as index arithmetic and one gather, in plain torch ops: what ONNX export traces
    (ONNX has no PSAMask; this becomes Gather/Where over index arithmetic). Each output cell
    reads the one input cell mapped onto it, or is 0: the inverse of the definition in
    `psamask`'s docstring."""
    n, _, h, w = input.shape
    hw = h * w
    half_h, half_w = (mask_h - 1) // 2, (mask_w - 1) // 2
    index = torch.arange(hw, device=input.device)
    channel, position = index.view(hw, 1), index.view(1, hw)  # output (channel, h * W + w)
    # 'collect': the channel is the target, the position the source cell; 'distribute': swapped.
    source, target = (channel, position) if distribute else (position, channel)
    i = torch.div(target, w, rounding_mode="floor") - torch.div(source, w, rounding_mode="floor") + half_h
    j = target % w - source % w + half_w
    inside = (i >= 0) & (i < mask_h) & (j >= 0) & (j < mask_w)
    flat = ((i * mask_w + j) * hw + source).clamp(0, mask_h * mask_w * hw - 1).reshape(-1)
    gathered = input.reshape(n, mask_h * mask_w * hw).index_select(1, flat).view(n, hw, hw)
    return torch.where(inside, gathered, torch.zeros_like(gathered)).view(n, hw, h, w)


def mask_pair(mask_size) -> Tuple[int, int]:
    if isinstance(mask_size, int) and not isinstance(mask_size, bool):
        return mask_size, mask_size
    if isinstance(mask_size, (tuple, list)) and len(mask_size) == 2 and all(isinstance(v, int) for v in mask_size):
        return int(mask_size[0]), int(mask_size[1])
    raise TypeError(f"psamask(): `mask_size` must be an int or a pair of ints, got {mask_size!r}")


def _check(input: Tensor, psa_type, mask_h: int, mask_w: int) -> bool:
    if not isinstance(input, Tensor):
        raise TypeError(f"psamask(): `input` must be a torch.Tensor, got {type(input).__name__}")
    if psa_type not in PSA_TYPES:
        raise ValueError(f"psamask(): `psa_type` must be 'collect' or 'distribute' (or 0 / 1), got {psa_type!r}")
    if mask_h <= 0 or mask_w <= 0:
        raise ValueError(f"psamask(): `mask_size` must be positive, got ({mask_h}, {mask_w})")
    if input.dim() != 4:
        raise ValueError(f"psamask(): `input` must be 4-D (N, mask_h * mask_w, H, W), got shape {tuple(input.shape)}")
    if input.shape[1] != mask_h * mask_w:
        raise ValueError(
            f"psamask(): `input` has {input.shape[1]} channels, mask_size ({mask_h}, {mask_w}) needs {mask_h * mask_w}"
        )
    if input.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"psamask(): `input` must be float16, bfloat16, float32 or float64, got {input.dtype}")
    return PSA_TYPES[psa_type]


def psamask(input: Tensor, psa_type: Union[str, int] = "collect", mask_size=None) -> Tensor:
    """PSANet's point-wise spatial attention map, as mmcv's `PSAMask(psa_type, mask_size)`.

    Args:
        input: (N, mask_h * mask_w, H, W) masks; any strides.
        psa_type: 'collect' (0) or 'distribute' (1).
        mask_size: int or (mask_h, mask_w).

    Returns:
        (N, H * W, H, W): entry (i, j) of the mask at (h, w) lands at the target
        (h + i - (mask_h - 1) // 2, w + j - (mask_w - 1) // 2) when that is on the map:
        at [n, target, h, w] for 'collect', at [n, h * W + w, target] for 'distribute';
        all else is 0. Differentiable with respect to `input`.
    """
    mask_h, mask_w = mask_pair(mask_size)
    distribute = _check(input, psa_type, mask_h, mask_w)
    return call(export_graph, _forward, _EagerPsaMask, input, distribute, mask_h, mask_w)
