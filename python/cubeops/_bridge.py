"""Torch tensors described for the Rust bridge: pointer, shape, strides, dtype, device and
how many elements the storage holds from the pointer on (Rust checks every access against
it). No tensor data is copied."""

import torch

_DTYPES = {
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float32: "float32",
    torch.float64: "float64",
}

SUPPORTED_DTYPES = tuple(_DTYPES)


def describe(t: torch.Tensor) -> tuple:
    available = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
    device = -1 if t.device.type == "cpu" else t.device.index
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), _DTYPES[t.dtype], device, available)
