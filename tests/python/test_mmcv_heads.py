"""mmcv 2.x's own `mmcv.ops` through the drop-in (CrissCrossAttention, PSAMask, point_sample
in every mode and padding), and mmsegmentation's own decode heads that need them (PointHead,
PSAHead, CCHead): one training step each. On CUDA also under bf16 autocast."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

import cubeops.mmcv_compat  # noqa: F401  (before mmcv)
import cubeops
from reference import psamask_reference

mmcv_ops = pytest.importorskip("mmcv.ops")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# (device, autocast dtype or None)
MODES = [("cpu", None), pytest.param("cuda", None, marks=pytest.mark.cuda),
         pytest.param("cuda", torch.bfloat16, marks=pytest.mark.cuda)]


def _autocast(device, dtype):
    return torch.autocast(device, dtype=dtype) if dtype else contextlib.nullcontext()


@pytest.mark.parametrize("device", DEVICES)
def test_criss_cross_attention_runs(device):
    torch.manual_seed(0)
    cca = mmcv_ops.CrissCrossAttention(8).to(device)
    with torch.no_grad():
        cca.gamma.scale.fill_(0.5)  # mmcv initialises it to 0: make the attention count
    x = torch.randn(2, 8, 5, 6, device=device, requires_grad=True)
    out = cca(x)
    out.square().sum().backward()
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert x.grad is not None and x.grad.abs().sum() > 0 and cca.query_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
def test_psamask_module_runs_on_cubeops(device, psa_type):
    module = mmcv_ops.PSAMask(psa_type, (5, 3))
    x = torch.randn(2, 15, 4, 6, dtype=torch.float64, device=device, requires_grad=True)
    out = module(x)
    assert torch.equal(out.detach().cpu(), psamask_reference(x.detach().cpu(), psa_type, (5, 3)))
    g = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    xr = x.detach().cpu().requires_grad_()
    (want,) = torch.autograd.grad(psamask_reference(xr, psa_type, (5, 3)), xr, g.cpu())
    assert torch.equal(gx.cpu(), want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_point_sample_every_mode(device, mode, padding_mode, align_corners):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, generator=gen).to(device).requires_grad_()
    p = (torch.rand(2, 50, 2, dtype=torch.float64, generator=gen) * 1.4 - 0.2).to(device).requires_grad_()
    out = mmcv_ops.point_sample(x, p, align_corners=align_corners, mode=mode, padding_mode=padding_mode)
    want = F.grid_sample(x, 2 * p.unsqueeze(2) - 1, mode=mode, padding_mode=padding_mode,
                         align_corners=align_corners).squeeze(3)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, p), g)
    ref = torch.autograd.grad(want, (x, p), g)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_point_sample_rejects_unknown_kwargs():
    x, p = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2)
    with pytest.raises(TypeError, match="interpolation"):
        mmcv_ops.point_sample(x, p, interpolation="bilinear")


# ------------------------------------------------------------------ mmsegmentation's heads
try:
    import mmseg.models  # noqa: F401

    MMSEG = None
except (ImportError, AssertionError) as e:  # mmseg 1.2.2 asserts mmcv < 2.2.0
    MMSEG = f"mmsegmentation unavailable with mmcv {__import__('mmcv').__version__}: {e}"
needs_mmseg = pytest.mark.skipif(MMSEG is not None, reason=str(MMSEG))


def _samples(labels):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    out = []
    for label in labels:
        s = SegDataSample(metainfo=dict(img_shape=tuple(label.shape), ori_shape=tuple(label.shape)))
        s.gt_sem_seg = PixelData(data=label[None])
        out.append(s)
    return out


def _build(cfg, device):
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    torch.manual_seed(0)
    head = MODELS.build(ConfigDict(cfg)).to(device)
    head.init_weights()
    return head.train()


def _step(head, loss_fn, device, autocast):
    params = [p for p in head.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optim = torch.optim.SGD(params, lr=0.1)
    with _autocast(device, autocast):
        losses = loss_fn()
    loss = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(loss), losses
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    optim.step()
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, params))
    return loss.item()


CE = dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)
BN = dict(type="BN", requires_grad=True)


@needs_mmseg
@pytest.mark.parametrize("device,autocast", MODES)
def test_point_head_training_step(device, autocast):
    head = _build(dict(type="PointHead", in_channels=[8], in_index=[0], channels=16, num_fcs=3,
                       coarse_pred_each_layer=True, dropout_ratio=-1, num_classes=5, align_corners=False,
                       loss_decode=CE), device)
    from mmengine.config import ConfigDict

    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, 16, 16, generator=gen).to(device)]
    coarse = torch.randn(2, 5, 8, 8, generator=gen).to(device)
    labels = torch.randint(0, 5, (2, 32, 32), generator=gen).to(device)
    cfg = ConfigDict(num_points=64, oversample_ratio=3, importance_sample_ratio=0.75)
    _step(head, lambda: head.loss(feats, coarse, _samples(labels), cfg), device, autocast)


@needs_mmseg
@pytest.mark.parametrize("device,autocast", MODES)
@pytest.mark.parametrize("psa_type", ["collect", "distribute", "bi-direction"])
def test_psa_head_training_step(device, autocast, psa_type):
    head = _build(dict(type="PSAHead", in_channels=16, in_index=0, channels=8, mask_size=(7, 7),
                       psa_type=psa_type, compact=False, shrink_factor=2, psa_softmax=True,
                       dropout_ratio=0.1, num_classes=4, norm_cfg=BN, align_corners=False,
                       loss_decode=CE), device)
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 16, 12, 12, generator=gen).to(device)]
    labels = torch.randint(0, 4, (2, 48, 48), generator=gen).to(device)
    _step(head, lambda: head.loss(feats, _samples(labels), None), device, autocast)


@needs_mmseg
@pytest.mark.parametrize("device,autocast", MODES)
def test_cc_head_training_step(device, autocast):
    head = _build(dict(type="CCHead", in_channels=16, in_index=0, channels=8, recurrence=2,
                       concat_input=True, dropout_ratio=0.1, num_classes=4, norm_cfg=BN,
                       align_corners=False, loss_decode=CE), device)
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 16, 10, 10, generator=gen).to(device)]
    labels = torch.randint(0, 4, (2, 40, 40), generator=gen).to(device)
    _step(head, lambda: head.loss(feats, _samples(labels), None), device, autocast)


@pytest.mark.parametrize("device,dtype", [("cpu", torch.bfloat16), pytest.param("cuda", torch.bfloat16, marks=pytest.mark.cuda),
                                          pytest.param("cuda", torch.float16, marks=pytest.mark.cuda)])
def test_point_sample_under_autocast_matches_mmcv(device, dtype):
    """Under autocast grid_sample (so mmcv's point_sample) runs in float32: low-precision
    features with float32 points (PointHead under AMP) give a float32 result; cubeops too."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 9, 11, generator=gen).to(device=device, dtype=dtype).requires_grad_()
    p = torch.rand(2, 30, 2, generator=gen).to(device)
    with torch.autocast(device, dtype=dtype):
        ours = mmcv_ops.point_sample(x, p)
        theirs = cubeops.mmcv_compat.original_point_sample(x, p)
    assert ours.dtype == theirs.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    g = torch.randn(ours.shape, generator=gen).to(device)
    (gx,) = torch.autograd.grad(ours, x, g)
    (want,) = torch.autograd.grad(theirs, x, g)
    assert gx.dtype == want.dtype == dtype
    torch.testing.assert_close(gx, want, rtol=1e-2, atol=1e-2)
