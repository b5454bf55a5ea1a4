"""Type stubs of the Rust bridge. A tensor description is
(data_ptr, shape, strides, dtype name, device index or -1 for CPU, elements available)."""

from typing import List, Optional, Tuple

TensorDesc = Tuple[int, Tuple[int, ...], Tuple[int, ...], str, int, int]

__version__: str
# Which NCHW maps the CUDA backward can sum in shared memory (`shared`, cells per tile; docs/ops/point_sample.md).
POINT_SAMPLE_SHARED_CELLS: int
POINT_SAMPLE_SHARED_MAX_TILES: int
POINT_SAMPLE_SHARED_FIXED_CELLS: int
# The large tiles of the shared-memory sums on a CUDA device, in cells (deterministic: of the
# fixed-point sums): more than POINT_SAMPLE_SHARED_CELLS (POINT_SAMPLE_SHARED_FIXED_CELLS)
# where the architecture lets a block opt in to more shared memory, else that.
def point_sample_shared_cells(device: int, deterministic: bool) -> int: ...

# `stream` is a CUstream (torch.cuda.current_stream().cuda_stream) for CUDA tensors, 0 on the CPU.
# mode: 'bilinear' | 'nearest'; padding_mode: 'zeros' | 'border' | 'reflection' (else ValueError).
# point_sample: points and output share a dtype; the input has it too, or on CUDA is
# float16/bfloat16 with float32 points and output (torch.autocast: the map read in place).
def point_sample_forward(
    input: TensorDesc, points: TensorDesc, output: TensorDesc, align_corners: bool, mode: str, padding_mode: str, stream: int
) -> None: ...
# The gradients into the buffers given (either may be None). grad_input: the result on the CPU;
# on CUDA a dense float32 (float64) accumulation buffer, which this call zeroes on the stream
# (one kernel pass for both gradients when it has the input's strides); `deterministic` picks a
# CUDA kernel without float atomics on finite values: with `fixed` (int64, grad_input's element
# count plus one, zeroed here) and a float32 grad_input 64-bit integer atomics, else the ordered
# kernel. grad_points: contiguous (N, P, 2); bilinear only on CUDA (nearest's is zero).
# grad_output and grad_points have the points' dtype. `shared` (CUDA, NCHW): grad_input is the
# result in the input's dtype, summed in shared memory in tiles of that many cells (0: not;
# POINT_SAMPLE_SHARED_CELLS or point_sample_shared_cells(device, False), when deterministic
# POINT_SAMPLE_SHARED_FIXED_CELLS or point_sample_shared_cells(device, True)).
def point_sample_backward(
    grad_output: TensorDesc, input: TensorDesc, points: TensorDesc, grad_input: Optional[TensorDesc],
    grad_points: Optional[TensorDesc], align_corners: bool, mode: str, padding_mode: str, deterministic: bool, stream: int,
    fixed: Optional[TensorDesc] = None, shared: int = 0,
) -> None: ...
# The sorted deterministic backward (CUDA): corner keys (int64) and weights (float32), 4 * N * P
# each; then, with the keys sorted stably and torch.sort's indices (order), grad_input (the
# input's shape and dtype; zeroed by the bridge).
def point_sample_corner_keys(
    input: TensorDesc, points: TensorDesc, keys: TensorDesc, weights: TensorDesc, align_corners: bool, mode: str,
    padding_mode: str, stream: int,
) -> None: ...
def point_sample_backward_sorted(
    grad_output: TensorDesc, input: TensorDesc, points: TensorDesc, grad_input: TensorDesc, keys: TensorDesc,
    order: TensorDesc, weights: TensorDesc, stream: int,
) -> None: ...
def add_cuda_include_dirs(dirs: List[str]) -> None: ...
def cuda_include_dirs() -> List[str]: ...
def nvrtc_version() -> Tuple[int, int]: ...
def loaded_kernels() -> int: ...
def min_nvrtc(cc: int) -> Tuple[int, int]: ...
# PSAMask: every element of the destination is written. `distribute`: psa_type 1.
def psamask_forward(
    input: TensorDesc, output: TensorDesc, distribute: bool, mask_h: int, mask_w: int, stream: int
) -> None: ...
def psamask_backward(
    grad_output: TensorDesc, grad_input: TensorDesc, distribute: bool, mask_h: int, mask_w: int, stream: int
) -> None: ...
# MSDA. shapes (L, 2) and starts (L,) are int64 descriptions on the value's device (the CPU path
# reads and checks them against S). output: contiguous (N, Lq, M, D).
def ms_deform_attn_forward(
    value: TensorDesc, spatial_shapes: TensorDesc, level_start_index: TensorDesc, sampling_locations: TensorDesc,
    attention_weights: TensorDesc, output: TensorDesc, stream: int,
) -> None: ...
# grad_output (N, Lq, M, D); grad_value: the result on the CPU, a zeroed float32 (float64)
# accumulation buffer on CUDA; grad_sampling_locations and grad_attention_weights both or neither;
# `deterministic` picks the CUDA kernel without float atomics for grad_value.
def ms_deform_attn_backward(
    grad_output: TensorDesc, value: TensorDesc, spatial_shapes: TensorDesc, level_start_index: TensorDesc,
    sampling_locations: TensorDesc, attention_weights: TensorDesc, grad_value: Optional[TensorDesc],
    grad_sampling_locations: Optional[TensorDesc], grad_attention_weights: Optional[TensorDesc], deterministic: bool,
    stream: int,
) -> None: ...
# A focal loss into the contiguous `output`; target: int64 (N,); weight: (C,) or None.
# loss "sigmoid": logits (N, C) in, the elementwise (N, C) loss, or with `backward` its derivative
# by the logits; "softmax": softmax probabilities (N, C) in, as mmcv's _ext, the (N,) loss of each
# row, or with `backward` its (N, C) derivative by the logits.
def focal_loss(
    loss: str, input: TensorDesc, target: TensorDesc, weight: Optional[TensorDesc], output: TensorDesc, gamma: float,
    alpha: float, backward: bool, stream: int,
) -> None: ...
