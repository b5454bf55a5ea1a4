//! point_sample backward to the input: scatter-add of the weighted output gradient.

use cubecl::prelude::*;

use super::sampling::{Sampling, locate_point, scatter_corners, split_position, GeometryArgs};

/// `grad_input[n, c, corner] += weight(corner) * grad_output[n, c, p]` for the four corners.
///
/// One thread per `grad_output` element. `grad_input` is an accumulation-type buffer
/// (f32, or f64 for f64 storage) laid out by `geo`'s map strides and zeroed by the caller,
/// who casts it to the storage type afterwards. Float atomics make the result
/// order-dependent in the last bits when several points share a cell.
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_input_kernel<F: Float, A: Float>(
    grad_output: &Array<F>,
    points: &Array<F>,
    grad_input: &mut Array<Atomic<A>>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[comptime] channels_fastest: bool,
    #[define(F, A)] _dtypes: [StorageType; 2],
) {
    let channels = geo.channels as usize;
    let num_points = geo.num_points as usize;
    if ABSOLUTE_POS >= geo.n as usize * channels * num_points {
        terminate!();
    }
    let (n, c, p) = split_position(ABSOLUTE_POS, channels, num_points, channels_fastest);
    let fp = locate_point::<F, A>(points, geo, n, p, sampling, true);

    let grad = A::cast_from(grad_output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize]);
    scatter_corners::<A>(grad_input, n * geo.map_n as usize + c * geo.map_c as usize, &fp, grad);
}
