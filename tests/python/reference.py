"""The independent reference: mmcv's point_sample written with torch's grid_sample."""

import torch
import torch.nn.functional as F


def grid_sample_point_sample(input, points, align_corners=False):
    add_dim = points.dim() == 3
    grid = 2.0 * points - 1.0
    if add_dim:
        grid = grid.unsqueeze(2)
    out = F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    return out.squeeze(3) if add_dim else out


def forward_and_grads(fn, input, points, grad_seed=0, grad_dtype=None, **kwargs):
    """fn's output and the gradients of sum(output * g) for a fixed random g, rounded
    through `grad_dtype` (so a float64 reference can see the same g as a bf16 run)."""
    x = input.detach().clone().requires_grad_()
    p = points.detach().clone().requires_grad_()
    out = fn(x, p, **kwargs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=torch.float64)
    g = g.to(grad_dtype or out.dtype).to(out)
    gx, gp = torch.autograd.grad(out, (x, p), g, allow_unused=True)
    return out.detach(), gx, gp
