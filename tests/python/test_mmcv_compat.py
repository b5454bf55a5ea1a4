"""The mmcv drop-in, with real pure-Python mmcv (mmcv-lite 2.2.0 from PyPI)."""

import pytest
import torch

import cubeops.mmcv_compat as compat
from reference import forward_and_grads

mmcv_ops = pytest.importorskip("mmcv.ops", reason="needs mmcv-lite (pip install mmcv-lite==2.2.0)")


def test_mmcv_ops_imports_and_runs_cubeops():
    assert mmcv_ops.point_sample is compat.point_sample
    from mmcv.ops import point_sample
    from mmcv.ops.point_sample import point_sample as inner

    assert point_sample is compat.point_sample and inner is compat.point_sample
    assert compat.original_point_sample is not None


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("points_shape", [(17,), (3, 5)])
def test_matches_mmcv_own_point_sample(device, align_corners, points_shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 7, 6, generator=gen, dtype=torch.float64).to(device)
    p = (torch.rand(2, *points_shape, 2, generator=gen, dtype=torch.float64) * 1.2 - 0.1).to(device)
    got = forward_and_grads(mmcv_ops.point_sample, x, p, align_corners=align_corners)
    want = forward_and_grads(compat.original_point_sample, x, p, align_corners=align_corners)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_every_mode_runs_on_cubeops_bicubic_keeps_mmcv(monkeypatch):
    """mode / padding_mode go to cubeops' kernels; only grid_sample's 'bicubic' (which
    cubeops does not implement) keeps mmcv's own grid_sample code."""
    calls = []
    real = compat._cubeops_point_sample
    monkeypatch.setattr(compat, "_cubeops_point_sample", lambda *a, **k: calls.append(k) or real(*a, **k))
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    p = torch.rand(1, 9, 2, dtype=torch.float64) * 3 - 1
    for kwargs in ({"mode": "nearest"}, {"padding_mode": "border"}, {"mode": "nearest", "padding_mode": "reflection"}):
        torch.testing.assert_close(
            mmcv_ops.point_sample(x, p, **kwargs), compat.original_point_sample(x, p, **kwargs)
        )
    assert calls == [{"mode": "nearest"}, {"padding_mode": "border"}, {"mode": "nearest", "padding_mode": "reflection"}]
    torch.testing.assert_close(
        mmcv_ops.point_sample(x, p, mode="bicubic"), compat.original_point_sample(x, p, mode="bicubic")
    )
    assert len(calls) == 3
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        mmcv_ops.point_sample(x, p, interpolation="bilinear")


def test_simple_roi_align_uses_it():
    """mmcv's SimpleRoIAlign calls point_sample from its module: it must run (on cubeops)."""
    features = torch.randn(2, 3, 16, 16)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0], [1, 2.0, 3.0, 12.0, 14.0]])
    out = mmcv_ops.SimpleRoIAlign(output_size=(4, 4), spatial_scale=1.0)(features, rois)
    assert out.shape == (2, 3, 4, 4) and torch.isfinite(out).all()


def test_unimplemented_ext_ops_raise_clearly():
    import mmcv._ext as ext

    with pytest.raises(NotImplementedError, match="deform_conv_forward"):
        ext.deform_conv_forward()
    assert hasattr(ext, "roi_align_forward")  # what mmcv's ext_loader asserts
    assert ext.psamask_forward.__name__ == "psamask_forward"  # implemented (test_psamask.py)


def test_pth_opt_in_activates_only_with_the_env_var():
    """The line `--install-pth` writes, run as site.py would run it, in fresh interpreters."""
    import os
    import subprocess
    import sys

    probe = (
        f"exec({compat.PTH_LINE!r}); import mmcv.ops, sys; "
        "print(mmcv.ops.point_sample.__module__, 'mmcv._ext' in sys.modules)"
    )
    for flag, expected in (("1", "cubeops.mmcv_compat True"), ("0", None)):
        env = dict(os.environ, CUBEOPS_MMCV=flag)
        run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        if expected:
            assert run.stdout.strip() == expected, run.stderr
        else:
            # Without the drop-in, mmcv-lite cannot load mmcv._ext: import mmcv.ops fails.
            assert run.returncode != 0 and "_ext" in run.stderr
