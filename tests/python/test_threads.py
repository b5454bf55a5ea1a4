"""8 Python threads calling point_sample (forward + backward) and psamask at once give the
same results as one thread, with no deadlock: the native calls release the GIL while the
kernels run. CUBEOPS_THREAD_SECONDS sets how long (default 3 s here; 10 s on the GPU machine)."""

import os
import threading
import time

import pytest
import torch

import cubeops

SECONDS = float(os.environ.get("CUBEOPS_THREAD_SECONDS", "3"))
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _work(device, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 20, 24, dtype=torch.float64, generator=gen).to(device).requires_grad_()
    p = torch.rand(2, 300, 2, dtype=torch.float64, generator=gen).to(device).requires_grad_()
    m = torch.randn(1, 25, 6, 7, dtype=torch.float64, generator=gen).to(device)
    return x, p, m


def _run(x, p, m):
    out = cubeops.point_sample(x, p)
    gx, gp = torch.autograd.grad(out.square().sum(), (x, p))
    return out.detach(), gx, gp, cubeops.psamask(m, "distribute", 5)


@pytest.mark.parametrize("device", DEVICES)
def test_eight_threads(device):
    inputs = [_work(device, seed) for seed in range(8)]
    expected = [_run(*args) for args in inputs]
    errors, calls = [], [0] * 8
    deadline = time.monotonic() + SECONDS

    def worker(i):
        try:
            stream = torch.cuda.Stream() if device == "cuda" else None
            while time.monotonic() < deadline:
                if stream is not None:
                    with torch.cuda.stream(stream):
                        got = _run(*inputs[i])
                    stream.synchronize()
                else:
                    got = _run(*inputs[i])
                for a, b in zip(got, expected[i]):
                    # Gradients add with atomics on CUDA: equal up to the order of additions.
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
                calls[i] += 1
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    assert not errors, errors[:3]
    assert all(c > 0 for c in calls), calls
    print(f"{device}: {sum(calls)} calls in {SECONDS} s across 8 threads")
