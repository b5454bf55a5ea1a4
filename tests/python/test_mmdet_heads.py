"""mmseg 1.2.2's Mask2Former and MaskFormer heads (mmdet 3.3.0, pure Python) train through the
drop-in: one training step each, shrunk configs from mmseg's own model zoo files.

Mask2Former's pixel decoder calls mmcv's MultiScaleDeformableAttention. On CUDA that is
`mmcv._ext.ms_deform_attn_*`, i.e. cubeops; off the GPU mmcv runs its pure-PyTorch path, so the
CPU test routes that path through mmcv's Function (and so cubeops' CPU kernels) and checks the
step against the same step on mmcv's own path: losses and every parameter gradient. MSDA's
sampling offsets start a fraction of a pixel off their initial grid (see `train_step`)."""

import copy
import os

import pytest
import torch

import cubeops.mmcv_compat  # noqa: F401  (before mmcv)

pytest.importorskip("mmdet")
mmseg = pytest.importorskip("mmseg")

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
CONFIGS = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")


def head_config(name):
    if name == "mask2former":
        cfg = Config.fromfile(os.path.join(CONFIGS, "mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py"))
        head = copy.deepcopy(cfg.model.decode_head)
        head.num_queries = 8
        head.pixel_decoder.encoder.num_layers = 1
        head.transformer_decoder.num_layers = 1
        head.train_cfg.num_points = 256
    else:
        cfg = Config.fromfile(os.path.join(CONFIGS, "maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py"))
        head = copy.deepcopy(cfg.model.decode_head)
        head.num_queries = 8
        head.transformer_decoder.num_layers = 1
    head.num_classes = 5
    head.loss_cls.class_weight = [1.0] * 5 + [0.1]
    return head


def train_step(name, device, seed=0):
    """(losses, {parameter name: gradient}) of one step on fixed random features and labels."""
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    init_default_scope("mmseg")
    head_cfg = head_config(name)
    torch.manual_seed(seed)
    model = MODELS.build(head_cfg).to(device).train()
    # MSDA's initial offsets put every sampling point exactly on a pixel centre, where the
    # location gradient is one-sided and float rounding picks the side (differently in
    # grid_sample, mmcv's CUDA kernel and cubeops): a fraction of a pixel off, as after training.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("sampling_offsets.bias"):
                p.add_(torch.rand(p.shape, generator=torch.Generator().manual_seed(seed + 2)).to(device) * 0.8 + 0.1)
    g = torch.Generator().manual_seed(seed + 1)
    x = [torch.randn(2, c, 64 // s, 64 // s, generator=g).to(device) for c, s in zip(head_cfg.in_channels, [4, 8, 16, 32])]
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 64), generator=g).to(device))
        sample.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(sample)
    losses = model.loss(x, samples, head_cfg.train_cfg)
    sum(v for k, v in losses.items() if "loss" in k).backward()
    grads = {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v) for k, v in losses.items()}, grads


def test_mask2former_step_on_cubeops_matches_mmcv_pytorch_path():
    want_losses, want_grads = train_step("mask2former", "cpu")
    from mmcv.ops import multi_scale_deform_attn as msda

    original = msda.multi_scale_deformable_attn_pytorch
    calls = []

    def through_function(value, spatial_shapes, sampling_locations, attention_weights):
        calls.append(value.shape)
        areas = spatial_shapes[:, 0] * spatial_shapes[:, 1]
        starts = torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))
        return msda.MultiScaleDeformableAttnFunction.apply(value, spatial_shapes, starts, sampling_locations,
                                                           attention_weights, 64)

    msda.multi_scale_deformable_attn_pytorch = through_function
    try:
        got_losses, got_grads = train_step("mask2former", "cpu")
    finally:
        msda.multi_scale_deformable_attn_pytorch = original
    assert calls, "the pixel decoder never called MultiScaleDeformableAttention"
    assert got_losses.keys() == want_losses.keys()
    for k in want_losses:
        assert abs(got_losses[k] - want_losses[k]) <= 1e-5 * max(1.0, abs(want_losses[k])), k
    assert got_grads.keys() == want_grads.keys()
    worst = max((got_grads[n] - want_grads[n]).abs().max().item() / max(1.0, want_grads[n].abs().max().item())
                for n in want_grads)
    assert worst < 1e-4, worst


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["mask2former", "maskformer"])
def test_head_trains_one_step(name, device):
    losses, grads = train_step(name, device)
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
