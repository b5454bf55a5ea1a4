"""Where a cubeops forward+backward spends its time on the GPU machine (torch.profiler), next
to F.grid_sample's: the starting point of the performance work. Not a test.

    python tests/python/profile_point_sample.py [--shape N C H W P] [--channels-last]
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import cubeops
from reference import grid_sample_point_sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=5, default=[2, 19, 200, 200, 8192], metavar=("N", "C", "H", "W", "P"))
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    n, c, h, w, num_points = args.shape
    dev = torch.device("cuda")
    x = torch.randn(n, c, h, w, device=dev)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    p = torch.rand(n, num_points, 2, device=dev, requires_grad=True)
    for name, fn in (("cubeops", cubeops.point_sample), ("grid_sample", grid_sample_point_sample)):
        g = torch.randn_like(fn(x, p))
        for _ in range(5):
            torch.autograd.grad(fn(x, p), (x, p), g)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                torch.autograd.grad(fn(x, p), (x, p), g)
            torch.cuda.synchronize()
        layout = "channels-last" if args.channels_last else "NCHW"
        print(f"=== {name}: 10 x forward+backward, {tuple(args.shape)} {layout}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=8, max_name_column_width=60))


if __name__ == "__main__":
    main()
