"""CUDA-only properties of the bridge: zero copy, the caller's stream, any device index."""

import pytest
import torch

import cubeops
from reference import grid_sample_point_sample

pytestmark = pytest.mark.cuda


def test_no_copy_of_inputs():
    """A 1 GiB input: device memory drops by the output only (cuMemGetInfo), so neither the
    input nor the points were copied."""
    dev = torch.device("cuda")
    p = torch.rand(2, 1000, 2, device=dev)
    cubeops.point_sample(torch.randn(2, 4, 8, 8, device=dev), p)  # compile + cubecl set-up
    x = torch.randn(2, 256, 1024, 512, device=dev)  # 1 GiB
    torch.cuda.synchronize()
    free_before, _ = torch.cuda.mem_get_info()
    out = cubeops.point_sample(x, p)
    torch.cuda.synchronize()
    free_after, _ = torch.cuda.mem_get_info()
    dropped = free_before - free_after
    assert dropped < 64 * 2**20, f"device memory dropped by {dropped / 2**20:.1f} MiB"
    # Against float64: on a 512-px map torch's own float32 grid_sample is off by ~1e-4 here.
    want = grid_sample_point_sample(x.double(), p.double())
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_runs_on_the_current_stream():
    """Inputs are rewritten on a side stream behind a long GPU sleep: only kernels queued on
    that same stream see the new values, and the side stream is still asleep when the calls
    return (nothing synchronised)."""
    s = torch.cuda.Stream()
    x = torch.randn(1, 3, 16, 16, device="cuda", requires_grad=True)
    new = torch.randn_like(x)
    p = torch.rand(1, 50, 2, device="cuda", requires_grad=True)
    for _ in range(2):  # compile every kernel of this variant first
        torch.autograd.grad(cubeops.point_sample(x, p).sum(), (x, p))
    torch.cuda.synchronize()
    with torch.cuda.stream(s):
        torch.cuda._sleep(1_000_000_000)  # about half a second of GPU time on the side stream
        with torch.no_grad():
            x.copy_(new)
        out = cubeops.point_sample(x, p)
        grad_x, grad_p = torch.autograd.grad(out, (x, p), torch.ones_like(out))
    assert not s.query(), "the side stream finished early: something synchronised"
    s.synchronize()
    want = grid_sample_point_sample(new.double(), p.double())
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(grad_x).all() and torch.isfinite(grad_p).all()


@pytest.mark.parametrize("index", range(torch.cuda.device_count()) if torch.cuda.is_available() else [0])
def test_each_device_index(index):
    dev = torch.device("cuda", index)
    x = torch.randn(2, 5, 9, 7, device=dev, dtype=torch.float64)
    p = torch.rand(2, 40, 2, device=dev, dtype=torch.float64)
    torch.testing.assert_close(cubeops.point_sample(x, p), grid_sample_point_sample(x, p))


def test_gradcheck_cuda():
    x = torch.randn(2, 3, 5, 6, device="cuda", dtype=torch.float64, requires_grad=True)
    p = (0.05 + 0.9 * torch.rand(2, 13, 2, device="cuda", dtype=torch.float64)).requires_grad_()
    for align_corners in (False, True):
        assert torch.autograd.gradcheck(lambda a, b: cubeops.point_sample(a, b, align_corners), (x, p))


def test_cuda_headers_found():
    from cubeops import _native

    dirs = _native.cuda_include_dirs()
    assert dirs and all((__import__("pathlib").Path(d)).is_dir() for d in dirs)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("width", [4, 1])
def test_non_finite_points_match_torch_cuda(mode, padding_mode, align_corners, width):
    """The rules cubeops follows on every device for NaN / inf / huge points are those of
    torch's CUDA kernels: checked here against torch itself, values and both gradients."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 3, 5, width, generator=gen).cuda().requires_grad_()
    nan, inf = float("nan"), float("inf")
    rows = [[nan, 0.3], [0.3, nan], [inf, 0.3], [-inf, 0.3], [0.3, inf], [nan, nan], [inf, -inf], [0.3, 0.6],
            [1.7, -0.4]]
    if padding_mode != "reflection":  # reflecting 1e30 is rounding noise, in torch too
        rows += [[1e30, 0.3], [-1e30, 0.3]]
    p = torch.tensor([rows]).cuda().requires_grad_()
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    out = cubeops.point_sample(x, p, **kwargs)
    g = torch.randn(out.shape, generator=gen).cuda()
    if padding_mode == "zeros" and mode == "bilinear" and align_corners:
        # Here torch's CUDA kernel answers NaN (with align_corners=False, and in nearest mode,
        # it answers 0); cubeops keeps 0 and no gradient (docs/ops/point_sample.md). Checked
        # as it stands, so a change in torch shows up; the finite points are compared.
        bad = ~torch.isfinite(p[0]).all(dim=-1)
        assert torch.isnan(grid_sample_point_sample(x, p, **kwargs)[0][:, bad]).all()
        assert torch.equal(out[0][:, bad], torch.zeros_like(out[0][:, bad]))
        gx, gp = torch.autograd.grad(out, (x, p), g)
        assert torch.equal(gp[0][bad], torch.zeros_like(gp[0][bad]))
        good = p[:, ~bad].detach().requires_grad_()
        want = grid_sample_point_sample(x, good, **kwargs)
        torch.testing.assert_close(out[:, :, ~bad], want, rtol=1e-5, atol=1e-5)
        ref = torch.autograd.grad(want, (x, good), g[:, :, ~bad])
        torch.testing.assert_close(gx, ref[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gp[:, ~bad], ref[1], rtol=1e-5, atol=1e-5)
        return
    want = grid_sample_point_sample(x, p, **kwargs)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5, equal_nan=True)
    got = torch.autograd.grad(out, (x, p), g)
    ref = torch.autograd.grad(want, (x, p), g)
    for name, a, b in zip(("grad_input", "grad_points"), got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, equal_nan=True, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("sampling", [{}, dict(mode="nearest", padding_mode="border", align_corners=True),
                                      dict(padding_mode="reflection")])
def test_deterministic_backward(deterministic_algorithms, channels_last, dtype, sampling):
    """Under torch.use_deterministic_algorithms(True) (where torch's own grid_sample backward
    raises on CUDA) the gradient to the input is the same bits on every run, and matches the
    float64 reference. Many points share few cells, so float atomics would reorder sums."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 40, 24, 20, generator=gen, dtype=torch.float64)
    p = torch.rand(2, 20000, 2, generator=gen, dtype=torch.float64) * 0.3 + 0.35
    g = torch.randn(2, 40, 20000, generator=gen, dtype=torch.float64)
    x_dev = x.to("cuda", dtype)
    if channels_last:
        x_dev = x_dev.contiguous(memory_format=torch.channels_last)
    x_dev.requires_grad_()
    p_dev = p.to("cuda", dtype)
    runs = [torch.autograd.grad(cubeops.point_sample(x_dev, p_dev, **sampling), x_dev, g.to("cuda", dtype))[0]
            for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    assert runs[0].is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # The reference sees the inputs rounded to dtype, in float64, with torch's CPU kernel.
    xr = x.to(dtype).double().requires_grad_()
    want = torch.autograd.grad(grid_sample_point_sample(xr, p.to(dtype).double(), **sampling), xr,
                               g.to(dtype).double())[0]
    tol = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(runs[0].double().cpu(), want, rtol=tol, atol=tol)
    with pytest.raises(RuntimeError, match="deterministic"):
        grid_sample_point_sample(x_dev.float().detach().requires_grad_(), p_dev.float(), **sampling).sum().backward()


@pytest.mark.parametrize("channels_last,sorted_sums", [(False, False), (True, False), (True, True)])
def test_deterministic_backward_non_finite_and_wide_range(deterministic_algorithms, channels_last, sorted_sums, monkeypatch):
    """The fixed-point path (float32 buffers) and, for channels-last maps, the sorted sums:
    output gradients spanning 1e-6 .. 1e6 keep float32's accuracy (fixed point: relative to
    the largest value; sorted float sums: relative to each cell's sum of magnitudes); infinite
    and NaN ones give the cells they reach what float atomics give (inf, -inf, NaN), the other
    cells their finite sums."""
    from cubeops.ops import point_sample as ops

    monkeypatch.setattr(ops, "SORTED_SUMS", sorted_sums)
    gen = torch.Generator().manual_seed(21)
    x = torch.randn(2, 8, 12, 14, generator=gen, dtype=torch.float64)
    p = torch.rand(2, 3000, 2, generator=gen, dtype=torch.float64)
    g = torch.randn(2, 8, 3000, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-6, 7, (2, 8, 3000), generator=gen)
    x_dev = x.to("cuda", torch.float32)
    if channels_last:
        x_dev = x_dev.contiguous(memory_format=torch.channels_last)
    x_dev.requires_grad_()
    p_dev, g_dev = p.to("cuda", torch.float32), g.to("cuda", torch.float32)

    def grad(g):
        return torch.autograd.grad(cubeops.point_sample(x_dev, p_dev), x_dev, g)[0]

    assert ops._sorted_sums(x_dev, p.shape[1]) == sorted_sums
    got = grad(g_dev)
    xr = x_dev.detach().cpu().double().requires_grad_()  # on the CPU: deterministic mode is on

    def reference(g):
        return torch.autograd.grad(grid_sample_point_sample(xr, p_dev.cpu().double()), xr, g.cpu().double())[0].cuda()

    want = reference(g_dev)
    scale = want.abs().max()
    if sorted_sums:
        # An ordered float32 sum of k terms is within (k - 1) * 2^-24 of their magnitudes' sum
        # (here k < 256 per cell).
        assert ((got.double() - want).abs() <= 256 * 2.0**-24 * reference(g_dev.abs())).all()
    else:
        assert (got.double() - want).abs().max() <= 1e-6 * scale
    # Non-finite output gradients: the same cells non-finite, with the same values, as the
    # float-atomic kernel gives; finite cells as before.
    g_bad = g_dev.clone()
    g_bad[0, 1, 5], g_bad[0, 2, 7], g_bad[1, 3, 9], g_bad[1, 3, 10] = float("inf"), float("nan"), float("inf"), float("-inf")
    got_bad = grad(g_bad)
    torch.use_deterministic_algorithms(False)
    atomic = grad(g_bad)
    torch.use_deterministic_algorithms(True)
    assert torch.equal(torch.isfinite(got_bad), torch.isfinite(atomic)) and not torch.isfinite(got_bad).all()
    assert torch.equal(got_bad[~torch.isfinite(got_bad)].nan_to_num(), atomic[~torch.isfinite(atomic)].nan_to_num())
    finite = torch.isfinite(got_bad)
    torch.testing.assert_close(got_bad[finite], atomic[finite], rtol=1e-5, atol=1e-6 * scale.item())
    assert torch.equal(got_bad.isnan(), atomic.isnan())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, "bfloat16 autocast"])
def test_deterministic_sorted_sums_of_channels_last_maps(deterministic_algorithms, dtype, monkeypatch):
    """Channels-last maps in deterministic mode: corners sorted by cell and summed in order.
    The same bits on every run; float64's values, the map's dtype and layout; both gradients
    (the points' as without determinism); empty problems; the fixed-point path's values."""
    from cubeops.ops import point_sample as ops

    monkeypatch.setattr(ops, "SORTED_SUMS", True)  # opt-in
    autocast = dtype == "bfloat16 autocast"
    map_dtype = torch.bfloat16 if autocast else dtype
    point_dtype = torch.float32 if autocast else dtype
    gen = torch.Generator().manual_seed(5)
    x64 = torch.randn(3, 36, 19, 23, generator=gen, dtype=torch.float64)
    p64 = torch.rand(3, 5000, 2, generator=gen, dtype=torch.float64) * 1.2 - 0.1  # some off the map
    g64 = torch.randn(3, 36, 5000, generator=gen, dtype=torch.float64)
    x = x64.to("cuda", map_dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    p = p64.to("cuda", point_dtype).requires_grad_()
    g = g64.to("cuda", point_dtype)
    assert ops._sorted_sums(x, p.shape[1])

    def grads(x=x, p=p, g=g, **sampling):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            out = cubeops.point_sample(x, p, **sampling)
        return torch.autograd.grad(out, (x, p), g)

    runs = [grads() for _ in range(3)]
    assert all(torch.equal(runs[0][0], r[0]) and torch.equal(runs[0][1], r[1]) for r in runs[1:])
    gx, gp = runs[0]
    assert gx.dtype == map_dtype and gx.is_contiguous(memory_format=torch.channels_last)
    xr = x.detach().cpu().double().requires_grad_()
    pr = p.detach().cpu().double().requires_grad_()
    want_gx, want_gp = torch.autograd.grad(grid_sample_point_sample(xr, pr), (xr, pr), g.cpu().double())
    tol = 1e-5 if map_dtype == torch.float32 else 1e-2
    for name, got, want in (("grad_input", gx, want_gx), ("grad_points", gp, want_gp)):
        scale = want.abs().max().item()
        torch.testing.assert_close(got.double().cpu() / scale, want / scale, rtol=0, atol=tol, msg=lambda m: f"{name}: {m}")
    monkeypatch.setattr(ops, "SORTED_SUMS", False)
    fixed_gx, fixed_gp = grads()
    assert torch.equal(gp, fixed_gp)
    torch.testing.assert_close(gx.float(), fixed_gx.float(), rtol=tol, atol=tol * want_gx.abs().max().item())
    monkeypatch.setattr(ops, "SORTED_SUMS", True)
    # Non-finite output gradients: +inf and -inf into the same cells give NaN, as float sums do.
    g_bad = g.clone()
    p_same = p.detach().clone()
    p_same[0, 1] = p_same[0, 0]
    g_bad[0, 3, 0], g_bad[0, 3, 1], g_bad[2, 0, 7] = float("inf"), float("-inf"), float("nan")
    bad = grads(p=p_same.requires_grad_(), g=g_bad)[0]
    bad_ref = torch.autograd.grad(grid_sample_point_sample(xr, p_same.detach().cpu().double()), xr, g_bad.cpu().double())[0]
    assert bad.isnan().any() and torch.equal(bad.isnan().cpu(), bad_ref.isnan())
    assert torch.equal(bad.isinf().cpu(), bad_ref.isinf())
    # Nothing to sort: no points.
    empty = grads(p=p[:, :0].detach().requires_grad_(), g=g[:, :, :0])[0]
    assert empty.shape == x.shape and not empty.any()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("points_grad", [True, False])
def test_wide_nchw_maps_scatter_channels_last(dtype, tol, points_grad, monkeypatch):
    """NCHW input with C >= 64 on sm_90+ adds its gradient into a channels-last buffer with
    vector atomics (two bridge calls when the points want a gradient too): the gradients
    match float64 grid_sample and come back NCHW in the input's dtype."""
    from cubeops.ops import point_sample as ops

    monkeypatch.setattr(ops, "CHANNELS_LAST_SCATTER_MIN_ADDS", 0)  # taken at this small size too
    monkeypatch.setattr(ops, "SHARED_SUMS", False)  # else summed in shared memory, NCHW
    gen = torch.Generator().manual_seed(12)
    x64 = torch.randn(2, 64, 9, 11, generator=gen, dtype=torch.float64)
    p64 = torch.rand(2, 300, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2
    x = x64.to("cuda", dtype).requires_grad_()
    p = p64.to("cuda", dtype).requires_grad_(points_grad)
    if torch.cuda.get_device_capability()[0] >= 9:
        assert ops._scatter_channels_last(x, p.shape[1])
    out = cubeops.point_sample(x, p)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64).to("cuda", dtype)
    grads = torch.autograd.grad(out, (x, p) if points_grad else (x,), g)

    xr, pr = x.detach().double().requires_grad_(), p.detach().double().requires_grad_()
    want_out = grid_sample_point_sample(xr, pr)
    want = torch.autograd.grad(want_out, (xr, pr) if points_grad else (xr,), g.double())
    torch.testing.assert_close(out.double(), want_out, rtol=tol, atol=tol)
    assert grads[0].dtype == dtype and grads[0].is_contiguous()
    for name, got, ref in zip(("grad_input", "grad_points"), grads, want):
        torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")


# Tiles of 48 KiB, and of 224 KiB (57,344 cells, 1,024 threads; sm_90's opt-in maximum).
@pytest.mark.parametrize("shape,shared,large", [
    ((2, 5, 200, 200), True, 1),     # 4 tiles of 61 rows: corners on both sides of tile edges; large: 1
    ((1, 2, 1000, 20), True, 1),     # 2 tiles; large: 1
    ((3, 4, 9, 11), True, 0),        # one tile, rows shorter than a block (large tiles: no fewer)
    ((1, 2, 2000, 100), False, 4),   # 17 tiles: global atomics; large: 4 of 573 rows
    ((1, 2, 900, 400), False, 7),    # 30 tiles; large: 7 of 143 rows (400 x 400 maps: 3)
    ((1, 2, 3, 13000), False, 1),    # a row does not fit: global atomics; large: 1 tile
])
@pytest.mark.parametrize("large_tiles", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 5e-3)])
@pytest.mark.parametrize("sampling", [{}, dict(mode="nearest", padding_mode="reflection", align_corners=True)])
def test_nchw_gradient_summed_in_shared_memory(shape, shared, large, large_tiles, dtype, tol, sampling, monkeypatch):
    """With the shared-memory sums on, NCHW maps whose planes tile into few blocks get the
    input's gradient summed per tile in shared memory and written whole in their dtype (no
    zero fill, no float32 buffer), in 48 KiB tiles or, where they take fewer, in large ones
    (`large`: their count on sm_90), others by global atomics: all match float64
    grid_sample, with points off the map and on tile edges."""
    from cubeops import _native
    from cubeops.ops import point_sample as ops

    monkeypatch.setattr(ops, "SHARED_SUMS", True)
    monkeypatch.setattr(ops, "LARGE_TILES", large_tiles)
    gen = torch.Generator().manual_seed(sum(shape))
    x64 = torch.randn(shape, generator=gen, dtype=torch.float64)
    p64 = torch.rand(shape[0], 3000, 2, generator=gen, dtype=torch.float64) * 1.2 - 0.1
    x = x64.to("cuda", dtype).requires_grad_()
    cells = ops._shared_sums(x, p64.shape[1])
    if not large_tiles:
        assert cells == (_native.POINT_SAMPLE_SHARED_CELLS if shared else 0)
    elif torch.cuda.get_device_capability(x.device)[0] == 9:
        assert _native.point_sample_shared_cells(x.get_device(), False) == 57344
        assert cells == (57344 if large else _native.POINT_SAMPLE_SHARED_CELLS if shared else 0)
        if large:
            assert ops._tiles(*shape[2:], cells) == large
    # The points' gradient scales with the width: past float16's range on 13000 pixels.
    points_grad = not sampling and dtype == torch.float32
    p = p64.to("cuda", dtype).requires_grad_(points_grad)
    out = cubeops.point_sample(x, p, **sampling)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64).to("cuda", dtype)
    grads = torch.autograd.grad(out, (x, p) if points_grad else (x,), g)

    # Nearest picks its cell in float32 as torch's float32 grid_sample does: on 2000- and
    # 13000-pixel axes a float64 reference picks another cell for a few points.
    ref_dtype = torch.float32 if sampling.get("mode") == "nearest" else torch.float64
    xr, pr = x.detach().to(ref_dtype).requires_grad_(), p.detach().to(ref_dtype).requires_grad_()
    want_out = grid_sample_point_sample(xr, pr, **sampling)
    want = torch.autograd.grad(want_out, (xr, pr) if points_grad else (xr,), g.to(ref_dtype))
    assert grads[0].dtype == dtype and grads[0].is_contiguous()
    for name, got, ref in zip(("grad_input", "grad_points"), grads, want):
        ref = ref.double()
        scale = ref.abs().max().item() + 1e-30
        torch.testing.assert_close(got.double() / scale, ref / scale, rtol=0, atol=tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("shape", [(2, 3, 100, 100), (1, 2, 200, 200), (1, 2, 200, 37), (2, 2, 9, 11)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("large_tiles", [False, True])
def test_deterministic_shared_sums_match_the_global_fixed_point_bits(deterministic_algorithms, shape, dtype, large_tiles, monkeypatch):
    """In deterministic mode the shared-memory sums are fixed point too, in 48 KiB tiles or
    large ones (on sm_90 27,648 cells: one tile for all but the 200 x 200 map, two there):
    the same bits on every run, the same bits as the global fixed-point path (same scale and
    roundings), including cells that get infinite or NaN contributions, and float64's values
    elsewhere."""
    from cubeops.ops import point_sample as ops

    monkeypatch.setattr(ops, "LARGE_TILES", large_tiles)

    gen = torch.Generator().manual_seed(sum(shape))
    x64 = torch.randn(shape, generator=gen, dtype=torch.float64)
    # Many points per cell (order matters for float sums), some off the map.
    p64 = torch.rand(shape[0], 6000, 2, generator=gen, dtype=torch.float64) * 1.1 - 0.05
    g64 = torch.randn(shape[0], shape[1], 6000, generator=gen, dtype=torch.float64)
    g64[0, 0, :3] = torch.tensor([float("inf"), float("-inf"), float("nan")])
    # +inf and -inf into the same cells (their sum, NaN), beside -inf alone.
    p64[0, 3] = p64[0, 4]
    g64[0, 0, 3:6] = torch.tensor([float("inf"), float("-inf"), float("-inf")])
    g64[-1, -1, 5] = float("inf")
    x = x64.to("cuda", dtype).requires_grad_()
    p = p64.to("cuda", dtype)
    g = g64.to("cuda", dtype)

    def grad_input(shared):
        monkeypatch.setattr(ops, "SHARED_SUMS", shared)
        cells = ops._shared_sums(x, p64.shape[1])
        assert bool(cells) == shared
        if shared and large_tiles and shape[2] > 9 and torch.cuda.get_device_capability(x.device)[0] == 9:
            assert cells == 27648
        return torch.autograd.grad(cubeops.point_sample(x, p), x, g)[0]

    runs = [grad_input(True) for _ in range(3)]
    global_fixed = grad_input(False)
    # The same bits, NaNs apart (their payloads depend on the conversion).
    nan = runs[0].isnan()
    bits = [r.masked_fill(nan, 0).view(torch.int16 if dtype == torch.bfloat16 else torch.int32) for r in runs + [global_fixed]]
    for other, run in zip(bits[1:], runs[1:] + [global_fixed]):
        assert torch.equal(bits[0], other) and torch.equal(run.isnan(), nan)
    # On the CPU: torch's CUDA grid_sample backward refuses deterministic mode. The gradient
    # and points as the kernels read them (rounded to `dtype`).
    xr = x.detach().cpu().double().requires_grad_()

    def reference(grad):
        return torch.autograd.grad(grid_sample_point_sample(xr, p.cpu().double()), xr, grad)[0].cuda()

    # Cells a non-finite contribution reaches (an infinity times a zero weight included: NaN)
    # get their sum, as in float64.
    full = reference(g.cpu().double())
    special = ~full.isfinite()
    assert special.any() and torch.equal(runs[0].isnan(), full.isnan())
    assert torch.equal(runs[0].double()[special & ~full.isnan()], full[special & ~full.isnan()])
    want = reference(g.cpu().double().nan_to_num_(0.0, 0.0, 0.0))
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    scale = want.abs().max().item()
    torch.testing.assert_close(runs[0].double()[~special] / scale, want[~special] / scale, rtol=0, atol=tol)


@pytest.mark.parametrize(
    "case", ["float32 buffer for bf16", "channels-last buffer", "float64", "17 tiles", "deterministic", "tile size not built"]
)
def test_shared_sums_refuse_buffers_they_cannot_fill(case):
    """The bridge checks what `shared` (cells per tile) needs and says which condition
    failed, instead of writing a buffer it does not fit or launching a kernel not built."""
    from cubeops import _native
    from cubeops._bridge import describe, stream

    dtype = {"float32 buffer for bf16": torch.bfloat16, "float64": torch.float64}.get(case, torch.float32)
    shape = (1, 2, 2000, 100) if case == "17 tiles" else (1, 2, 9, 11)
    x = torch.randn(shape, device="cuda", dtype=dtype)
    p = torch.rand(1, 5, 2, device="cuda", dtype=dtype)
    g = torch.randn(1, 2, 5, device="cuda", dtype=dtype)
    gi = torch.empty(shape, device="cuda", dtype=torch.float32 if case == "float32 buffer for bf16" else dtype)
    if case == "channels-last buffer":
        gi = gi.to(memory_format=torch.channels_last)
    args = (describe(g), describe(x), describe(p), describe(gi), None, False, "bilinear", "zeros", case == "deterministic",
            stream(x))
    cells = {"deterministic": _native.POINT_SAMPLE_SHARED_FIXED_CELLS, "tile size not built": 1000}.get(
        case, _native.POINT_SAMPLE_SHARED_CELLS
    )
    with pytest.raises(ValueError, match="`shared` sums need"):
        _native.point_sample_backward(*args, None, cells)
