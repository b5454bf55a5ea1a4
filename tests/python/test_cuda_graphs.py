"""CUDA graphs: forward + backward through cubeops captured with torch.cuda.graph and
replayed on new inputs give what eager calls give."""

import pytest
import torch

import cubeops


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_capture_and_replay(dtype):
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 30, 40, generator=gen).to(dev, dtype).requires_grad_()
    p = torch.rand(2, 500, 2, generator=gen).to(dev, dtype).requires_grad_()
    m = torch.randn(2, 9, 10, 12, generator=gen).to(dev, dtype).requires_grad_()

    def step():
        out = cubeops.point_sample(x, p)
        att = cubeops.psamask(m, "collect", 3)
        loss = out.float().square().sum() + att.float().sum() * 0.5
        return torch.autograd.grad(loss, (x, p, m))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up: kernels compiled and loaded before capture
            step()
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_grads = step()

    for trial in range(3):
        new = torch.Generator().manual_seed(100 + trial)
        with torch.no_grad():
            x.copy_(torch.randn(x.shape, generator=new).to(dev, dtype))
            p.copy_(torch.rand(p.shape, generator=new).to(dev, dtype))
            m.copy_(torch.randn(m.shape, generator=new).to(dev, dtype))
        graph.replay()
        torch.cuda.synchronize()
        eager = step()
        for a, b in zip(static_grads, eager):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
