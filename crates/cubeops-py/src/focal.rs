//! The focal losses through the bridge: shapes checked once, then the CPU kernels of
//! `cubeops` or the zero-copy CUDA launcher.

use cubeops::point_sample::cpu::CpuElement;
use cubeops_kernels::cuda::{self, DeviceArray, Kernel};
use cubeops_kernels::focal_loss::{FocalGeometry, FocalLoss};
use cubeops_kernels::point_sample::Variant;
use half::{bf16, f16};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyResult;

use crate::cpu::{memory, output, view};
use crate::error::to_py;
use crate::tensor::{DType, IndexDesc, TensorDesc};

/// One call: `input (N, C)` (logits for the sigmoid loss, softmax probabilities for the
/// softmax loss, as mmcv's `_ext`), int64 targets `(N,)`, optional weight `(C,)`, contiguous
/// output: the loss (sigmoid `(N, C)`, softmax `(N,)`) or its `(N, C)` derivative by the logits
/// when `backward`.
pub struct Call<'a> {
    pub loss: FocalLoss,
    pub input: &'a TensorDesc,
    pub target: &'a IndexDesc,
    pub weight: Option<&'a TensorDesc>,
    pub output: &'a TensorDesc,
    pub gamma: f64,
    pub alpha: f64,
    pub backward: bool,
}

fn typed<T: CpuElement>(call: &Call) -> PyResult<()> {
    // SAFETY: the target is a live int64 CPU tensor (checked by the caller).
    let target = unsafe { call.target.host_values() };
    // SAFETY: descriptors of live torch CPU tensors of dtype T (checked by the caller).
    let (i, o) = unsafe { (memory::<T>(call.input), output::<T>(call.output)?) };
    let weight = match call.weight {
        Some(w) => Some(view::<T, 1>(w, unsafe { memory::<T>(w) })?),
        None => None,
    };
    let input = view::<T, 2>(call.input, i)?;
    let run = match call.loss {
        FocalLoss::Sigmoid => cubeops::focal_loss::cpu::sigmoid_focal_loss::<T>,
        FocalLoss::Softmax => cubeops::focal_loss::cpu::softmax_focal_loss::<T>,
    };
    run(input, &target, weight, o, call.gamma, call.alpha, call.backward).map_err(to_py)
}

pub fn run(call: &Call, stream: u64) -> PyResult<()> {
    let ([n, c], input_strides) = call.input.dims::<2>()?;
    let err = |msg: String| Err(PyValueError::new_err(msg));
    if call.target.shape != [n] {
        return err(format!("`target` must be ({n},) for {n} rows, got {:?}", call.target.shape));
    }
    if let Some(w) = call.weight {
        if w.shape != [c] || !w.is_contiguous() {
            return err(format!("`weight` must be a contiguous ({c},) tensor, got shape {:?}", w.shape));
        }
    }
    let rows = call.loss == FocalLoss::Softmax && !call.backward;
    let want: &[usize] = if rows { &[n] } else { &[n, c] };
    if call.output.shape != want || !call.output.is_contiguous() {
        return err(format!("`output` must be a contiguous {want:?} tensor, got shape {:?}", call.output.shape));
    }
    let output_strides = if rows { [1, 0] } else { [c, 1] };
    if !(call.gamma >= 0.0 && call.gamma.is_finite() && call.alpha.is_finite()) {
        return err(format!("gamma must be finite and >= 0, alpha finite; got gamma={}, alpha={}", call.gamma, call.alpha));
    }
    if call.target.device != call.input.device {
        return err(format!("`target` is on device {}, `input` on {}", call.target.device, call.input.device));
    }
    if call.input.device < 0 {
        return by_dtype!(call.input.dtype, typed(call));
    }
    let geo = FocalGeometry { n, classes: c, gamma: call.gamma, alpha: call.alpha, input_strides, output_strides };
    geo.scalars().map_err(|e| PyValueError::new_err(format!("focal loss on CUDA: {e}")))?;
    let array = crate::cuda::array;
    let target = DeviceArray { ptr: call.target.ptr as u64, len: call.target.available };
    let arrays = [array(call.input), target, array(call.weight.unwrap_or(call.input)), array(call.output)];
    let wide_index = arrays.iter().any(|a| a.len > u32::MAX as usize);
    // Only `wide_index` of the point_sample variant applies here.
    let variant = Variant::index_width(wide_index);
    let kernel = Kernel::Focal { loss: call.loss, weighted: call.weight.is_some(), backward: call.backward, index64: true };
    let storage = crate::cuda::storage_type(call.input.dtype);
    cuda::launch(kernel, call.input.device as usize, stream, &geo, variant, storage, &arrays).map_err(PyRuntimeError::new_err)
}
