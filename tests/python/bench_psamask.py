"""PSAMask forward + backward time: cubeops vs a pure-PyTorch PSAMask written from the
definition (index gather/scatter), same tensors, CUDA events, medians. mmcv's compiled
PSAMask cannot be built on the machines at hand, so this is the stand-in.

    python tests/python/bench_psamask.py [--repeat 50]
"""

import argparse
import statistics

import torch

import cubeops


def torch_psamask(psa_type, h, w, mh, mw, device):
    """The pure-PyTorch module: index lists from the definition, then out[:, dst] = in[:, src]."""
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2
    y, x, i, j = torch.meshgrid(torch.arange(h), torch.arange(w), torch.arange(mh), torch.arange(mw), indexing="ij")
    ty, tx = y + i - half_h, x + j - half_w
    keep = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    y, x, i, j, ty, tx = (t[keep] for t in (y, x, i, j, ty, tx))
    src = ((i * mw + j) * h + y) * w + x
    dst = ((ty * w + tx) * h + y) * w + x if psa_type == "collect" else ((y * w + x) * h + ty) * w + tx
    src, dst = src.to(device), dst.to(device)

    def run(mask):
        n = mask.shape[0]
        out = mask.new_zeros((n, h * w * h * w))
        out = out.index_copy(1, dst, mask.reshape(n, -1).index_select(1, src))
        return out.reshape(n, h * w, h, w)

    return run


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}; medians of {args.repeat}, ms")
    print(f"{'shape (N, mask, H, W)':>28} {'type':>10} {'dtype':>9} {'cubeops fwd':>11} {'torch fwd':>9} "
          f"{'cubeops f+b':>11} {'torch f+b':>9} {'speed-up f+b':>12}")
    # PSANet on Cityscapes-like crops (mask 2H-1) and DiffBEV-like 200x200 BEV at 1/8, 1/4.
    for n, h, w, mh, mw in [(2, 32, 64, 63, 127), (4, 25, 25, 49, 49), (2, 50, 50, 99, 99), (2, 64, 64, 15, 15)]:
        for psa_type in ["collect", "distribute"]:
            for dtype in [torch.float32, torch.bfloat16]:
                x = torch.randn(n, mh * mw, h, w, device=device, dtype=dtype, requires_grad=True)
                ref = torch_psamask(psa_type, h, w, mh, mw, device)
                out = ref(x)
                assert torch.equal(cubeops.psamask(x, psa_type, (mh, mw)), out), "results differ"
                g = torch.randn_like(out)
                ours = lambda: cubeops.psamask(x, psa_type, (mh, mw))  # noqa: E731
                theirs = lambda: ref(x)  # noqa: E731
                both = [timed(lambda f=f: torch.autograd.grad(f(), x, g), 3) for f in (ours, theirs)]  # warm-up
                fwd = [timed(f, args.repeat) for f in (ours, theirs)]
                fb = [timed(lambda f=f: torch.autograd.grad(f(), x, g), args.repeat) for f in (ours, theirs)]
                del both
                label = f"({n}, {mh}x{mw}, {h}, {w})"
                print(f"{label:>28} {psa_type:>10} {str(dtype)[6:]:>9} {fwd[0]:11.3f} {fwd[1]:9.3f} "
                      f"{fb[0]:11.3f} {fb[1]:9.3f} {fb[1] / fb[0]:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
