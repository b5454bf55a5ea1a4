"""cubeops.point_sample against torch's grid_sample (mmcv's own formula), on CPU; the CUDA
variants run where a GPU is present."""

import pytest
import torch

import cubeops
from reference import forward_and_grads, grid_sample_point_sample

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def make(n, c, h, w, points_shape, dtype=torch.float64, device="cpu", seed=0, lo=-0.2, hi=1.2):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    p = lo + (hi - lo) * torch.rand(n, *points_shape, 2, generator=gen, dtype=torch.float64)
    return x.to(device, dtype), p.to(device, dtype)


def assert_matches_grid_sample(x, p, align_corners, rtol, atol):
    got = forward_and_grads(cubeops.point_sample, x, p, align_corners=align_corners)
    # The reference runs in float64 on the same (rounded) values.
    want = forward_and_grads(
        grid_sample_point_sample, x.double(), p.double(), grad_dtype=x.dtype, align_corners=align_corners
    )
    for name, g, w in zip(("output", "grad_input", "grad_points"), got, want):
        assert g.dtype == x.dtype and g.shape == w.shape, name
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("points_shape", [(37,), (4, 6)], ids=["points3d", "points4d"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_matches_grid_sample(device, align_corners, points_shape, layout, dtype, tol):
    x, p = make(2, 5, 9, 7, points_shape, dtype, device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    assert_matches_grid_sample(x, p, align_corners, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(device, dtype):
    x, p = make(2, 4, 6, 5, (29,), dtype, device, seed=3)
    assert_matches_grid_sample(x, p, False, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_strided_and_offset_inputs(device):
    """Non-contiguous points, a sliced input with a storage offset, expanded grad_output."""
    big, _ = make(3, 6, 10, 8, (1,), torch.float64, device, seed=5)
    x = big[1:, 1:5, 2:, :]  # storage offset, non-contiguous
    _, p_mem = make(2, 1, 1, 1, (23,), torch.float64, device, seed=6)
    p = p_mem.transpose(1, 2).contiguous().transpose(1, 2)  # (2, 23, 2) over transposed memory
    assert not p.is_contiguous() and x.storage_offset() > 0
    assert_matches_grid_sample(x, p, True, rtol=1e-10, atol=1e-10)


def test_gradcheck():
    for align_corners in (False, True):
        for points_shape in ((13,), (3, 4)):
            x, p = make(2, 3, 5, 6, points_shape, seed=7, lo=0.05, hi=0.95)
            x.requires_grad_()
            p.requires_grad_()
            assert torch.autograd.gradcheck(lambda a, b: cubeops.point_sample(a, b, align_corners), (x, p))


def test_opcheck():
    """torch.library's own checks of the registrations: schema, fake tensors, autograd."""
    from cubeops.ops import point_sample as ops

    x, p = make(2, 3, 5, 6, (11,), seed=8)
    g = torch.randn(2, 3, 11, dtype=torch.float64)
    torch.library.opcheck(ops._forward, (x.requires_grad_(), p.requires_grad_(), False))
    torch.library.opcheck(ops._grad_input, (g, x.detach(), p.detach(), True))
    torch.library.opcheck(ops._grad_points, (g, x.detach(), p.detach(), True))


def test_torch_compile_fullgraph():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Conv2d(3, 4, 1).double()

        def forward(self, x, p):
            return cubeops.point_sample(self.proj(x), p, align_corners=False).sum(dim=1)

    head = Head()
    x, p = make(2, 3, 8, 8, (16,), seed=9)
    eager = head(x, p)
    compiled = torch.compile(head, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, p), eager)
    p.requires_grad_()
    compiled(x, p).sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


def test_empty_points():
    x, p = make(2, 3, 4, 5, (0,))
    x.requires_grad_()
    out = cubeops.point_sample(x, p)
    assert out.shape == (2, 3, 0)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_non_finite_points_sample_zero():
    """NaN, +-inf and huge points are off the map: 0, zero gradients (torch's CUDA kernel;
    torch's CPU kernel gives NaN for NaN and inf)."""
    x = torch.arange(16.0, dtype=torch.float64).reshape(1, 1, 4, 4).requires_grad_()
    nan, inf = float("nan"), float("inf")
    p = torch.tensor([[[nan, 0.5], [0.5, nan], [inf, 0.5], [-inf, 0.5], [1e300, 0.5], [0.3, 0.6]]], dtype=torch.float64)
    p.requires_grad_()
    out = cubeops.point_sample(x, p)
    assert torch.equal(out[0, 0, :5], torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(out[0, 0, 5], grid_sample_point_sample(x, p[:, 5:])[0, 0, 0])
    out.sum().backward()
    assert torch.equal(p.grad[0, :5], torch.zeros(5, 2, dtype=torch.float64))
    assert torch.isfinite(x.grad).all()


BAD_INPUTS = [
    ("input", lambda x, p: ([1.0], p), TypeError, "`input` must be a torch.Tensor"),
    ("points", lambda x, p: (x, None), TypeError, "`points` must be a torch.Tensor"),
    ("input", lambda x, p: (x[0], p), ValueError, "`input` must be 4-D"),
    ("points", lambda x, p: (x, p[..., :1]), ValueError, "`points` must be (N, P, 2)"),
    ("points", lambda x, p: (x, p[0]), ValueError, "`points` must be (N, P, 2)"),
    ("points", lambda x, p: (x, p[:1]), ValueError, "`points` has batch size 1"),
    ("input", lambda x, p: (x[:, :, :0], p), ValueError, "non-empty H and W"),
    ("input", lambda x, p: (x.int(), p), TypeError, "`input` must be float16"),
    ("points", lambda x, p: (x, p.float()), TypeError, "`points` has dtype torch.float32"),
    ("points", lambda x, p: (x, p.to("meta")), ValueError, "`points` is on meta"),
]


@pytest.mark.parametrize("arg,bad,exc,message", BAD_INPUTS, ids=[m for _, _, _, m in BAD_INPUTS])
def test_bad_input_raises(arg, bad, exc, message):
    x, p = make(2, 3, 4, 5, (6,))
    with pytest.raises(exc, match=None) as info:
        cubeops.point_sample(*bad(x, p))
    assert message in str(info.value) and f"`{arg}`" in str(info.value)


def test_bridge_rejects_memory_it_cannot_reach():
    """The Rust side checks descriptions itself: a shape claiming more memory than the
    storage holds is a ValueError, not a read out of bounds."""
    from cubeops import _native
    from cubeops._bridge import describe

    x, p = make(1, 2, 3, 3, (4,))
    out = torch.empty(1, 2, 4, dtype=torch.float64)
    ptr, shape, strides, dtype, device, available = describe(x)
    lying = (ptr, (1, 2, 30, 3), strides, dtype, device, available)
    with pytest.raises(ValueError, match="`input`: shape .* reaches past"):
        _native.point_sample_forward(lying, describe(p), describe(out), False, 0)
    with pytest.raises(TypeError, match="`points` has dtype"):
        _native.point_sample_forward(describe(x), describe(p.float()), describe(out), False, 0)


@pytest.mark.parametrize("device", DEVICES)
def test_eager_path_equals_custom_op(device):
    """Eager calls skip torch.library's dispatch; the custom op (used under torch.compile)
    must give the very same values and gradients."""
    x, p = make(2, 3, 6, 5, (21,), torch.float32, device, seed=11)
    eager = forward_and_grads(cubeops.point_sample, x, p, align_corners=True)
    op = forward_and_grads(lambda a, b, align_corners: torch.ops.cubeops.point_sample(a, b, align_corners), x, p, align_corners=True)
    assert torch.equal(eager[0], op[0])
    # The input gradient adds with float atomics on CUDA: equal up to the order of additions.
    for e, o in zip(eager[1:], op[1:]):
        torch.testing.assert_close(e, o, rtol=1e-6, atol=1e-7)
