//! point_sample backward to the input without atomics: deterministic, bit for bit.

use cubecl::prelude::*;

use super::sampling::{locate_point, GeometryArgs, Sampling};

/// Threads the deterministic kernel aims for: enough to fill a GPU, few enough that the
/// points, which every thread walks, are not located many more times than needed.
pub const ORDERED_TARGET_THREADS: usize = 32768;

/// How the deterministic kernel splits each `(n, c)` plane: `(bands, rows_per_band)`, with
/// `bands * rows_per_band >= height` and every band non-empty. The kernel computes the same
/// (see [`ordered_rows_per_band`]); the launch has `n * channels * bands` threads.
pub fn ordered_bands(n: usize, channels: usize, height: usize) -> (usize, usize) {
    let planes = (n * channels).max(1);
    let wanted = ORDERED_TARGET_THREADS.div_ceil(planes).clamp(1, height.max(1));
    let rows = height.max(1).div_ceil(wanted);
    (height.max(1).div_ceil(rows), rows)
}

/// [`ordered_bands`]'s `rows_per_band` on the device.
#[cube]
fn ordered_rows_per_band(n: usize, channels: usize, height: usize) -> usize {
    let planes = select(n * channels > 0, n * channels, 1usize);
    let target = comptime!(ORDERED_TARGET_THREADS);
    // `target / planes` rounded up is at least 1; `height` is at least 1.
    let wanted = (target + planes - 1) / planes;
    let wanted = select(wanted < height, wanted, height);
    (height + wanted - 1) / wanted
}

/// `grad_input[n, c, rows of one band] = sum over points p, in order, of weight * grad_output[n, c, p]`.
///
/// One thread per `(n, c, band of rows)`, channels fastest (so a warp reads one point at a
/// time): every thread walks all points in index order and adds the corners that fall in its
/// rows with plain read-modify-writes. Each cell has one writer and a fixed order of
/// additions, so the result is the same on every run (the atomic kernel's is not).
/// `grad_input` is a zeroed accumulation-type buffer, as for the atomic kernel; `F` is the
/// type of `grad_output` and the points (the map's storage type, or f32 under autocast: this
/// kernel never reads the map).
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_input_ordered_kernel<F: Float, A: Float>(
    grad_output: &Array<F>,
    points: &Array<F>,
    grad_input: &mut Array<A>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[define(F, A)] _dtypes: [StorageType; 2],
) {
    let channels = geo.channels as usize;
    let height = geo.height as usize;
    let rows = ordered_rows_per_band(geo.n as usize, channels, height);
    let bands = (height + rows - 1) / rows;
    if ABSOLUTE_POS >= geo.n as usize * channels * bands {
        terminate!();
    }
    let c = ABSOLUTE_POS % channels;
    let rest = ABSOLUTE_POS / channels;
    let band = rest % bands;
    let n = rest / bands;
    let first_row = band * rows;
    let end_row = first_row + rows;

    let one = A::new(1.0);
    let base = n * geo.map_n as usize + c * geo.map_c as usize;
    let grad_base = n * geo.out_n as usize + c * geo.out_c as usize;
    for p in 0..geo.num_points as usize {
        let fp = locate_point::<F, A>(points, geo, n, p, sampling, true);
        let top = fp.y0_in && fp.y0 >= first_row && fp.y0 < end_row;
        let bottom = fp.y1_in && fp.y1 >= first_row && fp.y1 < end_row;
        if top || bottom {
            let grad = A::cast_from(grad_output[grad_base + p * geo.out_p as usize]);
            // The atomic kernel's weights, in the same order of operations.
            if top && fp.x0_in {
                grad_input[base + fp.off_y0 + fp.off_x0] += grad * (one - fp.tx) * (one - fp.ty);
            }
            if top && fp.x1_in {
                grad_input[base + fp.off_y0 + fp.off_x1] += grad * fp.tx * (one - fp.ty);
            }
            if bottom && fp.x0_in {
                grad_input[base + fp.off_y1 + fp.off_x0] += grad * (one - fp.tx) * fp.ty;
            }
            if bottom && fp.x1_in {
                grad_input[base + fp.off_y1 + fp.off_x1] += grad * fp.tx * fp.ty;
            }
        }
    }
}
