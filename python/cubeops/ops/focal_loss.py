"""Focal losses: mmcv's `mmcv.ops.sigmoid_focal_loss` and `softmax_focal_loss` on cubeops kernels.

Same shape as every op (`_registration`): `_run` calls a kernel (the loss, or its derivative
by the logits), `cubeops::sigmoid_focal_loss` / `cubeops::softmax_focal_loss` are torch.library
custom ops (fake impl + autograd) for torch.compile, eager calls take a plain
autograd.Function over the same kernels, and ONNX export traces `export_graph` /
`export_graph_softmax` (the same formulas in torch ops). The softmax loss's kernels take the
softmax probabilities, as mmcv's `_ext` does; the op computes them with torch.softmax.
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


_FLT_MIN = 1.1754943508222875e-38


def _run(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float, backward: bool,
         softmax: bool = False) -> Tensor:
    """The sigmoid kernel on logits, (N, C) out; the softmax kernel on probabilities, (N,) out
    forward, (N, C) backward."""
    out = input.new_empty(input.shape[:1] if softmax and not backward else input.shape)
    _native.focal_loss(
        "softmax" if softmax else "sigmoid", describe(input), describe_index(target),
        None if weight is None else describe(weight), describe(out), float(gamma), float(alpha), backward, stream(input),
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


def _backward_with(derivative, per_row: bool):
    """The autograd backward: the output gradient (per element, or per row broadcast over the
    classes) times `derivative` (the custom op under torch.compile, the kernel call eagerly)."""

    def backward(ctx, grad_output):
        input, target, weight = ctx.saved_tensors
        grad = grad_output.unsqueeze(1) if per_row else grad_output
        return grad * derivative(input, target, weight, ctx.gamma, ctx.alpha), None, None, None, None

    return backward


_forward.register_autograd(_backward_with(_derivative, False), setup_context=_setup_context)
_EagerSigmoidFocalLoss = eager_function(
    "_EagerSigmoidFocalLoss", _run_forward, _backward_with(_run_derivative, False), _setup_context
)


def _run_softmax(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    return _run(torch.softmax(input, 1), target, weight, gamma, alpha, False, softmax=True)


def _run_softmax_derivative(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    return _run(torch.softmax(input, 1), target, weight, gamma, alpha, True, softmax=True)


def _fake_softmax(input, target, weight, gamma, alpha):
    return input.new_empty(input.shape[:1])


_softmax_forward = custom_op("softmax_focal_loss", _run_softmax, _fake_softmax)
_softmax_derivative = custom_op("softmax_focal_loss_derivative", _run_softmax_derivative, _fake)


_softmax_forward.register_autograd(_backward_with(_softmax_derivative, True), setup_context=_setup_context)
_EagerSoftmaxFocalLoss = eager_function(
    "_EagerSoftmaxFocalLoss", _run_softmax, _backward_with(_run_softmax_derivative, True), _setup_context
)


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


def export_graph_softmax(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    """The (N,) softmax focal loss of logits in torch ops: what ONNX export traces."""
    return softmax_terms(torch.softmax(input, 1), target, weight, gamma, alpha, False)


def softmax_terms(softmax: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float, alpha: float,
                  backward: bool) -> Tensor:
    """The softmax kernel's per-row formula in torch ops, on probabilities: the loss, or the
    factor `b` of the derivative `b (onehot - softmax)`; rows whose target is outside [0, C)
    give 0."""
    c = softmax.shape[1]
    valid = (target >= 0) & (target < c)
    label = target.clamp(0, max(c - 1, 0)).long()
    p = softmax.gather(1, label.unsqueeze(1)).squeeze(1)
    log_p = p.clamp(min=_FLT_MIN).log()
    if backward:
        # (1 - p)^(gamma - 1) p log p -> 0 as p -> 1, also where the power is infinite.
        focus = torch.where(p < 1, gamma * (1 - p).pow(gamma - 1) * p * log_p, 0.0)
        term = alpha * (focus - (1 - p).pow(gamma))
    else:
        term = -alpha * (1 - p).pow(gamma) * log_p
    if weight is not None:
        term = term * weight[label]
    return torch.where(valid, term, torch.zeros_like(term))


def _prepare(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
             name: str = "sigmoid_focal_loss") -> tuple[Tensor, Optional[Tensor]]:
    """Checks the operands and returns the int64 target and the weight in the input's dtype,
    both contiguous, for the ops and mmcv's `_ext` functions."""
    _check(input, target, weight, reduction, name)
    return target.long().contiguous(), None if weight is None else weight.to(input.dtype).contiguous()


def _check(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str, name: str) -> None:
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name}(): `input` and `target` must be torch.Tensors")
    if input.dim() != 2:
        raise ValueError(f"{name}(): `input` must be 2-D (N, C), got shape {tuple(input.shape)}")
    if input.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}(): `input` must be float16, bfloat16, float32 or float64, got {input.dtype}")
    if target.dtype not in (torch.int64, torch.int32) or target.dim() != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(
            f"{name}(): `target` must be an int64 (N,) = ({input.shape[0]},) tensor of class indices, "
            f"got {target.dtype} of shape {tuple(target.shape)}"
        )
    if weight is not None and (not isinstance(weight, Tensor) or weight.shape != (input.shape[1],)):
        raise ValueError(f"{name}(): `weight` must be a ({input.shape[1]},) tensor")
    for arg, t in (("target", target), ("weight", weight)):
        if t is not None and t.device != input.device:
            raise ValueError(f"{name}(): `{arg}` is on {t.device}, `input` on {input.device}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}(): `reduction` must be one of {REDUCTIONS}, got {reduction!r}")


def _check_parameters(gamma: float, alpha: float, name: str) -> None:
    if not (math.isfinite(gamma) and gamma >= 0 and math.isfinite(alpha)):
        raise ValueError(f"{name}(): gamma must be finite and >= 0, alpha finite; got {gamma}, {alpha}")


def _reduce(loss: Tensor, rows: int, reduction: str) -> Tensor:
    # mmcv's 'mean' divides the sum by the number of rows, also for the (N, C) sigmoid loss.
    if reduction == "mean":
        return loss.sum() / rows
    return loss.sum() if reduction == "sum" else loss


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
    _check_parameters(gamma, alpha, "sigmoid_focal_loss")
    loss = call(export_graph, _forward, _EagerSigmoidFocalLoss, input, target, weight, float(gamma), float(alpha))
    return _reduce(loss, input.shape[0], reduction)


def softmax_focal_loss(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Optional[Tensor] = None,
    reduction: str = "mean",
) -> Tensor:
    """The focal loss on softmax outputs, as mmcv's `softmax_focal_loss`.

    Args:
        input: (N, C) logits.
        target: (N,) class indices; a row whose index is outside [0, C) costs 0 (mmcv's kernel
            reads out of bounds there).
        gamma, alpha: with p = softmax(input[n])[target[n]], row n costs
            -alpha (1 - p)^gamma log p, with log p = log(max(p, FLT_MIN)) as in mmcv.
        weight: optional (C,) weight of each row's target class.
        reduction: 'none' (the (N,) losses), 'mean' (their mean) or 'sum'.

    Differentiable with respect to `input`.
    """
    name = "softmax_focal_loss"
    target, weight = _prepare(input, target, weight, reduction, name)
    _check_parameters(gamma, alpha, name)
    loss = call(export_graph_softmax, _softmax_forward, _EagerSoftmaxFocalLoss, input, target, weight, float(gamma),
                float(alpha))
    return _reduce(loss, input.shape[0], reduction)
