"""Multi-scale deformable attention: cubeops against mmcv's pure-PyTorch path
(`multi_scale_deformable_attn_pytorch`, grid_sample per level) and, when it is importable,
the original CUDA kernel (Deformable-DETR's `MultiScaleDeformableAttention` extension, built
with nvcc on the GPU machine: `--original DIR` puts DIR on sys.path).

Shapes: Deformable DETR's encoder (4 levels of a 800x1200 image at strides 8-64, S = Lq ~ 20k,
M = 8, D = 32, P = 4), Mask2Former's pixel decoder (512x512 image: 3 levels, S = Lq = 5376),
BEVFormer-like spatial cross-attention (6 cameras, 4 levels of 928x1600 at strides 8-64, 9000
queries per camera, P = 8). Forward and forward+backward (all three gradients), float32 and
bfloat16; medians of CUDA-event timings (back-to-back calls; the gradients stored anew each
call, as after optimizer.zero_grad()), the host time of one forward+backward (not waiting for
the GPU), peak memory of one forward+backward; speed-ups are other / cubeops (> 1: cubeops
faster).

    python benches/ms_deform_attn_torch.py [--original DIR] [--out target/bench]
    python benches/ms_deform_attn_torch.py --smoke --device cpu --out target/bench-smoke
"""

import argparse
import csv
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import seconds_per_call  # noqa: E402

import cubeops  # noqa: E402

# name: (N, M, D, Lq, P, levels)
FULL = {
    "deformable-detr": (2, 8, 32, None, 4, [(100, 150), (50, 75), (25, 38), (13, 19)]),
    "mask2former": (2, 8, 32, None, 4, [(64, 64), (32, 32), (16, 16)]),
    "bevformer-sca": (6, 8, 32, 9000, 8, [(116, 200), (58, 100), (29, 50), (15, 25)]),
}
SMOKE = {
    "tiny-2-levels": (1, 2, 4, None, 2, [(6, 5), (3, 3)]),
    "tiny-bev": (2, 2, 8, 10, 3, [(4, 4), (2, 2)]),
}


def pytorch_msda(value, shapes, starts, locations, weights):
    """mmcv's multi_scale_deformable_attn_pytorch, written out (so mmcv need not be installed)."""
    n, _, m, d = value.shape
    _, lq, _, levels, points, _ = locations.shape
    hw = [(int(h), int(w)) for h, w in shapes.tolist()]
    values = value.split([h * w for h, w in hw], dim=1)
    grids = 2 * locations - 1
    sampled = []
    for level, (h, w) in enumerate(hw):
        v = values[level].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    attn = weights.transpose(1, 2).reshape(n * m, 1, lq, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * attn).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


def original_msda(module):
    """Deformable-DETR's autograd Function over its compiled extension."""

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value, shapes, starts, locations, weights):
            ctx.save_for_backward(value, shapes, starts, locations, weights)
            return module.ms_deform_attn_forward(value, shapes, starts, locations, weights, 64)

        @staticmethod
        def backward(ctx, grad):
            value, shapes, starts, locations, weights = ctx.saved_tensors
            gv, gl, gw = module.ms_deform_attn_backward(value, shapes, starts, locations, weights, grad.contiguous(), 64)
            return gv, None, None, gl, gw

    return lambda *args: Function.apply(*args)


def problem(shape, device, dtype, seed=0):
    n, m, d, lq, p, levels = shape
    shapes = torch.tensor(levels, dtype=torch.int64, device=device)
    areas = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))
    s = int(areas.sum())
    lq = lq or s
    g = torch.Generator(device="cpu").manual_seed(seed)
    value = torch.randn(n, s, m, d, generator=g).to(device, dtype)
    locations = torch.rand(n, lq, m, len(levels), p, 2, generator=g).to(device, dtype)
    weights = torch.rand(n, lq, m, len(levels), p, generator=g).softmax(-1).to(device, dtype)
    grad = torch.randn(n, lq, m * d, generator=g).to(device, dtype)
    return value, shapes, starts, locations, weights, grad


def host_seconds_per_call(fn, batch, cuda):
    """Host time of `batch` calls, not waiting for the GPU (then draining it)."""
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    seconds = (time.perf_counter() - start) / batch
    if cuda:
        torch.cuda.synchronize()
    return seconds


def measure(fn, args, grad, cuda, repeat, batch):
    """(forward ms, forward+backward ms, host ms of one forward+backward, peak MiB of one
    forward+backward)."""
    value, shapes, starts, locations, weights = args
    leaves = [t.detach().requires_grad_() for t in (value, locations, weights)]

    def forward():
        with torch.no_grad():
            fn(value, shapes, starts, locations, weights)

    def both():
        # As a training step after optimizer.zero_grad() (set_to_none): the gradients are
        # stored, not added to the last step's.
        for t in leaves:
            t.grad = None
        fn(leaves[0], shapes, starts, leaves[1], leaves[2]).backward(grad)

    both()  # compile / warm up
    fwd = statistics.median(seconds_per_call(forward, batch, cuda) for _ in range(repeat)) * 1e3
    fb = statistics.median(seconds_per_call(both, batch, cuda) for _ in range(repeat)) * 1e3
    host = statistics.median(host_seconds_per_call(both, batch, cuda) for _ in range(repeat)) * 1e3
    peak = float("nan")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        both()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return fwd, fb, host, peak


def profile(fn, args, grad, name, steps=10):
    """torch.profiler table of `steps` forward+backward calls: where GPU and host time go."""
    value, shapes, starts, locations, weights = args
    leaves = [t.detach().requires_grad_() for t in (value, locations, weights)]
    def both():
        for t in leaves:
            t.grad = None
        fn(leaves[0], shapes, starts, leaves[1], leaves[2]).backward(grad)

    for _ in range(3):
        both()
    torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            both()
        torch.cuda.synchronize()
    print(f"--- profile: {name}, {steps} x forward+backward")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 2 samples: checks the script runs")
    parser.add_argument("--original", default=None, help="directory holding Deformable-DETR's built extension")
    parser.add_argument("--repeat", type=int, default=None, help="samples per measurement (default 15, smoke 2)")
    parser.add_argument("--batch", type=int, default=None, help="back-to-back calls per sample (default 5, smoke 1)")
    parser.add_argument("--out", default="target/bench", help="directory for ms_deform_attn.csv")
    parser.add_argument("--shapes", default=None, help="comma-separated shape names to run (default: all)")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes (default: float32,bfloat16)")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table of cubeops per row (CUDA)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    repeat, batch = args.repeat or (2 if args.smoke else 15), args.batch or (1 if args.smoke else 5)
    impls = {"cubeops": lambda v, s, st, lo, w: cubeops.ms_deform_attn(v, s, st, lo, w), "pytorch": pytorch_msda}
    if args.original:
        sys.path.insert(0, args.original)
        impls["original"] = original_msda(importlib.import_module("MultiScaleDeformableAttention"))
    rows = []
    shapes = SMOKE if args.smoke else FULL
    wanted = args.shapes.split(",") if args.shapes else list(shapes)
    for name in wanted:
        if name not in shapes:
            parser.error(f"unknown shape {name!r}: choose from {', '.join(shapes)}")
    for name, shape in ((n, shapes[n]) for n in wanted):
        for dtype in (getattr(torch, d) for d in args.dtypes.split(",")):
            *operands, grad = problem(shape, device, dtype)
            row = {"shape": name, "dtype": str(dtype).removeprefix("torch."), "S": operands[0].shape[1],
                   "Lq": operands[3].shape[1]}
            for impl, fn in impls.items():
                if impl == "original" and dtype != torch.float32:
                    continue  # Deformable-DETR's kernel is float32/float64 only
                fwd, fb, host, peak = measure(fn, operands, grad, cuda, repeat, batch)
                row.update({f"{impl}_fwd_ms": fwd, f"{impl}_fb_ms": fb, f"{impl}_host_fb_ms": host, f"{impl}_peak_mib": peak})
            if args.profile and cuda:
                profile(impls["cubeops"], operands, grad, f"{name} {row['dtype']}")
            for impl in impls:
                if f"{impl}_fb_ms" in row and impl != "cubeops":
                    row[f"speedup_fwd_vs_{impl}"] = row[f"{impl}_fwd_ms"] / row["cubeops_fwd_ms"]
                    row[f"speedup_fb_vs_{impl}"] = row[f"{impl}_fb_ms"] / row["cubeops_fb_ms"]
            rows.append(row)
            print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("shape", "dtype", "S", "Lq"), k))
    with open(out / "ms_deform_attn.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out / 'ms_deform_attn.csv'} ({len(rows)} rows; device {device})")


if __name__ == "__main__":
    main()
