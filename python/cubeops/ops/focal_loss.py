"""Sigmoid focal loss: mmcv's `mmcv.ops.sigmoid_focal_loss` on cubeops kernels.

Same shape as every op (`_registration`): `_run` calls the kernel (the elementwise loss, or its derivative
by the logits), `cubeops::sigmoid_focal_loss` is a torch.library custom op (fake impl +
autograd) for torch.compile, eager calls take a plain autograd.Function over the same kernel,
and ONNX export traces `export_graph` (the same formulas in torch ops).
"""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _native
from .._bridge import SUPPORTED_DTYPES, describe, describe_index, stream
from ._registration import call, custom_op, eager_function

REDUCTIONS = ("none", "mean", "sum")


def _run(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float, backward: bool) -> Tensor:
    out = input.new_empty(input.shape)
    _native.sigmoid_focal_loss(
        describe(input), describe_index(target), None if weight is None else describe(weight), describe(out),
        float(gamma), float(alpha), backward, stream(input),
    )
    return out


def _run_forward(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    return _run(input, target, weight, gamma, alpha, False)


def _run_derivative(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    return _run(input, target, weight, gamma, alpha, True)


def _fake(input, target, weight, gamma, alpha):
    return input.new_empty(input.shape)


_forward = custom_op("sigmoid_focal_loss", _run_forward, _fake)
_derivative = custom_op("sigmoid_focal_loss_derivative", _run_derivative, _fake)


def _setup_context(ctx, inputs, output):
    input, target, weight, ctx.gamma, ctx.alpha = inputs
    ctx.save_for_backward(input, target, weight)


def _backward(ctx, grad_output):
    input, target, weight = ctx.saved_tensors
    return grad_output * _derivative(input, target, weight, ctx.gamma, ctx.alpha), None, None, None, None


def _eager_backward(ctx, grad_output):
    input, target, weight = ctx.saved_tensors
    return grad_output * _run_derivative(input, target, weight, ctx.gamma, ctx.alpha), None, None, None, None


_forward.register_autograd(_backward, setup_context=_setup_context)
_EagerSigmoidFocalLoss = eager_function("_EagerSigmoidFocalLoss", _run_forward, _eager_backward, _setup_context)


def export_graph(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    """The elementwise loss in torch ops (log-sigmoid for both logs): what ONNX export traces,
    and the formula the kernel computes."""
    c = input.shape[1]
    positive = target.unsqueeze(1) == torch.arange(c, device=input.device)
    log_p, log_q = F.logsigmoid(input), F.logsigmoid(-input)
    loss = torch.where(positive, -alpha * log_q.exp().pow(gamma) * log_p, -(1 - alpha) * log_p.exp().pow(gamma) * log_q)
    if weight is not None:
        inside = (target >= 0) & (target < c)
        w = torch.where(inside, weight[target.clamp(0, max(c - 1, 0))], torch.ones_like(weight[:1]))
        loss = loss * w.unsqueeze(1)
    return loss


def _prepare(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str) -> tuple[Tensor, Optional[Tensor]]:
    """Checks the operands and returns the int64 target and the weight in the input's dtype,
    both contiguous, for the op and mmcv's `_ext` functions."""
    _check(input, target, weight, reduction)
    return target.long().contiguous(), None if weight is None else weight.to(input.dtype).contiguous()


def _check(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str) -> None:
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("sigmoid_focal_loss(): `input` and `target` must be torch.Tensors")
    if input.dim() != 2:
        raise ValueError(f"sigmoid_focal_loss(): `input` must be 2-D (N, C), got shape {tuple(input.shape)}")
    if input.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"sigmoid_focal_loss(): `input` must be float16, bfloat16, float32 or float64, got {input.dtype}")
    if target.dtype not in (torch.int64, torch.int32) or target.dim() != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(
            f"sigmoid_focal_loss(): `target` must be an int64 (N,) = ({input.shape[0]},) tensor of class indices, "
            f"got {target.dtype} of shape {tuple(target.shape)}"
        )
    if weight is not None and (not isinstance(weight, Tensor) or weight.shape != (input.shape[1],)):
        raise ValueError(f"sigmoid_focal_loss(): `weight` must be a ({input.shape[1]},) tensor")
    for name, t in (("target", target), ("weight", weight)):
        if t is not None and t.device != input.device:
            raise ValueError(f"sigmoid_focal_loss(): `{name}` is on {t.device}, `input` on {input.device}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"sigmoid_focal_loss(): `reduction` must be one of {REDUCTIONS}, got {reduction!r}")


def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Optional[Tensor] = None,
    reduction: str = "mean",
) -> Tensor:
    """RetinaNet's focal loss on sigmoid outputs, as mmcv's `sigmoid_focal_loss`.

    Args:
        input: (N, C) logits.
        target: (N,) class indices; an index outside [0, C) (mmdet's background, C) is a
            negative for every class.
        gamma, alpha: with p = sigmoid(input), the target class costs -alpha (1 - p)^gamma log p,
            the others -(1 - alpha) p^gamma log(1 - p).
        weight: optional (C,) weight of each row's target class (1 for a background target).
        reduction: 'none' (the (N, C) losses), 'mean' (their sum over N, as mmcv) or 'sum'.

    Differentiable with respect to `input`. Logs are computed as log-sigmoids, so large logits
    keep their precision (mmcv's kernel saturates log(1 - p) at log(FLT_MIN) = -87.3).
    """
    target, weight = _prepare(input, target, weight, reduction)
    if not (math.isfinite(gamma) and gamma >= 0 and math.isfinite(alpha)):
        raise ValueError(f"sigmoid_focal_loss(): gamma must be finite and >= 0, alpha finite; got {gamma}, {alpha}")
    loss = call(export_graph, _forward, _EagerSigmoidFocalLoss, input, target, weight, float(gamma), float(alpha))
    if reduction == "mean":
        return loss.sum() / input.shape[0]
    return loss.sum() if reduction == "sum" else loss
