"""What every op's Python side shares, so an op is its kernels' calls plus these three lines:

- `custom_op`: the op as a torch.library custom op with a fake implementation (shapes only),
  so torch.compile traces it without a graph break;
- `eager_function`: a plain autograd.Function over the same kernels, for eager calls (torch.library's
  Python dispatch costs more host time than small kernels take on the GPU, docs/gpu-testing.md);
- `call`: the entry that picks the plain-torch `export_graph` under ONNX export, the custom op
  under torch.compile, the eager Function where something requires grad, else the forward
  alone.
"""

from typing import Callable

import torch

from .._bridge import exporting


def custom_op(name: str, impl: Callable, fake: Callable):
    """`torch.ops.cubeops.<name>`, running `impl` (its annotations give the schema), with `fake`."""
    op = torch.library.custom_op(f"cubeops::{name}", mutates_args=())(impl)
    op.register_fake(fake)
    return op


def eager_function(name: str, forward: Callable, backward: Callable, setup_context: Callable) -> type:
    """An autograd.Function: `setup_context(ctx, args, None)` then `forward(*args)`; `backward(ctx,
    *grads)` as the custom op's autograd takes it (or a fused version of it)."""

    def run(ctx, *args):
        setup_context(ctx, args, None)
        return forward(*args)

    # `impl`: the forward without the Function, for calls with nothing to differentiate.
    methods = {"forward": staticmethod(run), "backward": staticmethod(backward), "impl": staticmethod(forward)}
    function = type(name, (torch.autograd.Function,), methods)
    function.eager_apply = _direct_apply(function)
    return function


# Function.apply's C++ entry, which its Python wrapper ends in (torch._C._FunctionBase.apply).
_FUNCTION_BASE = getattr(torch._C, "_FunctionBase", None)
_C_APPLY = getattr(_FUNCTION_BASE, "__dict__", {}).get("apply")
_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", None)
_unwrap_if_dead = getattr(getattr(torch._C, "_functorch", None), "unwrap_if_dead", None)


def _direct_apply(function: type) -> Callable:
    """`function.apply` less the host time of its Python wrapper (per call: a setup_context
    lookup, a generic tuple rebuild), which serves functorch transforms (vmap, grad, ...):
    under those, and on a torch without these entries, the wrapper itself."""
    if _C_APPLY is None or _functorch_active is None or _unwrap_if_dead is None:
        return function.apply
    c_apply = _C_APPLY.__get__(None, function)
    wrapped = function.apply

    def apply(*args):
        if _functorch_active():
            return wrapped(*args)
        # What the wrapper does first: tensors left over from a finished transform unwrapped.
        return c_apply(*[_unwrap_if_dead(a) if isinstance(a, torch.Tensor) else a for a in args])

    return apply


def call(export_graph: Callable, compiled, eager: type, *args):
    """The op on `args`: its ONNX graph, its custom op or its eager Function."""
    if exporting():
        return export_graph(*args)
    if torch.compiler.is_compiling():
        return compiled(*args)
    if torch.is_grad_enabled():
        for a in args:
            if isinstance(a, torch.Tensor) and a.requires_grad:
                return eager.eager_apply(*args)
    # Nothing to differentiate (inference, no_grad): the kernels without the Function's host time.
    return eager.impl(*args)
