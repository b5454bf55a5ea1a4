"""point_sample: mmcv's `mmcv.ops.point_sample` on cubeops kernels.

Registered as torch.library custom ops (`cubeops::point_sample` and its two gradient ops),
with fake implementations, so torch.compile traces them without a graph break, and with
autograd, so gradients reach both the input and the points. Eager calls take a plain
autograd.Function over the same kernels: torch.library's Python dispatch costs more host time
than the kernels take on the GPU at PointHead sizes (docs/gpu-testing.md). ONNX export traces
`export_graph`, grid_sample itself (ONNX `GridSample`).
"""

import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _native
from .._bridge import SUPPORTED_DTYPES, describe, describe_index, describe_new, exporting, stream
from ._registration import call, custom_op, eager_function


MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")


def _channels_last(input: Tensor) -> bool:
    # The kernels' test (Variant::for_map): channels move fastest in memory.
    return input.stride(1) < input.stride(3)


def _new_output(input: Tensor, points: Tensor) -> Tensor:
    """(N, C, P) of the points' dtype (the input's, or float32 under autocast); on CUDA in
    the input's memory format, as torch's ops keep it: channels fastest for channels-last
    input, so the kernel's neighbouring threads (neighbouring channels) write neighbouring
    addresses. The CPU kernels write contiguous output."""
    n, c, _, _ = input.shape
    num_points = points.shape[1]
    # (`points.new_empty`: the points' dtype and device, without a dtype argument's host time.)
    if input.is_cuda and _channels_last(input):
        return points.new_empty((n, num_points, c)).permute(0, 2, 1)
    return points.new_empty((n, c, num_points))


def _run_forward(input: Tensor, points: Tensor, align_corners: bool, mode: str, padding_mode: str) -> Tensor:
    out = _new_output(input, points)
    _native.point_sample_forward(
        describe(input), describe(points), describe_new(out), align_corners, mode, padding_mode, stream(input)
    )
    return out


def _new_like(t: Tensor) -> Tensor:
    """An uninitialised contiguous tensor of `t`'s shape, dtype and device. torch.empty_like
    costs less host time than `t.new_empty(t.shape)` (on an H100 host, 4.1 against 7.0 us
    per CUDA tensor); it keeps a dense tensor's strides, so only contiguous `t` takes it."""
    return torch.empty_like(t) if t.is_contiguous() else t.new_empty(t.shape)


def _new_grad_input(input: Tensor, shared: int = 0) -> Tensor:
    """The buffer the input gradient is computed in (`input` gives shape, dtype, device and
    layout; its values are not read): on the CPU the result itself; on CUDA, for sums in
    shared memory (`shared`, see `_shared_sums`), the result itself, NCHW; else a float32
    (float64) buffer in the input's layout that the native backward zeroes on the stream (no
    torch op: host time) and the kernels add into."""
    if shared or not input.is_cuda:
        return _new_like(input)
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    return torch.empty_like(input, dtype=acc)


def _fixed_point(grad_output: Tensor, grad_input: Tensor, shared: int):
    """The deterministic CUDA backward's int64 buffer for a float32 gradient buffer, or for
    sums in shared memory (None otherwise): the fixed-point sums (not for `shared`), then one
    element the kernels find the largest finite |grad_output| in, from which they scale;
    zeroed by the bridge, all on the device."""
    if shared:
        return torch.empty(1, dtype=torch.int64, device=grad_input.device)
    if not grad_input.is_cuda or grad_input.dtype != torch.float32 or grad_output.numel() == 0:
        return None
    return torch.empty(grad_input.numel() + 1, dtype=torch.int64, device=grad_input.device)


def _launch_backward(
    grad_output: Tensor, input: Tensor, points: Tensor, grad_input, grad_points, align_corners: bool, mode: str,
    padding_mode: str, shared: int = 0,
) -> None:
    """Fills the gradient buffers given (either may be None) in one bridge call; under
    torch.use_deterministic_algorithms(True) on CUDA the input's gradient without float
    atomics: by 64-bit integer atomics (fixed point) into float32 buffers, else (float64) by
    the kernel that adds in order. `shared`: the cells per tile (`_shared_sums`) of a
    `_new_grad_input(input, shared)` buffer, summed in shared memory (in fixed point when
    deterministic); 0: not."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    # Held until the launches are enqueued: freed earlier, the caching allocator could hand
    # the block to another allocation on this stream before our kernels use it.
    fixed = _fixed_point(grad_output, grad_input, shared) if deterministic and grad_input is not None else None
    _native.point_sample_backward(
        describe(grad_output), describe(input), describe(points),
        None if grad_input is None else describe_new(grad_input),
        None if grad_points is None else describe_new(grad_points),
        align_corners, mode, padding_mode, deterministic, stream(input), None if fixed is None else describe_index(fixed),
        shared,
    )


# NCHW maps with at least this many channels, and calls with at least this many atomic adds
# (N * C * P), add their gradient into a channels-last buffer (`_scatter_channels_last`).
# Below the second, the backward is bound by host time, which the extra transposes add to.
# (32: at (8, 32, 200x200, 100,000) the scatter took 0.56 ms on an H100, the shared-memory
# sums 1.13 and global atomics 1.45; session 16, docs/benchmarks.md.)
CHANNELS_LAST_SCATTER_MIN = 32
CHANNELS_LAST_SCATTER_MIN_ADDS = 1 << 23


@functools.cache
def _vector_atomics(device_index: int) -> bool:
    # Atomic adds of 4 floats (red.global.add.v4.f32): sm_90 and later.
    return torch.cuda.get_device_capability(device_index)[0] >= 9


def _scatter_channels_last(input: Tensor, num_points: int) -> bool:
    """Whether the input's gradient is added into a channels-last float32 buffer although
    the input is NCHW: one vector atomic per 4 channels instead of 4 scalar ones (NCHW's
    atomics are what bounds its backward: ~85 % of L2 throughput at PointHead's sizes), for
    the price of transposing grad_output (N x C x P) and the gradient (N x C x H x W) once,
    the second pass folded into the cast 16-bit input needs anyway. Taken where that was
    measured faster, large calls (docs/benchmarks.md, session 10), when the shared-memory
    sums do not apply (`_input_gradient` asks them first)."""
    n, c = input.shape[:2]
    return (
        input.is_cuda and c >= CHANNELS_LAST_SCATTER_MIN and c % 4 == 0 and input.dtype != torch.float64
        and n * c * num_points >= CHANNELS_LAST_SCATTER_MIN_ADDS
        and input.stride(1) > input.stride(3) and not torch.are_deterministic_algorithms_enabled()
        and _vector_atomics(input.get_device())
    )


# The shared-memory sums are on unless `CUBEOPS_POINT_SAMPLE_SHARED=0` (read at import): the
# A/B of session 14 (docs/benchmarks.md).
SHARED_SUMS = os.environ.get("CUBEOPS_POINT_SAMPLE_SHARED", "1") != "0"
# Each block walks all points of its map: above this many points the walk is long, and is
# worth it only with enough threads to fill the GPU (session 14, 48 KiB tiles: at 1 x 128
# planes x 4 tiles, 100,000 points, 0.7x the global atomics' time on an H100; at 8 x 32
# planes, 1.23x; session 16, 224 KiB tiles: at 2 x 32 planes x 3 tiles of 1,024 threads,
# 32,768 points, 1.2x), and only where the channels-last scatter cannot take it (at 8 x 32
# planes it took half the walk's time).
SHARED_LONG_WALK = 16384
SHARED_LONG_WALK_MIN_THREADS = 192 * 1024
# Tiles larger than 48 KiB where the GPU lets a block opt in to more shared memory (sm_90:
# 224 KiB, 57,344 cells, or 27,648 in fixed point; 1,024 threads a block), unless
# `CUBEOPS_POINT_SAMPLE_LARGE_TILES=0` (read at import): fewer tiles per plane, so fewer
# walks over the points.
LARGE_TILES = os.environ.get("CUBEOPS_POINT_SAMPLE_LARGE_TILES", "1") != "0"


@functools.cache
def _large_cells(device_index: int, deterministic: bool) -> int:
    return _native.point_sample_shared_cells(device_index, deterministic)


def _tiles(height: int, width: int, cells: int) -> int:
    # The bridge's `shared_tiles`: whole rows per tile (0: a row does not fit).
    return 0 if width > cells else -(-height // min(cells // width, height))


def _shared_sums(input: Tensor, num_points: int) -> int:
    """The cells per tile (0: no) in which the CUDA bridge is to sum the input's gradient
    per plane in shared memory and write it whole into an NCHW buffer of the input's dtype
    (no zero fill, no float32 buffer and cast; instead of the channels-last scatter too):
    NCHW-ordered f16/bf16/f32 maps whose planes tile into few blocks (the bridge's
    `check_shared`) and whose blocks' walks over all points pay (`SHARED_LONG_WALK`: long
    walks only where the channels-last scatter cannot serve). Large tiles where they take
    fewer than 48 KiB ones; in deterministic mode fixed point, in tiles of fewer cells."""
    if not SHARED_SUMS or not input.is_cuda or input.dtype == torch.float64:
        return 0
    n, c, height, width = input.shape
    strides = input.stride()
    if strides[1] < strides[3] or height == 0 or width == 0:
        return 0
    deterministic = torch.are_deterministic_algorithms_enabled()
    small = _native.POINT_SAMPLE_SHARED_FIXED_CELLS if deterministic else _native.POINT_SAMPLE_SHARED_CELLS
    cells, tiles = small, _tiles(height, width, small)
    large = _large_cells(input.get_device(), deterministic) if LARGE_TILES else small
    large_tiles = _tiles(height, width, large)
    if large_tiles and (not tiles or large_tiles < tiles):
        cells, tiles = large, large_tiles
    threads = n * c * tiles * (1024 if cells > small else 256)
    use = 0 < tiles <= _native.POINT_SAMPLE_SHARED_MAX_TILES and (
        num_points <= SHARED_LONG_WALK
        or (threads >= SHARED_LONG_WALK_MIN_THREADS and not _scatter_channels_last(input, num_points))
    )
    return cells if use else 0


# Opt-in (`CUBEOPS_POINT_SAMPLE_SORTED=1`, read at import): in deterministic mode the input's
# gradient of channels-last CUDA maps summed by sorted corners (`_sorted_gradient`), float
# sums in a fixed order instead of fixed point. Off by default: on an H100 it was slower than
# the fixed-point path on most benchmark rows (docs/benchmarks.md, session 15).
SORTED_SUMS = os.environ.get("CUBEOPS_POINT_SAMPLE_SORTED", "0") == "1"
_U32 = (1 << 32) - 1


def _sorted_sums(input: Tensor, num_points: int) -> bool:
    """Whether the deterministic backward sums by sorted corners: channels-last
    f16/bf16/f32 maps on CUDA (neighbouring threads, neighbouring channels; NCHW maps keep
    the fixed-point sums), with 4 * N * P * C threads and N * H * W cells in 32 bits."""
    if not SORTED_SUMS or not torch.are_deterministic_algorithms_enabled() or not input.is_cuda:
        return False
    n, c, h, w = input.shape
    strides = input.stride()
    return (
        input.dtype != torch.float64 and strides[1] < strides[3]
        and 4 * n * num_points * max(c, 1) <= _U32 and n * h * w <= _U32
    )


def _sorted_gradient(grad_output: Tensor, input: Tensor, points: Tensor, sampling: tuple, grad_points) -> Tensor:
    """The input's gradient in its dtype and layout, deterministic without atomics: every
    point's four corner cells as int64 keys with their weights, the keys sorted stably by
    torch.sort, then each cell's entries summed in that order (`_native` sorted passes);
    the points' gradient, if asked, by the usual gather pass (no atomics either)."""
    entries = 4 * input.shape[0] * points.shape[1]
    keys = torch.empty(entries, dtype=torch.int64, device=input.device)
    weights = torch.empty(entries, dtype=torch.float32, device=input.device)
    cuda_stream = stream(input)
    _native.point_sample_corner_keys(
        describe(input), describe(points), describe_index(keys), describe_new(weights), *sampling, cuda_stream
    )
    keys, order = torch.sort(keys, stable=True)
    grad_input = torch.empty_like(input)
    _native.point_sample_backward_sorted(
        describe(grad_output), describe(input), describe(points), describe_new(grad_input), describe_index(keys),
        describe_index(order), describe_new(weights), cuda_stream,
    )
    if grad_points is not None:
        _launch_backward(grad_output, input, points, None, grad_points, *sampling)
    return grad_input


def _input_gradient(
    grad_output: Tensor, input: Tensor, points: Tensor, align_corners: bool, mode: str, padding_mode: str,
    grad_points=None,
) -> Tensor:
    """The input's gradient in its dtype (and, when `grad_points` is given, the points' in
    it): one bridge call, or two for the channels-last scatter (each reads grad_output in
    the order it wants) and for the opt-in sorted sums (`_sorted_gradient`)."""
    sampling = (align_corners, mode, padding_mode)
    if _sorted_sums(input, points.shape[1]):
        return _sorted_gradient(grad_output, input, points, sampling, grad_points)
    shared = _shared_sums(input, points.shape[1])
    if not shared and _scatter_channels_last(input, points.shape[1]):
        n, c, h, w = input.shape
        buffer = torch.empty((n, h, w, c), dtype=torch.float32, device=input.device).permute(0, 3, 1, 2)
        channels_fastest = grad_output.transpose(1, 2).contiguous().transpose(1, 2)
        _launch_backward(channels_fastest, input, points, buffer, None, *sampling)
        if grad_points is not None:
            _launch_backward(grad_output, input, points, None, grad_points, *sampling)
        return buffer.to(input.dtype, memory_format=torch.contiguous_format)
    grad_input = _new_grad_input(input, shared)
    _launch_backward(grad_output, input, points, grad_input, grad_points, *sampling, shared)
    # (`to` costs host time even when it has nothing to do.)
    return grad_input if grad_input.dtype == input.dtype else grad_input.to(input.dtype)


def _run_grad_input(
    grad_output: Tensor, input: Tensor, points: Tensor, align_corners: bool, mode: str, padding_mode: str
) -> Tensor:
    return _input_gradient(grad_output, input, points, align_corners, mode, padding_mode)


def _zero_grad_points(points: Tensor) -> Tensor:
    # Nearest sampling is piecewise constant: torch's grid_sample also gives the grid zero.
    return torch.zeros_like(points, memory_format=torch.contiguous_format)


def _run_grad_points(
    grad_output: Tensor, input: Tensor, points: Tensor, align_corners: bool, mode: str, padding_mode: str
) -> Tensor:
    if mode == "nearest":
        return _zero_grad_points(points)
    grad_points = _new_like(points)
    _launch_backward(grad_output, input, points, None, grad_points, align_corners, mode, padding_mode)
    return grad_points


def _fake_forward(input, points, align_corners, mode, padding_mode):
    return _new_output(input, points)


def _fake_grad_input(grad_output, input, points, align_corners, mode, padding_mode):
    return torch.empty_like(input) if input.device.type != "cpu" else input.new_empty(input.shape)


def _fake_grad_points(grad_output, input, points, align_corners, mode, padding_mode):
    return points.new_empty(points.shape)


_forward = custom_op("point_sample", _run_forward, _fake_forward)
_grad_input = custom_op("point_sample_grad_input", _run_grad_input, _fake_grad_input)
_grad_points = custom_op("point_sample_grad_points", _run_grad_points, _fake_grad_points)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])
    ctx.sampling = inputs[2:]  # align_corners, mode, padding_mode


def _backward(ctx, grad_output):
    # One custom op per gradient, so that torch.compile sees (and can drop) each.
    input, points = ctx.saved_tensors
    grad_input = grad_points = None
    if ctx.needs_input_grad[0]:
        grad_input = _grad_input(grad_output, input, points, *ctx.sampling)
    if ctx.needs_input_grad[1]:
        grad_points = _grad_points(grad_output, input, points, *ctx.sampling)
    return grad_input, grad_points, None, None, None


def _eager_backward(ctx, grad_output):
    # Both gradients through one bridge call where possible: host time is what small problems pay.
    input, points = ctx.saved_tensors
    align_corners, mode, padding_mode = ctx.sampling
    launch_points = ctx.needs_input_grad[1] and mode != "nearest"
    grad_points = _new_like(points) if launch_points else None
    grad_input = None
    if ctx.needs_input_grad[0]:
        grad_input = _input_gradient(grad_output, input, points, align_corners, mode, padding_mode, grad_points)
    elif launch_points:
        _launch_backward(grad_output, input, points, None, grad_points, align_corners, mode, padding_mode)
    if ctx.needs_input_grad[1] and not launch_points:
        grad_points = _zero_grad_points(points)
    return grad_input, grad_points, None, None, None


_forward.register_autograd(_backward, setup_context=_setup_context)
# The custom ops' kernels and gradients without torch.library's dispatch (eager mode).
_EagerPointSample = eager_function("_EagerPointSample", _run_forward, _eager_backward, _setup_context)


def export_graph(input: Tensor, points: Tensor, align_corners: bool, mode: str, padding_mode: str) -> Tensor:
    """mmcv's own definition, grid_sample over 2 * points - 1: what ONNX export traces, so the
    model gets ONNX's GridSample (opset >= 16), which has the same modes and paddings."""
    grid = 2.0 * points - 1.0
    if points.dim() == 3:
        grid = grid.unsqueeze(2)
    out = F.grid_sample(input, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    return out.squeeze(3) if points.dim() == 3 else out


def _check(input: Tensor, points: Tensor, autocast: bool) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"point_sample(): `input` must be a torch.Tensor, got {type(input).__name__}")
    if not isinstance(points, Tensor):
        raise TypeError(f"point_sample(): `points` must be a torch.Tensor, got {type(points).__name__}")
    if input.dim() != 4:
        raise ValueError(f"point_sample(): `input` must be 4-D (N, C, H, W), got shape {tuple(input.shape)}")
    if points.dim() not in (3, 4) or points.shape[-1] != 2:
        raise ValueError(
            f"point_sample(): `points` must be (N, P, 2) or (N, Hp, Wp, 2), got shape {tuple(points.shape)}"
        )
    if points.shape[0] != input.shape[0]:
        raise ValueError(
            f"point_sample(): `points` has batch size {points.shape[0]}, `input` has {input.shape[0]}"
        )
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(f"point_sample(): `input` must have non-empty H and W, got shape {tuple(input.shape)}")
    if input.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"point_sample(): `input` must be float16, bfloat16, float32 or float64, got {input.dtype}")
    if points.dtype != input.dtype and not (autocast and _reads_low_precision(input, points)):
        raise TypeError(f"point_sample(): `points` has dtype {points.dtype}, `input` has {input.dtype}")
    if points.device != input.device:
        raise ValueError(f"point_sample(): `points` is on {points.device}, `input` on {input.device}")


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _reads_low_precision(input: Tensor, points: Tensor) -> bool:
    # The CUDA kernels' autocast variant: 16-bit maps with float32 points, output and gradients.
    return input.device.type == "cuda" and input.dtype in _LOW_PRECISION and points.dtype == torch.float32


def _autocast(input: Tensor, points: Tensor):
    """What autocast does to grid_sample (its fp32 list), and so to mmcv's point_sample:
    float16/bfloat16 arguments run in float32 and the result is float32; float64 ones stay.
    On CUDA a float16/bfloat16 map is read as it is, with float32 points (no float32 copy of
    the map, which grid_sample makes); only the points, which are small, are converted.
    Returns the arguments and whether autocast is on."""
    if not torch.is_autocast_enabled("cuda" if input.is_cuda else input.device.type):
        return input, points, False
    if points.dtype in _LOW_PRECISION:
        points = points.float()
    if input.dtype in _LOW_PRECISION and not _reads_low_precision(input, points):
        input = input.float()
    return input, points, True


def point_sample(
    input: Tensor,
    points: Tensor,
    align_corners: bool = False,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> Tensor:
    """Samples `input` at `points` (default: bilinear interpolation, zeros outside the map).

    Same semantics as mmcv's `point_sample(input, points, align_corners, **kwargs)`, that is
    `F.grid_sample(input, 2 * points - 1, mode=mode, padding_mode=padding_mode,
    align_corners=align_corners)`.

    Args:
        input: (N, C, H, W) feature maps; any strides (channels-last is read in place).
        points: (N, P, 2) or (N, Hp, Wp, 2) points, (x, y) normalised to [0, 1].
        align_corners: as in grid_sample: True puts 0 and 1 on the centres of the corner
            pixels, False (default) on their outer edges.
        mode: 'bilinear' (default) or 'nearest' (the nearest cell, ties to even; the points
            get a zero gradient, as in grid_sample).
        padding_mode: 'zeros' (default), 'border' (clamp to the edge pixels) or
            'reflection' (mirror at the edges, then clamp).

    Returns:
        (N, C, P) or (N, C, Hp, Wp), same dtype and device as `input`; on CUDA also its
        memory format (channels-last input gives channels-last output); under
        `torch.autocast`, float16/bfloat16 arguments are computed in float32 and the result
        is float32, as grid_sample (and so mmcv's point_sample) does there. On CUDA the
        16-bit map is then read in place (no float32 copy); both gradients come back in
        their tensors' dtypes.
    """
    autocast = False
    if isinstance(input, Tensor) and isinstance(points, Tensor):
        # Before the dtype check: under autocast bf16 features meet float32 points.
        input, points, autocast = _autocast(input, points)
    _check(input, points, autocast)
    if mode not in MODES:
        raise ValueError(f"point_sample(): `mode` must be one of {MODES}, got {mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"point_sample(): `padding_mode` must be one of {PADDING_MODES}, got {padding_mode!r}")
    if exporting():
        # grid_sample wants one dtype: the float32 computation autocast asks for.
        return export_graph(input.to(points.dtype), points, bool(align_corners), mode, padding_mode)
    # The custom op under torch.compile, else the eager Function (or, with nothing to
    # differentiate, its forward alone); ONNX export returned above, on the unflattened points.
    if points.dim() == 3:
        return call(export_graph, _forward, _EagerPointSample, input, points, bool(align_corners), mode, padding_mode)
    n, c, _, _ = input.shape
    # Explicit size: -1 is ambiguous for an empty batch.
    flat = points.reshape(n, points.shape[1:-1].numel(), 2)
    out = call(export_graph, _forward, _EagerPointSample, input, flat, bool(align_corners), mode, padding_mode)
    return out.reshape(n, c, *points.shape[1:3])
