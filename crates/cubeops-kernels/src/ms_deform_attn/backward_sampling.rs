//! MSDA backward to the sampling locations and the attention weights.

use cubecl::prelude::*;

use super::geometry::{level, locate, location_index, weight_index, MsdaGeometryArgs};
use crate::point_sample::read_corners;

/// For one sampling point `(n, q, m, l, p)`, summed over channels d with
/// `g = grad_output[n, q, m, d]`:
/// `grad_attn = sum g * sample_d`, `grad_loc = attn * sum g * d sample_d / d loc`.
///
/// One thread per point walks all channels, so no atomics are needed. `grad_locations`
/// `(N, Lq, M, L, P, 2)` and `grad_weights` `(N, Lq, M, L, P)` are contiguous. The derivative
/// is that of the bilinear formula inside the cell, as grid_sample's.
#[cube(launch, address_type = "dynamic")]
pub fn msda_backward_sampling_kernel<F: Float, A: Float, I: Int>(
    grad_output: &Array<F>,
    value: &Array<F>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    grad_locations: &mut Array<F>,
    grad_weights: &mut Array<F>,
    geo: &MsdaGeometryArgs,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let points = geo.num_points as usize;
    let levels = geo.num_levels as usize;
    let heads = geo.num_heads as usize;
    let queries = geo.num_queries as usize;
    if ABSOLUTE_POS >= geo.n as usize * queries * heads * levels * points {
        terminate!();
    }
    let p = ABSOLUTE_POS % points;
    let l = (ABSOLUTE_POS / points) % levels;
    let m = (ABSOLUTE_POS / (points * levels)) % heads;
    let q = (ABSOLUTE_POS / (points * levels * heads)) % queries;
    let n = ABSOLUTE_POS / (points * levels * heads * queries);

    let (h, w, start) = level::<I>(shapes, starts, l);
    let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, true);
    let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize;
    let out_base = n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize;

    let mut gw = A::new(0.0);
    let mut gx = A::new(0.0);
    let mut gy = A::new(0.0);
    for d in 0..geo.channels as usize {
        let at = base + d * geo.value_d as usize;
        let cells = read_corners::<F, A>(value, at, &fp);
        let grad = A::cast_from(grad_output[out_base + d * geo.out_d as usize]);
        let (dx, dy) = cells.gradient(&fp);
        gw += grad * cells.interpolate(&fp);
        gx += grad * dx;
        gy += grad * dy;
    }
    let weight = A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
    grad_weights[ABSOLUTE_POS] = F::cast_from(gw);
    grad_locations[ABSOLUTE_POS * 2] = F::cast_from(weight * gx * fp.scale_x);
    grad_locations[ABSOLUTE_POS * 2 + 1] = F::cast_from(weight * gy * fp.scale_y);
}
