//! MSDA forward: one thread per output element `out[n, q, m, d]`, channels fastest, so a
//! warp reads neighbouring channels of the same cells.

use cubecl::prelude::*;

use super::geometry::{level, locate, location_index, output_element, weight_index, MsdaGeometryArgs};
use crate::point_sample::read_or_zero;

/// `output[n, q, m, d] = sum over levels l and points p of attn[n, q, m, l, p] *
/// bilinear(value_l[n, :, m, d], loc[n, q, m, l, p])`.
///
/// `F` is the storage type, `A` the accumulation type (f32, or f64 for f64 storage), `I` the
/// integer type of the spatial shapes and level start index.
#[cube(launch, address_type = "dynamic")]
pub fn msda_forward_kernel<F: Float, A: Float, I: Int>(
    value: &Array<F>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    output: &mut Array<F>,
    geo: &MsdaGeometryArgs,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let (inside, n, q, m, d) = output_element(geo, ABSOLUTE_POS);
    if !inside {
        terminate!();
    }

    let one = A::new(1.0);
    let mut acc = A::new(0.0);
    for l in 0..geo.num_levels as usize {
        let (h, w, start) = level::<I>(shapes, starts, l);
        let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize + d * geo.value_d as usize;
        for p in 0..geo.num_points as usize {
            let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, false);
            let nw = read_or_zero::<F, A>(value, base + fp.off_y0 + fp.off_x0, fp.y0_in && fp.x0_in);
            let ne = read_or_zero::<F, A>(value, base + fp.off_y0 + fp.off_x1, fp.y0_in && fp.x1_in);
            let sw = read_or_zero::<F, A>(value, base + fp.off_y1 + fp.off_x0, fp.y1_in && fp.x0_in);
            let se = read_or_zero::<F, A>(value, base + fp.off_y1 + fp.off_x1, fp.y1_in && fp.x1_in);
            let top = nw * (one - fp.tx) + ne * fp.tx;
            let bottom = sw * (one - fp.tx) + se * fp.tx;
            let weight = A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
            acc += weight * (top * (one - fp.ty) + bottom * fp.ty);
        }
    }
    output[n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize + d * geo.out_d as usize] = F::cast_from(acc);
}
