"""Where a cubeops forward+backward spends its time on the GPU machine (torch.profiler), next
to F.grid_sample's: the starting point of the performance work. Not a test.

    python tests/python/profile_point_sample.py
"""

import torch
from torch.profiler import ProfilerActivity, profile

import cubeops
from reference import grid_sample_point_sample


def main():
    dev = torch.device("cuda")
    x = torch.randn(2, 19, 200, 200, device=dev, requires_grad=True)
    p = torch.rand(2, 8192, 2, device=dev, requires_grad=True)
    g = torch.randn(2, 19, 8192, device=dev)
    for name, fn in (("cubeops", cubeops.point_sample), ("grid_sample", grid_sample_point_sample)):
        for _ in range(5):
            torch.autograd.grad(fn(x, p), (x, p), g)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                torch.autograd.grad(fn(x, p), (x, p), g)
            torch.cuda.synchronize()
        print(f"=== {name}: 10 x forward+backward, (2, 19, 200x200), P=8192")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=8, max_name_column_width=60))


if __name__ == "__main__":
    main()
