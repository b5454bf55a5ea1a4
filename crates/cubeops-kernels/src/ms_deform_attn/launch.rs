//! Host side of MSDA: geometry, compile-time variant, and the launchers generic over the
//! cubecl runtime. Callers own the buffers (no copies are made here).

use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::geometry::MsdaGeometryArgsLaunch;
use super::{
    msda_backward_fused_kernel, msda_backward_sampling_kernel, msda_backward_value_kernel, msda_backward_value_ordered_kernel,
    msda_forward_kernel,
};
use crate::point_sample::accumulation_type;

/// One MSDA launch: sizes and the strides (in elements) of value `(N, S, M, D)` (or of the
/// value-gradient buffer), locations `(N, Lq, M, L, P, 2)`, weights `(N, Lq, M, L, P)` and
/// output `(N, Lq, M, D)` (or its gradient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsdaGeometry {
    pub n: usize,
    pub num_keys: usize,
    pub num_heads: usize,
    pub channels: usize,
    pub num_levels: usize,
    pub num_queries: usize,
    pub num_points: usize,
    pub value_strides: [usize; 4],
    pub loc_strides: [usize; 6],
    pub attn_strides: [usize; 5],
    pub out_strides: [usize; 4],
}

impl MsdaGeometry {
    /// The kernel scalars, in `MsdaGeometryArgs` field order; all must fit `u32`.
    pub fn scalars(&self) -> Result<[u32; 26], String> {
        let sizes = [self.n, self.num_keys, self.num_heads, self.channels, self.num_levels, self.num_queries, self.num_points];
        let all = sizes.iter().chain(&self.value_strides).chain(&self.loc_strides).chain(&self.attn_strides).chain(&self.out_strides);
        let mut out = [0u32; 26];
        for (o, &v) in out.iter_mut().zip(all) {
            *o = u32::try_from(v).map_err(|_| format!("size or stride {v} does not fit 32 bits"))?;
        }
        Ok(out)
    }

    fn launch_arg<R: Runtime>(&self) -> MsdaGeometryArgsLaunch<R> {
        let s = self.scalars().expect("geometry checked by the caller");
        MsdaGeometryArgsLaunch::new(
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15], s[16], s[17], s[18],
            s[19], s[20], s[21], s[22], s[23], s[24], s[25],
        )
    }

    /// Threads of the forward and backward-to-value kernels: one per output element.
    pub fn output_elements(&self) -> usize {
        self.n * self.num_queries * self.num_heads * self.channels
    }

    /// Threads of the deterministic backward-to-value kernel: one per `(n, level, head, channel)`.
    pub fn ordered_threads(&self) -> usize {
        if self.num_queries * self.num_points == 0 {
            return 0; // nothing to add
        }
        self.n * self.num_levels * self.num_heads * self.channels
    }

    /// Threads of the backward-to-sampling kernel: one per sampling point.
    pub fn sampling_points(&self) -> usize {
        self.n * self.num_queries * self.num_heads * self.num_levels * self.num_points
    }

    /// Threads of the forward kernel: `ceil(D / (vector * per_thread))` per `(n, q, m)`.
    pub fn forward_threads(&self, per_thread: u32, vector: usize) -> usize {
        self.n * self.num_queries * self.num_heads * (self.channels / vector).div_ceil(per_thread as usize)
    }

    /// Threads of the fused backward kernel: `lanes` per `(n, q, m)`.
    pub fn group_threads(&self, lanes: u32) -> usize {
        self.n * self.num_queries * self.num_heads * lanes as usize
    }
}

/// Units of `vector` channels per thread of the forward for `channels` channels. Scalar: up
/// to 4, so each point is located once per 4 channels while 8 or more threads still share a
/// point's cells. Vectors of 4: 2 for D = 32 (4 threads of 8 channels per point), up to 4.
pub fn forward_per_thread(channels: usize, vector: usize) -> u32 {
    if vector == 1 {
        (channels / 8).clamp(1, 4) as u32
    } else {
        (channels / vector / 4).clamp(1, 4) as u32
    }
}

/// Threads per `(n, q, m)` group of the fused backward for `channels` channels added in
/// vectors of `vector`: a power of two up to 32 (a warp, so groups never straddle a plane of
/// 32), one per vector for D = 32 (8 threads of 4), at least 8 for scalar adds, so that each
/// point is located once per ~4 channels.
pub fn fused_lanes(channels: usize, vector: usize) -> u32 {
    let per_thread = if vector > 1 { vector } else { 4 };
    let lanes = channels.div_ceil(per_thread).next_power_of_two().min(32);
    (if vector > 1 { lanes } else { lanes.max(8) }) as u32
}

/// The vector width of the fused backward's atomic adds into the value's gradient: 4 where
/// D allows and `vector_add` (float4 atomics, sm_90+), else 1.
pub fn fused_vector(channels: usize, vector_add: bool) -> usize {
    if vector_add && channels % 4 == 0 {
        4
    } else {
        1
    }
}

/// Whether `client` runs the fused backward with `lanes` threads per group: plane shuffles,
/// and planes at least that wide (a group must not straddle two).
pub fn supports_fused_backward<R: Runtime>(client: &ComputeClient<R>, lanes: u32) -> bool {
    let props = client.properties();
    props.features.plane.contains(cubecl::ir::features::Plane::Ops) && props.hardware.plane_size_min >= lanes
}

/// The compile-time choices of an MSDA launch besides the dtypes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MsdaVariant {
    /// 64-bit indexing, needed once a buffer holds more than `u32::MAX` elements.
    pub wide_index: bool,
}

/// The kernels' `[storage, accumulation, index]` types.
pub fn msda_dtypes(storage: StorageType, index: StorageType) -> [StorageType; 3] {
    [storage, accumulation_type(storage), index]
}

fn grid<R: Runtime>(client: &ComputeClient<R>, threads: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(client, threads);
    (calculate_cube_count_elemwise(client, threads, cube_dim), cube_dim)
}

/// `output (N, Lq, M, D)`. `index` is the integer type of `shapes` `(L, 2)` and `starts`
/// `(L,)`, both contiguous. The geometry must fit `u32` ([`MsdaGeometry::scalars`] is `Ok`);
/// value and output are read and written in vectors of `vector` ([`crate::lanes::vector_width`]).
#[allow(clippy::too_many_arguments)]
pub fn launch_forward<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &MsdaGeometry,
    variant: MsdaVariant,
    storage: StorageType,
    index: StorageType,
    vector: usize,
    [value, shapes, starts, locations, weights, output]: [ArrayArg<R>; 6],
) {
    let per_thread = forward_per_thread(geo.channels, vector);
    let threads = geo.forward_threads(per_thread, vector);
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    let addr = crate::address_type(variant.wide_index);
    msda_forward_kernel::launch::<R>(
        client, count, cube_dim, addr, vector, value, shapes, starts, locations, weights, output, geo.launch_arg(), per_thread,
        msda_dtypes(storage, index),
    );
}

/// `grad_value += d output / d value` into a zeroed accumulation-type buffer whose strides
/// are the geometry's value strides: float atomics, or (`ordered`) the deterministic kernel,
/// which needs none.
#[allow(clippy::too_many_arguments)]
pub fn launch_backward_value<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &MsdaGeometry,
    variant: MsdaVariant,
    storage: StorageType,
    index: StorageType,
    ordered: bool,
    [grad_output, shapes, starts, locations, weights, grad_value]: [ArrayArg<R>; 6],
) {
    let threads = if ordered { geo.ordered_threads() } else { geo.output_elements() };
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    let addr = crate::address_type(variant.wide_index);
    let (geo_arg, dtypes) = (geo.launch_arg(), msda_dtypes(storage, index));
    if ordered {
        msda_backward_value_ordered_kernel::launch::<R>(
            client, count, cube_dim, addr, grad_output, shapes, starts, locations, weights, grad_value, geo_arg, dtypes,
        );
    } else {
        msda_backward_value_kernel::launch::<R>(
            client, count, cube_dim, addr, grad_output, shapes, starts, locations, weights, grad_value, geo_arg, dtypes,
        );
    }
}

/// `grad_locations (N, Lq, M, L, P, 2)` and `grad_weights (N, Lq, M, L, P)`, contiguous,
/// every element written.
#[allow(clippy::too_many_arguments)]
pub fn launch_backward_sampling<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &MsdaGeometry,
    variant: MsdaVariant,
    storage: StorageType,
    index: StorageType,
    [grad_output, value, shapes, starts, locations, weights, grad_locations, grad_weights]: [ArrayArg<R>; 8],
) {
    let threads = geo.sampling_points();
    if threads == 0 {
        return;
    }
    let (count, cube_dim) = grid(client, threads);
    let addr = crate::address_type(variant.wide_index);
    msda_backward_sampling_kernel::launch::<R>(
        client, count, cube_dim, addr, grad_output, value, shapes, starts, locations, weights, grad_locations, grad_weights,
        geo.launch_arg(), msda_dtypes(storage, index),
    );
}

/// All three gradients in one pass ([`msda_backward_fused_kernel`]): `grad_value` a zeroed
/// contiguous accumulation-type `(N, S, M, D)` buffer, added into only when `scatter`;
/// `grad_locations` and `grad_weights` contiguous, every element written. `geo` holds the
/// value's strides; `grad_value` is added into in vectors of `vector` ([`fused_vector`]).
/// Needs [`supports_fused_backward`] for `lanes = fused_lanes(D, vector)`.
#[allow(clippy::too_many_arguments)]
pub fn launch_backward_fused<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &MsdaGeometry,
    variant: MsdaVariant,
    storage: StorageType,
    index: StorageType,
    scatter: bool,
    vector: usize,
    [grad_output, value, shapes, starts, locations, weights, grad_value, grad_locations, grad_weights]: [ArrayArg<R>; 9],
) {
    let lanes = fused_lanes(geo.channels, vector);
    let threads = geo.group_threads(lanes);
    if threads == 0 {
        return;
    }
    // 1D cubes of a multiple of 32 threads, so groups line up with planes.
    let cube_dim = CubeDim::new_1d(256);
    let count = calculate_cube_count_elemwise(client, threads, cube_dim);
    let addr = crate::address_type(variant.wide_index);
    msda_backward_fused_kernel::launch::<R>(
        client, count, cube_dim, addr, vector, grad_output, value, shapes, starts, locations, weights, grad_value, grad_locations,
        grad_weights, geo.launch_arg(), lanes, scatter, msda_dtypes(storage, index),
    );
}
