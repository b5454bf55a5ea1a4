//! The CUDA path: torch's device memory handed to the zero-copy launcher of
//! `cubeops_kernels::cuda`, on torch's current stream.

use cubecl::ir::{ElemType, FloatKind, StorageType};
use cubeops_kernels::cuda::{self, DeviceArray, Kernel};
use cubeops_kernels::point_sample::{self, backward_vector, BackwardPass, Geometry, Interpolation, Sampling, Variant};
use cubeops_kernels::psamask::PsaGeometry;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyResult;
use std::sync::OnceLock;

use crate::tensor::{DType, IndexDesc, TensorDesc};

pub(crate) fn storage_type(dtype: DType) -> StorageType {
    let kind = match dtype {
        DType::F16 => FloatKind::F16,
        DType::BF16 => FloatKind::BF16,
        DType::F32 => FloatKind::F32,
        DType::F64 => FloatKind::F64,
    };
    StorageType::Scalar(ElemType::Float(kind))
}

pub(crate) fn array(d: &TensorDesc) -> DeviceArray {
    DeviceArray { ptr: d.ptr as u64, len: d.available }
}

/// `d`'s memory as an array of vectors of `vector` elements.
pub(crate) fn vectors(d: &TensorDesc, vector: usize) -> DeviceArray {
    DeviceArray { ptr: d.ptr as u64, len: d.available / vector }
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

/// The kernel variant for `map`'s layout; `points` f32 with a 16-bit `input` is autocast's
/// case (f32 points, output and gradients), checked by the caller.
fn variant(map: &TensorDesc, input: &TensorDesc, points: &TensorDesc, descs: &[&TensorDesc], sampling: Sampling) -> Variant {
    Variant { f32_points: points.dtype != input.dtype, ..Variant::for_map(&map.strides, sampling, wide_index(descs)) }
}

fn run(kernel: Kernel, stream: u64, geo: &Geometry, variant: Variant, dtype: DType, descs: &[&TensorDesc]) -> PyResult<()> {
    let device = descs[0].device as usize;
    let arrays: Vec<DeviceArray> = descs.iter().map(|d| array(d)).collect();
    cuda::launch(kernel, device, stream, geo, variant, storage_type(dtype), &arrays).map_err(PyRuntimeError::new_err)
}

pub fn forward(input: &TensorDesc, points: &TensorDesc, out: &TensorDesc, sampling: Sampling, stream: u64) -> PyResult<()> {
    let geo = geometry(input, points, out)?;
    let variant = variant(input, input, points, &[input, points, out], sampling);
    run(Kernel::Forward, stream, &geo, variant, input.dtype, &[input, points, out])
}

/// The gradient buffers of a backward call, on CUDA.
pub struct Grads<'a> {
    /// float32 (float64 for float64 input), dense (any order of dimensions), zeroed here; or,
    /// with `shared`, of the input's dtype (any contents: written whole).
    pub input: Option<&'a TensorDesc>,
    /// `(N, P, 2)`, contiguous, of the points' dtype.
    pub points: Option<&'a TensorDesc>,
    /// The input's gradient without float atomics on finite values: with `fixed_point`
    /// (float32 buffers) by 64-bit integer atomics, else by the ordered kernel.
    pub deterministic: bool,
    pub fixed_point: Option<&'a FixedPoint>,
    /// The input's gradient summed per plane in shared memory and written whole in the
    /// input's dtype (`point_sample_backward_input_shared_kernel`): for NCHW maps of
    /// f16/bf16/f32 (row-major planes) that tile into at most `SHARED_MAX_TILES` blocks
    /// ([`check_shared`]). In deterministic mode with fixed-point sums
    /// (`..._shared_fixed_kernel`, smaller tiles), `fixed_point` holding at least one element.
    /// The cells per tile (0: not in shared memory): `SHARED_CELLS` or the device's
    /// [`large_shared_cells`]; when deterministic, `SHARED_FIXED_CELLS` or its fixed ones.
    pub shared: usize,
}

/// The fixed-point deterministic backward's buffer: int64, one element more than the
/// gradient buffer (the sums, indexed with its strides, then the largest finite
/// |grad_output|'s bits, from which the kernels derive their scale); zeroed here. With
/// `shared` sums, only that last element (one int64 is enough).
pub struct FixedPoint {
    pub sums: IndexDesc,
}

/// The gradients from `grad (N, C, P)`: the input's summed per plane in shared memory and
/// written whole with `grads.shared`, else zeroed on the stream and added into; the
/// points' written. Both come from one kernel pass where the global-atomic buffer has the
/// input's strides (as `torch.empty_like` gives it for dense input), else one pass each.
pub fn backward(grad: &TensorDesc, input: &TensorDesc, points: &TensorDesc, grads: Grads, sampling: Sampling, stream: u64) -> PyResult<()> {
    let geo = geometry(input, points, grad)?;
    if let Some(gp) = grads.points {
        if gp.shape != points.shape || !gp.is_contiguous() {
            return Err(PyValueError::new_err("`grad_points` must be a contiguous (N, P, 2) tensor"));
        }
        if sampling.mode == Interpolation::Nearest {
            return Err(PyValueError::new_err("nearest sampling has no gradient to the points (it is zero): nothing to launch"));
        }
    }
    let accumulation = match grads.input {
        Some(gi) => {
            let span = dense_span(gi).ok_or_else(|| PyValueError::new_err("`grad_input` must be dense (no gaps, no overlaps)"))?;
            let gi_geo = geometry(gi, points, grad)?;
            let cells = grads.shared;
            if cells > 0 {
                check_shared(gi, input, &gi_geo, grads.deterministic, cells)?;
                if grads.deterministic && grads.fixed_point.is_none() {
                    return Err(PyValueError::new_err("deterministic `shared` sums need `fixed`: one int64 on the input's device"));
                }
            } else {
                let expected = if input.dtype == DType::F64 { DType::F64 } else { DType::F32 };
                if gi.dtype != expected {
                    return Err(PyValueError::new_err(format!("`grad_input` accumulates in {expected}, got {}", gi.dtype)));
                }
                cuda::zero(input.device as usize, stream, gi.ptr as u64, span * gi.dtype.size()).map_err(PyRuntimeError::new_err)?;
            }
            Some((gi, gi_geo, cells))
        }
        None => None,
    };
    let mut gather = grads.points;
    if let Some((gi, gi_geo, cells)) = accumulation {
        let shared = cells > 0;
        let fixed_point = grads.fixed_point.filter(|_| grads.deterministic && (shared || gi.dtype == DType::F32));
        if let Some(fp) = fixed_point {
            fixed_point_backward(grad, input, points, gi, &gi_geo, &fp.sums, cells, sampling, stream)?;
        } else if shared {
            // Every cell written (no zero fill); the points' gradient gets its own pass below.
            let variant = variant(gi, input, points, &[grad, points, gi], sampling);
            let kernel = Kernel::BackwardInputShared { cells: cells as u32 };
            run(kernel, stream, &gi_geo, variant, input.dtype, &[grad, points, gi])?;
        } else if grads.deterministic {
            let variant = variant(gi, input, points, &[grad, points, gi], sampling);
            run(Kernel::BackwardInputOrdered, stream, &gi_geo, variant, input.dtype, &[grad, points, gi])?;
        } else {
            // One pass for both when the buffer has the input's strides.
            let both = gi.strides == input.strides && gather.is_some();
            pass(grad, input, points, Some(gi), if both { gather.take() } else { None }, &gi_geo, sampling, stream)?;
        }
    }
    if gather.is_some() {
        pass(grad, input, points, None, gather, &geo, sampling, stream)?;
    }
    Ok(())
}

/// The input's gradient by 64-bit fixed-point sums: the largest finite |grad| first, then
/// either (`cells` > 0) the sums in shared memory, in tiles of `cells`, written whole in `gi` (the input's dtype,
/// row-major planes), or the sums by global integer atomics and their conversion into the
/// float32 buffer `gi` (`cubeops_kernels::point_sample::point_sample_backward_input_fixed_kernel`);
/// `sums` as [`FixedPoint`] describes it, zeroed here.
#[allow(clippy::too_many_arguments)]
fn fixed_point_backward(
    grad: &TensorDesc,
    input: &TensorDesc,
    points: &TensorDesc,
    gi: &TensorDesc,
    geo: &Geometry,
    sums: &IndexDesc,
    cells: usize,
    sampling: Sampling,
    stream: u64,
) -> PyResult<()> {
    let shared = cells > 0;
    // Global sums come before the maximum's element; shared sums need only that element.
    let span = if shared { 0 } else { gi.numel() };
    if sums.device != input.device || sums.available < span + 1 {
        return Err(PyValueError::new_err(format!("`fixed` must hold {} int64 on the input's device", span + 1)));
    }
    let device = input.device as usize;
    cuda::zero(device, stream, sums.ptr as u64, (span + 1) * 8).map_err(PyRuntimeError::new_err)?;
    let variant = variant(gi, input, points, &[grad, points, gi], sampling);
    let storage = storage_type(input.dtype);
    // The last int64 of `sums`, as the one u32 the maximum needs.
    let largest = DeviceArray { ptr: sums.ptr as u64 + span as u64 * 8, len: 1 };
    let launch = |kernel, arrays: &[DeviceArray]| cuda::launch(kernel, device, stream, geo, variant, storage, arrays).map_err(PyRuntimeError::new_err);
    launch(Kernel::GradOutputMax, &[array(grad), largest])?;
    if shared {
        let kernel = Kernel::BackwardInputSharedFixed { cells: cells as u32 };
        return launch(kernel, &[array(grad), array(points), largest, array(gi)]);
    }
    let fixed = DeviceArray { ptr: sums.ptr as u64, len: span };
    launch(Kernel::BackwardInputFixed, &[array(grad), array(points), largest, fixed, array(gi)])?;
    launch(Kernel::FixedToFloat, &[fixed, largest, DeviceArray { ptr: gi.ptr as u64, len: span }])
}

/// The large tiles of the shared-memory sums on `device` (`fixed`: the deterministic ones),
/// in cells (`point_sample::large_shared_cells` of its architecture, if the device lets a
/// block opt in to that much shared memory), else the 48 KiB ones.
pub fn large_shared_cells(device: usize, fixed: bool) -> PyResult<usize> {
    let (cc, opt_in) = cuda::device_limits(device).map_err(PyRuntimeError::new_err)?;
    let fits = |cells: &usize| point_sample::shared_tile_bytes(*cells, fixed) <= opt_in;
    Ok(point_sample::large_shared_cells(cc, fixed).filter(fits).unwrap_or(point_sample::small_shared_cells(fixed)))
}

/// `shared`'s conditions ([`Grads::shared`]: `cells` per tile), as a clear error when one fails.
fn check_shared(gi: &TensorDesc, input: &TensorDesc, geo: &Geometry, deterministic: bool, cells: usize) -> PyResult<()> {
    let [_, map_c, map_h, map_w] = geo.map_strides;
    let row_major = map_w == 1 && (geo.height <= 1 || map_h == geo.width) && (geo.channels <= 1 || map_c >= geo.height * geo.width);
    let tiles = point_sample::shared_tiles(geo.height, geo.width, cells).map_or(usize::MAX, |(tiles, _)| tiles);
    let allowed = cells == point_sample::small_shared_cells(deterministic) || cells == large_shared_cells(input.device as usize, deterministic)?;
    let why = if !allowed {
        "POINT_SAMPLE_SHARED_CELLS or point_sample_shared_cells(device, False) cells per tile (when deterministic, POINT_SAMPLE_SHARED_FIXED_CELLS or point_sample_shared_cells(device, True))"
    } else if input.dtype == DType::F64 || gi.dtype != input.dtype {
        "`grad_input` of the input's dtype, float16, bfloat16 or float32"
    } else if !row_major {
        "`grad_input` with row-major planes (NCHW)"
    } else if tiles > point_sample::SHARED_MAX_TILES {
        "non-empty planes of at most POINT_SAMPLE_SHARED_MAX_TILES tiles"
    } else {
        return Ok(());
    };
    Err(PyValueError::new_err(format!(
        "`shared` sums need {why} (grad_input {:?} {}, strides {:?}; {cells} cells per tile)",
        gi.shape, gi.dtype, gi.strides
    )))
}

/// Elements from the first to one past the last of a tensor with no gaps and no overlaps
/// (then its element count), else None.
fn dense_span(t: &TensorDesc) -> Option<usize> {
    let numel = t.numel();
    if numel == 0 {
        return Some(0);
    }
    // Dense: the strides, in increasing order, are the running products of the sizes.
    let mut dims: Vec<(usize, usize)> = t.shape.iter().copied().zip(t.strides.iter().copied()).filter(|(d, _)| *d > 1).collect();
    dims.sort_by_key(|&(_, s)| s);
    let mut expected = 1;
    for (d, s) in dims {
        if s != expected {
            return None;
        }
        expected *= d;
    }
    (numel <= t.available).then_some(numel)
}

/// One launch of the backward kernel; `geo` holds the strides of the map it indexes (the
/// input's, which `grad_input` shares when both are given).
#[allow(clippy::too_many_arguments)]
fn pass(
    grad: &TensorDesc,
    input: &TensorDesc,
    points: &TensorDesc,
    grad_input: Option<&TensorDesc>,
    grad_points: Option<&TensorDesc>,
    geo: &Geometry,
    sampling: Sampling,
    stream: u64,
) -> PyResult<()> {
    let map = grad_input.unwrap_or(input);
    let variant = variant(map, input, points, &[grad, input, points, map], sampling);
    let device = input.device as usize;
    let scatter = grad_input.is_some();
    let gather = grad_points.is_some();
    let read = [Some(grad), gather.then_some(input), grad_input];
    let tensors: Vec<(usize, u64, &[usize])> = read.iter().flatten().map(|t| (t.dtype.size(), t.ptr as u64, &t.strides[..])).collect();
    let vector_add = !scatter || (input.dtype != DType::F64 && cuda::compute_capability(device).map_err(PyRuntimeError::new_err)? >= 90);
    let vector = backward_vector(geo.channels, &tensors, vector_add);
    let lanes = tuned(&BACKWARD_LANES, "CUBEOPS_POINT_SAMPLE_LANES", None, 32);
    let pass = BackwardPass::new(scatter, gather, variant.channels_last, true, vector, lanes);
    // Arrays a pass does not use: any valid address, no readable elements.
    let unused = DeviceArray { ptr: grad.ptr as u64, len: 0 };
    let arrays = [
        vectors(grad, vector),
        if gather { vectors(input, vector) } else { unused },
        array(points),
        grad_input.map_or(unused, |gi| vectors(gi, vector)),
        grad_points.map_or(unused, array),
    ];
    cuda::launch(Kernel::Backward(pass), device, stream, geo, variant, storage_type(input.dtype), &arrays).map_err(PyRuntimeError::new_err)
}

static BACKWARD_LANES: OnceLock<Option<u32>> = OnceLock::new();

/// A launch shape from the environment variable `key`, read once (benchmark sweeps,
/// docs/benchmarks.md): a power of two up to `max`, else None.
pub(crate) fn tuned(cell: &'static OnceLock<Option<u32>>, key: &str, default: Option<u32>, max: u32) -> Option<u32> {
    let value = cell.get_or_init(|| std::env::var(key).ok()?.parse().ok());
    value.filter(|v| v.is_power_of_two() && *v <= max).or(default)
}

/// PSAMask forward (`src` = mask, `dst` = map) or backward (`src` = grad map, `dst` = grad
/// mask); shapes checked by the caller, `dst` contiguous.
pub fn psamask(src: &TensorDesc, dst: &TensorDesc, mask: (usize, usize), distribute: bool, backward: bool, stream: u64) -> PyResult<()> {
    let ([n, _, height, width], src_strides) = src.dims::<4>()?;
    let (_, dst_strides) = dst.dims::<4>()?;
    let geo = PsaGeometry { n, height, width, mask_h: mask.0, mask_w: mask.1, src_strides, dst_strides };
    geo.scalars().map_err(|e| PyValueError::new_err(format!("PSAMask on CUDA: {e}")))?;
    let variant = Variant::index_width(wide_index(&[src, dst]));
    let device = src.device as usize;
    cuda::launch(Kernel::PsaMask { distribute, backward }, device, stream, &geo, variant, storage_type(src.dtype), &[array(src), array(dst)])
        .map_err(PyRuntimeError::new_err)
}

/// The sorted deterministic backward's first pass: the cell keys and weights of every
/// point's four corners (`point_sample_corner_keys_kernel`), `4 * N * P` each, contiguous
/// (`keys` int64, `weights` float32), for the caller to sort.
pub fn corner_keys(input: &TensorDesc, points: &TensorDesc, keys: &IndexDesc, weights: &TensorDesc, sampling: Sampling, stream: u64) -> PyResult<()> {
    let geo = sorted_geometry(input, points, None)?;
    check_entries(&geo, input, keys, None, weights)?;
    let variant = variant(input, input, points, &[input, points, weights], sampling);
    let keys = DeviceArray { ptr: keys.ptr as u64, len: keys.available };
    cuda::launch(Kernel::CornerKeys, input.device as usize, stream, &geo, variant, storage_type(points.dtype), &[array(points), keys, array(weights)])
        .map_err(PyRuntimeError::new_err)
}

/// The sorted deterministic backward's second pass: `grad_input` (the input's shape and
/// dtype, float16/bfloat16/float32, any dense layout; zeroed here) from `grad (N, C, P)`,
/// the keys sorted stably, where each sorted entry came from (`order`, int64) and the
/// weights, as [`corner_keys`] left them (`point_sample_backward_input_sorted_kernel`).
pub fn sorted_backward(
    grad: &TensorDesc,
    input: &TensorDesc,
    points: &TensorDesc,
    gi: &TensorDesc,
    keys: &IndexDesc,
    order: &IndexDesc,
    weights: &TensorDesc,
    stream: u64,
) -> PyResult<()> {
    if gi.dtype != input.dtype || gi.shape != input.shape || input.dtype == DType::F64 {
        return Err(PyValueError::new_err("`grad_input` must have the input's shape and dtype, float16, bfloat16 or float32"));
    }
    let span = dense_span(gi).ok_or_else(|| PyValueError::new_err("`grad_input` must be dense (no gaps, no overlaps)"))?;
    let geo = sorted_geometry(gi, points, Some(grad))?;
    check_entries(&geo, input, keys, Some(order), weights)?;
    let device = input.device as usize;
    cuda::zero(device, stream, gi.ptr as u64, span * gi.dtype.size()).map_err(PyRuntimeError::new_err)?;
    let variant = variant(gi, input, points, &[grad, gi, weights], Sampling::default());
    let index = |d: &IndexDesc| DeviceArray { ptr: d.ptr as u64, len: d.available };
    let arrays = [array(grad), index(keys), index(order), array(weights), array(gi)];
    cuda::launch(Kernel::BackwardInputSorted, device, stream, &geo, variant, storage_type(input.dtype), &arrays).map_err(PyRuntimeError::new_err)
}

/// The geometry of the sorted passes: `map`'s strides, and `grad`'s (the output's) where
/// given; the entries' count (`4 * N * P` keys) and the thread count (times C) must fit
/// 32-bit indexing, the caller's condition for taking this path.
fn sorted_geometry(map: &TensorDesc, points: &TensorDesc, grad: Option<&TensorDesc>) -> PyResult<Geometry> {
    let geo = match grad {
        Some(grad) => geometry(map, points, grad)?,
        None => {
            let ([n, channels, height, width], map_strides) = map.dims::<4>()?;
            let ([pn, num_points, two], points_strides) = points.dims::<3>()?;
            if pn != n || two != 2 {
                return Err(PyValueError::new_err(format!("inconsistent shapes: map {:?}, points {:?}", map.shape, points.shape)));
            }
            let geo = Geometry { n, channels, height, width, num_points, map_strides, points_strides, out_strides: [0; 3] };
            geo.scalars().map_err(|e| PyValueError::new_err(format!("point_sample on CUDA: {e}")))?;
            geo
        }
    };
    let threads = geo.n * geo.num_points * point_sample::CORNERS * geo.channels.max(1);
    if threads > u32::MAX as usize || geo.n * geo.height * geo.width > u32::MAX as usize {
        return Err(PyValueError::new_err("sorted sums: 4 * N * P * C and N * H * W must fit 32 bits"));
    }
    Ok(geo)
}

/// `keys`, `order` and `weights` hold `4 * N * P` entries each on the input's device.
fn check_entries(geo: &Geometry, input: &TensorDesc, keys: &IndexDesc, order: Option<&IndexDesc>, weights: &TensorDesc) -> PyResult<()> {
    let entries = geo.n * geo.num_points * point_sample::CORNERS;
    let index_ok = |d: &IndexDesc| d.device == input.device && d.shape.iter().product::<usize>() == entries;
    if !index_ok(keys) || !order.is_none_or(index_ok) {
        return Err(PyValueError::new_err(format!("`keys` and `order` must be int64 of 4 * N * P = {entries} elements on the input's device")));
    }
    if weights.dtype != DType::F32 || weights.numel() != entries || !weights.is_contiguous() || weights.device != input.device {
        return Err(PyValueError::new_err(format!("`weights` must be contiguous float32 of 4 * N * P = {entries} elements on the input's device")));
    }
    Ok(())
}
