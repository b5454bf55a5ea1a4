//! MSDA forward: a group of threads per `(n, q, m)`, each thread `per_thread` channels
//! (`lane, lane + lanes, ...`), so each point is located once for several channels while a
//! warp still reads neighbouring channels of the same cells.

use cubecl::prelude::*;

use super::geometry::{level, locate, location_index, weight_index, MsdaGeometryArgs};
use crate::point_sample::read_corners;

/// `output[n, q, m, d] = sum over levels l and points p of attn[n, q, m, l, p] *
/// bilinear(value_l[n, :, m, d], loc[n, q, m, l, p])`.
///
/// `F` is the storage type, `A` the accumulation type (f32, or f64 for f64 storage), `I` the
/// integer type of the spatial shapes and level start index. Threads: `ceil(D / per_thread)`
/// per `(n, q, m)` ([`super::MsdaGeometry::forward_threads`]).
#[cube(launch, address_type = "dynamic")]
pub fn msda_forward_kernel<F: Float, A: Float, I: Int>(
    value: &Array<F>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    output: &mut Array<F>,
    geo: &MsdaGeometryArgs,
    #[comptime] per_thread: u32,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let width = comptime!(per_thread as usize);
    let channels = geo.channels as usize;
    let heads = geo.num_heads as usize;
    let queries = geo.num_queries as usize;
    let lanes = (channels + width - 1) / width;
    let group = ABSOLUTE_POS / lanes;
    let lane = ABSOLUTE_POS % lanes;
    if group >= geo.n as usize * queries * heads {
        terminate!();
    }
    let m = group % heads;
    let q = (group / heads) % queries;
    let n = group / (heads * queries);

    let mut acc = Array::<A>::new(width);
    #[unroll]
    for k in 0..width {
        acc[k] = A::new(0.0);
    }
    let chunk = lanes * geo.value_d as usize;
    for l in 0..geo.num_levels as usize {
        let (h, w, start) = level::<I>(shapes, starts, l);
        let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize + lane * geo.value_d as usize;
        for p in 0..geo.num_points as usize {
            let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, false);
            let weight = A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
            #[unroll]
            for k in 0..width {
                if lane + k * lanes < channels {
                    acc[k] += weight * read_corners::<F, A>(value, base + k * chunk, &fp).interpolate(&fp);
                }
            }
        }
    }
    let out_base = n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize;
    #[unroll]
    for k in 0..width {
        let d = lane + k * lanes;
        if d < channels {
            output[out_base + d * geo.out_d as usize] = F::cast_from(acc[k]);
        }
    }
}
