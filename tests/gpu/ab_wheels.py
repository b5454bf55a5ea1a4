"""A/B of two cubeops installs on one machine, so that a change is timed against its baseline
on the same host and GPU (figures from two machines differ by up to 2x in host time):

- host time per forward+backward (and forward without grad) of point_sample from each
  install, grid_sample (mmcv's formula) and an empty autograd.Function, in interleaved rounds;
- backward time (both gradients) of each install, atomic and deterministic, on NCHW and
  channels-last maps (CUDA events, the installs' samples alternating; wall time on the CPU).

    pip install --no-deps --target /tmp/old old.whl; pip install --no-deps --target /tmp/new new.whl
    python3 tests/gpu/ab_wheels.py /tmp/old /tmp/new
    python3 tests/gpu/ab_wheels.py DIR DIR --device cpu --quick      # the smoke run in make test

Session 15 (docs/benchmarks.md) ran the two scripts this one merges.
"""

import argparse
import importlib
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [(8, 256, 100, 100, 2048), (4, 512, 100, 100, 8196), (2, 256, 200, 200, 8196), (2, 64, 400, 400, 32768),
          (1, 128, 200, 200, 100000), (8, 32, 200, 200, 100000), (2, 14, 100, 100, 6144)]
QUICK_SHAPES = [(2, 8, 12, 10, 64)]


def load(path: str):
    """The cubeops package installed under `path` (a fresh import each time)."""
    for name in [m for m in sys.modules if m == "cubeops" or m.startswith("cubeops.")]:
        del sys.modules[name]
    sys.path.insert(0, path)
    try:
        return importlib.import_module("cubeops")
    finally:
        sys.path.pop(0)


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


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def host_time(installs, device, rounds, calls):
    for n, c, h, w, p in [(1, 19, 50, 50, 1024), (2, 14, 100, 100, 2048)]:
        x = torch.randn(n, c, h, w, device=device, requires_grad=True)
        pts = torch.rand(n, p, 2, device=device, requires_grad=True)
        g = torch.randn(n, c, p, device=device)
        xd, pd = x.detach(), pts.detach()
        fns = {"grid_sample f+b": lambda: torch.autograd.grad(
            F.grid_sample(x, 2 * pts.unsqueeze(2) - 1, align_corners=False).squeeze(3), (x, pts), g)}
        for name, ops in installs.items():
            fns[f"{name} f+b"] = lambda ops=ops: torch.autograd.grad(ops.point_sample(x, pts), (x, pts), g)
        fns["empty Function f+b"] = lambda: torch.autograd.grad(EmptyFunction.apply(x, pts), (x, pts), g)
        fns["grid_sample fwd"] = lambda: F.grid_sample(xd, 2 * pd.unsqueeze(2) - 1, align_corners=False).squeeze(3)
        for name, ops in installs.items():
            fns[f"{name} fwd"] = lambda ops=ops: ops.point_sample(xd, pd)
        names = list(fns)
        samples = {k: [] for k in names}
        for r in range(rounds + 1):  # round 0 warms up; the order rotates every round
            for k in names[r % len(names):] + names[:r % len(names)]:
                sync(device)
                start = time.perf_counter()
                for _ in range(calls):
                    fns[k]()
                if r:
                    samples[k].append((time.perf_counter() - start) / calls * 1e6)
        sync(device)
        base = samples[names[0]]
        print(f"host us per call, ({n}, {c}, {h}x{w}), P={p}, medians of {rounds} interleaved rounds of {calls} calls")
        for k in names:
            ratio = statistics.median(t / b for t, b in zip(samples[k], base))
            print(f"  {k:>20}: {statistics.median(samples[k]):7.1f} us  ({ratio:.3f}x grid_sample f+b)")


def sample_ms(fn, device):
    if device.type == "cuda":
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b)
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def median_ms(fns, device, n):
    """Median ms per call of each function, their samples taken in alternation, so that the
    machine's drift (host-bound rows moved by up to 1.8x between blocks of samples in
    session 16) hits all alike."""
    for fn in fns:
        for _ in range(3):
            fn()
    times = [[] for _ in fns]
    for _ in range(n):
        for fn, samples in zip(fns, times):
            samples.append(sample_ms(fn, device))
    return [statistics.median(t) for t in times]


def backward_time(installs, device, shapes, samples):
    before = torch.are_deterministic_algorithms_enabled()
    print("backward ms (both gradients): atomic and deterministic, per install")
    try:
        for (n, c, h, w, p) in shapes:
            for layout in ("nchw", "nhwc"):
                for dtype in (torch.float32, torch.bfloat16):
                    x = torch.randn(n, c, h, w, device=device, dtype=dtype)
                    if layout == "nhwc":
                        x = x.contiguous(memory_format=torch.channels_last)
                    x.requires_grad_()
                    pts = torch.rand(n, p, 2, device=device, dtype=dtype, requires_grad=True)
                    g = torch.randn(n, c, p, device=device, dtype=dtype)
                    cells = []
                    for deterministic in (False, True):
                        torch.use_deterministic_algorithms(deterministic)
                        outs = {name: ops.point_sample(x, pts) for name, ops in installs.items()}
                        fns = [lambda out=out: torch.autograd.grad(out, (x, pts), g, retain_graph=True) for out in outs.values()]
                        for name, ms in zip(outs, median_ms(fns, device, samples)):
                            cells.append(f"{'det' if deterministic else 'atomic'} {name} {ms:.3f}")
                    print(f"  ({n}, {c}, {h}x{w}, {p}) {layout} {str(dtype).removeprefix('torch.'):>8}: " + " | ".join(cells))
    finally:
        torch.use_deterministic_algorithms(before)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="directory holding the baseline's cubeops package")
    parser.add_argument("new", help="directory holding the changed cubeops package")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few rounds (smoke run)")
    args = parser.parse_args()
    device = torch.device(args.device)
    installs = {"old": load(args.old), "new": load(args.new)}
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{label}, torch {torch.__version__}; old: {args.old}, new: {args.new}")
    rounds, calls = (1, 5) if args.quick else (args.rounds, 200)
    host_time(installs, device, rounds, calls)
    backward_time(installs, device, QUICK_SHAPES if args.quick else SHAPES, 3 if args.quick else 30)
    print("A/B done")


if __name__ == "__main__":
    main()
