"""Host time per call of each step of cubeops' eager CUDA path, next to grid_sample's, on a
tiny problem (where the host, not the GPU, sets the pace); then the same for
ms_deform_attn in float32 and bfloat16; then cubeops' and grid_sample's forward+backward
and an empty autograd.Function's (the floor of any op whose backward is Python) timed
interleaved, in rounds, so that the host's drift hits all three alike (on a shared GPU
machine the same call moves by 40 % between runs). Diagnostic, not a test:

    python benches/host_overhead.py
    python benches/host_overhead.py --interleaved-only --rounds 41
"""

import argparse
import statistics
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
        "torch.empty_like (grad buffer; zeroed in the native backward)": lambda: torch.empty_like(x),
        "torch.zeros_like (what the buffer cost before)": lambda: torch.zeros_like(x),
        "native forward (launch only)": lambda: _native.point_sample_forward(
            d_x, d_p, d_out, False, "bilinear", "zeros", s),
        "native backward, both gradients (zero fill + launch)": lambda: _native.point_sample_backward(
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


def msda(dtype):
    dev = torch.device("cuda")
    shapes = torch.tensor([[8, 8], [4, 4]], device=dev)
    starts = torch.tensor([0, 64], device=dev)
    v = torch.randn(1, 80, 8, 32, device=dev, dtype=dtype, requires_grad=True)
    loc = torch.rand(1, 80, 8, 2, 4, 2, device=dev, dtype=dtype, requires_grad=True)
    w = torch.rand(1, 80, 8, 2, 4, device=dev, dtype=dtype, requires_grad=True)
    out = cubeops.ms_deform_attn(v, shapes, starts, loc, w)
    g = torch.randn_like(out)
    acc = torch.zeros(v.shape, device=dev)
    gl, gw = torch.empty_like(loc), torch.empty_like(w)
    s = stream(v)
    from cubeops._bridge import describe_index
    d_sh, d_st = describe_index(shapes), describe_index(starts)
    d_v, d_l, d_w, d_g, d_acc, d_gl, d_gw = map(describe, (v, loc, w, g.view(1, 80, 8, 32), acc, gl, gw))
    d_out = describe(out.view(1, 80, 8, 32))
    steps = {
        "torch.zeros (f32 value-gradient buffer)": lambda: torch.zeros(v.shape, device=dev),
        "cast of that buffer to the value's dtype": lambda: acc.to(dtype),
        "native forward (launch only)": lambda: _native.ms_deform_attn_forward(d_v, d_sh, d_st, d_l, d_w, d_out, s),
        "native backward, fused (launch only)": lambda: _native.ms_deform_attn_backward(
            d_g, d_v, d_sh, d_st, d_l, d_w, d_acc, d_gl, d_gw, False, s),
        "cubeops.ms_deform_attn, no grad": lambda: cubeops.ms_deform_attn(
            v.detach(), shapes, starts, loc.detach(), w.detach()),
        "cubeops.ms_deform_attn, with graph": lambda: cubeops.ms_deform_attn(v, shapes, starts, loc, w),
        "cubeops forward + backward": lambda: torch.autograd.grad(
            cubeops.ms_deform_attn(v, shapes, starts, loc, w), (v, loc, w), g),
    }
    print(f"ms_deform_attn {str(dtype).removeprefix('torch.')}: host us per call, value (1, 80, 8, 32), 2 levels, Lq 80, P 4")
    for name, fn in steps.items():
        print(f"{name:>42}: {per_call_us(fn, n=1000):7.1f} us")


class EmptyFunction(torch.autograd.Function):
    """Saves its inputs, allocates the output and the gradients, launches nothing."""

    @staticmethod
    def forward(ctx, input, points):
        ctx.save_for_backward(input, points)
        return input.new_empty((input.shape[0], input.shape[1], points.shape[1]))

    @staticmethod
    def backward(ctx, grad_output):
        input, points = ctx.saved_tensors
        return torch.empty_like(input), torch.empty_like(points)


def interleaved(device, rounds, calls=200):
    """Medians over `rounds` of the per-call host time of each forward+backward (timed
    `calls` at a time, the order rotating every round), and the median of the per-round
    ratios to grid_sample's, which drift cancels out of."""
    x = torch.randn(1, 19, 50, 50, device=device, requires_grad=True)
    p = torch.rand(1, 1024, 2, device=device, requires_grad=True)
    g = torch.randn(1, 19, 1024, device=device)
    cuda = device.type == "cuda"
    fns = {
        "grid_sample (mmcv's formula)": lambda: torch.autograd.grad(
            F.grid_sample(x, 2 * p.unsqueeze(2) - 1, align_corners=False).squeeze(3), (x, p), g),
        "cubeops.point_sample": lambda: torch.autograd.grad(cubeops.point_sample(x, p), (x, p), g),
        "empty autograd.Function": lambda: torch.autograd.grad(EmptyFunction.apply(x, p), (x, p), g),
    }
    names = list(fns)
    samples = {name: [] for name in names}
    for r in range(rounds + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            elapsed = time.perf_counter() - start
            if r > 0:  # round 0 warms up
                samples[name].append(elapsed / calls * 1e6)
    base = samples[names[0]]
    label = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"{label}, torch {torch.__version__}: forward+backward host us per call, (1, 19, 50x50), P=1024, "
          f"interleaved, medians of {rounds} rounds of {calls} calls")
    for name in names:
        ratio = statistics.median(t / b for t, b in zip(samples[name], base))
        print(f"{name:>42}: {statistics.median(samples[name]):7.1f} us  ({ratio:.2f}x grid_sample's)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only checks the interleaved part runs")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--interleaved-only", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if not args.interleaved_only and device.type == "cuda":
        main()
        for dtype in (torch.float32, torch.bfloat16):
            msda(dtype)
    interleaved(device, args.rounds)
