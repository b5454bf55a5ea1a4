"""What torch's grid_sample does with NaN / inf / huge points, on CPU and (if present) CUDA.

cubeops follows torch's CUDA kernel (see docs/ops/point_sample.md, "Unusual input"). This
script prints both devices' answers and exits non-zero if CUDA's differ from that rule:
a NaN, +-inf or huge point samples 0, gets a zero gradient and adds nothing to the input's.

    python tests/gpu/torch_nonfinite.py
"""

import sys

import torch
import torch.nn.functional as F


def probe(device):
    x = torch.arange(16.0, device=device).reshape(1, 1, 4, 4).requires_grad_()
    nan, inf = float("nan"), float("inf")
    pts = torch.tensor([[[nan, 0.5], [inf, 0.5], [-inf, 0.5], [1e30, 0.5], [0.3, 0.6]]], device=device).requires_grad_()
    out = F.grid_sample(x, (2 * pts - 1).unsqueeze(2), align_corners=False).squeeze(3)
    out.sum().backward()
    return out.detach().cpu(), x.grad.cpu(), pts.grad.cpu()


def main():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {}
    for device in devices:
        out, gx, gp = probe(device)
        results[device] = (out, gx, gp)
        print(f"torch {torch.__version__} {device}: output {out.flatten().tolist()}")
        print(f"  grad_input nonzero/NaN cells: {[(i, v) for i, v in enumerate(gx.flatten().tolist()) if v != 0]}")
        print(f"  grad_points {gp.flatten().tolist()}")
    if "cuda" not in results:
        print("no CUDA device: nothing to check")
        return 0
    out, gx, gp = results["cuda"]
    ok = bool((out[0, 0, :4] == 0).all()) and bool((gp[0, :4] == 0).all())
    # Only the finite point (0.3, 0.6) reaches the input gradient: cells (1,0),(1,1),(2,0),(2,1).
    ok &= sorted(torch.nonzero(gx.flatten()).flatten().tolist()) == [4, 5, 8, 9]
    print("CUDA matches cubeops' rules" if ok else "CUDA DIFFERS from cubeops' rules")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
