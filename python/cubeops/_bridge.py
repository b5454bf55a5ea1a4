"""Torch tensors described for the Rust bridge: pointer, shape, strides, dtype, device and
how many elements the storage holds from the pointer on (Rust checks every access against
it). No tensor data is copied."""

import ctypes
import functools
import importlib.util
from pathlib import Path

import torch

from . import _native

_DTYPES = {
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float32: "float32",
    torch.float64: "float64",
}

SUPPORTED_DTYPES = tuple(_DTYPES)


def describe(t: torch.Tensor) -> tuple:
    # An empty view may sit at an offset past the end of an empty storage: nothing to read.
    # (Every call costs host time that small problems feel: no temporaries beyond these.)
    available = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
    # (A conditional, not max(): a builtin call costs host time on every argument.)
    return (t.data_ptr(), t.shape, t.stride(), _DTYPES[t.dtype], t.get_device(), available if available > 0 else 0)


def describe_new(t: torch.Tensor) -> tuple:
    """`describe` of a tensor this package has just allocated (torch.empty and its views that
    keep every element, as permute): its storage holds exactly its elements from the pointer
    on, so their count is what is available, without asking the storage (host time)."""
    return (t.data_ptr(), t.shape, t.stride(), _DTYPES[t.dtype], t.get_device(), t.numel())


def describe_index(t: torch.Tensor) -> tuple:
    """An int64 index tensor (MSDA's level shapes and starts) described as `describe` does."""
    available = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
    dtype = "int64" if t.dtype == torch.int64 else str(t.dtype).removeprefix("torch.")
    return (t.data_ptr(), t.shape, t.stride(), dtype, t.get_device(), available if available > 0 else 0)


# torch.compiler.is_exporting: torch >= 2.5 (before that, ONNX export traces with torch.jit only).
_torch_exporting = getattr(torch.compiler, "is_exporting", lambda: False)


def exporting() -> bool:
    """True while torch.onnx.export traces (the TorchScript and the dynamo exporter alike):
    the ops then take their plain-torch graphs, which have ONNX translations. The cheap
    tracing checks go first: is_in_onnx_export alone costs ~2 us per op call."""
    return (torch.jit.is_tracing() or _torch_exporting()) and torch.onnx.is_in_onnx_export()


# torch's own raw getter (what Triton's launcher uses): 0.1 us against ~8 us for
# torch.cuda.current_stream(device).cuda_stream, which builds a Stream object.
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def stream(t: torch.Tensor) -> int:
    """The CUstream the kernels run on: torch's current stream of the tensor's device."""
    device = t.get_device()
    if device < 0:
        return 0
    _cuda_setup()
    if _raw_stream is not None:
        return _raw_stream(device)
    return torch.cuda.current_stream(t.device).cuda_stream


def _package_dir(name: str):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@functools.cache
def _cuda_setup() -> None:
    """NVRTC and the CUDA headers as pip users have them: torch's CUDA wheels depend on
    nvidia-cuda-nvrtc-cu12 and nvidia-cuda-runtime-cu12 (headers under nvidia/cuda_runtime/include).
    A toolkit found through CUDA_PATH or /usr/local/cuda works too."""
    runtime = _package_dir("nvidia.cuda_runtime")
    if runtime is not None and (runtime / "include").is_dir():
        _native.add_cuda_include_dirs([str(runtime / "include")])
    nvrtc = _package_dir("nvidia.cuda_nvrtc")
    if nvrtc is not None:
        # Loaded by soname first, so the Rust side's dlopen("libnvrtc.so.12") finds it.
        for lib in sorted((nvrtc / "lib").glob("libnvrtc*.so*")):
            if "alt" not in lib.name:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
