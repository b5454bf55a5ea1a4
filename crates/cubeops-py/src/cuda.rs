//! The CUDA path: torch's device memory handed to the zero-copy launcher of
//! `cubeops_kernels::cuda`, on torch's current stream.

use cubecl::ir::{ElemType, FloatKind, StorageType};
use cubeops_kernels::cuda::{self, DeviceArray, Kernel};
use cubeops_kernels::point_sample::{Geometry, Interpolation, Sampling, Variant};
use cubeops_kernels::psamask::PsaGeometry;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyResult;

use crate::tensor::{DType, TensorDesc};

pub(crate) fn storage(dtype: DType) -> StorageType {
    let kind = match dtype {
        DType::F16 => FloatKind::F16,
        DType::BF16 => FloatKind::BF16,
        DType::F32 => FloatKind::F32,
        DType::F64 => FloatKind::F64,
    };
    StorageType::Scalar(ElemType::Float(kind))
}

fn array(d: &TensorDesc) -> DeviceArray {
    DeviceArray { ptr: d.ptr as u64, len: d.available }
}

/// Launch geometry from the `(N, C, H, W)` map the kernel indexes, the points and the
/// `(N, C, P)` output (or output gradient).
fn geometry(map: &TensorDesc, points: &TensorDesc, out: &TensorDesc) -> PyResult<Geometry> {
    let ([n, channels, height, width], map_strides) = map.dims::<4>()?;
    let ([pn, num_points, two], points_strides) = points.dims::<3>()?;
    let (out_shape, out_strides) = out.dims::<3>()?;
    if pn != n || two != 2 || out_shape != [n, channels, num_points] {
        return Err(PyValueError::new_err(format!(
            "inconsistent shapes: map {:?}, points {:?}, output {:?}",
            map.shape, points.shape, out.shape
        )));
    }
    let geo = Geometry { n, channels, height, width, num_points, map_strides, points_strides, out_strides };
    geo.scalars().map_err(|e| PyValueError::new_err(format!("point_sample on CUDA: {e}")))?;
    Ok(geo)
}

/// 64-bit indexing once a buffer holds more than `u32::MAX` elements.
fn wide_index(descs: &[&TensorDesc]) -> bool {
    descs.iter().any(|d| d.available > u32::MAX as usize)
}

fn variant(map: &TensorDesc, descs: &[&TensorDesc], sampling: Sampling) -> Variant {
    Variant::for_map(&map.strides, sampling, wide_index(descs))
}

fn run(kernel: Kernel, stream: u64, geo: &Geometry, variant: Variant, dtype: DType, descs: &[&TensorDesc]) -> PyResult<()> {
    let device = descs[0].device as usize;
    let arrays: Vec<DeviceArray> = descs.iter().map(|d| array(d)).collect();
    cuda::launch(kernel, device, stream, geo, variant, storage(dtype), &arrays).map_err(PyRuntimeError::new_err)
}

pub fn forward(input: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling, stream: u64) -> PyResult<()> {
    let geo = geometry(input, points, out)?;
    let variant = variant(input, &[input, points, out], sampling);
    run(Kernel::Forward, stream, &geo, variant, input.dtype, &[input, points, out])
}

/// `grad_input` is the accumulation buffer: float32 (float64 for float64 input), zeroed,
/// in the input's layout. `deterministic`: the kernel without atomics.
pub fn grad_input(
    grad: &TensorDesc,
    points: &TensorDesc,
    grad_input: &TensorDesc,
    dtype: DType,
    sampling: Sampling,
    deterministic: bool,
    stream: u64,
) -> PyResult<()> {
    let expected = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
    if grad_input.dtype != expected {
        return Err(PyValueError::new_err(format!("`grad_input` accumulates in {expected:?}, got {:?}", grad_input.dtype)));
    }
    let geo = geometry(grad_input, points, grad)?;
    let variant = variant(grad_input, &[grad, points, grad_input], sampling);
    let kernel = if deterministic { Kernel::BackwardInputOrdered } else { Kernel::BackwardInput };
    run(kernel, stream, &geo, variant, dtype, &[grad, points, grad_input])
}

pub fn grad_points(grad: &TensorDesc, input: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling, stream: u64) -> PyResult<()> {
    let geo = geometry(input, points, grad)?;
    if out.shape != points.shape || out.strides.as_slice() != [points.shape[1] * 2, 2, 1] && out.shape.iter().product::<usize>() > 0 {
        return Err(PyValueError::new_err("`grad_points` must be a contiguous (N, P, 2) tensor"));
    }
    if sampling.mode == Interpolation::Nearest {
        return Err(PyValueError::new_err("nearest sampling has no gradient to the points (it is zero): nothing to launch"));
    }
    let variant = variant(input, &[grad, input, points, out], sampling);
    run(Kernel::BackwardPoints, stream, &geo, variant, input.dtype, &[grad, input, points, out])
}

/// PSAMask forward (`src` = mask, `dst` = map) or backward (`src` = grad map, `dst` = grad
/// mask); shapes checked by the caller, `dst` contiguous.
pub fn psamask(src: &TensorDesc, dst: &TensorDesc, mask: (usize, usize), distribute: bool, backward: bool, stream: u64) -> PyResult<()> {
    let ([n, _, height, width], src_strides) = src.dims::<4>()?;
    let (_, dst_strides) = dst.dims::<4>()?;
    let geo = PsaGeometry { n, height, width, mask_h: mask.0, mask_w: mask.1, src_strides, dst_strides };
    geo.scalars().map_err(|e| PyValueError::new_err(format!("PSAMask on CUDA: {e}")))?;
    // Only `wide_index` of the point_sample variant applies to PSAMask.
    let variant = Variant { sampling: Sampling::default(), channels_last: false, wide_index: wide_index(&[src, dst]) };
    let device = src.device as usize;
    cuda::launch(Kernel::PsaMask { distribute, backward }, device, stream, &geo, variant, storage(src.dtype), &[array(src), array(dst)])
        .map_err(PyRuntimeError::new_err)
}
