"""cubeops.psamask and mmcv's PSAMask through the drop-in, against a float64 reference
written from the definition (tests/python/reference.py)."""

import pytest
import torch

import cubeops
from reference import psamask_reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# (n, h, w, mask): odd, even, non-square, mask larger than the map, 1x1, empty batch.
SHAPES = [(2, 5, 6, (3, 3)), (1, 4, 4, (5, 7)), (2, 3, 7, (2, 4)), (1, 1, 1, 1), (1, 2, 3, 9), (0, 3, 3, 3)]
DTYPES = [(torch.float64, 0.0), (torch.float32, 0.0), (torch.float16, 0.0), (torch.bfloat16, 0.0)]


def _pair(m):
    return (m, m) if isinstance(m, int) else m


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,_tol", DTYPES)
def test_matches_reference(device, psa_type, shape, dtype, _tol):
    n, h, w, mask = shape
    mh, mw = _pair(mask)
    gen = torch.Generator().manual_seed(0)
    # Multiples of 1/8 are exact in every dtype: a pure copy must be exact.
    x = (torch.randint(-64, 64, (n, mh * mw, h, w), generator=gen) / 8).to(dtype).to(device)
    g = (torch.randint(-64, 64, (n, h * w, h, w), generator=gen) / 8).to(dtype).to(device)
    x.requires_grad_()
    out = cubeops.psamask(x, psa_type, mask)
    assert out.shape == (n, h * w, h, w) and out.dtype == dtype and out.device == x.device
    want = psamask_reference(x.detach().double().cpu(), psa_type, mask)
    assert torch.equal(out.detach().double().cpu(), want)
    if n:
        (gx,) = torch.autograd.grad(out, x, g)
        xr = x.detach().double().cpu().requires_grad_()
        (want_gx,) = torch.autograd.grad(psamask_reference(xr, psa_type, mask), xr, g.double().cpu())
        assert torch.equal(gx.double().cpu(), want_gx)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("psa_type", [0, 1])
def test_gradcheck_and_noncontiguous(device, psa_type):
    x = torch.randn(2, 5, 5, 4, dtype=torch.float64, device=device).permute(0, 3, 1, 2)  # (2, 4, 5, 5) channels-last
    assert not x.is_contiguous()
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cubeops.psamask(t, psa_type, (2, 2)), (x,))
    want = psamask_reference(x.detach().cpu(), psa_type, (2, 2))
    assert torch.equal(cubeops.psamask(x, psa_type, (2, 2)).detach().cpu(), want)


def test_opcheck():
    x = torch.randn(2, 9, 4, 5, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.cubeops.psamask.default, (x, True, 3, 3))


def test_compile_traces_it():
    x = torch.randn(1, 9, 4, 4, requires_grad=True)
    fn = torch.compile(lambda t: cubeops.psamask(t, "distribute", 3).sum(), backend="aot_eager", fullgraph=True)
    fn(x).backward()
    xr = x.detach().double().requires_grad_()
    psamask_reference(xr, "distribute", 3).sum().backward()
    assert torch.equal(x.grad.double(), xr.grad)


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((torch.zeros(1, 8, 3, 3), "collect", 3), ValueError, "8 channels, mask_size \\(3, 3\\) needs 9"),
        ((torch.zeros(9, 3, 3), "collect", 3), ValueError, "must be 4-D"),
        ((torch.zeros(1, 9, 3, 3), "gather", 3), ValueError, "psa_type"),
        ((torch.zeros(1, 9, 3, 3), "collect", (3, 3, 1)), TypeError, "mask_size"),
        ((torch.zeros(1, 9, 3, 3), "collect", None), TypeError, "mask_size"),
        ((torch.zeros(1, 0, 3, 3), "collect", (0, 3)), ValueError, "must be positive"),
        ((torch.zeros(1, 9, 3, 3, dtype=torch.int32), "collect", 3), TypeError, "float16, bfloat16"),
        (([[1.0]], "collect", 1), TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_raises(args, error, match):
    with pytest.raises(error, match=match):
        cubeops.psamask(*args)


def test_native_rejects_inconsistent_buffers():
    from cubeops import _native
    from cubeops._bridge import describe

    # Descriptions carry raw pointers: every tensor stays referenced while native code runs.
    x = torch.zeros(1, 9, 2, 3)
    wrong_shape = torch.zeros(1, 6, 2, 4)
    strided = torch.zeros(1, 2, 3, 6).permute(0, 3, 1, 2)
    grad_input = torch.zeros(1, 9, 2, 3)
    with pytest.raises(ValueError, match="`output` has shape"):
        _native.psamask_forward(describe(x), describe(wrong_shape), False, 3, 3, 0)
    with pytest.raises(ValueError, match="must be contiguous"):
        _native.psamask_forward(describe(x), describe(strided), False, 3, 3, 0)
    with pytest.raises(ValueError, match="`grad_output` has 9 channels, expected 6"):
        _native.psamask_backward(describe(x), describe(grad_input), False, 3, 3, 0)


def test_ext_functions_check_their_arguments():
    import cubeops.mmcv_compat as compat

    fwd = compat.IMPLEMENTED["psamask_forward"]
    x, out = torch.randn(1, 9, 4, 5), torch.zeros(1, 20, 4, 5)
    fwd(x, out, psa_type=0, num_=1, h_feature=4, w_feature=5, h_mask=3, w_mask=3, half_h_mask=1, half_w_mask=1)
    assert torch.equal(out, psamask_reference(x.double(), "collect", 3).float())
    with pytest.raises(ValueError, match="do not match"):
        fwd(x, out, psa_type=0, num_=2, h_feature=4, w_feature=5, h_mask=3, w_mask=3, half_h_mask=1, half_w_mask=1)
    with pytest.raises(ValueError, match="4-D"):
        fwd(x[0], out, psa_type=0, num_=1, h_feature=4, w_feature=5, h_mask=3, w_mask=3, half_h_mask=1, half_w_mask=1)
    with pytest.raises(ValueError, match="psa_type"):
        fwd(x, out, psa_type=2, num_=1, h_feature=4, w_feature=5, h_mask=3, w_mask=3, half_h_mask=1, half_w_mask=1)
