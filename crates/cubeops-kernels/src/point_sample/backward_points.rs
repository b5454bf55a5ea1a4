//! point_sample backward to the points: d(loss)/d(x, y), summed over channels.

use cubecl::prelude::*;

use super::sampling::{Sampling, locate_point, read_corners, GeometryArgs};

/// `grad_points[n, p, :] = sum_c grad_output[n, c, p] * d output[n, c, p] / d (x, y)`.
///
/// One thread per point walks all channels, so no atomics are needed. `grad_points` is a
/// contiguous `(N, P, 2)` buffer. The derivative is that of the bilinear formula inside the
/// cell (grid_sample's convention: a point exactly on a cell edge takes the derivative of
/// the cell to its lower right).
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_points_kernel<F: Float, A: Float>(
    grad_output: &Array<F>,
    input: &Array<F>,
    points: &Array<F>,
    grad_points: &mut Array<F>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[define(F, A)] _dtypes: [StorageType; 2],
) {
    let num_points = geo.num_points as usize;
    if ABSOLUTE_POS >= geo.n as usize * num_points {
        terminate!();
    }
    let n = ABSOLUTE_POS / num_points;
    let p = ABSOLUTE_POS % num_points;
    let fp = locate_point::<F, A>(points, geo, n, p, sampling, true);
    let mut gx = A::new(0.0);
    let mut gy = A::new(0.0);
    for c in 0..geo.channels as usize {
        let base = n * geo.map_n as usize + c * geo.map_c as usize;
        let (dx, dy) = read_corners::<F, A>(input, base, &fp).gradient(&fp);
        let grad = A::cast_from(grad_output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize]);
        gx += grad * dx;
        gy += grad * dy;
    }

    grad_points[ABSOLUTE_POS * 2] = F::cast_from(gx * fp.scale_x);
    grad_points[ABSOLUTE_POS * 2 + 1] = F::cast_from(gy * fp.scale_y);
}
