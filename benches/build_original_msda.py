"""Builds Deformable-DETR's original MSDA CUDA extension (fundamentalvision/Deformable-DETR,
`models/ops/src`) for `benches/ms_deform_attn_torch.py --original OUT`, on a machine with nvcc
and a GPU. Its pre-torch-2 calls are renamed in a copy first (`.data<T>()` -> `.data_ptr<T>()`,
`x.type()` -> `x.scalar_type()` / `x.is_cuda()`, `AT_ERROR` / `AT_ASSERTM` -> `TORCH_CHECK`,
`THC/THCAtomics.cuh` -> `ATen/cuda/Atomic.cuh`); nothing else changes.

    python benches/build_original_msda.py PATH/TO/Deformable-DETR /tmp/ddetr
"""

import re
import shutil
import sys
import tempfile
from pathlib import Path

RENAMES = [
    (r"\.data<([a-z0-9_]+)>\(\)", r".data_ptr<\1>()"),
    (r"AT_DISPATCH_FLOATING_TYPES\(value\.type\(\)", "AT_DISPATCH_FLOATING_TYPES(value.scalar_type()"),
    (r"([a-z_]+)\.type\(\)\.is_cuda\(\)", r"\1.is_cuda()"),
    (r"AT_ERROR\(", "TORCH_CHECK(false, "),
    (r"AT_ASSERTM\(", "TORCH_CHECK("),
    (r"THC/THCAtomics\.cuh", "ATen/cuda/Atomic.cuh"),
]


def main(repo: str, out: str) -> None:
    from torch.utils.cpp_extension import load

    src = Path(tempfile.mkdtemp()) / "src"
    shutil.copytree(Path(repo) / "models" / "ops" / "src", src)
    for path in list(src.rglob("*.h")) + list(src.rglob("*.cpp")) + list(src.rglob("*.cu")) + list(src.rglob("*.cuh")):
        text = path.read_text()
        for pattern, replacement in RENAMES:
            text = re.sub(pattern, replacement, text)
        path.write_text(text)
    Path(out).mkdir(parents=True, exist_ok=True)
    load(
        name="MultiScaleDeformableAttention",
        sources=[str(src / "vision.cpp"), str(src / "cpu" / "ms_deform_attn_cpu.cpp"), str(src / "cuda" / "ms_deform_attn_cuda.cu")],
        extra_include_paths=[str(src)],
        extra_cflags=["-O3", "-DWITH_CUDA"],
        extra_cuda_cflags=["-O3", "-DWITH_CUDA"],
        build_directory=out,
    )
    print(f"built {out}/MultiScaleDeformableAttention.so")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
