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


SAMPLINGS = [(m, pad) for m in ("bilinear", "nearest") for pad in ("zeros", "border", "reflection")]
SAMPLING_IDS = [f"{m}-{pad}" for m, pad in SAMPLINGS]


def assert_matches_grid_sample(x, p, align_corners, rtol, atol, **modes):
    got = forward_and_grads(cubeops.point_sample, x, p, align_corners=align_corners, **modes)
    # The reference runs in float64 on the same (rounded) values.
    want = forward_and_grads(
        grid_sample_point_sample, x.double(), p.double(), grad_dtype=x.dtype, align_corners=align_corners, **modes
    )
    for name, g, w in zip(("output", "grad_input", "grad_points"), got, want):
        assert g.dtype == x.dtype and g.shape == w.shape, name
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("points_shape", [(37,), (4, 6)], ids=["points3d", "points4d"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("mode,padding_mode", SAMPLINGS, ids=SAMPLING_IDS)
def test_matches_grid_sample(device, align_corners, points_shape, layout, dtype, tol, mode, padding_mode):
    # Border and reflection: points up to two map widths away (several mirror images).
    lo, hi = (-0.2, 1.2) if padding_mode == "zeros" else (-2.0, 3.0)
    x, p = make(2, 5, 9, 7, points_shape, dtype, device, lo=lo, hi=hi)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    assert_matches_grid_sample(x, p, align_corners, rtol=tol, atol=tol, mode=mode, padding_mode=padding_mode)


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


@pytest.mark.parametrize("mode,padding_mode", SAMPLINGS, ids=SAMPLING_IDS)
def test_gradcheck(mode, padding_mode):
    # Nearest is piecewise constant in the points: only the input's gradient is checked.
    lo, hi = (0.05, 0.95) if padding_mode == "zeros" else (-1.3, 2.3)
    for align_corners in (False, True):
        for points_shape in ((13,), (3, 4)):
            x, p = make(2, 3, 5, 6, points_shape, seed=7, lo=lo, hi=hi)
            x.requires_grad_()
            p.requires_grad_(mode == "bilinear")
            fn = lambda a, b: cubeops.point_sample(a, b, align_corners, mode=mode, padding_mode=padding_mode)  # noqa: E731
            assert torch.autograd.gradcheck(fn, (x, p))


@pytest.mark.parametrize("sampling", [(False, "bilinear", "zeros"), (True, "nearest", "reflection"), (False, "bilinear", "border")])
def test_opcheck(sampling):
    """torch.library's own checks of the registrations: schema, fake tensors, autograd."""
    from cubeops.ops import point_sample as ops

    x, p = make(2, 3, 5, 6, (11,), seed=8)
    g = torch.randn(2, 3, 11, dtype=torch.float64)
    torch.library.opcheck(ops._forward, (x.requires_grad_(), p.requires_grad_(), *sampling))
    torch.library.opcheck(ops._grad_input, (g, x.detach(), p.detach(), *sampling))
    torch.library.opcheck(ops._grad_points, (g, x.detach(), p.detach(), *sampling))


def test_nearest_gives_points_zero_gradient():
    x, p = make(1, 2, 4, 4, (9,), seed=12)
    p.requires_grad_()
    out = cubeops.point_sample(x, p, mode="nearest")
    (grad,) = torch.autograd.grad(out.sum(), p)
    assert torch.equal(grad, torch.zeros_like(p))


@pytest.mark.parametrize("kwargs,message", [
    ({"mode": "bicubic"}, "`mode` must be one of ('bilinear', 'nearest'), got 'bicubic'"),
    ({"padding_mode": "wrap"}, "`padding_mode` must be one of ('zeros', 'border', 'reflection'), got 'wrap'"),
])
def test_unsupported_modes_raise(kwargs, message):
    x, p = make(1, 1, 2, 2, (3,))
    with pytest.raises(ValueError) as info:
        cubeops.point_sample(x, p, **kwargs)
    assert message in str(info.value)
    with pytest.raises(TypeError, match="interpolation"):
        cubeops.point_sample(x, p, interpolation="bilinear")


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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["border", "reflection"])
def test_non_finite_points_with_padding(device, mode, padding_mode):
    """torch's CUDA rules (test_cuda checks them against torch on the GPU; torch's CPU kernel
    reads out of bounds here): a position that is NaN after padding reads pixel 0 and gets
    and gives no gradient; under border, +-inf is clamped to the edge like any far point."""
    x = torch.arange(16.0, dtype=torch.float64, device=device).reshape(1, 1, 4, 4).requires_grad_()
    nan, inf = float("nan"), float("inf")
    p = torch.tensor([[[nan, 0.6], [0.6, nan], [inf, 0.6], [-inf, 0.6]]], dtype=torch.float64, device=device)
    p.requires_grad_()
    out = cubeops.point_sample(x, p, mode=mode, padding_mode=padding_mode)
    # The NaN axis reads pixel 0 (x = 0 / y = 0); the other axis is sampled as usual.
    at = lambda q: grid_sample_point_sample(x.detach(), q, mode=mode, padding_mode=padding_mode)[0, 0, 0]  # noqa: E731
    pixel0 = 0.5 / 4  # normalised position of pixel 0 with align_corners=False
    t = lambda *v: torch.tensor([[v]], dtype=torch.float64, device=device)  # noqa: E731
    want = [at(t(pixel0, 0.6)), at(t(0.6, pixel0))]
    if padding_mode == "border":
        want += [at(t(1e6, 0.6)), at(t(-1e6, 0.6))]
    else:  # inf reflects to NaN
        want += [at(t(pixel0, 0.6))] * 2
    torch.testing.assert_close(out[0, 0], torch.stack(want))
    out.sum().backward()
    assert torch.equal(p.grad[0, :2], torch.zeros_like(p.grad[0, :2]))
    if padding_mode == "border":
        # The clamped infinite points give gradients like any far point: to the input, and to
        # their finite y coordinate.
        far = torch.cat([t(1e6, 0.6), t(-1e6, 0.6)], dim=1).requires_grad_()
        want_gx, want_gp = torch.autograd.grad(
            grid_sample_point_sample(x, far, mode=mode, padding_mode="border").sum(), (x, far), allow_unused=True)
        torch.testing.assert_close(x.grad, want_gx)
        torch.testing.assert_close(p.grad[:, 2:], want_gp if want_gp is not None else torch.zeros_like(far))
    else:
        assert torch.equal(p.grad, torch.zeros_like(p))
        assert torch.equal(x.grad, torch.zeros_like(x))


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
        _native.point_sample_forward(lying, describe(p), describe(out), False, "bilinear", "zeros", 0)
    with pytest.raises(TypeError, match="`points` has dtype"):
        _native.point_sample_forward(describe(x), describe(p.float()), describe(out), False, "bilinear", "zeros", 0)
    # float32 points with a 16-bit map are autocast's case, for the CUDA kernels only.
    low, out32 = x.bfloat16(), out.float()
    with pytest.raises(TypeError, match="`points` has dtype float32, `input` has bfloat16"):
        _native.point_sample_forward(describe(low), describe(p.float()), describe(out32), False, "bilinear", "zeros", 0)
    with pytest.raises(TypeError, match="`output` has dtype float64, `points` has float32"):
        _native.point_sample_forward(describe(x.float()), describe(p.float()), describe(out), False, "bilinear", "zeros", 0)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros', 'border' or 'reflection', got 'wrap'"):
        _native.point_sample_forward(describe(x), describe(p), describe(out), False, "bilinear", "wrap", 0)


@pytest.mark.parametrize("device", DEVICES)
def test_eager_path_equals_custom_op(device):
    """Eager calls skip torch.library's dispatch; the custom op (used under torch.compile)
    must give the very same values and gradients."""
    x, p = make(2, 3, 6, 5, (21,), torch.float32, device, seed=11)
    eager = forward_and_grads(cubeops.point_sample, x, p, align_corners=True)
    op = forward_and_grads(
        lambda a, b, align_corners: torch.ops.cubeops.point_sample(a, b, align_corners, "bilinear", "zeros"),
        x, p, align_corners=True,
    )
    assert torch.equal(eager[0], op[0])
    # The input gradient adds with float atomics on CUDA: equal up to the order of additions.
    for e, o in zip(eager[1:], op[1:]):
        torch.testing.assert_close(e, o, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("points_shape", [(21,), (3, 7)], ids=["points3d", "points4d"])
def test_no_grad_path_equals_autograd_path(device, points_shape):
    """Calls with nothing to differentiate skip the autograd Function (host time): the same
    values, and an output that does not require grad."""
    x, p = make(2, 3, 6, 5, points_shape, torch.float32, device, seed=13)
    with_graph = cubeops.point_sample(x.clone().requires_grad_(), p)
    with torch.no_grad():
        no_grad = cubeops.point_sample(x.clone().requires_grad_(), p)
    plain = cubeops.point_sample(x, p)
    assert with_graph.requires_grad and not no_grad.requires_grad and not plain.requires_grad
    assert torch.equal(with_graph.detach(), no_grad) and torch.equal(no_grad, plain)
    want = grid_sample_point_sample(x.double(), p.double())
    torch.testing.assert_close(plain.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_mode(device):
    """torch.use_deterministic_algorithms(True) selects the kernel without float atomics on
    CUDA (the CPU kernel has none): same gradients as grid_sample, the same bits twice."""
    x, p = make(2, 5, 7, 6, (300,), dtype=torch.float32, device=device, seed=4)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = forward_and_grads(cubeops.point_sample, x, p)
        again = forward_and_grads(cubeops.point_sample, x, p)
    finally:
        torch.use_deterministic_algorithms(before)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    want = forward_and_grads(grid_sample_point_sample, x.double(), p.double(), grad_dtype=x.dtype)
    for name, g, w in zip(("output", "grad_input", "grad_points"), first, want):
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("wanted", ["input", "points"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_one_gradient_only(device, wanted, mode):
    """The eager backward computes only the gradients autograd asks for (one bridge call
    with the other buffer left out)."""
    x, p = make(2, 3, 5, 6, (17,), device=device, seed=6)
    (x if wanted == "input" else p).requires_grad_()
    leaf = x if wanted == "input" else p
    g = torch.randn(2, 3, 17, dtype=x.dtype, device=device)
    (got,) = torch.autograd.grad(cubeops.point_sample(x, p, mode=mode), leaf, g)
    (want,) = torch.autograd.grad(grid_sample_point_sample(x, p, mode=mode), leaf, g)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
