//! point_sample backward to the input: scatter-add of the weighted output gradient.

use cubecl::prelude::*;

use super::sampling::{locate_point, split_position};

/// `grad_input[n, c, corner] += weight(corner) * grad_output[n, c, p]` for the four corners.
///
/// One thread per `grad_output` element. `grad_input` is an accumulation-type buffer
/// (f32, or f64 for f64 storage) with the input's layout, zeroed by the caller; the
/// caller casts it to the storage type afterwards. Float atomics make the result
/// order-dependent in the last bits when several points share a cell.
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_input_kernel<F: Float, A: Float>(
    grad_output: &Tensor<F>,
    points: &Tensor<F>,
    grad_input: &mut Tensor<Atomic<A>>,
    #[comptime] align_corners: bool,
    #[comptime] channels_fastest: bool,
    #[define(F, A)] _dtypes: [StorageType; 2],
) {
    let channels = grad_input.shape(1);
    let num_points = points.shape(1);
    if ABSOLUTE_POS >= grad_output.shape(0) * channels * num_points {
        terminate!();
    }
    let (n, c, p) = split_position(ABSOLUTE_POS, channels, num_points, channels_fastest);

    let fp = locate_point::<F, A>(
        points,
        n,
        p,
        grad_input.shape(2),
        grad_input.shape(3),
        grad_input.stride(2),
        grad_input.stride(3),
        align_corners,
    );

    let grad = A::cast_from(
        grad_output[n * grad_output.stride(0) + c * grad_output.stride(1) + p * grad_output.stride(2)],
    );
    let one = A::new(1.0);
    let base = n * grad_input.stride(0) + c * grad_input.stride(1);
    if fp.y0_in && fp.x0_in {
        grad_input[base + fp.off_y0 + fp.off_x0].fetch_add(grad * (one - fp.tx) * (one - fp.ty));
    }
    if fp.y0_in && fp.x1_in {
        grad_input[base + fp.off_y0 + fp.off_x1].fetch_add(grad * fp.tx * (one - fp.ty));
    }
    if fp.y1_in && fp.x0_in {
        grad_input[base + fp.off_y1 + fp.off_x0].fetch_add(grad * (one - fp.tx) * fp.ty);
    }
    if fp.y1_in && fp.x1_in {
        grad_input[base + fp.off_y1 + fp.off_x1].fetch_add(grad * fp.tx * fp.ty);
    }
}
