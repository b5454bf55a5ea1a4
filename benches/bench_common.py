"""What the Python benchmarks share: one timing sample of back-to-back calls, matplotlib on
the Agg backend (or a message when it is missing) and the speed-up axis (log scale, ticks as
'2x', the 1.0x line)."""

import time


def seconds_per_call(fn, batch, cuda):
    """One sample: `batch` back-to-back calls between two CUDA events (on the CPU, the clock),
    divided by `batch`: the steady state of a training loop, where the host queues work ahead
    of the GPU (a small call costs its host time, a large one its GPU time)."""
    import torch

    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(batch):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / batch
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - start) / batch


def pyplot(path, hint=""):
    """matplotlib.pyplot, or None (after saying that `path` is not drawn) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed: no {path}{hint}")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def limits(values):
    """x range for these speed-ups: at least 0.5x .. 2x, with room around the extremes."""
    return min(0.8 * min(values), 0.5), max(1.25 * max(values), 2.0)


def speedup_axis(ax, lo, hi, ticks=(0.125, 0.25, 0.5, 1, 2, 4, 8, 16)):
    """Log x axis from lo to hi, ticks labelled '2x', the 1.0x line (right of it: faster)."""
    import matplotlib.ticker

    ax.axvline(1.0, color="black", linewidth=1.0)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    shown = [t for t in ticks if lo <= t <= hi]
    ax.set_xticks(shown, [f"{t:g}x" for t in shown])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(axis="x", which="both", alpha=0.3)
