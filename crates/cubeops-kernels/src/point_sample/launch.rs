//! Host-side launchers, generic over the cubecl runtime. Callers own the buffers and hand
//! them in as `TensorArg`s with their real strides (no copies are made here).

use cubecl::features::AtomicUsage;
use cubecl::ir::{ElemType, FloatKind};
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::{
    point_sample_backward_input_kernel, point_sample_backward_points_kernel,
    point_sample_forward_kernel,
};

/// Problem sizes: input `(n, channels, height, width)`, points `(n, num_points, 2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_points: usize,
}

/// The compile-time choices of a launch. Each distinct value (times the storage dtype) is
/// one compiled kernel; shapes and strides are runtime arguments and never recompile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    pub align_corners: bool,
    /// The input (or grad_input) is channels-last in memory; threads then walk channels.
    pub channels_last: bool,
    /// 64-bit indexing, needed once a buffer holds more than `u32::MAX` elements.
    pub wide_index: bool,
}

impl Variant {
    fn address_type(&self) -> AddressType {
        if self.wide_index {
            AddressType::U64
        } else {
            AddressType::U32
        }
    }
}

/// The type kernels accumulate in: f64 for f64 storage, f32 for everything else.
pub fn accumulation_type(storage: StorageType) -> StorageType {
    match storage.elem_type() {
        ElemType::Float(FloatKind::F64) => StorageType::Scalar(ElemType::Float(FloatKind::F64)),
        _ => StorageType::Scalar(ElemType::Float(FloatKind::F32)),
    }
}

/// Whether the device can atomically add values of `accumulation` type (needed by the
/// backward-to-input kernel).
pub fn supports_atomic_add<R: Runtime>(client: &ComputeClient<R>, accumulation: StorageType) -> bool {
    let atomic = StorageType::Atomic(accumulation.elem_type());
    client
        .properties()
        .atomic_type_usage(Type::new(atomic))
        .contains(AtomicUsage::Add)
}

fn grid<R: Runtime>(client: &ComputeClient<R>, threads: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(client, threads);
    (calculate_cube_count_elemwise(client, threads, cube_dim), cube_dim)
}

/// `output (N, C, P) = point_sample(input, points)`.
pub fn launch_forward<R: Runtime>(
    client: &ComputeClient<R>,
    dims: Dims,
    variant: Variant,
    storage: StorageType,
    input: TensorArg<R>,
    points: TensorArg<R>,
    output: TensorArg<R>,
) {
    let threads = dims.n * dims.channels * dims.num_points;
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    point_sample_forward_kernel::launch::<R>(
        client,
        count,
        cube_dim,
        variant.address_type(),
        input,
        points,
        output,
        variant.align_corners,
        variant.channels_last,
        [storage, accumulation_type(storage)],
    );
}

/// `grad_input += d point_sample / d input` into a zeroed buffer of [`accumulation_type`].
pub fn launch_backward_input<R: Runtime>(
    client: &ComputeClient<R>,
    dims: Dims,
    variant: Variant,
    storage: StorageType,
    grad_output: TensorArg<R>,
    points: TensorArg<R>,
    grad_input: TensorArg<R>,
) {
    let threads = dims.n * dims.channels * dims.num_points;
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    point_sample_backward_input_kernel::launch::<R>(
        client,
        count,
        cube_dim,
        variant.address_type(),
        grad_output,
        points,
        grad_input,
        variant.align_corners,
        variant.channels_last,
        [storage, accumulation_type(storage)],
    );
}

/// `grad_points (N, P, 2) = d point_sample / d points`, contracted with `grad_output`.
pub fn launch_backward_points<R: Runtime>(
    client: &ComputeClient<R>,
    dims: Dims,
    variant: Variant,
    storage: StorageType,
    grad_output: TensorArg<R>,
    input: TensorArg<R>,
    points: TensorArg<R>,
    grad_points: TensorArg<R>,
) {
    let threads = dims.n * dims.num_points;
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    point_sample_backward_points_kernel::launch::<R>(
        client,
        count,
        cube_dim,
        variant.address_type(),
        grad_output,
        input,
        points,
        grad_points,
        variant.align_corners,
        [storage, accumulation_type(storage)],
    );
}
