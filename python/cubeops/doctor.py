"""`python -m cubeops.doctor`: what cubeops finds on this machine, and a self-test.

Prints the devices and their architecture, the NVRTC and CUDA headers the CUDA path will
use, then runs point_sample forward and backward against torch's grid_sample on the CPU and
on every CUDA device. Exits non-zero if anything is missing or wrong.
"""

import sys

import torch

import cubeops
from cubeops import _bridge, _native


def _self_test(device: torch.device) -> float:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 17, 13, generator=gen).to(device).requires_grad_()
    p = (torch.rand(2, 300, 2, generator=gen) * 1.1 - 0.05).to(device).requires_grad_()
    g = torch.randn(2, 5, 300, generator=gen).to(device)
    outs = []
    for fn in (cubeops.point_sample, _reference):
        out = fn(x, p)
        outs.append((out, *torch.autograd.grad(out, (x, p), g)))
    return max((a.double() - b.double()).abs().max().item() for a, b in zip(*outs))


def _reference(x, p):
    grid = (2 * p.double() - 1).unsqueeze(2)
    return torch.nn.functional.grid_sample(x.double(), grid, align_corners=False).squeeze(3).to(x.dtype)


def main() -> int:
    ok = True
    print(f"cubeops {cubeops.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda}), Python {sys.version.split()[0]}")
    err = _self_test(torch.device("cpu"))
    print(f"cpu: self-test max error {err:.2e} {'OK' if err < 1e-4 else 'FAIL'}")
    ok &= err < 1e-4
    if not torch.cuda.is_available():
        print("cuda: no CUDA device visible to torch")
        return 0 if ok else 1
    _bridge._cuda_setup()
    try:
        version = _native.nvrtc_version()
        print(f"NVRTC {version[0]}.{version[1]}")
    except RuntimeError as e:
        print(f"NVRTC: {e}")
        return 1
    try:
        print(f"CUDA headers: {', '.join(map(str, _native.cuda_include_dirs()))}")
    except RuntimeError as e:
        print(f"CUDA headers: {e}")
        return 1
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        cc = major * 10 + minor
        need = _native.min_nvrtc(cc)
        arch = f"sm_{cc}a" if cc >= 90 else f"sm_{cc}"
        print(f"cuda:{index}: {torch.cuda.get_device_name(index)}, compute capability {major}.{minor}, kernels built for {arch} (NVRTC >= {need[0]}.{need[1]})")
        if version < need:
            print(f"  NVRTC {version[0]}.{version[1]} is too old for {arch}: pip install \"nvidia-cuda-nvrtc-cu12>={need[0]}.{need[1]}\"")
            ok = False
            continue
        try:
            err = _self_test(torch.device("cuda", index))
        except RuntimeError as e:
            print(f"  self-test failed: {e}")
            ok = False
            continue
        print(f"  self-test max error {err:.2e} {'OK' if err < 1e-4 else 'FAIL'}")
        ok &= err < 1e-4
    print("all good" if ok else "problems found (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
