"""ONNX export: cubeops' ops (and mmcv's, through the drop-in) export with torch's default
exporter (the dynamo one from torch 2.9 on, TorchScript before) and with `dynamo=False`; the
exported model runs in onnxruntime and agrees with PyTorch's eager result."""

import pytest
import torch

import cubeops
from reference import grid_sample_point_sample, psamask_reference

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# torch >= 2.9 exports with the dynamo exporter by default; it needs onnxscript.
DEFAULT_IS_DYNAMO = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 9)
if DEFAULT_IS_DYNAMO:
    pytest.importorskip("onnxscript")

TOL = 1e-5


class PointSample(torch.nn.Module):
    def __init__(self, align_corners=False, **kwargs):
        super().__init__()
        self.align_corners, self.kwargs = align_corners, kwargs

    def forward(self, input, points):
        return cubeops.point_sample(input, points, self.align_corners, **self.kwargs) * 2.0


class PsaMask(torch.nn.Module):
    def __init__(self, psa_type, mask_size):
        super().__init__()
        self.psa_type, self.mask_size = psa_type, mask_size

    def forward(self, input):
        return cubeops.psamask(input, self.psa_type, self.mask_size) + 1.0


def export(module, args, path, **kwargs):
    """torch.onnx.export as a user calls it (the exporter's default unless kwargs say)."""
    torch.onnx.export(module.eval(), args, str(path), **kwargs)
    return onnx.load(str(path))


def run_onnx(path, args):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    (out,) = session.run(None, feeds)
    return torch.from_numpy(out)


def op_types(model):
    return {(node.domain, node.op_type) for node in model.graph.node}


def point_sample_args(points_shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    input = torch.randn(2, 5, 9, 13, generator=g)
    # Some points off the map, so the padding mode matters.
    points = torch.rand(*points_shape, generator=g) * 1.4 - 0.2
    return input, points


SAMPLINGS = [
    (False, "bilinear", "zeros"),
    (True, "bilinear", "zeros"),
    (False, "bilinear", "border"),
    (True, "bilinear", "reflection"),
    (False, "nearest", "zeros"),
    (True, "nearest", "border"),
]


@pytest.mark.parametrize("points_shape", [(2, 40, 2), (2, 6, 7, 2)])
@pytest.mark.parametrize("align_corners,mode,padding_mode", SAMPLINGS)
@pytest.mark.parametrize("dynamo", [None, False], ids=["default", "torchscript"])
def test_point_sample_exports_to_grid_sample(tmp_path, points_shape, align_corners, mode, padding_mode, dynamo):
    args = point_sample_args(points_shape)
    module = PointSample(align_corners, mode=mode, padding_mode=padding_mode)
    kwargs = {} if dynamo is None else {"dynamo": dynamo}
    model = export(module, args, tmp_path / "point_sample.onnx", **kwargs)
    types = op_types(model)
    assert ("", "GridSample") in types, types
    assert not any("cubeops" in domain for domain, _ in types), types

    got = run_onnx(tmp_path / "point_sample.onnx", args)
    expected = module(*args)  # eager: cubeops' kernel
    reference = 2.0 * grid_sample_point_sample(
        *(a.double() for a in args), align_corners=align_corners, mode=mode, padding_mode=padding_mode
    )
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL
    if mode == "bilinear":  # nearest may round a tie differently in float32 vs float64
        assert (got.double() - reference).abs().max().item() <= TOL


@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
@pytest.mark.parametrize("shape,mask_size", [((2, 9, 6, 7), 3), ((1, 15, 8, 5), (5, 3)), ((1, 16, 4, 4), (4, 4))])
@pytest.mark.parametrize("dynamo", [None, False], ids=["default", "torchscript"])
def test_psamask_exports_to_a_gather_graph(tmp_path, psa_type, shape, mask_size, dynamo):
    input = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    module = PsaMask(psa_type, mask_size)
    kwargs = {} if dynamo is None else {"dynamo": dynamo}
    model = export(module, (input,), tmp_path / "psamask.onnx", **kwargs)
    types = op_types(model)
    assert any(op in ("Gather", "GatherElements") for _, op in types), types
    assert not any("cubeops" in domain for domain, _ in types), types

    got = run_onnx(tmp_path / "psamask.onnx", (input,))
    expected = module(input)
    # A gather is exact: the float64 reference, rounded to float32, then the module's + 1.
    reference = psamask_reference(input.double(), psa_type, mask_size).float() + 1.0
    assert (got - expected).abs().max().item() <= TOL
    assert torch.equal(got, reference)


def test_psamask_export_graph_is_differentiable_like_the_kernel():
    """The plain-torch graph is the same function as the kernel, gradients included."""
    from cubeops.ops.psamask import export_graph

    input = torch.randn(2, 15, 6, 5, dtype=torch.float64, requires_grad=True)
    for distribute in (False, True):
        kernel = cubeops.psamask(input, int(distribute), (5, 3))
        graph = export_graph(input, distribute, 5, 3)
        assert torch.equal(kernel, graph)
        g = torch.randn_like(kernel)
        (gk,) = torch.autograd.grad(kernel, input, g)
        (gg,) = torch.autograd.grad(graph, input, g)
        assert torch.equal(gk, gg)


# mmcv's own modules through the drop-in (mmcv-lite; skipped where it is not installed).


def _mmcv_ops():
    import cubeops.mmcv_compat  # noqa: F401

    pytest.importorskip("mmcv")
    return pytest.importorskip("mmcv.ops")


@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
def test_mmcv_psamask_default_exporter(tmp_path, psa_type):
    ops = _mmcv_ops()
    module = ops.PSAMask(psa_type, (5, 3))
    input = torch.randn(2, 15, 6, 5, generator=torch.Generator().manual_seed(2))
    export(module, (input,), tmp_path / "mmcv_psamask.onnx")
    got = run_onnx(tmp_path / "mmcv_psamask.onnx", (input,))
    assert (got.double() - psamask_reference(input.double(), psa_type, (5, 3))).abs().max().item() == 0.0


def test_mmcv_psamask_torchscript_exporter_keeps_mmcv_symbolic(tmp_path):
    """dynamo=False records mmcv's own symbolic, the MMCVPSAMask node of mmcv's ONNX runtime ops."""
    ops = _mmcv_ops()
    module = ops.PSAMask("collect", (5, 3))
    input = torch.randn(2, 15, 6, 5)
    model = export(module, (input,), tmp_path / "mmcv_psamask_ts.onnx", dynamo=False)
    assert ("mmcv", "MMCVPSAMask") in op_types(model)


@pytest.mark.parametrize("dynamo", [None, False], ids=["default", "torchscript"])
def test_mmcv_point_sample_exports(tmp_path, dynamo):
    ops = _mmcv_ops()

    class Head(torch.nn.Module):
        def forward(self, input, points):
            return ops.point_sample(input, points, align_corners=False)

    args = point_sample_args((2, 30, 2), seed=3)
    kwargs = {} if dynamo is None else {"dynamo": dynamo}
    model = export(Head(), args, tmp_path / "mmcv_point_sample.onnx", **kwargs)
    assert ("", "GridSample") in op_types(model)
    got = run_onnx(tmp_path / "mmcv_point_sample.onnx", args)
    reference = grid_sample_point_sample(*(a.double() for a in args))
    assert (got.double() - reference).abs().max().item() <= TOL


@pytest.mark.cuda
@pytest.mark.parametrize("dynamo", [None, False], ids=["default", "torchscript"])
def test_export_from_cuda_tensors(tmp_path, dynamo):
    """A model living on the GPU exports the same graphs (mmcv's own ONNX tests export CUDA
    modules); the model runs in onnxruntime on the CPU against cubeops' CUDA kernels."""
    kwargs = {} if dynamo is None else {"dynamo": dynamo}
    args = point_sample_args((2, 40, 2), seed=4)
    module = PointSample(True, padding_mode="border")
    export(module, tuple(a.cuda() for a in args), tmp_path / "ps.onnx", **kwargs)
    expected = module(*(a.cuda() for a in args)).cpu()
    assert (run_onnx(tmp_path / "ps.onnx", args) - expected).abs().max().item() <= TOL

    input = torch.randn(2, 15, 6, 5, generator=torch.Generator().manual_seed(5))
    for psa_type in ("collect", "distribute"):
        module = PsaMask(psa_type, (5, 3))
        export(module, (input.cuda(),), tmp_path / "psa.onnx", **kwargs)
        assert torch.equal(run_onnx(tmp_path / "psa.onnx", (input,)), module(input.cuda()).cpu())
