//! `cubeops._native`: the thin bridge between the Python package and the Rust core.
//!
//! Python passes tensor descriptions (pointer, shape, strides, dtype, device, storage size)
//! and pre-allocated outputs; Rust validates them, then runs the kernels on that memory in
//! place, with the GIL released. Errors come back as Python exceptions naming the argument;
//! PyO3 turns any panic into a Python exception, so none crosses the FFI boundary.

mod cpu;
mod error;
mod tensor;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use tensor::TensorDesc;

/// Reads the descriptions; all must share one dtype and one device.
fn describe(args: &[(&'static str, &Bound<'_, PyAny>)]) -> PyResult<Vec<TensorDesc>> {
    let descs = args.iter().map(|(name, obj)| TensorDesc::from_py(name, obj)).collect::<PyResult<Vec<_>>>()?;
    let first = &descs[0];
    for d in &descs[1..] {
        if d.dtype != first.dtype {
            return Err(PyTypeError::new_err(format!("`{}` has dtype {:?}, `{}` has {:?}", d.arg, d.dtype, first.arg, first.dtype)));
        }
        if d.device != first.device {
            return Err(PyValueError::new_err(format!("`{}` is on device {}, `{}` on {}", d.arg, d.device, first.arg, first.device)));
        }
    }
    Ok(descs)
}

/// Runs `cpu` on CPU tensors; CUDA tensors go to the CUDA launcher.
fn dispatch(py: Python<'_>, descs: &[TensorDesc], cpu: impl FnOnce(&[TensorDesc]) -> PyResult<()> + Send) -> PyResult<()> {
    if descs[0].device < 0 {
        py.detach(|| cpu(descs))
    } else {
        Err(PyRuntimeError::new_err("cubeops: the CUDA path of this build is not available yet"))
    }
}

/// `output (N, C, P) = point_sample(input (N, C, H, W), points (N, P, 2))`.
#[pyfunction]
fn point_sample_forward(py: Python<'_>, input: Bound<'_, PyAny>, points: Bound<'_, PyAny>, output: Bound<'_, PyAny>, align_corners: bool) -> PyResult<()> {
    let descs = describe(&[("input", &input), ("points", &points), ("output", &output)])?;
    dispatch(py, &descs, |d| cpu::forward(&d[0], &d[1], &d[2], align_corners))
}

/// `grad_input (N, C, H, W)`, contiguous, from `grad_output (N, C, P)`.
#[pyfunction]
fn point_sample_grad_input(
    py: Python<'_>,
    grad_output: Bound<'_, PyAny>,
    points: Bound<'_, PyAny>,
    grad_input: Bound<'_, PyAny>,
    align_corners: bool,
) -> PyResult<()> {
    let descs = describe(&[("grad_output", &grad_output), ("points", &points), ("grad_input", &grad_input)])?;
    dispatch(py, &descs, |d| cpu::grad_input(&d[0], &d[1], &d[2], align_corners))
}

/// `grad_points (N, P, 2)`, contiguous, from `grad_output (N, C, P)`.
#[pyfunction]
fn point_sample_grad_points(
    py: Python<'_>,
    grad_output: Bound<'_, PyAny>,
    input: Bound<'_, PyAny>,
    points: Bound<'_, PyAny>,
    grad_points: Bound<'_, PyAny>,
    align_corners: bool,
) -> PyResult<()> {
    let descs = describe(&[("grad_output", &grad_output), ("input", &input), ("points", &points), ("grad_points", &grad_points)])?;
    dispatch(py, &descs, |d| cpu::grad_points(&d[0], &d[1], &d[2], &d[3], align_corners))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(point_sample_forward, m)?)?;
    m.add_function(wrap_pyfunction!(point_sample_grad_input, m)?)?;
    m.add_function(wrap_pyfunction!(point_sample_grad_points, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
