"""mmsegmentation's PointHead with DiffBEV's settings: cubeops' point_sample against mmcv's
own (torch's grid_sample) on the same head, weights and tensors.

DiffBEV (configs/_base_/models/pointrend_r50.py): 14 classes, 2048 training points,
oversample_ratio 3, importance_sample_ratio 0.75; inference 2 subdivision steps of 8196 points
at scale 2. One training step = `PointHead.loss` (point selection on the coarse logits, fine
and coarse point features, label sampling, loss) + backward into the fine features, the coarse
logits and the head's weights; one inference = `PointHead.predict` (both subdivision steps).

Training runs in float32 and under bf16 autocast (DiffBEV trains in bf16; there the head gets
bfloat16 features and coarse logits, as convolutions under autocast give them: grid_sample
copies them to float32, cubeops reads them in place). Inference runs in
float32 only: mmseg's `PointHead.predict` fails under bf16 autocast with either point_sample
(it scatters bf16 point logits into float32 logits).

    python benches/pointhead_torch.py                      # CUDA, DiffBEV's sizes
    python benches/pointhead_torch.py --smoke --device cpu --out target/bench-smoke

Times are medians of CUDA-event timings of `--batch` back-to-back calls, the two
implementations interleaved sample by sample so that drift of the clock or the device hits
both. Prints a table, writes pointhead.csv and pointhead.png into --out.
"""

import argparse
import contextlib
import csv
import logging
import os
import statistics
import sys

import torch

import cubeops
import cubeops.mmcv_compat  # noqa: F401  (before mmcv: provides mmcv._ext, patches point_sample)
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.models.decode_heads import point_head as mmseg_point_head
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (benches/, beside this script)

NUM_CLASSES = 14
# (N, C, H, W): fine features; the coarse logits are (N, 14, H, W), the labels (N, 2H, 2W).
FULL = [(8, 256, 100, 100), (2, 512, 50, 50), (16, 64, 100, 100)]
SMOKE = [(1, 8, 12, 12), (2, 16, 10, 14)]
IMPLS = ("cubeops", "mmcv")


def head_config(channels, smoke):
    points = dict(num_points=64, subdivision=96) if smoke else dict(num_points=2048, subdivision=8196)
    return ConfigDict(
        type="PointHead", in_channels=[channels], in_index=[0], channels=channels, num_fcs=3,
        coarse_pred_each_layer=True, dropout_ratio=-1, num_classes=NUM_CLASSES, align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ), ConfigDict(
        num_points=points["num_points"], oversample_ratio=3, importance_sample_ratio=0.75,
    ), ConfigDict(
        mode="whole", subdivision_steps=2, subdivision_num_points=points["subdivision"], scale_factor=2,
    )


@contextlib.contextmanager
def point_sample_impl(name):
    """PointHead bound mmcv's `point_sample` at import (the drop-in's cubeops one): for
    'mmcv', mmcv's own pure-PyTorch function instead, for this block."""
    bound = mmseg_point_head.point_sample
    if name == "mmcv":
        mmseg_point_head.point_sample = cubeops.mmcv_compat.original_point_sample
    try:
        yield
    finally:
        mmseg_point_head.point_sample = bound


class Timer:
    def __init__(self, device, batch):
        self.cuda, self.batch = device.type == "cuda", batch

    def __call__(self, fn):
        """Seconds per call over one sample of `batch` back-to-back calls."""
        return bench_common.seconds_per_call(fn, self.batch, self.cuda)


def case(shape, device, smoke):
    n, c, h, w = shape
    head_cfg, train_cfg, test_cfg = head_config(c, smoke)
    torch.manual_seed(0)
    head = MODELS.build(head_cfg).to(device)
    head.init_weights()
    gen = torch.Generator().manual_seed(1)
    fine = torch.randn(n, c, h, w, generator=gen).to(device).requires_grad_()
    coarse = torch.randn(n, NUM_CLASSES, h, w, generator=gen).to(device).requires_grad_()
    labels = torch.randint(0, NUM_CLASSES, (n, 2 * h, 2 * w), generator=gen).to(device)
    data_samples = []
    for label in labels:
        sample = SegDataSample(metainfo=dict(img_shape=(4 * h, 4 * w), ori_shape=(4 * h, 4 * w)))
        sample.gt_sem_seg = PixelData(data=label[None])
        data_samples.append(sample)
    metas = [s.metainfo for s in data_samples]

    # Under AMP the head's inputs come out of convolutions: bfloat16 fine features and
    # coarse logits (the same values).
    fine_bf16, coarse_bf16 = (t.detach().bfloat16().requires_grad_() for t in (fine, coarse))

    def train_step(autocast):
        feats, logits = (fine_bf16, coarse_bf16) if autocast else (fine, coarse)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                losses = head.loss([feats], logits, data_samples, train_cfg)
                loss = sum(v for k, v in losses.items() if "loss" in k)
            loss.backward()
        return step

    def inference():
        with torch.no_grad():
            head.predict([fine], coarse, metas, test_cfg)

    head.train()
    modes = {"train f32": train_step(False), "train bf16 autocast": train_step(True)}
    return head, modes, inference


def run_case(shape, device, smoke, timer, repeat):
    head, modes, inference = case(shape, device, smoke)
    results = {}
    for mode, fn in list(modes.items()) + [("inference f32", inference)]:
        head.train(mode != "inference f32")
        samples = {impl: [] for impl in IMPLS}
        for impl in IMPLS:  # warm-up: kernel compilation, allocator, cuDNN
            with point_sample_impl(impl):
                torch.manual_seed(2)
                fn()
        for i in range(repeat):
            # Interleaved, alternating which goes first; the same random points for both.
            for impl in (IMPLS if i % 2 == 0 else IMPLS[::-1]):
                with point_sample_impl(impl):
                    torch.manual_seed(3 + i)
                    samples[impl].append(timer(fn))
        results[mode] = {impl: statistics.median(samples[impl]) for impl in IMPLS}
    return results


def profile_host(shape, device, smoke, steps=50):
    """Where the host time of a training step goes, per implementation: cProfile's top
    functions by own time over `steps` steps (the step is host-bound at DiffBEV's sizes)."""
    import cProfile
    import pstats

    head, modes, _ = case(shape, device, smoke)
    step = modes["train f32"]
    for impl in IMPLS:
        with point_sample_impl(impl):
            step()  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            profiler.disable()
        stats = pstats.Stats(profiler)
        print(f"\n== {impl}: {shape} train f32, {steps} steps, {stats.total_tt / steps * 1e3:.3f} ms host per step "
              f"(under cProfile); top functions by own time per step:")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:22]
        for (file, line, name), (calls, _, own, cumulative, _) in rows:
            print(f"  {own / steps * 1e6:8.1f} us own {cumulative / steps * 1e6:8.1f} us cum {calls // steps:4d} calls  "
                  f"{os.path.basename(file)}:{line} {name}")
        step_ops(step, impl, device, steps=3 if smoke else 10)


def step_ops(step, impl, device, steps):
    """torch.profiler's view of a step: the host side by op (self CPU time, which names the
    autograd nodes that cProfile cannot see) and, on CUDA, the kernels by device time."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with point_sample_impl(impl):
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            for _ in range(steps):
                step()
            if cuda:
                torch.cuda.synchronize(device)
    averages = prof.key_averages()
    ops = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)
    print(f"== {impl}: host ops, {sum(e.self_cpu_time_total for e in ops) / steps:.1f} us self CPU time per step "
          f"(under torch.profiler); top by self CPU time per step:")
    for e in ops[:16]:
        print(f"  {e.self_cpu_time_total / steps:8.1f} us {e.count // steps:4d} calls  {e.key[:90]}")
    if not cuda:
        return
    events = [e for e in averages if e.device_time_total > 0]
    events.sort(key=lambda e: e.device_time_total, reverse=True)
    total = sum(e.device_time_total for e in events) / steps
    print(f"== {impl}: GPU kernels, {total:.1f} us device time per step; top by time per step:")
    for e in events[:14]:
        print(f"  {e.device_time_total / steps:8.1f} us {e.count // steps:4d} calls  {e.key[:90]}")


def plot(rows, path):
    """One bar per (size, mode): speed-up of the head over the same head on grid_sample."""
    plt = bench_common.pyplot(path)
    if plt is None:
        return
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    height = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(8, 0.9 * len(shapes) * len(modes) / 2 + 1.8))
    for k, mode in enumerate(modes):
        ys = [y + (k - (len(modes) - 1) / 2) * height for y in range(len(shapes))]
        speed = {r["shape"]: r["speedup"] for r in rows if r["mode"] == mode}
        ax.barh(ys, [speed[s] for s in shapes], height=height, label=mode)
    bench_common.speedup_axis(ax, *bench_common.limits([r["speedup"] for r in rows]),
                              ticks=(0.25, 0.5, 0.8, 1, 1.25, 1.5, 2, 4))
    ax.set_yticks(range(len(shapes)), [f"fine {s}" for s in shapes])
    ax.invert_yaxis()
    ax.set_xlabel("speed-up of the PointHead step over the same head on grid_sample (x, log; > 1 is faster)")
    ax.set_title("mmseg PointHead (DiffBEV settings): cubeops vs mmcv's point_sample")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="two tiny heads, 2 samples: checks the script runs")
    parser.add_argument("--repeat", type=int, default=None, help="samples per measurement (default 15, smoke 2)")
    parser.add_argument("--batch", type=int, default=None, help="back-to-back calls per sample (default 5, smoke 1)")
    parser.add_argument("--out", default="target/bench", help="directory for pointhead.csv and pointhead.png")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: where each implementation's host time goes (cProfile)")
    parser.add_argument("--size", type=int, default=0, help="with --profile: which benchmark size (0, 1, 2)")
    args = parser.parse_args(argv)
    register_all_modules()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights' per-parameter log
    device = torch.device(args.device)
    shapes = SMOKE if args.smoke else FULL
    if args.profile:
        if not 0 <= args.size < len(shapes):
            parser.error(f"--size must be below {len(shapes)}, got {args.size}")
        return profile_host(shapes[args.size], device, args.smoke, steps=3 if args.smoke else 50)
    repeat = args.repeat or (2 if args.smoke else 15)
    timer = Timer(device, args.batch or (1 if args.smoke else 5))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"PointHead on {name}, torch {torch.__version__}, cubeops {cubeops.__version__}; "
          f"medians of {repeat} samples of {timer.batch} calls", flush=True)
    print(f"{'fine (N, C, H, W)':>22} {'mode':>20} | {'cubeops ms':>10} {'mmcv ms':>9} {'x':>6}", flush=True)
    rows = []
    for i, shape in enumerate(shapes):
        print(f"[{i + 1}/{len(shapes)}] {shape} ...", file=sys.stderr, flush=True)
        for mode, times in run_case(shape, device, args.smoke, timer, repeat).items():
            row = dict(shape=str(shape), mode=mode, cubeops_ms=times["cubeops"] * 1e3, mmcv_ms=times["mmcv"] * 1e3,
                       speedup=times["mmcv"] / times["cubeops"])
            rows.append(row)
            print(f"{row['shape']:>22} {mode:>20} | {row['cubeops_ms']:10.3f} {row['mmcv_ms']:9.3f} {row['speedup']:5.2f}x",
                  flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    geo = statistics.geometric_mean([r["speedup"] for r in rows])
    print(f"geometric mean speed-up: {geo:.2f}x")
    os.makedirs(args.out, exist_ok=True)
    csv_path, png_path = os.path.join(args.out, "pointhead.csv"), os.path.join(args.out, "pointhead.png")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, png_path)
    print(f"wrote {csv_path} and {png_path}")


if __name__ == "__main__":
    main()
