"""Soak: many cubeops forward+backward calls with varying shapes, dtypes, layouts and modes
(plus PSAMask), recording memory as it goes. Memory must stay flat after warm-up and the
loaded-kernel count bounded; otherwise the exit status is 1.

    python tests/gpu/soak.py --calls 100000 --csv soak.csv          # on a GPU
    python tests/gpu/soak.py --device cpu --calls 300 --every 100   # the CI smoke run

Recorded every `--every` calls: process RSS, torch's allocated and reserved CUDA memory,
device memory in use (cuMemGetInfo through torch.cuda.mem_get_info), kernel modules loaded
(cubeops._native.loaded_kernels) and files in the PTX disk cache. The Python bridge launches
on torch's memory (no cubecl memory pool is involved), so torch's numbers cover it.
"""

import argparse
import csv
import os
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cubeops
from cubeops import _native

SAMPLINGS = [(m, p) for m in ("bilinear", "nearest") for p in ("zeros", "border", "reflection")]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ptx_cache_files() -> int:
    base = os.environ.get("CUBEOPS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cubeops")
    return len(list(Path(base).glob("*.ptx"))) if os.path.isdir(base) else 0


def one_call(rng: random.Random, device: str, check: bool) -> None:
    """One forward+backward of point_sample (and every 10th call one of PSAMask)."""
    n, c = rng.choice([1, 2, 4]), rng.choice([19, 64, 256])
    h, w = rng.choice([32, 64, 128]), rng.choice([32, 64, 128])
    p = rng.choice([512, 2048, 8192])
    dtype = rng.choice(DTYPES) if device == "cuda" else torch.float32
    mode, padding = rng.choice(SAMPLINGS)
    align = rng.random() < 0.5
    x = torch.randn(n, c, h, w, device=device, dtype=dtype)
    if rng.random() < 0.5:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    pts = (torch.rand(n, p, 2, device=device, dtype=dtype) * 1.6 - 0.3).requires_grad_()
    out = cubeops.point_sample(x, pts, align, mode=mode, padding_mode=padding)
    gx, gp = torch.autograd.grad(out, (x, pts), torch.ones_like(out))
    if check:
        want = F.grid_sample(x.detach().double(), 2 * pts.detach().double().unsqueeze(2) - 1, mode=mode,
                             padding_mode=padding, align_corners=align).squeeze(3)
        err = (out.double() - want).abs().max().item()
        tol = 1e-4 if dtype == torch.float32 else 0.1
        if not err <= tol:
            raise AssertionError(f"point_sample off by {err:.3g} ({n},{c},{h},{w}) P={p} {dtype} {mode}/{padding}")
    if rng.random() < 0.1:
        mh, mw = rng.choice([(3, 3), (5, 7), (9, 9)])
        mask = torch.randn(n, mh * mw, 16, 16, device=device, dtype=dtype, requires_grad=True)
        psa_type = rng.choice(["collect", "distribute"])
        y = cubeops.psamask(mask, psa_type, (mh, mw))
        torch.autograd.grad(y, mask, torch.ones_like(y))
    del x, pts, out, gx, gp


def sample(i: int, start: float, device: str) -> dict:
    row = {"call": i, "seconds": round(time.perf_counter() - start, 2), "rss_mib": rss_bytes() / 2**20,
           "loaded_kernels": _native.loaded_kernels(), "ptx_cache_files": ptx_cache_files()}
    if device == "cuda":
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        row.update(torch_allocated_mib=torch.cuda.memory_allocated() / 2**20,
                   torch_reserved_mib=torch.cuda.memory_reserved() / 2**20,
                   device_used_mib=(total - free) / 2**20)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--every", type=int, default=1000, help="record memory every N calls")
    ap.add_argument("--warmup", type=int, default=None, help="calls before the flatness baseline (default 10%%)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else args.calls // 10
    rng = random.Random(args.seed)
    rows, start = [], time.perf_counter()
    rows.append(sample(0, start, args.device))
    for i in range(1, args.calls + 1):
        one_call(rng, args.device, check=i % (args.every * 5) == 1)
        if i % args.every == 0 or i == args.calls:
            row = sample(i, start, args.device)
            rows.append(row)
            rate = i / max(row["seconds"], 1e-9)
            print(f"\r[{i:>7}/{args.calls}] {rate:7.0f} calls/s  " + "  ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                if k not in ("call", "seconds")), end="", flush=True)
    print()
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[-1]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")

    # Flat after warm-up: growth from the first sample past warm-up to the end, and the spread.
    after = [r for r in rows if r["call"] >= warmup] or rows[-1:]
    limits = {"rss_mib": 64.0, "torch_allocated_mib": 1.0, "device_used_mib": 64.0}
    ok = True
    for key, limit in limits.items():
        if key not in after[0]:
            continue
        values = [r[key] for r in after]
        growth, spread = values[-1] - values[0], max(values) - min(values)
        flat = growth <= limit
        ok &= flat
        print(f"{key:>20}: after warm-up {values[0]:.1f} -> {values[-1]:.1f} MiB (growth {growth:+.1f}, "
              f"spread {spread:.1f}; limit {limit:g}): {'flat' if flat else 'GROWING'}")
    if "torch_reserved_mib" in after[0]:
        print(f"  torch_reserved_mib: {after[0]['torch_reserved_mib']:.1f} -> {after[-1]['torch_reserved_mib']:.1f} "
              f"(max {max(r['torch_reserved_mib'] for r in after):.1f})")
    kernels = rows[-1]["loaded_kernels"]
    # 464 point_sample/PSAMask variants exist per device (docs/gpu-support.md).
    bounded = kernels <= 464
    ok &= bounded
    print(f"loaded kernels: {kernels} (bound 464 per device), PTX cache files: {rows[-1]['ptx_cache_files']}")
    print(f"{args.calls} calls in {rows[-1]['seconds']:.1f} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
