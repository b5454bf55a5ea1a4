"""point_sample under torch.autocast on CUDA: float16/bfloat16 maps are read as they are, with
float32 points, into a float32 result (grid_sample's autocast contract, without its float32
copy of the map); the map's gradient comes back in its dtype, the points' in float32."""

import pytest
import torch

import cubeops
from reference import grid_sample_point_sample

pytestmark = pytest.mark.cuda

LOW = [torch.float16, torch.bfloat16]
SAMPLINGS = [{}, dict(align_corners=True), dict(mode="nearest", padding_mode="border"),
             dict(padding_mode="reflection", align_corners=True)]
# One unit in the last place of the dtype's 1.0: the gradient is a float32 sum rounded once.
ULP = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def _case(dtype, channels_last, seed=5, c=12, points_dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, 17, 23, generator=gen).to("cuda", dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # Some points off the map, for the paddings.
    p = (torch.rand(2, 301, 2, generator=gen) * 1.3 - 0.15).to("cuda", points_dtype)
    g = torch.randn(2, c, 301, generator=gen).to("cuda")
    return x.requires_grad_(), p.requires_grad_(), g


def _reference(x, p, g, **sampling):
    """float64 grid_sample on the very values the kernels read, and its gradients (on the
    CPU: torch's CUDA backward refuses deterministic mode)."""
    xr = x.detach().cpu().double().requires_grad_()
    pr = p.detach().cpu().double().requires_grad_()
    out = grid_sample_point_sample(xr, pr, **sampling)
    return tuple(t.to(x.device) for t in (out, *torch.autograd.grad(out, (xr, pr), g.cpu().double())))


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=str)
def test_autocast_matches_float64(dtype, channels_last, sampling):
    x, p, g = _case(dtype, channels_last)
    with torch.autocast("cuda", dtype=dtype):
        out = cubeops.point_sample(x, p, **sampling)
    gx, gp = torch.autograd.grad(out, (x, p), g)
    want, want_gx, want_gp = _reference(x, p, g, **sampling)
    # Computed in float32 from the exact 16-bit values: float32's error, not the dtype's.
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    assert gx.dtype == dtype and gp.dtype == torch.float32
    assert gx.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(gx.double(), want_gx, rtol=ULP[dtype], atol=1e-4)
    torch.testing.assert_close(gp.double(), want_gp, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", LOW)
def test_autocast_converts_low_precision_points(dtype):
    """16-bit points become float32 (as autocast makes grid_sample's grid); so does their gradient."""
    x, p, g = _case(dtype, False, seed=8, points_dtype=dtype)
    with torch.autocast("cuda", dtype=dtype):
        out = cubeops.point_sample(x, p)
    gx, gp = torch.autograd.grad(out, (x, p), g)
    want, want_gx, want_gp = _reference(x, p, g)
    assert out.dtype == torch.float32 and gx.dtype == dtype and gp.dtype == dtype
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gp.double(), want_gp, rtol=ULP[dtype], atol=ULP[dtype])


def test_autocast_without_float32_copy_of_the_map():
    """A 64 MiB bfloat16 map: the forward allocates far less than its 128 MiB float32 copy,
    which grid_sample under autocast (mmcv's point_sample) does allocate."""
    x = torch.randn(2, 256, 256, 256, device="cuda", dtype=torch.bfloat16)
    p = torch.rand(2, 2048, 2, device="cuda")
    copy = x.numel() * 4

    def peak(fn):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fn(x, p)  # compiled, cached
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
            out = fn(x, p)
            torch.cuda.synchronize()
        assert out.dtype == torch.float32
        return torch.cuda.max_memory_allocated() - start

    ours, theirs = peak(cubeops.point_sample), peak(grid_sample_point_sample)
    assert theirs >= copy, f"grid_sample allocated {theirs / 2**20:.1f} MiB"
    assert ours < copy / 8, f"point_sample allocated {ours / 2**20:.1f} MiB"


@pytest.mark.parametrize("channels_last", [False, True])
def test_autocast_deterministic_backward(deterministic_algorithms, channels_last):
    """The kernel without atomics under autocast: the same bits on every run, float64's values."""
    x, p, g = _case(torch.bfloat16, channels_last, seed=9, c=40)
    runs = []
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = cubeops.point_sample(x, p)
        runs.append(torch.autograd.grad(out, x, g)[0])
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    _, want_gx, _ = _reference(x, p, g)
    torch.testing.assert_close(runs[0].double(), want_gx, rtol=ULP[torch.bfloat16], atol=1e-4)


@pytest.mark.parametrize("points_grad", [True, False])
def test_autocast_wide_nchw_scatter_channels_last(points_grad, monkeypatch):
    """The channels-last scatter of wide NCHW maps (sm_90+) under autocast: float32
    grad_output, bfloat16 map, float32 points."""
    from cubeops.ops import point_sample as ops

    monkeypatch.setattr(ops, "CHANNELS_LAST_SCATTER_MIN_ADDS", 0)
    monkeypatch.setattr(ops, "SHARED_SUMS", False)  # which the scatter gives way to
    x, p, g = _case(torch.bfloat16, False, seed=10, c=64)
    p.requires_grad_(points_grad)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = cubeops.point_sample(x, p)
    if torch.cuda.get_device_capability()[0] >= 9:
        assert ops._scatter_channels_last(x, p.shape[1])
    grads = torch.autograd.grad(out, (x, p) if points_grad else (x,), g)
    _, want_gx, want_gp = _reference(x, p, g)
    torch.testing.assert_close(grads[0].double(), want_gx, rtol=ULP[torch.bfloat16], atol=1e-4)
    assert grads[0].dtype == torch.bfloat16 and grads[0].is_contiguous()
    if points_grad:
        torch.testing.assert_close(grads[1].double(), want_gp, rtol=1e-4, atol=1e-4)


def test_mixed_dtypes_need_autocast():
    """Outside autocast point_sample wants one dtype, as grid_sample does."""
    x, p, _ = _case(torch.bfloat16, False)
    with pytest.raises(TypeError, match="`points` has dtype torch.float32, `input` has torch.bfloat16"):
        cubeops.point_sample(x, p)
