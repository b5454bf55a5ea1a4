//! MSDA backward to the value without atomics: deterministic, bit for bit.

use cubecl::prelude::*;

use super::geometry::{level, locate, location_index, weight_index, MsdaGeometryArgs};

/// The same sums as the atomic kernel, `grad_value[n, key, m, d] += attn * corner weight *
/// grad_output[n, q, m, d]`, from one thread per `(n, level, m, d)`: each thread owns its
/// level's keys of one channel and walks that level's sampling points of every query in index
/// order with plain read-modify-writes. One writer per cell and a fixed order of additions: the
/// same result on every run. Less parallel than the atomic kernel (N * L * M * D threads);
/// what `torch.use_deterministic_algorithms(True)` gets. `grad_value` is the same zeroed
/// accumulation-type buffer.
#[cube(launch, address_type = "dynamic")]
pub fn msda_backward_value_ordered_kernel<F: Float, A: Float, I: Int>(
    grad_output: &Array<F>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    grad_value: &mut Array<A>,
    geo: &MsdaGeometryArgs,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let channels = geo.channels as usize;
    let heads = geo.num_heads as usize;
    let levels = geo.num_levels as usize;
    if ABSOLUTE_POS >= geo.n as usize * levels * heads * channels {
        terminate!();
    }
    let d = ABSOLUTE_POS % channels;
    let m = (ABSOLUTE_POS / channels) % heads;
    let l = (ABSOLUTE_POS / (channels * heads)) % levels;
    let n = ABSOLUTE_POS / (channels * heads * levels);

    let one = A::new(1.0);
    let (h, w, start) = level::<I>(shapes, starts, l);
    let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize + d * geo.value_d as usize;
    for q in 0..geo.num_queries as usize {
        let grad = A::cast_from(grad_output[n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize + d * geo.out_d as usize]);
        for p in 0..geo.num_points as usize {
            let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, true);
            // The atomic kernel's weights, in the same order of operations.
            let g = grad * A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
            if fp.y0_in && fp.x0_in {
                grad_value[base + fp.off_y0 + fp.off_x0] += g * (one - fp.tx) * (one - fp.ty);
            }
            if fp.y0_in && fp.x1_in {
                grad_value[base + fp.off_y0 + fp.off_x1] += g * fp.tx * (one - fp.ty);
            }
            if fp.y1_in && fp.x0_in {
                grad_value[base + fp.off_y1 + fp.off_x0] += g * (one - fp.tx) * fp.ty;
            }
            if fp.y1_in && fp.x1_in {
                grad_value[base + fp.off_y1 + fp.off_x1] += g * fp.tx * fp.ty;
            }
        }
    }
}
