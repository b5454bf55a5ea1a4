"""Limits on a large GPU: a point_sample input with more than 2^31 elements (64-bit indexing)
against grid_sample, and an allocation the GPU cannot satisfy (a torch OutOfMemoryError,
after which the process keeps working).

    python tests/gpu/limits.py
"""

import torch

import cubeops


def main():
    dev = torch.device("cuda")
    n, c, h, w, p = 8, 256, 1024, 1100, 4096
    x = torch.empty(n, c, h, w, device=dev)
    print(f"input {tuple(x.shape)}: {x.numel()} elements (2^31 = {2**31}), {x.numel() * 4 / 2**30:.1f} GiB")
    x.normal_(generator=torch.Generator(device=dev).manual_seed(0))
    pts = torch.rand(n, p, 2, device=dev)
    ours = cubeops.point_sample(x, pts)
    ref = torch.nn.functional.grid_sample(x, 2 * pts.unsqueeze(2) - 1, align_corners=False).squeeze(3)
    err = (ours - ref).abs().max().item()
    print(f"> 2^31 elements: max |cubeops - grid_sample| = {err:.3e} over {ours.numel()} outputs "
          f"(last batch item included: {(ours[-1] - ref[-1]).abs().max().item():.3e})")
    xg = x[-1:].requires_grad_()  # backward on the last item only (memory)
    del ours, ref
    free, total = torch.cuda.mem_get_info()
    print(f"free {free / 2**30:.1f} of {total / 2**30:.1f} GiB")
    try:
        huge = torch.empty(int(free * 2) // 4, device=dev)
        cubeops.point_sample(huge.view(1, 1, 1, -1), pts[:1])
        print("unexpected: the huge allocation succeeded")
    except torch.cuda.OutOfMemoryError as e:
        print(f"OutOfMemoryError as expected: {str(e).splitlines()[0][:100]}")
    small = cubeops.point_sample(torch.ones(1, 1, 4, 4, device=dev), torch.full((1, 3, 2), 0.5, device=dev))
    print(f"after the OOM: point_sample still works: {small.flatten().tolist()}")
    del xg


if __name__ == "__main__":
    main()
