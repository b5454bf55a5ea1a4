"""point_sample: cubeops against torch's grid_sample (what mmcv's point_sample calls) on the
same tensors, over shapes that cover DiffBEV's PointHead. Forward, backward, forward +
backward; medians; NCHW and channels-last; float32, bfloat16, float16. Prints a table (with
a progress bar on stderr), writes CSV and a PNG of the speed-ups, and relates the achieved
traffic to the device's copy bandwidth measured in the same run.

    python benches/point_sample_torch.py                    # CUDA, the full grid
    python benches/point_sample_torch.py --smoke --device cpu --out target/bench-smoke
    python benches/point_sample_torch.py --dtypes bf16-autocast --align-corners False   # under AMP

"atom" is the backward's atomic adds (4 per (n, c, p)) per second as a fraction of the device's
scattered atomic-add rate measured in the same run (`index_add_` at random places).

Traffic model (bytes a sample must move at least once it misses the cache): forward reads 4
corners and writes 1 value per (n, c, p) and reads the points; backward reads grad_output,
adds 4 corner gradients (float32), reads the corners again for grad_points, and zero-fills
the float32 gradient buffer (and casts it for 16-bit input); bf16-autocast rows are counted
as bfloat16 (their float32 output and output gradient are not). "bw" is that traffic
divided by the time, as a fraction of the measured device-to-device copy bandwidth
(read + write).
"""

import argparse
import csv
import os
import statistics
import sys

import torch
import torch.nn.functional as F

import cubeops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (benches/, beside this script)

# (N, C, H, W, P): PointHead's feature sampling (fine features C=256/512 at 1/2..1/4 of a
# 200x200 BEV, 2048 .. 8196 .. 100k points) and coarse logits (C=14..19).
FULL = [
    (1, 19, 50, 50, 1024), (2, 14, 100, 100, 6144), (8, 14, 100, 100, 6144), (4, 19, 200, 200, 8196),
    (2, 256, 100, 100, 2048), (8, 256, 100, 100, 2048), (2, 256, 200, 200, 8196), (4, 512, 100, 100, 8196),
    (2, 64, 400, 400, 32768), (1, 128, 200, 200, 100000), (8, 32, 200, 200, 100000),
]
SMOKE = [(1, 3, 8, 8, 16), (2, 5, 12, 10, 40)]
# name: (the map's dtype, under torch.autocast). "bf16-autocast": a bfloat16 map and float32
# points under bf16 autocast (PointHead under AMP): a float32 result on both sides, grid_sample
# copying the map to float32 first, cubeops reading it in place.
DTYPES = {"float32": (torch.float32, False), "bfloat16": (torch.bfloat16, False), "float16": (torch.float16, False),
          "bf16-autocast": (torch.bfloat16, True)}


def grid_sample(input, points, align_corners=False):
    return F.grid_sample(input, 2 * points.unsqueeze(2) - 1, align_corners=align_corners).squeeze(3)


class Timer:
    """Median over `repeat` samples of the time per call, each sample `batch` back-to-back
    calls between two CUDA events: the steady state of a training loop, where the host queues
    work ahead of the GPU (a small call costs its host time, a large one its GPU time)."""

    def __init__(self, device, batch):
        self.cuda = device.type == "cuda"
        self.batch = batch

    def __call__(self, fn, repeat):
        return statistics.median(bench_common.seconds_per_call(fn, self.batch, self.cuda) for _ in range(repeat))


def copy_bandwidth(device, timer):
    """Bytes read + written per second by a device-to-device copy of 1 GiB (64 MiB on CPU)."""
    size = (1 << 30) if device.type == "cuda" else (64 << 20)
    src = torch.empty(size // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * size / timer(lambda: dst.copy_(src), 10)


def atomic_rate(device, timer):
    """Scattered float32 atomic adds per second: `index_add_` (one atomicAdd per element on
    CUDA) of 64 Mi values at random places of a 16 Mi-element buffer, the backward's access
    pattern at the scale of its largest shapes."""
    count, size = (64 << 20, 16 << 20) if device.type == "cuda" else (1 << 20, 1 << 18)
    gen = torch.Generator().manual_seed(1)
    index = torch.randint(0, size, (count,), generator=gen).to(device)
    src = torch.ones(count, device=device)
    dst = torch.zeros(size, device=device)
    return count / timer(lambda: dst.index_add_(0, index, src), 5)


def traffic(n, c, h, w, p, element):
    """Bytes each pass must move at least (see the module's docstring)."""
    forward = (5 * n * c * p + 2 * n * p) * element
    # grad_output, the corners again (grad_points), 4 float32 atomic adds per (n, c, p), the
    # float32 buffer's zero fill, its cast to a 16-bit input's dtype, the points in and out.
    cast = n * c * h * w * (4 + element) if element != 4 else 0
    backward = 5 * n * c * p * element + 4 * n * c * p * 4 + n * c * h * w * 4 + cast + 4 * n * p * element
    return forward, backward


def under_autocast(fn, device):
    def run(x, p, align_corners):
        with torch.autocast(device.type, dtype=x.dtype):
            return fn(x, p, align_corners)
    return run


def measure(fn_fwd, x, p, align_corners, timer, repeat):
    """Forward, backward, forward + backward times; the output gradient has the output's
    layout, as autograd hands it over from a following elementwise op."""
    out = fn_fwd(x, p, align_corners)
    g = torch.randn_like(out)

    def fwd():
        with torch.no_grad():
            fn_fwd(x, p, align_corners)

    def bwd():
        torch.autograd.grad(out, (x, p), g, retain_graph=True)

    def both():
        torch.autograd.grad(fn_fwd(x, p, align_corners), (x, p), g)

    for f in (fwd, bwd, both):  # warm-up (and kernel compilation)
        f()
    return timer(fwd, repeat), timer(bwd, repeat), timer(both, repeat), bwd


def deterministic_backward(bwd, timer, repeat):
    """cubeops' backward under torch.use_deterministic_algorithms(True) (torch's grid_sample
    backward raises there on CUDA)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        bwd()
        return timer(bwd, repeat)
    finally:
        torch.use_deterministic_algorithms(before)


def progress(done, total, label, width=28):
    if sys.stderr.isatty() or os.environ.get("CUBEOPS_BENCH_PROGRESS"):
        bar = "#" * int(width * done / total) + "." * (width - int(width * done / total))
        print(f"\r[{bar}] {done}/{total} {label:<48}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def plot(rows, path):
    """One panel per (layout, dtype): a horizontal bar per shape and measurement, the
    speed-up on a log axis, the 1.0x line drawn (right of it cubeops is faster)."""
    plt = bench_common.pyplot(path, "; plot the CSV elsewhere with --replot")
    if plt is None:
        return
    layouts = list(dict.fromkeys(r["layout"] for r in rows))
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    for r in rows:  # align_corners=True rows (a column since issue 14) get their own label
        r["label"] = r["shape"] + (" ac" if str(r.get("align_corners", False)) == "True" else "")
    shapes = list(dict.fromkeys(r["label"] for r in rows))
    series = (("speedup_fwd", "forward"), ("speedup_bwd", "backward"), ("speedup_both", "forward+backward"))
    values = [r[key] for r in rows for key, _ in series]
    lo, hi = bench_common.limits(values)
    fig, axes = plt.subplots(len(layouts), len(dtypes), figsize=(max(5.2 * len(dtypes), 8.5), 0.42 * len(shapes) * len(layouts) + 1.6),
                             sharex=True, sharey=True, squeeze=False)
    height = 0.8 / len(series)
    for (i, layout), (j, dtype) in ((a, b) for a in enumerate(layouts) for b in enumerate(dtypes)):
        ax = axes[i][j]
        panel = {r["label"]: r for r in rows if r["layout"] == layout and r["dtype"] == dtype}
        for k, (key, name) in enumerate(series):
            ys = [y + (k - 1) * height for y, shape in enumerate(shapes) if shape in panel]
            ax.barh(ys, [panel[shape][key] for shape in shapes if shape in panel], height=height, label=name)
        bench_common.speedup_axis(ax, lo, hi)
        ax.set_title(f"{layout.upper()} {dtype}", fontsize=10)
    for ax in axes[:, 0]:
        ax.set_yticks(range(len(shapes)))
        ax.set_yticklabels(shapes, fontsize=8)
        ax.invert_yaxis()
    for ax in axes[-1]:
        ax.set_xlabel("speed-up over grid_sample (x, log; > 1 is faster)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle("cubeops.point_sample vs torch grid_sample, shapes (N, C, H, W, P); ac: align_corners=True")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the suptitle
    fig.savefig(path, dpi=110)


def replot(csv_path, out):
    with open(csv_path, newline="") as f:
        rows = [{k: (float(v) if k.startswith(("speedup", "bw", "ref", "fwd", "bwd", "both", "det")) else v)
                 for k, v in r.items()} for r in csv.DictReader(f)]
    os.makedirs(out, exist_ok=True)
    plot(rows, os.path.join(out, "point_sample.png"))
    print(f"wrote {os.path.join(out, 'point_sample.png')} from {csv_path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="two tiny shapes, 2 repeats: checks the script runs")
    parser.add_argument("--repeat", type=int, default=None, help="samples per measurement (default 20, smoke 2)")
    parser.add_argument("--batch", type=int, default=None, help="back-to-back calls per sample (default 10, smoke 1)")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16", help=f"some of {', '.join(DTYPES)}")
    parser.add_argument("--shapes", default=None, help="comma-separated indices into the full grid (e.g. 0,5), for sweeps")
    parser.add_argument("--align-corners", default="False,True",
                        help="align_corners values (True: torch sends bilinear/zeros grid_sample to cuDNN)")
    parser.add_argument("--out", default="target/bench", help="directory for point_sample.csv and point_sample.png")
    parser.add_argument("--replot", metavar="CSV", help="only draw the PNG (into --out) from a CSV of an earlier run")
    args = parser.parse_args(argv)
    if args.replot:
        return replot(args.replot, args.out)
    device = torch.device(args.device)
    shapes = SMOKE if args.smoke else FULL
    if args.shapes:
        shapes = [shapes[int(i)] for i in args.shapes.split(",")]
    repeat = args.repeat or (2 if args.smoke else 20)
    batch = args.batch or (1 if args.smoke else 10)
    dtypes = [(d, DTYPES[d]) for d in args.dtypes.split(",")]
    aligns = [{"False": False, "True": True}[a] for a in args.align_corners.split(",")]
    timer = Timer(device, batch)
    bandwidth = copy_bandwidth(device, timer)
    atomics = atomic_rate(device, timer)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, cubeops {cubeops.__version__}; medians of {repeat} samples of {batch} calls; "
          f"copy bandwidth {bandwidth / 1e9:.0f} GB/s (read + write); scattered atomic adds {atomics / 1e9:.1f} G/s")
    head = (f"{'(N, C, H, W, P)':>26} {'ac':>2} {'layout':>6} {'dtype':>8} | {'fwd ms':>7} {'ref':>7} {'x':>5} | "
            f"{'bwd ms':>7} {'ref':>7} {'x':>5} | {'f+b ms':>7} {'ref':>7} {'x':>5} | {'bw fwd':>6} {'bw bwd':>6} {'atom':>6} | "
            f"{'det bwd':>7}")
    print(head)
    rows, total, done = [], len(shapes) * len(aligns) * 2 * len(dtypes), 0
    for (n, c, h, w, p), align, layout, (dtype_name, (dtype, autocast)) in (
        (shape, align, layout, dtype)
        for shape in shapes for align in aligns for layout in ("nchw", "nhwc") for dtype in dtypes
    ):
        label = f"({n}, {c}, {h}, {w}, {p}) {'ac ' if align else ''}{layout} {dtype_name}"
        progress(done, total, label)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, h, w, generator=gen).to(device=device, dtype=dtype)
        if layout == "nhwc":
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        pts = torch.rand(n, p, 2, generator=gen).to(device=device, dtype=torch.float32 if autocast else dtype)
        pts.requires_grad_()
        wrap = (lambda fn: under_autocast(fn, device)) if autocast else (lambda fn: fn)
        ours = measure(wrap(cubeops.point_sample), x, pts, align, timer, repeat)
        ref = measure(wrap(grid_sample), x, pts, align, timer, repeat)
        det_bwd = deterministic_backward(ours[3], timer, repeat)
        fwd_bytes, bwd_bytes = traffic(n, c, h, w, p, x.element_size())
        row = dict(shape=f"({n}, {c}, {h}, {w}, {p})", align_corners=align, layout=layout, dtype=dtype_name,
                   fwd_ms=ours[0] * 1e3, ref_fwd_ms=ref[0] * 1e3, bwd_ms=ours[1] * 1e3,
                   ref_bwd_ms=ref[1] * 1e3, both_ms=ours[2] * 1e3, ref_both_ms=ref[2] * 1e3,
                   speedup_fwd=ref[0] / ours[0], speedup_bwd=ref[1] / ours[1], speedup_both=ref[2] / ours[2],
                   bw_fwd=fwd_bytes / ours[0] / bandwidth, bw_bwd=bwd_bytes / ours[1] / bandwidth,
                   atomic_bwd=4 * n * c * p / ours[1] / atomics, det_bwd_ms=det_bwd * 1e3)
        rows.append(row)
        done += 1
        progress(done, total, label)
        print(f"{row['shape']:>26} {'T' if align else 'F':>2} {layout:>6} {row['dtype']:>8} | {row['fwd_ms']:7.3f} {row['ref_fwd_ms']:7.3f} "
              f"{row['speedup_fwd']:5.2f} | {row['bwd_ms']:7.3f} {row['ref_bwd_ms']:7.3f} {row['speedup_bwd']:5.2f} | "
              f"{row['both_ms']:7.3f} {row['ref_both_ms']:7.3f} {row['speedup_both']:5.2f} | "
              f"{row['bw_fwd']:6.1%} {row['bw_bwd']:6.1%} {row['atomic_bwd']:6.1%} | {row['det_bwd_ms']:7.3f}", flush=True)
        del x, pts
    os.makedirs(args.out, exist_ok=True)
    csv_path, png_path = os.path.join(args.out, "point_sample.csv"), os.path.join(args.out, "point_sample.png")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, png_path)
    for key, what in (("speedup_fwd", "forward"), ("speedup_bwd", "backward"), ("speedup_both", "forward+backward")):
        for layout in ("nchw", "nhwc"):
            values = [r[key] for r in rows if r["layout"] == layout]
            print(f"{what:>17} {layout}: speed-up min {min(values):.2f}x, median {statistics.median(values):.2f}x, "
                  f"max {max(values):.2f}x")
    print(f"wrote {csv_path} and {png_path}")


if __name__ == "__main__":
    main()
