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
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// torch's name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

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

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

    /// Row-major contiguous (size-1 dimensions may have any stride; an empty tensor is).
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
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

/// An int64 index tensor (MSDA's spatial shapes and level start index), contiguous:
/// `(ptr, shape, strides, dtype, device, available)` as for [`TensorDesc`].
#[derive(Clone, Debug)]
pub struct IndexDesc {
    pub arg: &'static str,
    pub ptr: usize,
    pub shape: Vec<usize>,
    pub device: i64,
    pub available: usize,
}

impl IndexDesc {
    pub fn from_py(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (ptr, shape, strides, dtype, device, available): (usize, Vec<usize>, Vec<isize>, String, i64, usize) =
            obj.extract().map_err(|e| PyTypeError::new_err(format!("`{arg}`: bad tensor description: {e}")))?;
        if dtype != "int64" {
            return Err(PyTypeError::new_err(format!("`{arg}` must be int64, got {dtype}")));
        }
        let mut expected = 1isize;
        for (dim, stride) in shape.iter().zip(&strides).rev() {
            if *dim > 1 && *stride != expected {
                return Err(PyValueError::new_err(format!("`{arg}` must be contiguous")));
            }
            expected *= *dim as isize;
        }
        let numel: usize = shape.iter().product();
        if numel > available {
            return Err(PyValueError::new_err(format!("`{arg}`: {numel} elements do not fit its storage")));
        }
        Ok(IndexDesc { arg, ptr, shape, device, available })
    }

    /// The values, read from host memory.
    ///
    /// # Safety
    /// The tensor must live in CPU memory (device -1) and stay alive during the call.
    pub unsafe fn host_values(&self) -> Vec<i64> {
        let numel: usize = self.shape.iter().product();
        if numel == 0 || self.ptr == 0 {
            return Vec::new();
        }
        unsafe { std::slice::from_raw_parts(self.ptr as *const i64, numel) }.to_vec()
    }
}
