//! point_sample backward to the points: d(loss)/d(x, y), summed over channels.

use cubecl::prelude::*;

use super::sampling::{locate_point, read_or_zero};

/// `grad_points[n, p, :] = sum_c grad_output[n, c, p] * d output[n, c, p] / d (x, y)`.
///
/// One thread per point walks all channels, so no atomics are needed. The derivative is
/// that of the bilinear formula inside the cell (grid_sample's convention: a point exactly
/// on a cell edge takes the derivative of the cell to its lower right).
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_points_kernel<F: Float, A: Float>(
    grad_output: &Tensor<F>,
    input: &Tensor<F>,
    points: &Tensor<F>,
    grad_points: &mut Tensor<F>,
    #[comptime] align_corners: bool,
    #[define(F, A)] _dtypes: [StorageType; 2],
) {
    let num_points = points.shape(1);
    if ABSOLUTE_POS >= points.shape(0) * num_points {
        terminate!();
    }
    let n = ABSOLUTE_POS / num_points;
    let p = ABSOLUTE_POS % num_points;

    let fp = locate_point::<F, A>(
        points,
        n,
        p,
        input.shape(2),
        input.shape(3),
        input.stride(2),
        input.stride(3),
        align_corners,
    );
    let nw_in = fp.y0_in && fp.x0_in;
    let ne_in = fp.y0_in && fp.x1_in;
    let sw_in = fp.y1_in && fp.x0_in;
    let se_in = fp.y1_in && fp.x1_in;
    let one = A::new(1.0);

    let mut gx = A::new(0.0);
    let mut gy = A::new(0.0);
    for c in 0..input.shape(1) {
        let base = n * input.stride(0) + c * input.stride(1);
        let nw = read_or_zero::<F, A>(input, base + fp.off_y0 + fp.off_x0, nw_in);
        let ne = read_or_zero::<F, A>(input, base + fp.off_y0 + fp.off_x1, ne_in);
        let sw = read_or_zero::<F, A>(input, base + fp.off_y1 + fp.off_x0, sw_in);
        let se = read_or_zero::<F, A>(input, base + fp.off_y1 + fp.off_x1, se_in);
        let grad = A::cast_from(
            grad_output[n * grad_output.stride(0) + c * grad_output.stride(1) + p * grad_output.stride(2)],
        );
        gx += grad * ((ne - nw) * (one - fp.ty) + (se - sw) * fp.ty);
        gy += grad * ((sw - nw) * (one - fp.tx) + (se - ne) * fp.tx);
    }

    let out = n * grad_points.stride(0) + p * grad_points.stride(1);
    grad_points[out] = F::cast_from(gx * fp.scale_x);
    grad_points[out + grad_points.stride(2)] = F::cast_from(gy * fp.scale_y);
}
