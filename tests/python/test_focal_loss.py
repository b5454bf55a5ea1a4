"""cubeops.sigmoid_focal_loss / softmax_focal_loss and mmcv's focal losses through the drop-in,
against float64 references written with torch ops: values and gradients, reductions, class
weights, background targets, large logits, dtypes, bad input, torch.compile."""

import pytest
import torch
import torch.nn.functional as F

import cubeops

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
DTYPES = [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)]


def sigmoid_reference(x, target, gamma, alpha, weight=None):
    """float64, from the definition (stable logs)."""
    x = x.double()
    c = x.shape[1]
    positive = F.one_hot(target.clamp(0, c), c + 1)[:, :c].bool() & (target >= 0).unsqueeze(1)
    p = torch.sigmoid(x)
    loss = torch.where(positive, -alpha * (1 - p) ** gamma * F.logsigmoid(x), -(1 - alpha) * p ** gamma * F.logsigmoid(-x))
    if weight is not None:
        inside = (target >= 0) & (target < c)
        loss = loss * torch.where(inside, weight.double()[target.clamp(0, c - 1)], torch.ones(())).unsqueeze(1)
    return loss


def softmax_reference(x, target, gamma, alpha, weight=None):
    """mmcv's softmax focal loss from its definition, float64: per row -alpha (1 - p_t)^gamma log p_t."""
    x = x.double()
    c = x.shape[1]
    valid = (target >= 0) & (target < c)
    p = torch.softmax(x, 1).gather(1, target.clamp(0, c - 1).unsqueeze(1)).squeeze(1)
    loss = -alpha * (1 - p) ** gamma * p.log()
    if weight is not None:
        loss = loss * weight.double()[target.clamp(0, c - 1)]
    return torch.where(valid, loss, torch.zeros_like(loss))


# Each loss, its float64 reference, and the logits' spread: softmax probabilities of float16
# logits spread by 4 underflow (mmcv's kernel then clamps log p at log(FLT_MIN)).
LOSSES = {
    "sigmoid": (lambda: cubeops.sigmoid_focal_loss, sigmoid_reference),
    "softmax": (lambda: cubeops.softmax_focal_loss, softmax_reference),
}


def spread(loss, dtype):
    return 1.5 if loss == "softmax" and dtype == torch.float16 else 4.0


def make(n, c, device, dtype, seed=0, spread=4.0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, generator=g, dtype=torch.float64) * spread).to(dtype)
    target = torch.randint(-1, c + 1, (n,), generator=g)
    weight = (torch.rand(c, generator=g, dtype=torch.float64) + 0.5).to(dtype)
    return x.to(device), target.to(device), weight.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_float64_reference(device, dtype, tol, reduction, weighted, loss):
    fn, reference = LOSSES[loss]
    x, target, weight = make(37, 9, device, dtype, spread=spread(loss, dtype))
    weight = weight if weighted else None
    xr = x.detach().cpu().double().requires_grad_()
    want = reference(xr, target.cpu(), 1.5, 0.3, None if weight is None else weight.cpu())
    want = {"none": want, "mean": want.sum() / x.shape[0], "sum": want.sum()}[reduction]
    x = x.requires_grad_()
    got = fn()(x, target, 1.5, 0.3, weight, reduction)
    assert got.dtype == dtype and got.shape == want.shape
    g = torch.randn(want.shape, dtype=torch.float64)
    want.backward(g)
    got.backward(g.to(device, dtype))
    for name, a, b in (("loss", got, want), ("grad", x.grad, xr.grad)):
        scale = max(1.0, b.abs().max().item())
        assert (a.detach().cpu().double() - b.detach()).abs().max().item() <= tol * scale, name


@pytest.mark.parametrize("device", DEVICES)
def test_large_logits_keep_their_precision(device):
    """log(1 - p) at x = 100 is -100; mmcv's kernel clamps it to log(FLT_MIN) = -87.3."""
    x = torch.tensor([[100.0, -100.0, 30.0, -30.0]], device=device)
    target = torch.tensor([1], device=device)
    got = cubeops.sigmoid_focal_loss(x, target, 0.0, 0.5, reduction="none").cpu().double()
    want = sigmoid_reference(x.cpu(), target.cpu(), 0.0, 0.5)
    assert torch.allclose(got, want, rtol=1e-6), (got, want)
    assert abs(got[0, 0].item() - 50.0) < 1e-4


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("gamma", [2.0, 0.5])
def test_gradcheck_and_noncontiguous(device, loss, gamma):
    x, target, weight = make(6, 5, device, torch.float64, seed=1)
    xt = x.t().contiguous().t().requires_grad_()
    assert not xt.is_contiguous()
    fn = lambda t: LOSSES[loss][0]()(t, target, gamma, 0.25, weight, "none")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (xt,))


@pytest.mark.parametrize("loss", LOSSES)
def test_compile_traces_it(loss):
    op = LOSSES[loss][0]()
    x, target, weight = make(8, 4, "cpu", torch.float32, seed=2)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    fn = torch.compile(lambda t: op(t, target, 2.0, 0.25, weight), backend="aot_eager", fullgraph=True)
    fn(x1).backward()
    op(x2, target, 2.0, 0.25, weight).backward()
    assert torch.allclose(x1.grad, x2.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_softmax_rows_without_a_class_cost_nothing(device):
    """Targets -1 and C: loss 0 and gradient 0 for that row (mmcv reads out of bounds)."""
    x = torch.randn(3, 4, device=device, requires_grad=True)
    target = torch.tensor([-1, 4, 2], device=device)
    loss = cubeops.softmax_focal_loss(x, target, reduction="none")
    loss.sum().backward()
    assert loss[:2].tolist() == [0.0, 0.0] and loss[2].item() > 0
    assert x.grad[:2].abs().max().item() == 0.0 and x.grad[2].abs().max().item() > 0


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((torch.zeros(3), torch.zeros(3, dtype=torch.long)), ValueError, "`input` must be 2-D"),
        ((torch.zeros(3, 2), torch.zeros(2, dtype=torch.long)), ValueError, "`target` must be an int64"),
        ((torch.zeros(3, 2), torch.zeros(3)), ValueError, "`target` must be an int64"),
        ((torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.long)), TypeError, "`input` must be float16"),
        ((torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 2.0, 0.25, torch.ones(3)), ValueError, "`weight` must be"),
        ((torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 2.0, 0.25, None, "avg"), ValueError, "`reduction`"),
        ((torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), -1.0), ValueError, "gamma must be"),
        ((torch.zeros(3, 2), torch.zeros(3, dtype=torch.long, device="meta")), ValueError, "`target` is on meta"),
    ],
)
@pytest.mark.parametrize("loss", LOSSES)
def test_bad_input_raises(args, error, match, loss):
    with pytest.raises(error, match=f"{loss}_focal_loss\\(\\): .*{match}"):
        LOSSES[loss][0]()(*args)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("weighted", [False, True])
def test_mmcv_focal_losses_through_the_drop_in(device, weighted):
    import cubeops.mmcv_compat  # noqa: F401
    mmcv_ops = pytest.importorskip("mmcv.ops")
    x, target, weight = make(29, 7, device, torch.float32, seed=3)
    weight = weight if weighted else None
    for mmcv_fn, reference in ((mmcv_ops.sigmoid_focal_loss, sigmoid_reference),
                               (mmcv_ops.softmax_focal_loss, softmax_reference)):
        xc = x.clone().requires_grad_()
        # mmcv's softmax kernel indexes the softmax by the label: labels outside [0, C) are
        # for the sigmoid loss only.
        t = target if mmcv_fn is mmcv_ops.sigmoid_focal_loss else target.clamp(0, 6)
        got = mmcv_fn(xc, t, 2.0, 0.25, weight, "mean")
        got.backward()
        xr = x.detach().cpu().double().requires_grad_()
        want = reference(xr, t.cpu(), 2.0, 0.25, None if weight is None else weight.cpu()).sum() / x.shape[0]
        want.backward()
        assert abs(got.item() - want.item()) < 1e-5, mmcv_fn.__name__
        assert (xc.grad.cpu().double() - xr.grad).abs().max().item() < 1e-5, mmcv_fn.__name__


@pytest.mark.parametrize("loss", LOSSES)
def test_opcheck(loss):
    op = getattr(torch.ops.cubeops, f"{loss}_focal_loss").default
    x, target, weight = make(6, 4, "cpu", torch.float64, seed=4)
    torch.library.opcheck(op, (x.requires_grad_(), target, weight, 2.0, 0.25))
    torch.library.opcheck(op, (x, target, None, 0.0, 0.5))
