"""Soak: many cubeops forward+backward calls with varying shapes, dtypes, layouts and modes
(plus PSAMask), recording memory as it goes. Memory must stay flat after warm-up and the
loaded-kernel count bounded; otherwise the exit status is 1.

    python tests/gpu/soak.py --calls 100000 --csv soak.csv          # on a GPU
    python tests/gpu/soak.py --device cpu --calls 300 --every 100   # the CI smoke run
    python tests/gpu/soak.py --replot soak.csv --png soak.png       # plot a recorded run

Recorded every `--every` calls: process RSS, torch's allocated and reserved CUDA memory,
device memory in use (cuMemGetInfo through torch.cuda.mem_get_info) and the part of it outside
torch's caching allocator (used - reserved), kernel modules loaded
(cubeops._native.loaded_kernels) and files in the PTX disk cache. The Python bridge launches
on torch's memory (no cubecl memory pool is involved), so torch's numbers cover it.

Flat means, from the end of warm-up to the last sample: RSS and device memory outside torch's
cache grow by at most 64 MiB, torch's allocated memory returns to where it was (1 MiB). torch's
reserved memory (freed blocks it keeps for reuse) may grow as new shapes come: reported only.
"""

import argparse
import csv
import ctypes
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
    """Resident memory after handing free heap pages back (glibc keeps freed blocks below
    its mmap threshold, which would show as tens of MiB of noise between samples)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
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
        reserved = torch.cuda.memory_reserved()
        row.update(torch_allocated_mib=torch.cuda.memory_allocated() / 2**20, torch_reserved_mib=reserved / 2**20,
                   device_used_mib=(total - free) / 2**20, device_other_mib=(total - free - reserved) / 2**20)
    return row


def numeric(rows: list) -> list:
    """Rows as floats, with device_other_mib derived where a CSV predates the column."""
    rows = [{k: float(v) for k, v in r.items()} for r in rows]
    for r in rows:
        if "device_other_mib" not in r and "torch_reserved_mib" in r:
            r["device_other_mib"] = r["device_used_mib"] - r["torch_reserved_mib"]
    return rows


def plot(rows: list, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = [int(r["call"]) for r in rows]
    rows = numeric(rows)
    keys = [k for k in ("rss_mib", "torch_allocated_mib", "torch_reserved_mib", "device_used_mib", "device_other_mib")
            if k in rows[0]]
    fig, (mem, ker) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
    for k in keys:
        mem.plot(calls, [float(r[k]) for r in rows], label=k.replace("_mib", ""))
    mem.set_ylabel("MiB")
    mem.legend(loc="center right")
    mem.set_title("cubeops soak: memory over forward+backward calls")
    ker.plot(calls, [int(r["loaded_kernels"]) for r in rows], color="k")
    ker.set_ylabel("kernels loaded")
    ker.set_xlabel("calls")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--every", type=int, default=1000, help="record memory every N calls")
    ap.add_argument("--warmup", type=int, default=None, help="calls before the flatness baseline (default 10%%)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png", type=Path, default=None, help="plot the memory curves (needs matplotlib)")
    ap.add_argument("--replot", type=Path, default=None, help="only plot this recorded CSV to --png")
    args = ap.parse_args()
    if args.replot:
        with open(args.replot) as f:
            rows = list(csv.DictReader(f))
        plot(rows, args.png or args.replot.with_suffix(".png"))
        calls = int(rows[-1]["call"])
        return 0 if verdict(rows, args.warmup if args.warmup is not None else calls // 10) else 1
    warmup = args.warmup if args.warmup is not None else args.calls // 10
    rng = random.Random(args.seed)
    rows, start = [], time.perf_counter()
    rows.append(sample(0, start, args.device))
    # Written as it goes, so a run cut short still leaves its curve.
    out = open(args.csv, "w", newline="") if args.csv else None
    writer = csv.DictWriter(out, fieldnames=list(rows[0])) if out else None
    if writer:
        writer.writeheader()
        writer.writerow(rows[0])
    for i in range(1, args.calls + 1):
        one_call(rng, args.device, check=i % (args.every * 5) == 1)
        if i % args.every == 0 or i == args.calls:
            row = sample(i, start, args.device)
            rows.append(row)
            if writer:
                writer.writerow(row)
                out.flush()
            rate = i / max(row["seconds"], 1e-9)
            line = f"[{i:>7}/{args.calls}] {rate:7.0f} calls/s  " + "  ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                if k not in ("call", "seconds"))
            # A live line on a terminal; one line per tenth of the run in a log.
            if sys.stdout.isatty():
                print("\r" + line, end="", flush=True)
            elif i % max(args.calls // 10, 1) < args.every:
                print(line, flush=True)
    print()
    if out:
        out.close()
        print(f"wrote {args.csv}")
    if args.png:
        plot(rows, args.png)

    return 0 if verdict(rows, warmup) else 1


def verdict(rows: list, warmup: int) -> bool:
    """Prints the flatness figures after warm-up; True when flat and the kernels bounded."""
    rows = numeric(rows)
    after = [r for r in rows if r["call"] >= warmup] or rows[-1:]
    limits = {"rss_mib": 64.0, "torch_allocated_mib": 1.0, "device_other_mib": 64.0}
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
    for key in ("torch_reserved_mib", "device_used_mib"):
        if key in after[0]:
            print(f"{key:>20}: after warm-up {after[0][key]:.1f} -> {after[-1][key]:.1f} MiB "
                  f"(max {max(r[key] for r in after):.1f}; torch's cache, reported only)")
    kernels = int(rows[-1]["loaded_kernels"])
    # 464 point_sample/PSAMask variants exist per device (docs/gpu-support.md).
    bounded = kernels <= 464
    ok &= bounded
    print(f"loaded kernels: {kernels} (bound 464 per device), PTX cache files: {int(rows[-1]['ptx_cache_files'])}")
    print(f"{int(rows[-1]['call'])} calls in {rows[-1]['seconds']:.1f} s: {'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
