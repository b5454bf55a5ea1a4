"""Host time per call of each step of cubeops' eager CUDA path, next to grid_sample's, on a
tiny problem (where the host, not the GPU, sets the pace). Diagnostic, not a test:

    python benches/host_overhead.py
"""

import time

import torch
import torch.nn.functional as F

import cubeops
from cubeops import _native
from cubeops._bridge import describe, stream


def per_call_us(fn, n=3000):
    for _ in range(200):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / n * 1e6


def main():
    dev = torch.device("cuda")
    x = torch.randn(1, 19, 50, 50, device=dev, requires_grad=True)
    p = torch.rand(1, 1024, 2, device=dev, requires_grad=True)
    out = cubeops.point_sample(x, p)
    g = torch.randn_like(out)
    acc = torch.zeros_like(x)
    gp = torch.empty_like(p)
    s = stream(x)
    d_x, d_p, d_out, d_g, d_acc, d_gp = map(describe, (x, p, out, g, acc, gp))
    steps = {
        "describe(tensor)": lambda: describe(x),
        "stream(tensor)": lambda: stream(x),
        "torch.cuda.current_stream().cuda_stream": lambda: torch.cuda.current_stream(dev).cuda_stream,
        "torch._C._cuda_getCurrentRawStream": lambda: torch._C._cuda_getCurrentRawStream(0),
        "torch.empty (output)": lambda: x.new_empty((1, 19, 1024)),
        "torch.zeros_like (grad buffer)": lambda: torch.zeros_like(x),
        "native forward (launch only)": lambda: _native.point_sample_forward(
            d_x, d_p, d_out, False, "bilinear", "zeros", s),
        "native backward, both gradients (launches only)": lambda: _native.point_sample_backward(
            d_g, d_x, d_p, d_acc, d_gp, False, "bilinear", "zeros", False, s),
        "cubeops.point_sample, no grad": lambda: cubeops.point_sample(x.detach(), p.detach()),
        "cubeops.point_sample, with graph": lambda: cubeops.point_sample(x, p),
        "cubeops forward + backward": lambda: torch.autograd.grad(cubeops.point_sample(x, p), (x, p), g),
        "grid_sample (mmcv's formula), no grad": lambda: F.grid_sample(
            x.detach(), 2 * p.detach().unsqueeze(2) - 1, align_corners=False).squeeze(3),
        "grid_sample forward + backward": lambda: torch.autograd.grad(
            F.grid_sample(x, 2 * p.unsqueeze(2) - 1, align_corners=False).squeeze(3), (x, p), g),
    }
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}: host us per call, (1, 19, 50x50), P=1024")
    for name, fn in steps.items():
        print(f"{name:>42}: {per_call_us(fn):7.1f} us")


if __name__ == "__main__":
    main()
