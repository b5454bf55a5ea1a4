//! Host-side launchers, generic over the cubecl runtime. Callers own the buffers and hand
//! them in as `TensorArg`s with their real strides (no copies are made here).

use cubecl::features::AtomicUsage;
use cubecl::ir::{ElemType, FloatKind};
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::sampling::{GeometryArgsLaunch, Sampling};
use super::{
    ordered_bands, point_sample_backward_input_ordered_kernel, shared_tiles, point_sample_backward_kernel, point_sample_forward_kernel,
};
use crate::lanes::vector_width;

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

    /// Blocks of the shared-memory backward-to-input kernels with tiles of `cells` cells:
    /// one per `(n, c, tile of rows)` ([`shared_tiles`]; none for an empty map or when a row
    /// does not fit).
    pub fn shared_blocks(&self, cells: usize) -> usize {
        let tiles = shared_tiles(self.height, self.width, cells).map_or(0, |(tiles, _)| tiles);
        self.n * self.channels * tiles
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
    /// The points, the output and their gradients are f32 while the map is f16/bf16:
    /// torch.autocast's contract for grid_sample (f32 result), without copying the map to
    /// f32 first. Otherwise they share the map's storage type.
    pub f32_points: bool,
}

impl Variant {
    /// The variant for a map (input or grad_input) with these `(N, C, H, W)` strides: threads
    /// walk channels when channels are the fastest-moving dimension in memory.
    pub fn for_map(map_strides: &[usize], sampling: Sampling, wide_index: bool) -> Self {
        Variant { sampling, channels_last: map_strides[1] < map_strides[3], wide_index, f32_points: false }
    }

    /// The variant of kernels other than point_sample's, of which only `wide_index` applies.
    pub fn index_width(wide_index: bool) -> Self {
        Variant { sampling: Sampling::default(), channels_last: false, wide_index, f32_points: false }
    }

    /// The storage type of the points, the output and their gradients for a map of `storage`.
    pub fn point_type(&self, storage: StorageType) -> StorageType {
        if self.f32_points {
            StorageType::Scalar(ElemType::Float(FloatKind::F32))
        } else {
            storage
        }
    }

    /// The forward kernel's `[map, points, accumulation]` types.
    pub fn forward_dtypes(&self, storage: StorageType) -> [StorageType; 3] {
        [storage, self.point_type(storage), accumulation_type(storage)]
    }

    /// The deterministic kernel's `[grad_output and points, accumulation]` types (it never
    /// reads the map).
    pub fn ordered_dtypes(&self, storage: StorageType) -> [StorageType; 2] {
        [self.point_type(storage), accumulation_type(storage)]
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
        variant.forward_dtypes(storage),
    );
}

/// `grad_input += d point_sample / d input` into a zeroed buffer of [`accumulation_type`]
/// with the kernel without atomics: the same bits on every run and no atomic float add
/// needed from the device; it walks channels whatever the layout.
pub fn launch_backward_input_ordered<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &Geometry,
    variant: Variant,
    storage: StorageType,
    grad_output: ArrayArg<R>,
    points: ArrayArg<R>,
    grad_input: ArrayArg<R>,
) {
    let threads = geo.ordered_threads();
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    point_sample_backward_input_ordered_kernel::launch::<R>(
        client,
        count,
        cube_dim,
        variant.address_type(),
        grad_output,
        points,
        grad_input,
        geo.launch_arg(),
        variant.sampling,
        variant.ordered_dtypes(storage),
    );
}

/// Which gradients one backward launch computes, and how its threads share a point
/// ([`point_sample_backward_kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackwardPass {
    /// Adds into the input's gradient (float atomics).
    pub scatter: bool,
    /// Writes the points' gradient (bilinear only; nearest's is zero).
    pub gather: bool,
    /// Threads per point.
    pub lanes: u32,
    /// Points interleaved in a block of `lanes * stride` threads (1: a point's lanes are
    /// neighbours).
    pub stride: u32,
    /// Channels per load and per atomic add: 4 or 1 ([`backward_vector`]).
    pub vector: u32,
}

impl BackwardPass {
    /// The thread layout for a map of this layout. Channels-last: 8 neighbouring lanes per
    /// point, which read neighbouring channels. NCHW: 4 lanes per point over 8 interleaved
    /// points, so that a warp reads 8 neighbouring points of `grad_output` (one 32-byte
    /// sector) per channel. `lanes` overrides the lanes per point (benchmark sweeps; NCHW
    /// then interleaves `min(8, 32 / lanes)` points). Without plane shuffles a point's
    /// channel sums cannot be shared: one thread per point then gathers.
    pub fn new(scatter: bool, gather: bool, channels_last: bool, planes: bool, vector: usize, lanes: Option<u32>) -> Self {
        let lanes = lanes.unwrap_or(if channels_last { 8 } else { 4 }).clamp(1, 32).next_power_of_two();
        let stride = if channels_last { 1 } else { (32 / lanes).min(8) };
        let (lanes, stride) = if gather && !planes { (1, 1) } else { (lanes, stride) };
        BackwardPass { scatter, gather, lanes, stride, vector: vector as u32 }
    }

    /// The kernel's `[map, points, accumulation, grad_input buffer]` types for a map of
    /// `storage` (`variant` gives the points'): the buffer is of the accumulation type when the
    /// pass scatters, else (unused) f32.
    pub fn dtypes(&self, variant: &Variant, storage: StorageType) -> [StorageType; 4] {
        let acc = accumulation_type(storage);
        let buffer = if self.scatter { acc } else { StorageType::Scalar(ElemType::Float(FloatKind::F32)) };
        [storage, variant.point_type(storage), acc, buffer]
    }

    /// Threads of a launch over `points` points (whole blocks of `lanes * stride`).
    pub fn threads(&self, points: usize) -> usize {
        points.div_ceil(self.stride as usize) * (self.stride * self.lanes) as usize
    }
}

/// Whether `client` has the plane shuffles a gathering [`BackwardPass`] with `lanes * stride`
/// threads per block needs (and planes at least that wide).
pub fn supports_plane_sums<R: Runtime>(client: &ComputeClient<R>, width: u32) -> bool {
    let props = client.properties();
    props.features.plane.contains(cubecl::ir::features::Plane::Ops) && props.hardware.plane_size_min >= width
}

/// The vector width (4, else 1) of a backward launch: channels at unit stride in every
/// tensor it touches (`tensors`: bytes per element, byte address and `(N, C, H, W)` /
/// `(N, C, P)` strides as torch gives them, the accumulation buffer among them when it
/// scatters), strides and addresses whole vectors, and atomic adds of 4 (`vector_add`,
/// sm_90+; pass true when the launch does not scatter).
pub fn backward_vector(channels: usize, tensors: &[(usize, u64, &[usize])], vector_add: bool) -> usize {
    if !vector_add {
        return 1;
    }
    tensors
        .iter()
        .map(|&(bytes, address, strides)| {
            // vector_width wants the channel stride last.
            let mut reordered: Vec<usize> = strides.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, x)| *x).collect();
            reordered.push(strides[1]);
            vector_width(channels, bytes, &[(address, &reordered[..])])
        })
        .min()
        .unwrap_or(1)
}

/// The gradients of `pass` from `grad_output (N, C, P)`: `grad_input` (zeroed, of
/// [`accumulation_type`] when the pass scatters, else f32 and untouched, see
/// [`BackwardPass::dtypes`]; with the strides of `geo`'s map, which are also the input's) and
/// `grad_points` (`(N, P, 2)`, contiguous). Arrays not used by `pass` are not touched (any
/// array of the right type will do); with `vector = 4` the map, grad_output and grad_input
/// arrays are arrays of vectors of 4. A gathering pass with `lanes > 1` needs
/// [`supports_plane_sums`].
#[allow(clippy::too_many_arguments)]
pub fn launch_backward<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &Geometry,
    variant: Variant,
    storage: StorageType,
    pass: BackwardPass,
    [grad_output, input, points, grad_input, grad_points]: [ArrayArg<R>; 5],
) {
    let threads = pass.threads(geo.n * geo.num_points);
    if threads == 0 || (geo.channels == 0 && !pass.gather) {
        return;
    }
    // 1D cubes of a multiple of 32 threads, so blocks of lanes line up with planes.
    let cube_dim = CubeDim::new_1d(256);
    let count = calculate_cube_count_elemwise(client, threads, cube_dim);
    point_sample_backward_kernel::launch::<R>(
        client,
        count,
        cube_dim,
        variant.address_type(),
        pass.vector as usize,
        grad_output,
        input,
        points,
        grad_input,
        grad_points,
        geo.launch_arg(),
        variant.sampling,
        pass.lanes,
        pass.stride,
        pass.scatter,
        pass.gather,
        pass.dtypes(&variant, storage),
    );
}
