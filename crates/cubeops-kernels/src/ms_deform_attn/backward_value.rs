//! MSDA backward to the value: scatter-add of the weighted output gradient.

use cubecl::prelude::*;

use super::geometry::{level, locate, location_index, output_element, weight_index, MsdaGeometryArgs};
use crate::point_sample::scatter_corners;

/// `grad_value[n, key(corner), m, d] += attn * corner weight * grad_output[n, q, m, d]` for
/// the four corners of every (level, point) of query `q`.
///
/// One thread per `grad_output` element, channels fastest, so neighbouring threads add into
/// neighbouring addresses. `grad_value` is a zeroed accumulation-type buffer (f32, or f64 for
/// f64 storage) whose strides are the geometry's value strides; the caller casts it. Float
/// atomics make the last bits depend on thread order where points share cells.
#[cube(launch, address_type = "dynamic")]
pub fn msda_backward_value_kernel<F: Float, A: Float, I: Int>(
    grad_output: &Array<F>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    grad_value: &mut Array<Atomic<A>>,
    geo: &MsdaGeometryArgs,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let (inside, n, q, m, d) = output_element(geo, ABSOLUTE_POS);
    if !inside {
        terminate!();
    }

    let grad = A::cast_from(grad_output[n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize + d * geo.out_d as usize]);
    for l in 0..geo.num_levels as usize {
        let (h, w, start) = level::<I>(shapes, starts, l);
        let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize + d * geo.value_d as usize;
        for p in 0..geo.num_points as usize {
            let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, true);
            let g = grad * A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
            scatter_corners::<A>(grad_value, base, &fp, g);
        }
    }
}
