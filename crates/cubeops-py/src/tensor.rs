//! Tensors as the Python side describes them: raw pointer, shape, strides (in elements),
//! dtype, device, and how many elements the storage holds from the pointer on. Nothing
//! here knows torch; `cubeops/_bridge.py` builds these from torch tensors.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
}

impl DType {
    fn parse(name: &str, arg: &str) -> PyResult<Self> {
        match name {
            "float16" => Ok(DType::F16),
            "bfloat16" => Ok(DType::BF16),
            "float32" => Ok(DType::F32),
            "float64" => Ok(DType::F64),
            other => Err(PyTypeError::new_err(format!(
                "`{arg}` must be float16, bfloat16, float32 or float64, got {other}"
            ))),
        }
    }
}

/// `(ptr, shape, strides, dtype, device, available)`; device -1 is the CPU.
#[derive(Clone, Debug)]
pub struct TensorDesc {
    pub arg: &'static str,
    pub ptr: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub dtype: DType,
    pub device: i64,
    /// Elements of storage from `ptr` to the end of the allocation.
    pub available: usize,
}

impl TensorDesc {
    pub fn from_py(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (ptr, shape, strides, dtype, device, available): (usize, Vec<usize>, Vec<isize>, String, i64, usize) =
            obj.extract().map_err(|e| PyTypeError::new_err(format!("`{arg}`: bad tensor description: {e}")))?;
        if strides.len() != shape.len() {
            return Err(PyValueError::new_err(format!("`{arg}`: {} strides for {} dimensions", strides.len(), shape.len())));
        }
        let strides = strides
            .into_iter()
            .map(|s| usize::try_from(s).map_err(|_| PyValueError::new_err(format!("`{arg}`: negative stride {s}"))))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(TensorDesc { arg, ptr, shape, strides, dtype: DType::parse(&dtype, arg)?, device, available })
    }

    pub fn dims<const D: usize>(&self) -> PyResult<([usize; D], [usize; D])> {
        let err = || PyValueError::new_err(format!("`{}` must have {D} dimensions, got {}", self.arg, self.shape.len()));
        Ok((self.shape.clone().try_into().map_err(|_| err())?, self.strides.clone().try_into().map_err(|_| err())?))
    }

    /// Row-major contiguous (size-1 dimensions may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (dim, stride) in self.shape.iter().zip(&self.strides).rev() {
            if *dim > 1 && *stride != expected {
                return false;
            }
            expected *= dim;
        }
        true
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}
