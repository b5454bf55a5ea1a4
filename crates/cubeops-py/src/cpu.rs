//! The CPU path: torch's CPU memory read and written in place by cubeops' strided kernels.

use cubeops::point_sample::cpu::{self, CpuElement, View};
use cubeops::point_sample::Sampling;
use cubeops::psamask::PsaMaskOptions;
use half::{bf16, f16};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::error::to_py;
use crate::tensor::{DType, TensorDesc};

/// # Safety
/// `d.ptr` must point to `d.available` readable elements of `T` (the Python side derives
/// `available` from the tensor's storage size), alive for `'a`.
pub(crate) unsafe fn memory<'a, T>(d: &TensorDesc) -> &'a [T] {
    if d.ptr == 0 || d.available == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(d.ptr as *const T, d.available) }
    }
}

/// An output buffer: must be contiguous; the Python side allocates it fresh, so nothing
/// else aliases it.
///
/// # Safety
/// As [`memory`], and writable.
pub(crate) unsafe fn output<'a, T>(d: &TensorDesc) -> PyResult<&'a mut [T]> {
    let numel = d.numel();
    if numel == 0 {
        return Ok(&mut []);
    }
    let mut expected = 1;
    for (dim, stride) in d.shape.iter().zip(&d.strides).rev() {
        if *dim > 1 && *stride != expected {
            return Err(PyValueError::new_err(format!("`{}` must be contiguous", d.arg)));
        }
        expected *= dim;
    }
    if numel > d.available {
        return Err(PyValueError::new_err(format!("`{}`: {numel} elements do not fit its storage", d.arg)));
    }
    Ok(unsafe { std::slice::from_raw_parts_mut(d.ptr as *mut T, numel) })
}

pub(crate) fn view<'a, T: Copy, const D: usize>(d: &TensorDesc, memory: &'a [T]) -> PyResult<View<'a, T, D>> {
    let (shape, strides) = d.dims::<D>()?;
    View::new(d.arg, memory, shape, strides).map_err(to_py)
}

fn forward_typed<T: CpuElement>(input: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling) -> PyResult<()> {
    // SAFETY: descriptors come from live torch tensors of dtype T (checked by the caller).
    let (i, p, o) = unsafe { (memory::<T>(input), memory::<T>(points), output::<T>(out)?) };
    cpu::forward(view::<T, 4>(input, i)?, view::<T, 3>(points, p)?, o, sampling).map_err(to_py)
}

fn grad_input_typed<T: CpuElement>(grad: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling) -> PyResult<()> {
    let (shape, _) = out.dims::<4>()?;
    // SAFETY: as in `forward_typed`.
    let (g, p, o) = unsafe { (memory::<T>(grad), memory::<T>(points), output::<T>(out)?) };
    cpu::grad_input(view::<T, 3>(grad, g)?, view::<T, 3>(points, p)?, o, shape, sampling).map_err(to_py)
}

fn grad_points_typed<T: CpuElement>(
    grad: &TensorDesc,
    input: &TensorDesc,
    points: &TensorDesc,
    out: &TensorDesc,
    sampling: Sampling,
) -> PyResult<()> {
    // SAFETY: as in `forward_typed`.
    let (g, i, p, o) = unsafe { (memory::<T>(grad), memory::<T>(input), memory::<T>(points), output::<T>(out)?) };
    cpu::grad_points(view::<T, 3>(grad, g)?, view::<T, 4>(input, i)?, view::<T, 3>(points, p)?, o, sampling).map_err(to_py)
}

pub fn forward(input: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling) -> PyResult<()> {
    by_dtype!(input.dtype, forward_typed(input, points, out, sampling))
}

pub fn grad_input(grad: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling) -> PyResult<()> {
    by_dtype!(grad.dtype, grad_input_typed(grad, points, out, sampling))
}

pub fn grad_points(grad: &TensorDesc, input: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling) -> PyResult<()> {
    by_dtype!(grad.dtype, grad_points_typed(grad, input, points, out, sampling))
}

fn psamask_typed<T: CpuElement>(src: &TensorDesc, dst: &TensorDesc, options: PsaMaskOptions, backward: bool) -> PyResult<()> {
    // SAFETY: as in `forward_typed`.
    let (s, d) = unsafe { (memory::<T>(src), output::<T>(dst)?) };
    cubeops::psamask::cpu::remap(view::<T, 4>(src, s)?, d, options, backward).map_err(to_py)
}

/// PSAMask forward (`src` = mask, `dst` = map) or backward (`src` = grad map, `dst` = grad mask).
pub fn psamask(src: &TensorDesc, dst: &TensorDesc, options: PsaMaskOptions, backward: bool) -> PyResult<()> {
    by_dtype!(src.dtype, psamask_typed(src, dst, options, backward))
}
