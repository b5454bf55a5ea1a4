"""The independent reference: mmcv's point_sample written with torch's grid_sample."""

import torch
import torch.nn.functional as F


def grid_sample_point_sample(input, points, align_corners=False, mode="bilinear", padding_mode="zeros"):
    add_dim = points.dim() == 3
    grid = 2.0 * points - 1.0
    if add_dim:
        grid = grid.unsqueeze(2)
    out = F.grid_sample(input, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
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


def psamask_reference(mask, psa_type, mask_size):
    """mmcv's PSAMask from its definition, in float64 with Python loops over positions and
    mask cells (an index list, then one gather): independent of cubeops' kernels."""
    mh, mw = (mask_size, mask_size) if isinstance(mask_size, int) else mask_size
    n, c, h, w = mask.shape
    assert c == mh * mw
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2
    src, dst = [], []
    for y in range(h):
        for x in range(w):
            for i in range(mh):
                for j in range(mw):
                    ty, tx = y + i - half_h, x + j - half_w
                    if 0 <= ty < h and 0 <= tx < w:
                        src.append(((i * mw + j) * h + y) * w + x)
                        if psa_type in ("collect", 0):
                            dst.append(((ty * w + tx) * h + y) * w + x)
                        else:
                            dst.append(((y * w + x) * h + ty) * w + tx)
    flat = mask.reshape(n, c * h * w)
    out = flat.new_zeros((n, h * w * h * w))
    out[:, dst] = flat[:, src]
    return out.reshape(n, h * w, h, w)
