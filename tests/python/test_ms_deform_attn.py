"""cubeops.ms_deform_attn against independent references: mmcv's own
`multi_scale_deformable_attn_pytorch` (when mmcv is installed) and the same grid_sample
formulation in float64; values and all three gradients, gradcheck, odd shapes, points off the
map, non-contiguous inputs, bad input, torch.compile, and mmcv's Function through the drop-in."""

import pytest
import torch

import cubeops
from cubeops.ops.ms_deform_attn import export_graph

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# (N, M, D, Lq, P, levels)
SHAPES = [
    (2, 2, 4, 5, 3, [(6, 5), (3, 3), (2, 1)]),
    (1, 1, 1, 3, 1, [(4, 7)]),
    (1, 3, 5, 7, 2, [(1, 1), (5, 2)]),
    (2, 8, 3, 4, 4, [(8, 6), (4, 3), (2, 2), (1, 1)]),
]
# float32 within 1e-5 of float64 (the goal); half types by their rounding.
DTYPES = [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.float16, 2e-2), (torch.bfloat16, 1e-1)]


def make_case(n, m, d, lq, p, levels, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.int64)
    s = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.randn(n, s, m, d, generator=g, dtype=torch.float64)
    # Some points off the map or across its edges.
    locations = torch.rand(n, lq, m, len(levels), p, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1
    weights = torch.rand(n, lq, m, len(levels), p, generator=g, dtype=torch.float64)
    grad = torch.randn(n, lq, m * d, generator=g, dtype=torch.float64)
    return [t.to(device) for t in (value, locations, weights, grad)] + [shapes.to(device)]


def starts_of(shapes):
    areas = shapes[:, 0] * shapes[:, 1]
    return torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))


def with_grads(fn, value, locations, weights, grad):
    value, locations, weights = (t.detach().clone().requires_grad_() for t in (value, locations, weights))
    out = fn(value, locations, weights)
    out.backward(grad)
    return out.detach(), value.grad, locations.grad, weights.grad


def reference(value, shapes, locations, weights, grad):
    """float64 grid_sample per level: the definition, independent of the kernels."""
    f64 = [t.double() for t in (value, locations, weights, grad)]
    return with_grads(lambda v, lo, w: export_graph(v, shapes, lo, w), *f64)


def max_err(got, want):
    return (got.double() - want).abs().max().item() if want.numel() else 0.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_float64_reference(device, dtype, tol, shape):
    value, locations, weights, grad, shapes = make_case(*shape, device)
    # The reference sees the inputs as `dtype` stores them.
    value, locations, weights, grad = (t.to(dtype) for t in (value, locations, weights, grad))
    want = reference(value, shapes, locations, weights, grad)
    got = with_grads(lambda v, lo, w: cubeops.ms_deform_attn(v, shapes, starts_of(shapes), lo, w),
                     value, locations, weights, grad)
    assert got[0].dtype == dtype and got[0].shape == want[0].shape
    # Location gradients carry the map size (d pixel / d location): scaled tolerance.
    for name, g, w, scale in zip(("output", "value", "locations", "weights"), got, want, (1, 1, 10, 1)):
        assert g.dtype == dtype, name
        assert max_err(g, w) <= tol * scale * max(1.0, w.abs().max().item()), f"{name}: {max_err(g, w):.3g}"


@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_path_equals_autograd_path(device):
    """Calls with nothing to differentiate run the forward without the autograd Function
    (host time): the same values, no graph."""
    value, locations, weights, _, shapes = make_case(2, 2, 8, 5, 3, [(4, 6), (2, 3)], device, seed=4)
    value, locations, weights = (t.float() for t in (value, locations, weights))
    starts = starts_of(shapes)
    with_graph = cubeops.ms_deform_attn(value.clone().requires_grad_(), shapes, starts, locations, weights)
    with torch.no_grad():
        no_grad = cubeops.ms_deform_attn(value.clone().requires_grad_(), shapes, starts, locations, weights)
    plain = cubeops.ms_deform_attn(value, shapes, starts, locations, weights)
    assert with_graph.requires_grad and not no_grad.requires_grad and not plain.requires_grad
    assert torch.equal(with_graph.detach(), no_grad) and torch.equal(no_grad, plain)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_pixel_centres_use_the_exact_cell(device):
    # float32(13/14) * 7 rounds up to 6.5 while the exact product is 6.4999998: the point lies
    # just inside cell 5, whose side decides the location gradient (it jumps at the centre).
    shapes = torch.tensor([(25, 7)])
    ys = torch.arange(1, 50, 2, dtype=torch.float64) / 50
    xs = torch.arange(1, 14, 2, dtype=torch.float64) / 14
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(1, -1, 1, 1, 1, 2)
    value, _, weights, grad, _ = make_case(1, 1, 3, grid.shape[1], 1, [(25, 7)], "cpu")
    value, locations, weights, grad = (t.float() for t in (value, grid, weights, grad))
    want = reference(value, shapes, locations, weights, grad)
    got = with_grads(lambda v, lo, w: cubeops.ms_deform_attn(v, shapes.to(device), None, lo, w),
                     *(t.to(device) for t in (value, locations, weights, grad)))
    for name, g, w, scale in zip(("output", "value", "locations", "weights"), got, want, (1, 1, 10, 1)):
        assert max_err(g.cpu(), w) <= 1e-5 * scale * max(1.0, w.abs().max().item()), f"{name}: {max_err(g.cpu(), w):.3g}"


@pytest.mark.parametrize("device", DEVICES)
def test_matches_mmcv_pytorch_implementation(device):
    mmcv_msda = pytest.importorskip("mmcv.ops.multi_scale_deform_attn")
    value, locations, weights, grad, shapes = make_case(2, 4, 8, 30, 4, [(10, 12), (5, 6), (3, 3)], device, seed=1)
    value, locations, weights, grad = (t.float() for t in (value, locations, weights, grad))
    want = with_grads(lambda v, lo, w: mmcv_msda.multi_scale_deformable_attn_pytorch(v, shapes, lo, w),
                      value, locations, weights, grad)
    got = with_grads(lambda v, lo, w: cubeops.ms_deform_attn(v, shapes, None, lo, w), value, locations, weights, grad)
    for name, g, w in zip(("output", "value", "locations", "weights"), got, want):
        assert torch.allclose(g, w, atol=1e-4, rtol=1e-4), f"{name}: {max_err(g, w.double()):.3g}"


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    value, locations, weights, _, shapes = make_case(1, 2, 3, 4, 2, [(4, 5), (2, 3)], device, seed=2)
    # Away from cell edges, where the bilinear map is smooth.
    locations = locations.clamp(0.05, 0.95)
    fn = lambda v, lo, w: cubeops.ms_deform_attn(v, shapes, None, lo, w)  # noqa: E731
    args = tuple(t.requires_grad_() for t in (value, locations, weights))
    assert torch.autograd.gradcheck(fn, args, eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_noncontiguous_and_nonfinite_inputs(device):
    value, locations, weights, grad, shapes = make_case(2, 3, 5, 6, 2, [(5, 4), (2, 2)], device, seed=3)
    locations[0, 0, 0, 0, 0] = float("nan")
    locations[1, 2, 1, 1, 1] = float("inf")
    locations[0, 3, 2, 0, 1] = -float("inf")
    value_t = value.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)  # (N, S, M, D) over (N, M, S, D)
    locations_t = locations.transpose(1, 2).contiguous().transpose(1, 2)
    weights_t = weights.permute(4, 0, 1, 2, 3).contiguous().permute(1, 2, 3, 4, 0)
    assert not value_t.is_contiguous() and not locations_t.is_contiguous() and not weights_t.is_contiguous()
    # Non-finite points sample nothing and get no gradient, as in torch's CUDA grid_sample and
    # mmcv's CUDA kernel (torch's CPU grid_sample gives NaN): the reference sees them far off.
    off_map = locations.nan_to_num(nan=-10.0, posinf=-10.0, neginf=-10.0)
    want = reference(value, shapes, off_map, weights, grad)
    got = with_grads(lambda v, lo, w: cubeops.ms_deform_attn(v, shapes, None, lo, w), value_t, locations_t, weights_t,
                     grad.transpose(1, 2).contiguous().transpose(1, 2))
    assert want[2][0, 0, 0, 0, 0].abs().sum() == 0
    for name, g, w in zip(("output", "value", "locations", "weights"), got, want):
        assert max_err(g, w) < 1e-12, name


def test_list_shapes_empty_queries_and_autocast():
    value, locations, weights, _, shapes = make_case(1, 2, 4, 3, 2, [(3, 4)], "cpu", seed=4)
    out = cubeops.ms_deform_attn(value, [[3, 4]], None, locations, weights)
    assert torch.equal(out, cubeops.ms_deform_attn(value, shapes, starts_of(shapes), locations, weights))
    empty = cubeops.ms_deform_attn(value, shapes, None, locations[:, :0], weights[:, :0])
    assert empty.shape == (1, 0, 8)
    # As mmcv's Function: locations and weights take the value's dtype.
    mixed = cubeops.ms_deform_attn(value.float(), shapes, None, locations, weights.half())
    assert mixed.dtype == torch.float32
    assert max_err(mixed, out) < 1e-3


def test_compile_traces_it():
    value, locations, weights, _, shapes = make_case(1, 2, 4, 3, 2, [(3, 4)], "cpu", seed=5)
    starts = starts_of(shapes)
    fn = torch.compile(lambda v, lo, w: cubeops.ms_deform_attn(v, shapes, starts, lo, w).sum(), backend="aot_eager",
                       fullgraph=True)
    v = value.clone().requires_grad_()
    fn(v, locations, weights).backward()
    v2 = value.clone().requires_grad_()
    cubeops.ms_deform_attn(v2, shapes, starts, locations, weights).sum().backward()
    assert torch.allclose(v.grad, v2.grad, atol=1e-12)


def _case():
    value = torch.zeros(1, 10, 2, 4)
    return value, torch.tensor([[2, 3], [2, 2]]), torch.zeros(1, 3, 2, 2, 4, 2), torch.zeros(1, 3, 2, 2, 4)


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda v, s, lo, w: (v, torch.tensor([[2, 2], [2, 2]]), lo, w), ValueError, "hold 8 keys"),
        (lambda v, s, lo, w: (v[0], s, lo, w), ValueError, "`value` must be 4-D"),
        (lambda v, s, lo, w: (v, s, lo[..., 0], w), ValueError, "`sampling_locations` must be"),
        (lambda v, s, lo, w: (v, s, lo, w[..., :3]), ValueError, "`attention_weights` must have shape"),
        (lambda v, s, lo, w: (v, s[:, :1], lo, w), ValueError, "`value_spatial_shapes` must be"),
        (lambda v, s, lo, w: (v, s.float(), lo, w), TypeError, "int64 or int32"),
        (lambda v, s, lo, w: (v.long(), s, lo, w), TypeError, "`value` must be float16"),
        (lambda v, s, lo, w: (v, s, lo.long(), w), TypeError, "`sampling_locations` must be a floating"),
        (lambda v, s, lo, w: (v, s, lo.to("meta"), w), ValueError, "`sampling_locations` is on meta"),
        (lambda v, s, lo, w: (v, s, lo[:, :, :, :1], w[:, :, :, :1]), ValueError, r"L = 1 \(the levels"),
        (lambda v, s, lo, w: (v, s[:0], lo[:, :, :, :0], w[:, :, :, :0]), ValueError, "`sampling_locations` must be"),
    ],
)
def test_bad_input_raises(mutate, error, match):
    value, shapes, locations, weights = mutate(*_case())
    with pytest.raises(error, match=match):
        cubeops.ms_deform_attn(value, shapes, None, locations, weights)
    # A level start index of the wrong length.
    value, shapes, locations, weights = _case()
    with pytest.raises(ValueError, match=r"`value_level_start_index` must be \(2,\)"):
        cubeops.ms_deform_attn(value, shapes, torch.tensor([0]), locations, weights)


def test_native_checks_level_shapes_against_the_value():
    """A level start past the value's keys is caught in Rust before any read (CPU)."""
    from cubeops import _native
    from cubeops._bridge import describe, describe_index
    value, shapes, locations, weights = _case()
    out = torch.empty(1, 3, 2, 4)
    bad_starts = torch.tensor([0, 7])
    with pytest.raises(ValueError, match="level 1: shape \\(2, 2\\) starting at key 7"):
        _native.ms_deform_attn_forward(describe(value), describe_index(shapes), describe_index(bad_starts),
                                       describe(locations), describe(weights), describe(out), 0)
    with pytest.raises(TypeError, match="must be int64"):
        _native.ms_deform_attn_forward(describe(value), describe_index(shapes.int()), describe_index(bad_starts),
                                       describe(locations), describe(weights), describe(out), 0)


@pytest.mark.parametrize("device", DEVICES)
def test_mmcv_function_through_the_drop_in(device):
    import cubeops.mmcv_compat  # noqa: F401
    mmcv_msda = pytest.importorskip("mmcv.ops.multi_scale_deform_attn")
    value, locations, weights, grad, shapes = make_case(2, 2, 4, 5, 3, [(6, 5), (3, 3)], device, seed=6)
    value, locations, weights, grad = (t.float() for t in (value, locations, weights, grad))
    starts = starts_of(shapes)
    got = with_grads(lambda v, lo, w: mmcv_msda.MultiScaleDeformableAttnFunction.apply(v, shapes, starts, lo, w, 64),
                     value, locations, weights, grad)
    want = reference(value, shapes, locations, weights, grad)
    for name, g, w in zip(("output", "value", "locations", "weights"), got, want):
        assert max_err(g, w) < 1e-4, name


def test_opcheck():
    value, locations, weights, _, shapes = make_case(1, 2, 3, 4, 2, [(3, 4), (2, 2)], "cpu", seed=7)
    args = (value.requires_grad_(), shapes, starts_of(shapes), locations.requires_grad_(), weights.requires_grad_())
    torch.library.opcheck(torch.ops.cubeops.ms_deform_attn.default, args)


@pytest.mark.cuda
def test_deterministic_value_gradient_repeats_bit_for_bit():
    """Under torch.use_deterministic_algorithms(True) the value's gradient comes from the kernel
    without atomics: the same bits on every run, and the reference's values."""
    # Many points on few keys: order-dependent sums for the atomic kernel.
    value, locations, weights, grad, shapes = make_case(2, 4, 8, 400, 4, [(3, 4), (2, 2)], "cuda", seed=8)
    value, locations, weights, grad = (t.float() for t in (value, locations, weights, grad))
    want = reference(value, shapes, locations, weights, grad)
    torch.use_deterministic_algorithms(True)
    try:
        runs = [with_grads(lambda v, lo, w: cubeops.ms_deform_attn(v, shapes, None, lo, w), value, locations, weights,
                           grad)[1] for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    assert max_err(runs[0], want[1]) < 1e-4
