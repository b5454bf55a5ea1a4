//! `cubeops._native`: the thin bridge between the Python package and the Rust core.
//!
//! Python passes tensor descriptions (pointer, shape, strides, dtype, device, storage size)
//! and pre-allocated outputs; Rust validates them, then runs the kernels on that memory in
//! place with the GIL released: the CPU kernels of `cubeops`, or the zero-copy CUDA
//! launcher of `cubeops_kernels::cuda` on the given stream. Errors come back as Python
//! exceptions naming the argument; PyO3 turns any panic into a Python exception, so none
//! crosses the FFI boundary.

/// Calls the generic `$f::<T>(...)` for the storage type of `$dtype` (a `tensor::DType`); the
/// caller imports `DType`, `half::f16` and `half::bf16`.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            DType::F16 => $f::<f16>($($arg),*),
            DType::BF16 => $f::<bf16>($($arg),*),
        }
    };
}

mod cpu;
mod cuda;
mod error;
mod focal;
mod msda;
mod tensor;

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use cubeops_kernels::point_sample::Sampling;
use cubeops_kernels::focal_loss::FocalLoss;
use tensor::{DType, IndexDesc, TensorDesc};

/// Reads the descriptions; all must be on one device, and those in `same_dtype` share the
/// first one's dtype.
fn describe(args: &[(&'static str, &Bound<'_, PyAny>)], same_dtype: usize) -> PyResult<Vec<TensorDesc>> {
    let descs = args.iter().map(|(name, obj)| TensorDesc::from_py(name, obj)).collect::<PyResult<Vec<_>>>()?;
    let first = &descs[0];
    for (i, d) in descs.iter().enumerate().skip(1) {
        if i < same_dtype && d.dtype != first.dtype {
            return Err(PyTypeError::new_err(format!("`{}` has dtype {}, `{}` has {}", d.arg, d.dtype, first.arg, first.dtype)));
        }
        if d.device != first.device {
            return Err(PyValueError::new_err(format!("`{}` is on device {}, `{}` on {}", d.arg, d.device, first.arg, first.device)));
        }
    }
    Ok(descs)
}

/// grid_sample's `align_corners`, `mode` and `padding_mode`; unknown names are a ValueError.
fn sampling(align_corners: bool, mode: &str, padding_mode: &str) -> PyResult<Sampling> {
    let mode = mode.parse().map_err(PyValueError::new_err)?;
    let padding = padding_mode.parse().map_err(PyValueError::new_err)?;
    Ok(Sampling { align_corners, mode, padding })
}

fn on_cpu(desc: &TensorDesc) -> bool {
    desc.device < 0
}

/// point_sample's dtypes: `points` and `others` (the output, the gradients of the output and
/// of the points) share one; `input` has it too, or on CUDA is float16/bfloat16 with float32
/// points (torch.autocast's contract: a float32 result, without a float32 copy of the map).
fn check_dtypes(input: &TensorDesc, points: &TensorDesc, others: &[&TensorDesc]) -> PyResult<()> {
    let autocast = !on_cpu(input) && points.dtype == DType::F32 && matches!(input.dtype, DType::F16 | DType::BF16);
    if points.dtype != input.dtype && !autocast {
        return Err(PyTypeError::new_err(format!(
            "`points` has dtype {}, `input` has {} (the same dtype, or on CUDA float32 points with a float16/bfloat16 input)",
            points.dtype, input.dtype
        )));
    }
    match others.iter().find(|d| d.dtype != points.dtype) {
        Some(d) => Err(PyTypeError::new_err(format!("`{}` has dtype {}, `points` has {}", d.arg, d.dtype, points.dtype))),
        None => Ok(()),
    }
}

/// `output (N, C, P) = point_sample(input (N, C, H, W), points (N, P, 2))`.
#[pyfunction]
fn point_sample_forward(
    py: Python<'_>,
    input: Bound<'_, PyAny>,
    points: Bound<'_, PyAny>,
    output: Bound<'_, PyAny>,
    align_corners: bool,
    mode: &str,
    padding_mode: &str,
    stream: u64,
) -> PyResult<()> {
    let sampling = sampling(align_corners, mode, padding_mode)?;
    let d = describe(&[("input", &input), ("points", &points), ("output", &output)], 0)?;
    check_dtypes(&d[0], &d[1], &[&d[2]])?;
    py.detach(|| {
        if on_cpu(&d[0]) {
            cpu::forward(&d[0], &d[1], &d[2], sampling)
        } else {
            cuda::forward(&d[0], &d[1], &d[2], sampling, stream)
        }
    })
}

/// The gradients from `grad_output (N, C, P)` into the buffers given (either may be None):
/// - `grad_input`: on the CPU a contiguous tensor of the input's dtype; on CUDA a dense
///   float32 (float64) accumulation buffer, best in the input's layout (one kernel pass for
///   both gradients then), which is zeroed on the stream here and cast by the caller.
///   `deterministic` picks a CUDA kernel without float atomics on finite values (the CPU
///   kernel is deterministic anyway): with `fixed` (int64, grad_input's element count plus
///   one; zeroed here; see `cuda::FixedPoint`) and a float32 `grad_input` the one with
///   64-bit integer atomics, else the ordered one. `shared` (CUDA; cells per tile, 0 for
///   none): `grad_input` is NCHW in the input's dtype (f16/bf16/f32), summed per plane in
///   shared memory and written whole (see `cuda::Grads::shared`); deterministically in fixed
///   point, with `fixed` of one element, when `deterministic`.
/// - `grad_points`: `(N, P, 2)`, contiguous; bilinear only on CUDA (nearest's is zero).
/// One call for both: host time is what small problems pay.
#[pyfunction]
#[pyo3(signature = (grad_output, input, points, grad_input, grad_points, align_corners, mode, padding_mode, deterministic, stream, fixed=None, shared=0))]
#[allow(clippy::too_many_arguments)]
fn point_sample_backward(
    py: Python<'_>,
    grad_output: Bound<'_, PyAny>,
    input: Bound<'_, PyAny>,
    points: Bound<'_, PyAny>,
    grad_input: Option<Bound<'_, PyAny>>,
    grad_points: Option<Bound<'_, PyAny>>,
    align_corners: bool,
    mode: &str,
    padding_mode: &str,
    deterministic: bool,
    stream: u64,
    fixed: Option<Bound<'_, PyAny>>,
    shared: usize,
) -> PyResult<()> {
    let sampling = sampling(align_corners, mode, padding_mode)?;
    let mut args = vec![("grad_output", &grad_output), ("input", &input), ("points", &points)];
    args.extend(grad_points.as_ref().map(|g| ("grad_points", g)));
    args.extend(grad_input.as_ref().map(|g| ("grad_input", g)));
    let d = describe(&args, 0)?;
    let (gp, gi) = (grad_points.is_some().then(|| &d[3]), grad_input.is_some().then(|| &d[d.len() - 1]));
    // grad_points and grad_output share the points' dtype; grad_input (an accumulation buffer
    // on CUDA) is checked where it is used.
    check_dtypes(&d[1], &d[2], &[&d[0]].into_iter().chain(gp).collect::<Vec<_>>())?;
    let fixed_point = fixed.map(|f| IndexDesc::from_py("fixed", &f).map(|sums| cuda::FixedPoint { sums })).transpose()?;
    py.detach(|| {
        if !on_cpu(&d[0]) {
            let grads = cuda::Grads { input: gi, points: gp, deterministic, fixed_point: fixed_point.as_ref(), shared };
            return cuda::backward(&d[0], &d[1], &d[2], grads, sampling, stream);
        }
        if let Some(gi) = gi {
            if gi.dtype != d[0].dtype {
                return Err(PyTypeError::new_err("`grad_input` must have grad_output's dtype on the CPU"));
            }
            cpu::grad_input(&d[0], &d[2], gi, sampling)?;
        }
        if let Some(gp) = gp {
            cpu::grad_points(&d[0], &d[1], &d[2], gp, sampling)?;
        }
        Ok(())
    })
}

/// The sorted deterministic backward, first pass (CUDA): `keys` (int64) and `weights`
/// (float32), `4 * N * P` each and contiguous, get every point's four corner cells and
/// weights, for the caller to sort the keys stably (see `cuda::corner_keys`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn point_sample_corner_keys(
    py: Python<'_>,
    input: Bound<'_, PyAny>,
    points: Bound<'_, PyAny>,
    keys: Bound<'_, PyAny>,
    weights: Bound<'_, PyAny>,
    align_corners: bool,
    mode: &str,
    padding_mode: &str,
    stream: u64,
) -> PyResult<()> {
    let sampling = sampling(align_corners, mode, padding_mode)?;
    let d = describe(&[("input", &input), ("points", &points), ("weights", &weights)], 0)?;
    check_dtypes(&d[0], &d[1], &[])?;
    let keys = IndexDesc::from_py("keys", &keys)?;
    if on_cpu(&d[0]) {
        return Err(PyValueError::new_err("point_sample_corner_keys runs on CUDA tensors only"));
    }
    py.detach(|| cuda::corner_keys(&d[0], &d[1], &keys, &d[2], sampling, stream))
}

/// The sorted deterministic backward, second pass (CUDA): `grad_input` (the input's shape,
/// dtype and a dense layout; zeroed here) from `grad_output (N, C, P)`, the keys sorted
/// stably, `order` (where each sorted key came from: torch.sort's indices) and the weights
/// of the first pass (see `cuda::sorted_backward`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn point_sample_backward_sorted(
    py: Python<'_>,
    grad_output: Bound<'_, PyAny>,
    input: Bound<'_, PyAny>,
    points: Bound<'_, PyAny>,
    grad_input: Bound<'_, PyAny>,
    keys: Bound<'_, PyAny>,
    order: Bound<'_, PyAny>,
    weights: Bound<'_, PyAny>,
    stream: u64,
) -> PyResult<()> {
    let args = [("grad_output", &grad_output), ("input", &input), ("points", &points), ("grad_input", &grad_input), ("weights", &weights)];
    let d = describe(&args, 0)?;
    check_dtypes(&d[1], &d[2], &[&d[0]])?;
    let (keys, order) = (IndexDesc::from_py("keys", &keys)?, IndexDesc::from_py("order", &order)?);
    if on_cpu(&d[0]) {
        return Err(PyValueError::new_err("point_sample_backward_sorted runs on CUDA tensors only"));
    }
    py.detach(|| cuda::sorted_backward(&d[0], &d[1], &d[2], &d[3], &keys, &order, &d[4], stream))
}

/// Checks PSAMask's shapes: `src` is the mask `(N, mh*mw, H, W)` (forward) or the map's
/// gradient `(N, H*W, H, W)` (backward); `dst` the other one, contiguous.
fn psamask_shapes(src: &TensorDesc, dst: &TensorDesc, mask: (usize, usize), backward: bool) -> PyResult<()> {
    let ([n, c, h, w], _) = src.dims::<4>()?;
    let (dst_shape, _) = dst.dims::<4>()?;
    let (mh, mw) = mask;
    if mh == 0 || mw == 0 {
        return Err(PyValueError::new_err(format!("mask_size must be positive, got ({mh}, {mw})")));
    }
    let (src_c, dst_c) = if backward { (h * w, mh * mw) } else { (mh * mw, h * w) };
    if c != src_c {
        return Err(PyValueError::new_err(format!("`{}` has {c} channels, expected {src_c} (mask_size ({mh}, {mw}), map {h}x{w})", src.arg)));
    }
    if dst_shape != [n, dst_c, h, w] {
        return Err(PyValueError::new_err(format!("`{}` has shape {:?}, expected {:?}", dst.arg, dst.shape, [n, dst_c, h, w])));
    }
    if !dst.is_contiguous() {
        return Err(PyValueError::new_err(format!("`{}` must be contiguous", dst.arg)));
    }
    Ok(())
}

fn psamask_run(py: Python<'_>, d: Vec<TensorDesc>, distribute: bool, mask: (usize, usize), backward: bool, stream: u64) -> PyResult<()> {
    psamask_shapes(&d[0], &d[1], mask, backward)?;
    let psa_type = if distribute { cubeops::PsaType::Distribute } else { cubeops::PsaType::Collect };
    let options = cubeops::PsaMaskOptions { psa_type, mask_size: mask };
    py.detach(|| {
        if on_cpu(&d[0]) {
            cpu::psamask(&d[0], &d[1], options, backward)
        } else {
            cuda::psamask(&d[0], &d[1], mask, distribute, backward, stream)
        }
    })
}

/// PSAMask: writes every element of `output (N, H*W, H, W)` from `input (N, mh*mw, H, W)`.
#[pyfunction]
fn psamask_forward(
    py: Python<'_>,
    input: Bound<'_, PyAny>,
    output: Bound<'_, PyAny>,
    distribute: bool,
    mask_h: usize,
    mask_w: usize,
    stream: u64,
) -> PyResult<()> {
    let d = describe(&[("input", &input), ("output", &output)], 2)?;
    psamask_run(py, d, distribute, (mask_h, mask_w), false, stream)
}

/// PSAMask's gradient: writes every element of `grad_input (N, mh*mw, H, W)` from
/// `grad_output (N, H*W, H, W)`.
#[pyfunction]
fn psamask_backward(
    py: Python<'_>,
    grad_output: Bound<'_, PyAny>,
    grad_input: Bound<'_, PyAny>,
    distribute: bool,
    mask_h: usize,
    mask_w: usize,
    stream: u64,
) -> PyResult<()> {
    let d = describe(&[("grad_output", &grad_output), ("grad_input", &grad_input)], 2)?;
    psamask_run(py, d, distribute, (mask_h, mask_w), true, stream)
}

/// MSDA's integer operands: `(L, 2)` spatial shapes and `(L,)` level start index, int64.
fn index_descs(shapes: &Bound<'_, PyAny>, starts: &Bound<'_, PyAny>) -> PyResult<(IndexDesc, IndexDesc)> {
    Ok((IndexDesc::from_py("value_spatial_shapes", shapes)?, IndexDesc::from_py("value_level_start_index", starts)?))
}

/// Multi-scale deformable attention: writes `output (N, Lq, M, D)` (contiguous) from value
/// `(N, S, M, D)`, sampling locations `(N, Lq, M, L, P, 2)` and attention weights
/// `(N, Lq, M, L, P)`; the int64 level shapes and starts live with the value (on the CPU they
/// are read and checked against S; on CUDA the kernels read them, bounds-checked).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn ms_deform_attn_forward(
    py: Python<'_>,
    value: Bound<'_, PyAny>,
    spatial_shapes: Bound<'_, PyAny>,
    level_start_index: Bound<'_, PyAny>,
    sampling_locations: Bound<'_, PyAny>,
    attention_weights: Bound<'_, PyAny>,
    output: Bound<'_, PyAny>,
    stream: u64,
) -> PyResult<()> {
    let args = [("value", &value), ("sampling_locations", &sampling_locations), ("attention_weights", &attention_weights), ("output", &output)];
    let d = describe(&args, 4)?;
    let (shapes, starts) = index_descs(&spatial_shapes, &level_start_index)?;
    let ops = msda::Operands { value: &d[0], shapes: &shapes, starts: &starts, locations: &d[1], weights: &d[2] };
    py.detach(|| msda::forward(&ops, &d[3], stream))
}

/// MSDA's gradients from `grad_output (N, Lq, M, D)` into the buffers given: `grad_value`
/// (on CUDA a zeroed float32/float64 accumulation buffer), and `grad_sampling_locations`
/// with `grad_attention_weights` (both or neither), all contiguous. `deterministic` picks the
/// CUDA kernel without float atomics for the value's gradient.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn ms_deform_attn_backward(
    py: Python<'_>,
    grad_output: Bound<'_, PyAny>,
    value: Bound<'_, PyAny>,
    spatial_shapes: Bound<'_, PyAny>,
    level_start_index: Bound<'_, PyAny>,
    sampling_locations: Bound<'_, PyAny>,
    attention_weights: Bound<'_, PyAny>,
    grad_value: Option<Bound<'_, PyAny>>,
    grad_sampling_locations: Option<Bound<'_, PyAny>>,
    grad_attention_weights: Option<Bound<'_, PyAny>>,
    deterministic: bool,
    stream: u64,
) -> PyResult<()> {
    let mut args = vec![
        ("grad_output", &grad_output),
        ("value", &value),
        ("sampling_locations", &sampling_locations),
        ("attention_weights", &attention_weights),
    ];
    let sampling = match (&grad_sampling_locations, &grad_attention_weights) {
        (Some(gl), Some(gw)) => {
            args.extend([("grad_sampling_locations", gl), ("grad_attention_weights", gw)]);
            true
        }
        (None, None) => false,
        _ => return Err(PyValueError::new_err("give both `grad_sampling_locations` and `grad_attention_weights`, or neither")),
    };
    // grad_value (an accumulation buffer on CUDA) may have another dtype.
    let same_dtype = args.len();
    args.extend(grad_value.as_ref().map(|g| ("grad_value", g)));
    let d = describe(&args, same_dtype)?;
    let (shapes, starts) = index_descs(&spatial_shapes, &level_start_index)?;
    let ops = msda::Operands { value: &d[1], shapes: &shapes, starts: &starts, locations: &d[2], weights: &d[3] };
    let grads = msda::Grads {
        value: grad_value.is_some().then(|| &d[d.len() - 1]),
        sampling: sampling.then(|| (&d[4], &d[5])),
        deterministic,
    };
    py.detach(|| msda::backward(&ops, &d[0], &grads, stream))
}

/// A focal loss into the contiguous `output`, from `input (N, C)`, int64 `target (N,)` and an
/// optional `weight (C,)` (mmcv's `_ext` semantics, before the reduction). `loss` "sigmoid":
/// logits in, the elementwise `(N, C)` loss or with `backward` its derivative by the logits;
/// "softmax": softmax probabilities in, the `(N,)` loss of each row or with `backward` its
/// `(N, C)` derivative by the logits.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn focal_loss(
    py: Python<'_>,
    loss: &str,
    input: Bound<'_, PyAny>,
    target: Bound<'_, PyAny>,
    weight: Option<Bound<'_, PyAny>>,
    output: Bound<'_, PyAny>,
    gamma: f64,
    alpha: f64,
    backward: bool,
    stream: u64,
) -> PyResult<()> {
    let loss = match loss {
        "sigmoid" => FocalLoss::Sigmoid,
        "softmax" => FocalLoss::Softmax,
        other => return Err(PyValueError::new_err(format!("`loss` must be 'sigmoid' or 'softmax', got {other:?}"))),
    };
    let mut args = vec![("input", &input), ("output", &output)];
    args.extend(weight.as_ref().map(|w| ("weight", w)));
    let d = describe(&args, args.len())?;
    let target = IndexDesc::from_py("target", &target)?;
    let call = focal::Call { loss, input: &d[0], target: &target, weight: d.get(2), output: &d[1], gamma, alpha, backward };
    py.detach(|| focal::run(&call, stream))
}

/// Adds directories to search for the CUDA headers the kernels include (cuda_fp16.h).
#[pyfunction]
fn add_cuda_include_dirs(dirs: Vec<PathBuf>) {
    cubeops_kernels::cuda::add_include_dirs(dirs);
}

/// The CUDA include directories NVRTC would use now, or the error explaining what is missing.
#[pyfunction]
fn cuda_include_dirs() -> PyResult<Vec<PathBuf>> {
    cubeops_kernels::cuda::include_dirs().map_err(pyo3::exceptions::PyRuntimeError::new_err)
}

/// NVRTC's (major, minor) version, or a RuntimeError saying what to install.
/// Kernel modules loaded on CUDA devices so far (bounded: one per variant, dtype and device).
#[pyfunction]
fn loaded_kernels() -> usize {
    cubeops_kernels::cuda::loaded_kernels()
}

#[pyfunction]
fn nvrtc_version() -> PyResult<(i32, i32)> {
    cubeops_kernels::cuda::compile::nvrtc_version()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("{e}: pip install nvidia-cuda-nvrtc-cu12")))
}

/// The oldest NVRTC that compiles for compute capability `cc` (e.g. 120 -> (12, 8)).
#[pyfunction]
fn min_nvrtc(cc: u32) -> (i32, i32) {
    cubeops_kernels::cuda::compile::min_nvrtc(cc)
}

/// The large tiles of point_sample's shared-memory sums on CUDA device `device`, in cells
/// (`deterministic`: of the fixed-point sums): more than `POINT_SAMPLE_SHARED_CELLS`
/// (`POINT_SAMPLE_SHARED_FIXED_CELLS`) where the architecture lets a block opt in to more
/// shared memory, else that.
#[pyfunction]
fn point_sample_shared_cells(py: Python<'_>, device: usize, deterministic: bool) -> PyResult<usize> {
    py.detach(|| cuda::large_shared_cells(device, deterministic))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(point_sample_forward, m)?)?;
    m.add_function(wrap_pyfunction!(point_sample_backward, m)?)?;
    m.add_function(wrap_pyfunction!(point_sample_corner_keys, m)?)?;
    m.add_function(wrap_pyfunction!(point_sample_backward_sorted, m)?)?;
    m.add_function(wrap_pyfunction!(psamask_forward, m)?)?;
    m.add_function(wrap_pyfunction!(psamask_backward, m)?)?;
    m.add_function(wrap_pyfunction!(focal_loss, m)?)?;
    m.add_function(wrap_pyfunction!(ms_deform_attn_forward, m)?)?;
    m.add_function(wrap_pyfunction!(ms_deform_attn_backward, m)?)?;
    m.add_function(wrap_pyfunction!(add_cuda_include_dirs, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_include_dirs, m)?)?;
    m.add_function(wrap_pyfunction!(nvrtc_version, m)?)?;
    m.add_function(wrap_pyfunction!(loaded_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(min_nvrtc, m)?)?;
    m.add_function(wrap_pyfunction!(point_sample_shared_cells, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Which NCHW maps the CUDA bridge can sum in shared memory (`cuda::Grads::shared`).
    m.add("POINT_SAMPLE_SHARED_CELLS", cubeops_kernels::point_sample::SHARED_CELLS)?;
    m.add("POINT_SAMPLE_SHARED_MAX_TILES", cubeops_kernels::point_sample::SHARED_MAX_TILES)?;
    m.add("POINT_SAMPLE_SHARED_FIXED_CELLS", cubeops_kernels::point_sample::SHARED_FIXED_CELLS)?;
    Ok(())
}
