//! Host-side launchers, generic over the cubecl runtime. Callers own the buffers and hand
//! them in as `TensorArg`s with their real strides (no copies are made here).

use cubecl::features::AtomicUsage;
use cubecl::ir::{ElemType, FloatKind};
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::sampling::{GeometryArgsLaunch, Interpolation, Sampling};
use super::{
    ordered_bands, point_sample_backward_input_kernel, point_sample_backward_input_ordered_kernel,
    point_sample_backward_points_kernel, point_sample_forward_kernel,
};

/// Sizes and strides (in elements) of one launch: input `(n, channels, height, width)`,
/// points `(n, num_points, 2)`, output `(n, channels, num_points)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_points: usize,
    /// Strides of the `(N, C, H, W)` map: input (forward, backward to points) or
    /// grad_input (backward to input).
    pub map_strides: [usize; 4],
    pub points_strides: [usize; 3],
    /// Strides of the `(N, C, P)` output (forward) or grad_output (backward).
    pub out_strides: [usize; 3],
}

impl Geometry {
    /// The kernel scalars, in `GeometryArgs` field order. Sizes and strides must fit `u32`.
    pub fn scalars(&self) -> Result<[u32; 15], String> {
        let [mn, mc, mh, mw] = self.map_strides;
        let [pn, pp, pk] = self.points_strides;
        let [on, oc, op] = self.out_strides;
        let all = [self.n, self.channels, self.height, self.width, self.num_points, mn, mc, mh, mw, pn, pp, pk, on, oc, op];
        let mut out = [0u32; 15];
        for (o, v) in out.iter_mut().zip(all) {
            *o = u32::try_from(v).map_err(|_| format!("size or stride {v} does not fit 32 bits"))?;
        }
        Ok(out)
    }

    /// Panics if a size or stride does not fit `u32`: launchers' callers check [`Self::scalars`].
    fn launch_arg<R: Runtime>(&self) -> GeometryArgsLaunch<R> {
        let s = self.scalars().expect("geometry checked by the caller");
        GeometryArgsLaunch::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14])
    }

    /// Threads of the forward and backward-to-input kernels: one per output element.
    pub fn output_elements(&self) -> usize {
        self.n * self.channels * self.num_points
    }

    /// Threads of the deterministic backward-to-input kernel: one per `(n, c, band of rows)`
    /// (none without points: nothing to add).
    pub fn ordered_threads(&self) -> usize {
        if self.num_points == 0 {
            return 0;
        }
        self.n * self.channels * ordered_bands(self.n, self.channels, self.height).0
    }
}

/// The compile-time choices of a launch. Each distinct value (times the storage dtype) is
/// one compiled kernel; shapes and strides are runtime arguments and never recompile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    /// align_corners, interpolation mode and padding.
    pub sampling: Sampling,
    /// The input (or grad_input) is channels-last in memory; threads then walk channels.
    pub channels_last: bool,
    /// 64-bit indexing, needed once a buffer holds more than `u32::MAX` elements.
    pub wide_index: bool,
}

impl Variant {
    /// The variant for a map (input or grad_input) with these `(N, C, H, W)` strides: threads
    /// walk channels when channels are the fastest-moving dimension in memory.
    pub fn for_map(map_strides: &[usize], sampling: Sampling, wide_index: bool) -> Self {
        Variant { sampling, channels_last: map_strides[1] < map_strides[3], wide_index }
    }

    fn address_type(&self) -> AddressType {
        crate::address_type(self.wide_index)
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

/// `output (N, C, P) = point_sample(input, points)`. The geometry must fit `u32`
/// ([`Geometry::scalars`] is `Ok`).
pub fn launch_forward<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &Geometry,
    variant: Variant,
    storage: StorageType,
    input: ArrayArg<R>,
    points: ArrayArg<R>,
    output: ArrayArg<R>,
) {
    let threads = geo.output_elements();
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
        geo.launch_arg(),
        variant.sampling,
        variant.channels_last,
        [storage, accumulation_type(storage)],
    );
}

/// `grad_input += d point_sample / d input` into a zeroed buffer of [`accumulation_type`].
///
/// `ordered = false`: the scatter kernel, one thread per output element with float atomics
/// (the last bits of a sum depend on the order threads run). `ordered = true`: the kernel
/// without atomics, the same bits on every run and no atomic float add needed from the
/// device; it walks channels whatever the layout (`variant.channels_last` is not used).
#[allow(clippy::too_many_arguments)]
pub fn launch_backward_input<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &Geometry,
    variant: Variant,
    storage: StorageType,
    ordered: bool,
    grad_output: ArrayArg<R>,
    points: ArrayArg<R>,
    grad_input: ArrayArg<R>,
) {
    let threads = if ordered { geo.ordered_threads() } else { geo.output_elements() };
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    let (addr, geo_arg, dtypes) = (variant.address_type(), geo.launch_arg(), [storage, accumulation_type(storage)]);
    if ordered {
        point_sample_backward_input_ordered_kernel::launch::<R>(
            client, count, cube_dim, addr, grad_output, points, grad_input, geo_arg, variant.sampling, dtypes,
        );
    } else {
        point_sample_backward_input_kernel::launch::<R>(
            client, count, cube_dim, addr, grad_output, points, grad_input, geo_arg, variant.sampling, variant.channels_last, dtypes,
        );
    }
}

/// `grad_points (N, P, 2)`, contiguous, `= d point_sample / d points` contracted with
/// `grad_output`. Bilinear only: nearest sampling is piecewise constant, its gradient to the
/// points is zero and callers write zeros themselves (nothing is launched).
pub fn launch_backward_points<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &Geometry,
    variant: Variant,
    storage: StorageType,
    grad_output: ArrayArg<R>,
    input: ArrayArg<R>,
    points: ArrayArg<R>,
    grad_points: ArrayArg<R>,
) {
    let threads = geo.n * geo.num_points;
    if threads == 0 || variant.sampling.mode == Interpolation::Nearest {
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
        geo.launch_arg(),
        variant.sampling,
        [storage, accumulation_type(storage)],
    );
}
