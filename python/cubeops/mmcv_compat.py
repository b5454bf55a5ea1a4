"""Drop-in for mmcv's compiled extension: `import cubeops.mmcv_compat` before mmcv.

- Provides a module `mmcv._ext` that answers every function name mmcv's ext_loader asks
  for, so `import mmcv.ops` works with pure-Python mmcv (mmcv-lite 2.x). Functions cubeops
  implements run on cubeops; the others raise NotImplementedError naming the op.
- Makes `mmcv.ops.point_sample` run on cubeops for every `mode` ('bilinear', 'nearest') and
  `padding_mode` ('zeros', 'border', 'reflection'); only grid_sample's `mode='bicubic'`
  keeps mmcv's own grid_sample implementation.
- `mmcv._ext.psamask_forward` / `psamask_backward` run on cubeops, so mmcv's own
  `mmcv.ops.PSAMask` module (PSAHead) works unchanged.
- `mmcv._ext.ms_deform_attn_forward` / `ms_deform_attn_backward` run on cubeops, so
  `mmcv.ops.MultiScaleDeformableAttention` (Mask2Former's pixel decoder, Deformable DETR, DINO,
  BEV encoders) works unchanged on CUDA (`im2col_step` is accepted and not needed).
- `mmcv._ext.sigmoid_focal_loss_forward` / `_backward` and `softmax_focal_loss_forward` /
  `_backward` (on the softmax mmcv passes) run on cubeops' kernels, so
  `mmcv.ops.sigmoid_focal_loss` / `softmax_focal_loss` (mmseg's FocalLoss, MaskFormer, mmdet's
  RetinaNet-style heads) work unchanged.

For code you cannot edit: `python -m cubeops.mmcv_compat --install-pth` once, then any
process started with `CUBEOPS_MMCV=1` has the drop-in active from its first line.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import sysconfig
import types
from pathlib import Path

import torch

from . import _native
from ._bridge import describe, exporting, stream
from .ops.point_sample import point_sample as _cubeops_point_sample
from .ops import focal_loss as _focal
from .ops import ms_deform_attn as _msda
from .ops.psamask import PSA_TYPES
from .ops.psamask import export_graph as _psamask_export_graph

DOCS = "https://github.com/cubeops/cubeops/blob/main/docs/ops/README.md"



def _psamask_ext(backward: bool):
    """mmcv._ext.psamask_forward(input, output, ...) / psamask_backward(grad_output,
    grad_input, ...): fill the second tensor in place, as mmcv's compiled op does."""
    name = "psamask_backward" if backward else "psamask_forward"

    def run(src, dst, psa_type, num_, h_feature, w_feature, h_mask, w_mask, half_h_mask, half_w_mask):
        if psa_type not in PSA_TYPES:
            raise ValueError(f"mmcv._ext.{name}: psa_type must be 0 (collect) or 1 (distribute), got {psa_type!r}")
        if src.dim() != 4:
            raise ValueError(f"mmcv._ext.{name}: expected a 4-D tensor, got shape {tuple(src.shape)}")
        expected = (num_, h_feature, w_feature, (h_mask - 1) // 2, (w_mask - 1) // 2)
        got = (src.shape[0], src.shape[2], src.shape[3], half_h_mask, half_w_mask)
        if got != expected:
            raise ValueError(
                f"mmcv._ext.{name}: arguments (num_, h_feature, w_feature, half_h_mask, half_w_mask) = "
                f"{(num_, h_feature, w_feature, half_h_mask, half_w_mask)} do not match the tensor of shape {tuple(src.shape)} "
                f"and mask ({h_mask}, {w_mask})"
            )
        if exporting() and not backward:
            # ONNX export (dynamo exporter; the TorchScript one records mmcv's own symbolic,
            # MMCVPSAMask): the gather graph, written into `dst` as the kernel would.
            dst.copy_(_psamask_export_graph(src, PSA_TYPES[psa_type], h_mask, w_mask))
            return
        native = _native.psamask_backward if backward else _native.psamask_forward
        native(describe(src), describe(dst), PSA_TYPES[psa_type], h_mask, w_mask, stream(src))

    run.__name__ = name
    return run


def ms_deform_attn_forward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                           attention_weights, im2col_step=None):
    """mmcv._ext.ms_deform_attn_forward: returns the (N, Lq, M * D) output."""
    shapes, starts, locations, weights = _msda._prepare(value, value_spatial_shapes, value_level_start_index,
                                                        sampling_locations, attention_weights)
    if exporting():
        return _msda.export_graph(value, shapes, locations, weights)
    return _msda._run_forward(value, shapes, starts, locations, weights)


def ms_deform_attn_backward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                            attention_weights, grad_output, grad_value, grad_sampling_loc, grad_attn_weight,
                            im2col_step=None):
    """mmcv._ext.ms_deform_attn_backward: adds the three gradients into the (zeroed) buffers
    given, as mmcv's kernel does with atomics."""
    shapes, starts, locations, weights = _msda._prepare(value, value_spatial_shapes, value_level_start_index,
                                                        sampling_locations, attention_weights)
    gv, gl, gw = _msda._run_backward(grad_output, value, shapes, starts, locations, weights)
    for buffer, grad, name in ((grad_value, gv, "grad_value"), (grad_sampling_loc, gl, "grad_sampling_loc"),
                               (grad_attn_weight, gw, "grad_attn_weight")):
        if buffer.shape != grad.shape:
            raise ValueError(f"mmcv._ext.ms_deform_attn_backward: `{name}` has shape {tuple(buffer.shape)}, "
                             f"expected {tuple(grad.shape)}")
        buffer.add_(grad)


def _focal_weight(weight):
    # mmcv passes `input.new_empty(0)` for "no weight".
    return None if weight is None or weight.numel() == 0 else weight


def _write(dst, src, name):
    if dst.shape != src.shape:
        raise ValueError(f"mmcv._ext.{name}: the output has shape {tuple(dst.shape)}, expected {tuple(src.shape)}")
    dst.copy_(src)


def _sigmoid_focal_ext(backward: bool):
    name = "sigmoid_focal_loss_backward" if backward else "sigmoid_focal_loss_forward"

    def run(input, target, weight, output, gamma=2.0, alpha=0.25):
        """mmcv._ext.sigmoid_focal_loss_forward / _backward: the (N, C) elementwise loss, or its
        derivative by the logits, written into `output` (mmcv reduces and scales afterwards)."""
        target, weight = _focal._prepare(input, target, _focal_weight(weight), "none")
        if exporting() and not backward:
            return _write(output, _focal.export_graph(input, target, weight, float(gamma), float(alpha)), name)
        _write(output, _focal._run(input, target, weight, float(gamma), float(alpha), backward), name)

    run.__name__ = name
    return run


def softmax_focal_loss_forward(softmax, target, weight, output, gamma=2.0, alpha=0.25):
    """mmcv._ext.softmax_focal_loss_forward: the (N,) losses of the softmax probabilities mmcv
    passes; rows whose label is outside [0, C) give 0."""
    name = "softmax_focal_loss_forward"
    target, weight = _focal._prepare(softmax, target, _focal_weight(weight), "none", name)
    gamma, alpha = float(gamma), float(alpha)
    if exporting():
        return _write(output, _focal.softmax_terms(softmax, target, weight, gamma, alpha, False), name)
    _write(output, _focal._run(softmax, target, weight, gamma, alpha, False, softmax=True), name)


def softmax_focal_loss_backward(softmax, target, weight, buff, grad_input, gamma=2.0, alpha=0.25):
    """mmcv._ext.softmax_focal_loss_backward: the (N, C) gradient by the logits,
    `buff[n] * (onehot - softmax)`, and `buff (N,)` itself (mmcv never reads it back)."""
    name = "softmax_focal_loss_backward"
    target, weight = _focal._prepare(softmax, target, _focal_weight(weight), "none", name)
    gamma, alpha = float(gamma), float(alpha)
    _write(grad_input, _focal._run(softmax, target, weight, gamma, alpha, True, softmax=True), name)
    _write(buff, _focal.softmax_terms(softmax, target, weight, gamma, alpha, True), name)


# mmcv._ext functions cubeops implements, by name (point_sample is Python in mmcv: patched below).
IMPLEMENTED: dict = {
    "psamask_forward": _psamask_ext(False),
    "psamask_backward": _psamask_ext(True),
    "ms_deform_attn_forward": ms_deform_attn_forward,
    "ms_deform_attn_backward": ms_deform_attn_backward,
    "sigmoid_focal_loss_forward": _sigmoid_focal_ext(False),
    "sigmoid_focal_loss_backward": _sigmoid_focal_ext(True),
    "softmax_focal_loss_forward": softmax_focal_loss_forward,
    "softmax_focal_loss_backward": softmax_focal_loss_backward,
}

original_point_sample = None  # mmcv's own point_sample, once mmcv.ops.point_sample is loaded


def _not_implemented(name: str):
    def missing(*args, **kwargs):
        raise NotImplementedError(
            f"mmcv._ext.{name} is not implemented by cubeops (mmcv's compiled op `{name}`); "
            f"implemented ops are listed at {DOCS}"
        )

    missing.__name__ = name
    return missing


class _Ext(types.ModuleType):
    """`mmcv._ext`: any attribute mmcv asks for exists."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return IMPLEMENTED.get(name) or _not_implemented(name)


def point_sample(input, points, align_corners=False, **kwargs):
    """mmcv's `point_sample(input, points, align_corners=False, **kwargs)` on cubeops."""
    unknown = set(kwargs) - {"mode", "padding_mode"}
    if unknown:
        raise TypeError(f"point_sample() got unexpected keyword argument(s) {sorted(unknown)}")
    if kwargs.get("mode", "bilinear") == "bicubic":
        return original_point_sample(input, points, align_corners, **kwargs)
    return _cubeops_point_sample(input, points, align_corners, **kwargs)


def _patch_point_sample_module(module) -> None:
    global original_point_sample
    if module.point_sample is not point_sample:
        original_point_sample = module.point_sample
        module.point_sample = point_sample


_TARGET = "mmcv.ops.point_sample"


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        # Patched before mmcv.ops' __init__ runs `from .point_sample import point_sample`.
        _patch_point_sample_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


def _compiled_ext_present() -> bool:
    """A full mmcv build ships mmcv/_ext*.so; then it stays in charge."""
    spec = importlib.util.find_spec("mmcv")
    if spec is None or not spec.submodule_search_locations:
        return False
    locations = [Path(p) for p in spec.submodule_search_locations]
    return any(any(loc.glob(pattern)) for loc in locations for pattern in ("_ext*.so", "_ext*.pyd"))


def install() -> None:
    """Idempotent: registers mmcv._ext and the point_sample patch."""
    ext = sys.modules.get("mmcv._ext")
    if not isinstance(ext, _Ext):
        if ext is not None or _compiled_ext_present():
            return  # a real compiled mmcv._ext: leave mmcv alone
        sys.modules["mmcv._ext"] = _Ext("mmcv._ext")
    if _TARGET in sys.modules:
        module = sys.modules[_TARGET]
        _patch_point_sample_module(module)
        ops = sys.modules.get("mmcv.ops")
        if ops is not None:
            ops.point_sample = point_sample
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


PTH_NAME = "cubeops_mmcv.pth"
PTH_LINE = 'import os; os.environ.get("CUBEOPS_MMCV") == "1" and __import__("cubeops.mmcv_compat")\n'


def install_pth() -> Path:
    """Writes a .pth file into site-packages that imports this module when CUBEOPS_MMCV=1."""
    path = Path(sysconfig.get_paths()["purelib"]) / PTH_NAME
    path.write_text(PTH_LINE)
    return path


install()

if __name__ == "__main__":
    if sys.argv[1:] == ["--install-pth"]:
        print(f"wrote {install_pth()}: set CUBEOPS_MMCV=1 to activate the mmcv drop-in")
    else:
        print("usage: python -m cubeops.mmcv_compat --install-pth", file=sys.stderr)
        sys.exit(2)
