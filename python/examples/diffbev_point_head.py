"""Train a DiffBEV-style PointRend head without mmcv._ext, then refine in standalone Rust.

mmsegmentation's own `CascadeEncoderDecoder` with an `FCNHead` (coarse BEV logits) and a
`PointHead` (DiffBEV's configs/_base_/models/pointrend_r50.py settings: 14 nuScenes classes,
2048 points, oversample 3, importance 0.75, 2 subdivision steps of 8196 points, x2), on
synthetic BEV maps (roads, walkways, crossings, vehicles, pedestrians as rotated rectangles)
seen through a small conv stem. The same run is made twice from the same seed: with
cubeops' point_sample (`import cubeops.mmcv_compat`) and with mmcv's own pure-PyTorch
point_sample (F.grid_sample), and the losses are compared: step by step from the same weights
(the sound check), and as whole runs against a control run (mmcv's point_sample from weights
perturbed by one float32 rounding step) that measures how far rounding alone moves training.

    python python/examples/diffbev_point_head.py              # CUDA if present, else CPU
    python python/examples/diffbev_point_head.py --steps 300 --export bev.safetensors \
        --rust-bin target/release/examples/bev_refine          # + Rust refinement check

Needs torch, mmcv-lite 2.1 (what mmsegmentation 1.2.2 accepts), mmengine, mmsegmentation.
"""

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

import cubeops.mmcv_compat  # noqa: F401  (before mmcv: provides mmcv._ext, patches point_sample)
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.models.decode_heads import point_head as mmseg_point_head
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

CLASSES = ("background", "drivable_area", "ped_crossing", "walkway", "carpark", "car", "truck",
           "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle", "barrier")
# Footprints in BEV pixels (0.25 m each): length, width.
VEHICLES = {"car": (18, 8), "truck": (30, 10), "bus": (44, 11), "trailer": (36, 10),
            "construction_vehicle": (24, 12), "motorcycle": (8, 3), "bicycle": (7, 3)}
# Same weights, same points: loss and gradients of one step with either point_sample.
# Gradients: cubeops' float32 step may be STEP_EXACT_FACTOR times as far from the float64
# step as mmcv's float32 step is, or STEP_GRAD_RTOL.
STEP_LOSS_RTOL, STEP_GRAD_RTOL, STEP_EXACT_FACTOR = 1e-4, 1e-3, 2.0
# Two whole runs drift apart like any two runs with different rounding: their loss curves
# (means over windows of 10 steps) and held-out mIoU must still agree. How far rounding alone
# moves this training is measured, not guessed: a control run (mmcv's point_sample, weights
# perturbed by one float32 rounding step) gives the yardstick, and cubeops' run may drift from
# mmcv's by CHAOS_FACTOR times the control's drift, never less than the fixed floors.
CURVE_RTOL, MIOU_ATOL, WINDOW = 5e-2, 0.03, 10
CHAOS_FACTOR = 3.0


# ----------------------------------------------------------------------------- data
def _rect(grid, cx, cy, length, width, angle):
    """Mask of a rotated rectangle centred at (cx, cy), long side along `angle`."""
    xs, ys = grid
    c, s = math.cos(angle), math.sin(angle)
    u = (xs - cx) * c + (ys - cy) * s
    v = -(xs - cx) * s + (ys - cy) * c
    return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)


def bev_map(rng, size):
    """One synthetic BEV label map (size x size, class ids of CLASSES)."""
    ids = {name: i for i, name in enumerate(CLASSES)}
    grid = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    label = np.zeros((size, size), np.int64)
    roads = []
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        angle, width = rng.uniform(0, math.pi), rng.uniform(0.12, 0.22) * size
        roads.append((cx, cy, angle, width))
        label[_rect(grid, cx, cy, 3 * size, width + 0.08 * size, angle)] = ids["walkway"]
    if rng.random() < 0.5:
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        label[_rect(grid, cx, cy, 0.2 * size, 0.15 * size, rng.uniform(0, math.pi))] = ids["carpark"]
    for cx, cy, angle, width in roads:
        label[_rect(grid, cx, cy, 3 * size, width, angle)] = ids["drivable_area"]
    for cx, cy, angle, width in roads:
        along = np.array([math.cos(angle), math.sin(angle)])
        across = np.array([-along[1], along[0]])
        t = rng.uniform(-0.4, 0.4) * size
        x, y = np.array([cx, cy]) + t * along
        label[_rect(grid, x, y, 0.05 * size, width, angle)] = ids["ped_crossing"]
        for _ in range(rng.integers(2, 7)):
            name = rng.choice(list(VEHICLES))
            length, w = VEHICLES[name]
            scale = size / 200
            x, y = np.array([cx, cy]) + rng.uniform(-0.7, 0.7) * size * along \
                + rng.uniform(-0.3, 0.3) * width * across
            label[_rect(grid, x, y, length * scale, w * scale, angle)] = ids[name]
        for side in (-1, 1):
            edge = np.array([cx, cy]) + side * (width / 2 + 0.02 * size) * across
            for _ in range(rng.integers(0, 4)):
                x, y = edge + rng.uniform(-0.7, 0.7) * size * along
                label[_rect(grid, x, y, 1.5 * scale, 1.5 * scale, 0)] = ids["pedestrian"]
            x, y = edge + rng.uniform(-0.5, 0.5) * size * along
            label[_rect(grid, x, y, 0.1 * size, 0.01 * size + 1, angle)] = ids["barrier"]
    return label


def dataset(seed, count, size, channels=8):
    """Label maps and the noisy per-class embeddings the network sees (a stand-in for
    DiffBEV's view-transformed BEV features)."""
    rng = np.random.default_rng(seed)
    labels = np.stack([bev_map(rng, size) for _ in range(count)])
    # The class -> feature embedding is the same for every split (the "sensor").
    embedding = np.random.default_rng(2024).normal(size=(len(CLASSES), channels)).astype(np.float32)
    inputs = embedding[labels].transpose(0, 3, 1, 2)
    inputs = inputs + rng.normal(scale=0.8, size=inputs.shape).astype(np.float32)
    return torch.from_numpy(inputs), torch.from_numpy(labels)


# ----------------------------------------------------------------------------- model
@MODELS.register_module(force=True)
class BEVStem(torch.nn.Module):
    """Two stride-2 conv stages: fine features at 1/2, coarse features at 1/4."""

    def __init__(self, in_channels=8, fine_channels=32, coarse_channels=64):
        super().__init__()

        def stage(cin, cout):
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, 2, 1), torch.nn.BatchNorm2d(cout),
                                       torch.nn.ReLU(), torch.nn.Conv2d(cout, cout, 3, 1, 1),
                                       torch.nn.BatchNorm2d(cout), torch.nn.ReLU())

        self.fine = stage(in_channels, fine_channels)
        self.coarse = stage(fine_channels, coarse_channels)

    def init_weights(self):
        pass

    def forward(self, x):
        fine = self.fine(x)
        return fine, self.coarse(fine)


def model_config(channels):
    ce = dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)
    return dict(
        type="CascadeEncoderDecoder", num_stages=2,
        backbone=dict(type="BEVStem", fine_channels=channels // 2, coarse_channels=channels),
        decode_head=[
            dict(type="FCNHead", in_channels=channels, in_index=1, channels=channels, num_convs=1,
                 concat_input=False, dropout_ratio=-1, num_classes=len(CLASSES),
                 norm_cfg=dict(type="BN", requires_grad=True), align_corners=False, loss_decode=ce),
            dict(type="PointHead", in_channels=[channels // 2], in_index=[0], channels=channels,
                 num_fcs=3, coarse_pred_each_layer=True, dropout_ratio=-1,
                 num_classes=len(CLASSES), align_corners=False, loss_decode=ce),
        ],
        # DiffBEV's pointrend settings.
        train_cfg=dict(num_points=2048, oversample_ratio=3, importance_sample_ratio=0.75),
        test_cfg=dict(mode="whole", subdivision_steps=2, subdivision_num_points=8196, scale_factor=2),
    )


def samples(labels):
    out = []
    for label in labels:
        shape = tuple(label.shape)
        sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        sample.gt_sem_seg = PixelData(data=label[None])
        out.append(sample)
    return out


@contextlib.contextmanager
def point_sample_impl(name):
    """PointHead bound `point_sample` at import: swap that binding for one run."""
    original = mmseg_point_head.point_sample
    if name == "mmcv":
        mmseg_point_head.point_sample = cubeops.mmcv_compat.original_point_sample
    try:
        yield
    finally:
        mmseg_point_head.point_sample = original


# ----------------------------------------------------------------------------- runs
def progress(step, total, width=24):
    done = int(width * step / total)
    return "[" + "#" * done + "." * (width - done) + f"] {step:>{len(str(total))}}/{total}"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(model, x, y):
    parts = model.loss(x, samples(y))
    return sum(v for k, v in parts.items() if "loss" in k), parts


def _rng_state(device):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state, device):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def same_step(model, x, y, device):
    """One step's loss and gradients with cubeops and with mmcv's point_sample from the same
    weights, BN statistics and points, and the same step in float64 (mmcv's point_sample) as
    the yardstick; model state is left as it was. Returns the loss and gradient differences
    cubeops vs mmcv, and each float32 gradient's distance from the float64 one (all relative).

    The same points for all three: PointHead keeps the most uncertain of its oversampled
    points (a top-k), which a 1e-7 difference can reorder; the points mmcv's run picks are
    handed to the others. The float64 step is needed because a float32 step can itself be
    1e-3 off the exact one (mmcv's was, on the CPU at step 101, while cubeops' was 5e-6 off):
    comparing the two float32 steps cannot say which one is off; the question is whether
    cubeops' step is as close to the exact one as mmcv's."""
    rng, buffers = _rng_state(device), {k: v.clone() for k, v in model.named_buffers()}
    exact = copy.deepcopy(model).double()
    point_heads = (model.decode_head[1], exact.decode_head[1])
    picked = []

    def pick_once(self, *args, **kwargs):
        if not picked:
            picked.append(type(self).get_points_train(self, *args, **kwargs))
        return picked[0].to(args[0].dtype)

    def float64_point_sample(input, points, *args, **kwargs):
        # mmseg samples its labels as float32 (`gt_semantic_seg.float()`): exact in float64.
        return cubeops.mmcv_compat.original_point_sample(input.to(points.dtype), points, *args, **kwargs)

    out = {}
    for head in point_heads:
        head.get_points_train = pick_once.__get__(head)
    try:
        for impl, net, inputs in (("mmcv", model, x), ("cubeops", model, x), ("float64", exact, x.double())):
            _set_rng_state(rng, device)
            with point_sample_impl(impl if impl != "float64" else "mmcv"):
                if impl == "float64":
                    mmseg_point_head.point_sample = float64_point_sample
                net.zero_grad(set_to_none=True)
                loss, _ = _loss(net, inputs, y)
                loss.backward()
            grads = torch.cat([p.grad.flatten().double() for p in net.parameters() if p.grad is not None])
            out[impl] = (loss.item(), grads)
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
    finally:
        for head in point_heads:
            del head.get_points_train  # the class's method again
    model.zero_grad(set_to_none=True)
    _set_rng_state(rng, device)
    (ref_loss, ref_grad), (loss, grad), (_, exact_grad) = out["mmcv"], out["cubeops"], out["float64"]

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    return abs(loss - ref_loss) / abs(ref_loss), rel(grad, ref_grad), rel(grad, exact_grad), rel(ref_grad, exact_grad)


def perturb_weights(model, seed):
    """Each weight times (1 + 2^-24 * z), z ~ N(0, 1): a difference of the size one float32
    rounding makes, from a generator of its own (the run's random points stay the same)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 2.0**-24 * torch.randn(p.shape, generator=gen).to(p.device))


def train(impl, args, device, train_set, control=False):
    torch.manual_seed(args.seed)
    model = MODELS.build(ConfigDict(model_config(args.channels))).to(device)
    model.init_weights()
    if control:
        perturb_weights(model, args.seed + 1000)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    inputs, labels = train_set
    losses, times, checks = [], [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with point_sample_impl(impl):
        for step in range(args.steps):
            index = torch.arange(step * args.batch_size, (step + 1) * args.batch_size) % len(inputs)
            x, y = inputs[index].to(device), labels[index].to(device)
            if impl == "cubeops" and step % args.check_every == 0:
                checks.append((step + 1, *same_step(model, x, y, device)))
            sync(device)
            start = time.perf_counter()
            loss, parts = _loss(model, x, y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sync(device)
            times.append(time.perf_counter() - start)
            losses.append(loss.item())
            print(f"{impl + ('*' if control else ''):>8} {progress(step + 1, args.steps)}  loss {losses[-1]:.5f} "
                  f"(coarse {parts['decode_0.loss_ce'].item():.4f}, point {parts['decode_1.pointloss_ce'].item():.4f})"
                  f"  {times[-1] * 1e3:7.1f} ms/step", flush=True)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return model, losses, times, peak, checks


@torch.no_grad()
def miou(model, impl, device, test_set, batch_size):
    model.eval()
    inputs, labels = test_set
    inter = np.zeros(len(CLASSES))
    union = np.zeros(len(CLASSES))
    with point_sample_impl(impl):
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i:i + batch_size].to(device), labels[i:i + batch_size]
            preds = model.predict(x, samples(y))
            for pred, label in zip(preds, y):
                p = pred.pred_sem_seg.data[0].cpu().numpy()
                t = label.numpy()
                for c in range(len(CLASSES)):
                    inter[c] += np.sum((p == c) & (t == c))
                    union[c] += np.sum((p == c) | (t == c))
    present = union > 0
    return float(np.mean(inter[present] / union[present]))


@torch.no_grad()
def export(model, device, test_set, path):
    """What the Rust `bev_refine` example needs, and Python's refined logits to compare."""
    from safetensors.torch import save_file

    model.eval()
    x = test_set[0][:2].to(device)
    feats = model.extract_feat(x)
    coarse_head, point_head = model.decode_head
    coarse = coarse_head.forward(feats)
    metas = [dict(img_shape=tuple(x.shape[2:]), ori_shape=tuple(x.shape[2:]), pad_shape=tuple(x.shape[2:]))] * len(x)
    refined = point_head.predict(feats, coarse, metas, model.test_cfg)
    tensors = {"coarse": coarse, "fine": point_head._transform_inputs(feats)[0], "refined_python": refined}
    for i, fc in enumerate(point_head.fcs):
        tensors[f"fcs.{i}.weight"] = fc.conv.weight[:, :, 0]
        tensors[f"fcs.{i}.bias"] = fc.conv.bias
    tensors["fc_seg.weight"] = point_head.fc_seg.weight[:, :, 0]
    tensors["fc_seg.bias"] = point_head.fc_seg.bias
    cfg = model.test_cfg
    meta = dict(subdivision_steps=cfg.subdivision_steps, subdivision_num_points=cfg.subdivision_num_points,
                scale_factor=cfg.scale_factor, align_corners=point_head.align_corners,
                coarse_pred_each_layer=point_head.coarse_pred_each_layer)
    save_file({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}, path,
              metadata={k: json.dumps(v) for k, v in meta.items()})
    return refined


def run_rust(binary, path):
    """Runs the Rust refinement on the exported file; returns its verdict line and status."""
    out = path.replace(".safetensors", ".rust.safetensors")
    proc = subprocess.run([binary, "--input", path, "--output", out, "--check"], text=True,
                          capture_output=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode == 0, lines[-1] if lines else "no output"


def curve_gap(run, ref, steps):
    """Largest relative difference of the two loss curves, each averaged over WINDOW steps."""
    windows = [(np.mean(run["losses"][i:i + WINDOW]), np.mean(ref["losses"][i:i + WINDOW]))
               for i in range(0, steps, WINDOW)]
    return max(abs(a - b) / b for a, b in windows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="training steps (300 on CUDA, 150 on CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="BEV maps per step (8 on CUDA, 2 on CPU)")
    parser.add_argument("--bev-size", type=int, default=200, help="BEV grid side in pixels (DiffBEV: 200)")
    parser.add_argument("--channels", type=int, default=None, help="head width (DiffBEV: 256; 64 on CPU)")
    parser.add_argument("--test-maps", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-every", type=int, default=10, help="same-step comparison every K steps")
    parser.add_argument("--export", help="write coarse logits, fine features and head weights (safetensors)")
    parser.add_argument("--rust-bin", help="the bev_refine example binary: run it on --export's file")
    parser.add_argument("--json", help="write the figures of both runs as JSON")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.steps = args.steps or (300 if cuda else 150)
    args.batch_size = args.batch_size or (8 if cuda else 2)
    args.channels = args.channels or (256 if cuda else 64)
    if cuda:
        # Same convolution algorithms in both runs; point_sample's backward (ours and
        # grid_sample's) still adds with atomics, so the runs agree to rounding, not bits.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        # Plain f32 convolutions and matmuls: TF32 rounds to 10-bit mantissas, which turns
        # 1e-7 differences into 1e-3 ones and would hide what is being compared.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    register_all_modules()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights' per-parameter log

    print(f"DiffBEV-style PointHead on {device}{f' ({torch.cuda.get_device_name(device)})' if cuda else ''}, "
          f"torch {torch.__version__}: {args.steps} steps of {args.batch_size} BEV maps "
          f"{args.bev_size}x{args.bev_size}, {len(CLASSES)} classes, head width {args.channels}")
    train_set = dataset(args.seed, max(args.batch_size * 4, 16), args.bev_size)
    test_set = dataset(args.seed + 1, args.test_maps, args.bev_size)
    # One untimed call compiles cubeops' kernels (or loads them from the disk cache).
    warm = torch.rand(1, 1, 4, 4, device=device, requires_grad=True)
    cubeops.point_sample(warm, torch.rand(1, 3, 2, device=device)).sum().backward()

    results = {}
    for name, impl, control in (("cubeops", "cubeops", False), ("mmcv", "mmcv", False), ("control", "mmcv", True)):
        model, losses, times, peak, checks = train(impl, args, device, train_set, control)
        results[name] = dict(model=model, losses=losses, times=times, peak=peak, checks=checks,
                             miou=miou(model, impl, device, test_set, args.batch_size))

    ours, ref, control = results["cubeops"], results["mmcv"], results["control"]
    skip = min(3, args.steps - 1)  # first steps include allocator and cudnn warm-up
    print(f"\n{'':>8} {'loss[0]':>9} {'loss[-1]':>9} {'ms/step':>9} {'peak MiB':>9} {'mIoU':>7}")
    for impl, r in results.items():
        median = float(np.median(r["times"][skip:])) * 1e3
        peak = f"{r['peak'] / 2**20:9.1f}" if r["peak"] is not None else f"{'n/a':>9}"
        r["median_ms"] = median
        print(f"{impl:>8} {r['losses'][0]:9.5f} {r['losses'][-1]:9.5f} {median:9.2f} {peak} {r['miou']:7.4f}")
    step_loss = max(c[1] for c in ours["checks"])
    step_grad = max(c[2] for c in ours["checks"])
    # Per check: cubeops' distance from the float64 step against mmcv's (see same_step).
    exact_ok = all(ours_err <= max(STEP_EXACT_FACTOR * ref_err, STEP_GRAD_RTOL) for *_, ours_err, ref_err in ours["checks"])
    worst = max(ours["checks"], key=lambda c: c[3] / max(STEP_EXACT_FACTOR * c[4], STEP_GRAD_RTOL))
    print(f"same-step agreement at {len(ours['checks'])} steps (every {args.check_every}): loss rel. diff "
          f"<= {step_loss:.1e} (tol {STEP_LOSS_RTOL:g}), gradient rel. diff <= {step_grad:.1e}")
    print(f"same step in float64 as the yardstick: gradient error cubeops {worst[3]:.1e} vs mmcv {worst[4]:.1e} at "
          f"step {worst[0]} (the closest call; tol max({STEP_EXACT_FACTOR:g} x mmcv's, {STEP_GRAD_RTOL:g})), "
          f"largest errors {max(c[3] for c in ours['checks']):.1e} / {max(c[4] for c in ours['checks']):.1e}")
    curve, miou_gap = curve_gap(ours, ref, args.steps), abs(ours["miou"] - ref["miou"])
    control_curve, control_miou = curve_gap(control, ref, args.steps), abs(control["miou"] - ref["miou"])
    curve_tol = max(CURVE_RTOL, CHAOS_FACTOR * control_curve)
    miou_tol = max(MIOU_ATOL, CHAOS_FACTOR * control_miou)
    print(f"control (mmcv, weights x (1 + 2^-24 z)): curves differ from mmcv's by {control_curve:.1e}, "
          f"mIoU by {control_miou:.3f}")
    print(f"whole runs: loss curves (means of {WINDOW} steps) differ by <= {curve:.1e} (tol {curve_tol:.2g}), "
          f"mIoU by {miou_gap:.3f} (tol {miou_tol:.2g})")
    agree = (step_loss <= STEP_LOSS_RTOL and exact_ok and curve <= curve_tol and miou_gap <= miou_tol)

    rust_ok, rust_line = True, None
    if args.export:
        export(ours["model"], device, test_set, args.export)
        print(f"wrote {args.export}")
        if args.rust_bin:
            rust_ok, rust_line = run_rust(args.rust_bin, args.export)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {key: v for key, v in r.items() if key != "model"} | {"device": str(device)}
                       for k, r in results.items()}
                      | dict(step_loss=step_loss, step_grad=step_grad, curve=curve, miou_gap=miou_gap,
                             control_curve=control_curve, control_miou=control_miou), f, indent=1)

    verdict = "PASS" if agree and rust_ok else "FAIL"
    learned = ours["losses"][-1] < ours["losses"][0]
    print(f"{verdict}: PointHead trained {args.steps} steps on {device} with cubeops point_sample; "
          f"loss {ours['losses'][0]:.3f} -> {ours['losses'][-1]:.3f}{'' if learned else ' (did not decrease)'}, "
          f"same-step loss/grad vs mmcv's point_sample {step_loss:.0e}/{step_grad:.0e}, "
          f"curves {curve:.0e}, mIoU {ours['miou']:.3f} vs {ref['miou']:.3f}"
          + (f"; Rust: {rust_line}" if rust_line else ""))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
