//! Multi-scale deformable attention through the bridge: shape checks shared by both paths,
//! then the CPU kernels of `cubeops` or the zero-copy CUDA launcher.

use std::sync::OnceLock;

use cubeops::ms_deform_attn::cpu::{self as msda_cpu, Inputs};
use cubeops::point_sample::cpu::CpuElement;
use cubeops_kernels::cuda::{self, DeviceArray, Kernel, MsdaPass};
use cubeops_kernels::ms_deform_attn::{forward_per_thread, fused_lanes, fused_vector, vector_width, MsdaGeometry};
use cubeops_kernels::point_sample::Variant;
use half::{bf16, f16};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyResult;

use crate::cpu::{memory, output, view};
use crate::cuda::{array, tuned, vectors};
use crate::error::to_py;
use crate::tensor::{DType, IndexDesc, TensorDesc};

/// The operands of one call: value `(N, S, M, D)`, spatial shapes `(L, 2)`, level start
/// index `(L,)`, locations `(N, Lq, M, L, P, 2)`, weights `(N, Lq, M, L, P)`.
pub struct Operands<'a> {
    pub value: &'a TensorDesc,
    pub shapes: &'a IndexDesc,
    pub starts: &'a IndexDesc,
    pub locations: &'a TensorDesc,
    pub weights: &'a TensorDesc,
}

impl Operands<'_> {
    /// `(n, keys, heads, channels, queries, levels, points)`; every operand checked.
    pub fn dims(&self) -> PyResult<[usize; 7]> {
        let ([n, s, m, d], _) = self.value.dims::<4>()?;
        let ([ln, q, lm, l, p, two], _) = self.locations.dims::<6>()?;
        let (weights_shape, _) = self.weights.dims::<5>()?;
        let err = |msg: String| Err(PyValueError::new_err(msg));
        if [ln, lm, two] != [n, m, 2] {
            return err(format!("`sampling_locations` must be (N, Lq, M, L, P, 2) = ({n}, Lq, {m}, L, P, 2), got {:?}", self.locations.shape));
        }
        if weights_shape != [n, q, m, l, p] {
            return err(format!("`attention_weights` must have shape {:?}, got {:?}", [n, q, m, l, p], self.weights.shape));
        }
        if self.shapes.shape != [l, 2] {
            return err(format!("`value_spatial_shapes` must be ({l}, 2) for {l} levels, got {:?}", self.shapes.shape));
        }
        if self.starts.shape != [l] {
            return err(format!("`value_level_start_index` must be ({l},), got {:?}", self.starts.shape));
        }
        for desc in [self.shapes, self.starts] {
            if desc.device != self.value.device {
                return err(format!("`{}` is on device {}, `value` on {}", desc.arg, desc.device, self.value.device));
            }
        }
        Ok([n, s, m, d, q, l, p])
    }

    /// The levels `(height, width, first key)`, read from host memory and checked against the
    /// value's keys (CPU tensors only).
    fn host_levels(&self, keys: usize) -> PyResult<Vec<(usize, usize, usize)>> {
        // SAFETY: the caller checked the tensors are in CPU memory; they are alive for the call.
        let (shapes, starts) = unsafe { (self.shapes.host_values(), self.starts.host_values()) };
        let mut levels = Vec::with_capacity(starts.len());
        for (l, (hw, &start)) in shapes.chunks(2).zip(&starts).enumerate() {
            let (h, w) = (hw[0], hw[1]);
            let fits = h >= 0 && w >= 0 && start >= 0 && (start as u128 + (h as u128) * (w as u128)) <= keys as u128;
            if !fits {
                return Err(PyValueError::new_err(format!(
                    "level {l}: shape ({h}, {w}) starting at key {start} does not fit the value's {keys} keys"
                )));
            }
            levels.push((h as usize, w as usize, start as usize));
        }
        Ok(levels)
    }

    fn geometry(&self, value_like: &TensorDesc, out: &TensorDesc) -> PyResult<MsdaGeometry> {
        let [n, s, m, d, q, l, p] = self.dims()?;
        let geo = MsdaGeometry {
            n,
            num_keys: s,
            num_heads: m,
            channels: d,
            num_levels: l,
            num_queries: q,
            num_points: p,
            value_strides: value_like.dims::<4>()?.1,
            loc_strides: self.locations.dims::<6>()?.1,
            attn_strides: self.weights.dims::<5>()?.1,
            out_strides: out.dims::<4>()?.1,
        };
        geo.scalars().map_err(|e| PyValueError::new_err(format!("ms_deform_attn on CUDA: {e}")))?;
        Ok(geo)
    }
}

fn expect_shape(desc: &TensorDesc, want: &[usize]) -> PyResult<()> {
    if desc.shape != want {
        return Err(PyValueError::new_err(format!("`{}` must have shape {want:?}, got {:?}", desc.arg, desc.shape)));
    }
    Ok(())
}

fn expect_contiguous(descs: &[&TensorDesc]) -> PyResult<()> {
    match descs.iter().find(|d| !d.is_contiguous()) {
        Some(d) => Err(PyValueError::new_err(format!("`{}` must be contiguous", d.arg))),
        None => Ok(()),
    }
}

fn inputs<'a, T: CpuElement>(ops: &Operands, value: &'a [T], locations: &'a [T], weights: &'a [T]) -> PyResult<Inputs<'a, T>> {
    Ok(Inputs { value: view(ops.value, value)?, locations: view(ops.locations, locations)?, weights: view(ops.weights, weights)? })
}

fn forward_cpu<T: CpuElement>(ops: &Operands, out: &TensorDesc, keys: usize) -> PyResult<()> {
    let levels = ops.host_levels(keys)?;
    // SAFETY: descriptors of live torch CPU tensors of dtype T (checked by the caller).
    let (v, lo, w, o) = unsafe { (memory::<T>(ops.value), memory::<T>(ops.locations), memory::<T>(ops.weights), output::<T>(out)?) };
    msda_cpu::forward(&inputs(ops, v, lo, w)?, &levels, o).map_err(to_py)
}

fn backward_cpu<T: CpuElement>(ops: &Operands, grad: &TensorDesc, grads: &Grads, keys: usize) -> PyResult<()> {
    let levels = ops.host_levels(keys)?;
    // SAFETY: as in `forward_cpu`.
    let (v, lo, w, g) = unsafe { (memory::<T>(ops.value), memory::<T>(ops.locations), memory::<T>(ops.weights), memory::<T>(grad)) };
    let inputs = inputs(ops, v, lo, w)?;
    let grad = view::<T, 4>(grad, g)?;
    if let Some(gv) = grads.value {
        // SAFETY: as in `forward_cpu`; the Python side allocates each output fresh.
        msda_cpu::grad_value(&inputs, &levels, grad, unsafe { output::<T>(gv)? }).map_err(to_py)?;
    }
    if let Some((gl, gw)) = grads.sampling {
        let (gl, gw) = unsafe { (output::<T>(gl)?, output::<T>(gw)?) };
        msda_cpu::grad_sampling(&inputs, &levels, grad, gl, gw).map_err(to_py)?;
    }
    Ok(())
}


fn index_array(d: &IndexDesc) -> DeviceArray {
    DeviceArray { ptr: d.ptr as u64, len: d.available }
}

fn launch(pass: MsdaPass, geo: &MsdaGeometry, dtype: DType, arrays: &[DeviceArray], device: i64, stream: u64) -> PyResult<()> {
    let wide_index = arrays.iter().any(|a| a.len > u32::MAX as usize);
    // Only `wide_index` of the point_sample variant applies to MSDA.
    let variant = Variant::index_width(wide_index);
    let kernel = Kernel::Msda { pass, index64: true };
    cuda::launch(kernel, device as usize, stream, geo, variant, crate::cuda::storage_type(dtype), arrays).map_err(PyRuntimeError::new_err)
}

/// `output (N, Lq, M, D)` (a view of mmcv's `(N, Lq, M * D)`), contiguous.
pub fn forward(ops: &Operands, out: &TensorDesc, stream: u64) -> PyResult<()> {
    let [n, s, m, d, q, _, _] = ops.dims()?;
    expect_shape(out, &[n, q, m, d])?;
    expect_contiguous(&[out])?;
    if ops.value.device < 0 {
        return by_dtype!(ops.value.dtype, forward_cpu(ops, out, s));
    }
    let geo = ops.geometry(ops.value, out)?;
    let layouts = [(ops.value.ptr as u64, &ops.value.strides[..]), (out.ptr as u64, &out.strides[..])];
    let vector = vector_width(d, ops.value.dtype.size(), &layouts);
    let (value, shapes, starts) = (vectors(ops.value, vector), index_array(ops.shapes), index_array(ops.starts));
    let arrays = [value, shapes, starts, array(ops.locations), array(ops.weights), vectors(out, vector)];
    let per_thread = tuned(&FORWARD_UNITS, "CUBEOPS_MSDA_FORWARD_UNITS", Some(forward_per_thread(d, vector)), 4).unwrap_or(1);
    let pass = MsdaPass::Forward { per_thread, vector: vector as u32 };
    launch(pass, &geo, ops.value.dtype, &arrays, ops.value.device, stream)
}

/// Launch-shape overrides for benchmark sweeps (docs/benchmarks.md), read once.
static FORWARD_UNITS: OnceLock<Option<u32>> = OnceLock::new();
static BACKWARD_LANES: OnceLock<Option<u32>> = OnceLock::new();


/// The gradient buffers of a backward call; `sampling` = (locations, weights).
/// `deterministic`: the value's gradient from the kernel without atomics (CUDA; the CPU
/// kernels are deterministic anyway).
pub struct Grads<'a> {
    pub value: Option<&'a TensorDesc>,
    pub sampling: Option<(&'a TensorDesc, &'a TensorDesc)>,
    pub deterministic: bool,
}

/// Fills the gradient buffers given from `grad_output (N, Lq, M, D)`: on the CPU contiguous
/// tensors of the value's dtype; on CUDA `value` is a zeroed contiguous float32 (float64)
/// accumulation buffer (atomics), locations and weights contiguous in the value's dtype.
pub fn backward(ops: &Operands, grad: &TensorDesc, grads: &Grads, stream: u64) -> PyResult<()> {
    let [n, s, m, d, q, l, p] = ops.dims()?;
    expect_shape(grad, &[n, q, m, d])?;
    let cuda = ops.value.device >= 0;
    if let Some(gv) = grads.value {
        expect_shape(gv, &[n, s, m, d])?;
        expect_contiguous(&[gv])?;
        let acc = if ops.value.dtype == DType::F64 { DType::F64 } else { DType::F32 };
        let want = if cuda { acc } else { ops.value.dtype };
        if gv.dtype != want {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!("`grad_value` must be {want} here, got {}", gv.dtype)));
        }
    }
    if let Some((gl, gw)) = grads.sampling {
        expect_shape(gl, &[n, q, m, l, p, 2])?;
        expect_shape(gw, &[n, q, m, l, p])?;
        expect_contiguous(&[gl, gw])?;
    }
    if !cuda {
        return by_dtype!(ops.value.dtype, backward_cpu(ops, grad, grads, s));
    }
    let (shapes, starts) = (index_array(ops.shapes), index_array(ops.starts));
    let (locations, weights) = (array(ops.locations), array(ops.weights));
    // With the other gradients, the fused kernel adds into the value's (atomics) unless the
    // deterministic kernel is asked for; alone, the value's has its own kernel.
    let fused_value = grads.sampling.is_some() && !grads.deterministic;
    if let Some(gv) = grads.value.filter(|_| !fused_value) {
        let geo = ops.geometry(gv, grad)?;
        let arrays = [array(grad), shapes, starts, locations, weights, array(gv)];
        let pass = if grads.deterministic { MsdaPass::BackwardValueOrdered } else { MsdaPass::BackwardValue };
        launch(pass, &geo, ops.value.dtype, &arrays, ops.value.device, stream)?;
    }
    if let Some((gl, gw)) = grads.sampling {
        let geo = ops.geometry(ops.value, grad)?;
        let scatter = fused_value && grads.value.is_some();
        // float4 atomic adds from sm_90 into a float32 buffer on a 16-byte boundary (ours
        // always are; `_native` callers may pass any).
        let aligned = grads.value.is_some_and(|gv| gv.ptr % 16 == 0);
        let vector_add = (aligned || !scatter)
            && ops.value.dtype != DType::F64
            && cuda::compute_capability(ops.value.device as usize).map_err(PyRuntimeError::new_err)? >= 90;
        // The same vectors read from the value and the output gradient.
        let layouts = [(ops.value.ptr as u64, &ops.value.strides[..]), (grad.ptr as u64, &grad.strides[..])];
        let vector = fused_vector(d, vector_add && vector_width(d, ops.value.dtype.size(), &layouts) == 4);
        // Not touched without `scatter`: any valid address, no readable elements.
        let grad_value = match grads.value {
            Some(gv) if scatter => vectors(gv, vector),
            _ => DeviceArray { ptr: gl.ptr as u64, len: 0 },
        };
        let arrays = [vectors(grad, vector), vectors(ops.value, vector), shapes, starts, locations, weights, grad_value, array(gl), array(gw)];
        let lanes = tuned(&BACKWARD_LANES, "CUBEOPS_MSDA_BACKWARD_LANES", Some(fused_lanes(d, vector)), 32).unwrap_or(1);
        let pass = MsdaPass::BackwardFused { scatter, lanes, vector: vector as u32 };
        launch(pass, &geo, ops.value.dtype, &arrays, ops.value.device, stream)?;
    }
    Ok(())
}
