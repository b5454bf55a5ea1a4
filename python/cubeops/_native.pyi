"""Type stubs of the Rust bridge. A tensor description is
(data_ptr, shape, strides, dtype name, device index or -1 for CPU, elements available)."""

from typing import Tuple

TensorDesc = Tuple[int, Tuple[int, ...], Tuple[int, ...], str, int, int]

__version__: str

def point_sample_forward(input: TensorDesc, points: TensorDesc, output: TensorDesc, align_corners: bool) -> None: ...
def point_sample_grad_input(grad_output: TensorDesc, points: TensorDesc, grad_input: TensorDesc, align_corners: bool) -> None: ...
def point_sample_grad_points(
    grad_output: TensorDesc, input: TensorDesc, points: TensorDesc, grad_points: TensorDesc, align_corners: bool
) -> None: ...
