"""DDP: a small model using cubeops.point_sample and cubeops.psamask trains one step on
every rank (one process per GPU, NCCL), once with cubeops and once with the pure-PyTorch
references (grid_sample; PSAMask from its definition) from the same weights and data. The
allreduced gradients must agree; each rank checks that its outputs live on its own device.

    torchrun --nproc_per_node=2 tests/gpu/ddp_point_sample.py                 # 2 GPUs, NCCL
    torchrun --nproc_per_node=2 tests/gpu/ddp_point_sample.py --device cpu    # CPU, gloo

Exit status 0 when every rank agrees within tolerance.
"""

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import cubeops

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from reference import grid_sample_point_sample, psamask_reference  # noqa: E402

MASK = (5, 5)


class PointModel(nn.Module):
    """Conv stem -> features sampled at points (point_sample) -> point MLP, plus a PSANet-style
    branch (PSAMask attention over the same features)."""

    def __init__(self, channels=32, classes=7):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))
        self.attn = nn.Conv2d(channels, MASK[0] * MASK[1], 1)
        self.head = nn.Sequential(nn.Conv1d(2 * channels, channels, 1), nn.ReLU(), nn.Conv1d(channels, classes, 1))

    def forward(self, image, points, use_cubeops):
        feats = self.stem(image)
        n, c, h, w = feats.shape
        mask = self.attn(feats)
        if use_cubeops:
            sampled = cubeops.point_sample(feats, points, align_corners=False)
            attention = cubeops.psamask(mask, "collect", MASK)
        else:
            sampled = grid_sample_point_sample(feats, points, align_corners=False)
            attention = psamask_reference(mask, "collect", MASK)
        # (N, H*W, H, W) attention: context[n, :, y, x] = sum_k feats[n, :, k] * attention[n, k, y, x]
        context = torch.bmm(feats.reshape(n, c, h * w), attention.reshape(n, h * w, h * w)).reshape(n, c, h, w)
        if use_cubeops:
            sampled_ctx = cubeops.point_sample(context, points, align_corners=False)
        else:
            sampled_ctx = grid_sample_point_sample(context, points, align_corners=False)
        return self.head(torch.cat([sampled, sampled_ctx], dim=1))


def step(model, image, points, labels, use_cubeops):
    model.zero_grad(set_to_none=True)
    logits = model(image, points, use_cubeops)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return loss.detach(), logits.detach(), [p.grad.detach().clone() for p in model.parameters()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if args.device == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        # TF32 would make the two runs differ by more than the ops do.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")

    torch.manual_seed(0)  # same initial weights on every rank
    model = PointModel().to(device)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    gen = torch.Generator().manual_seed(100 + rank)  # different data per rank
    image = torch.randn(2, 3, 24, 24, generator=gen).to(device)
    points = torch.rand(2, 300, 2, generator=gen).to(device)
    labels = torch.randint(0, 7, (2, 300), generator=gen).to(device)

    loss_c, logits_c, grads_c = step(ddp, image, points, labels, use_cubeops=True)
    loss_r, logits_r, grads_r = step(ddp, image, points, labels, use_cubeops=False)
    assert logits_c.device == device, f"rank {rank}: output on {logits_c.device}, expected {device}"

    scale = max(g.abs().max().item() for g in grads_r)
    grad_err = max((a - b).abs().max().item() for a, b in zip(grads_c, grads_r)) / scale
    logit_err = (logits_c - logits_r).abs().max().item()
    # After the allreduce every rank holds the same gradient: compare with rank 0's.
    flat = torch.cat([g.flatten() for g in grads_c])
    first = flat.clone()
    dist.broadcast(first, src=0)
    rank_err = (flat - first).abs().max().item()
    kernels = cubeops._native.loaded_kernels()
    ok = grad_err <= args.tol and rank_err <= args.tol * scale and logit_err <= args.tol
    line = (f"rank {rank}/{world} on {device}: loss {loss_c.item():.6f} vs {loss_r.item():.6f}, logits diff {logit_err:.2e}, "
            f"allreduced gradient diff {grad_err:.2e} (relative to {scale:.3g}), vs rank 0 {rank_err:.2e}, "
            f"cubeops kernels loaded {kernels}: {'ok' if ok else 'FAIL'}")
    lines = [None] * world
    dist.all_gather_object(lines, line)
    oks = [None] * world
    dist.all_gather_object(oks, ok)
    if rank == 0:
        print("\n".join(lines))
        print(f"DDP on {world} {'GPUs' if device.type == 'cuda' else 'CPU processes'}: {'PASS' if all(oks) else 'FAIL'}")
    # Tear down together: the DDP reducer first, then a barrier, so that no rank leaves while
    # another one's gloo threads still talk to it (seen once in CI: SIGABRT at exit, after PASS).
    del ddp
    dist.barrier()
    dist.destroy_process_group()
    return 0 if all(oks) else 1


if __name__ == "__main__":
    sys.exit(main())
