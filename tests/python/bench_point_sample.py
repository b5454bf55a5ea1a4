"""First-call (JIT) time and steady-state forward+backward time of cubeops.point_sample
against F.grid_sample (mmcv's own formula) on the same tensors. Not a test: prints figures.

    python tests/python/bench_point_sample.py
"""

import time

import torch

import cubeops
from reference import grid_sample_point_sample


def timed(fn, reps):
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def host_overhead(dev):
    """Per-call host time on a tiny problem (the GPU work is negligible), by layer."""
    from cubeops import _native
    from cubeops._bridge import describe, stream

    x = torch.randn(1, 1, 8, 8, device=dev)
    p = torch.rand(1, 1, 2, device=dev)
    out = torch.empty(1, 1, 1, device=dev)
    calls = {
        "cubeops.point_sample (validation + custom op)": lambda: cubeops.point_sample(x, p),
        "torch.ops.cubeops.point_sample (custom op)": lambda: torch.ops.cubeops.point_sample(x, p, False, "bilinear", "zeros"),
        "_native.point_sample_forward (bridge + launch)": lambda: _native.point_sample_forward(
            describe(x), describe(p), describe(out), False, "bilinear", "zeros", stream(x)
        ),
        "F.grid_sample (torch)": lambda: grid_sample_point_sample(x, p),
    }
    for name, fn in calls.items():
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(1000):
            fn()
        torch.cuda.synchronize()
        print(f"host time per call, {name}: {(time.perf_counter() - t) * 1e3:.1f} us")


def main():
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    # DiffBEV-like PointHead shapes: 19 classes and 256 fine channels on a 200x200 BEV map.
    shapes = [(2, 19, 200, 200, 8192), (2, 256, 200, 200, 8192), (8, 64, 100, 100, 16384)]
    x0 = torch.randn(2, 19, 50, 50, device=dev, requires_grad=True)
    p0 = torch.rand(2, 1000, 2, device=dev, requires_grad=True)
    t = time.perf_counter()
    out = cubeops.point_sample(x0, p0)
    out.sum().backward()
    torch.cuda.synchronize()
    print(f"first call (forward + backward, JIT of 3 kernels included): {(time.perf_counter() - t) * 1e3:.1f} ms")
    host_overhead(dev)
    for n, c, h, w, p in shapes:
        x = torch.randn(n, c, h, w, device=dev, requires_grad=True)
        pts = torch.rand(n, p, 2, device=dev, requires_grad=True)
        g = torch.randn(n, c, p, device=dev)
        results = {}
        for name, fn in (("cubeops", cubeops.point_sample), ("grid_sample", grid_sample_point_sample)):
            def step():
                out = fn(x, pts)
                torch.autograd.grad(out, (x, pts), g)
            for _ in range(3):
                step()
            results[name] = timed(step, 20)
        ratio = results["grid_sample"] / results["cubeops"]
        print(f"N={n} C={c} {h}x{w} P={p}: cubeops {results['cubeops']:.3f} ms, "
              f"grid_sample {results['grid_sample']:.3f} ms (forward+backward, median of 20), speed-up {ratio:.2f}x")


if __name__ == "__main__":
    main()
