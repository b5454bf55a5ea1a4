use cubeops::OpError;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

/// Shape and rank errors are ValueError, dtype errors TypeError, the rest RuntimeError.
pub fn to_py(e: OpError) -> PyErr {
    match e {
        OpError::Rank { .. } | OpError::Shape { .. } | OpError::Device { .. } => PyValueError::new_err(e.to_string()),
        OpError::DType { .. } => PyTypeError::new_err(e.to_string()),
        OpError::Unsupported { .. } => PyRuntimeError::new_err(e.to_string()),
    }
}
