//! point_sample backward to the input, deterministic through fixed-point atomics: integer
//! addition is associative, so the sums do not depend on the order the atomics land in.

use cubecl::prelude::*;

use super::sampling::{locate_point, split_position, GeometryArgs, Sampling};

/// `fixed[n, c, corner] += round(weight(corner) * grad_output[n, c, p] * scale)` as 64-bit
/// integers, one thread per `(n, c, p)`.
///
/// `scale` (one f32, a power of two) is chosen by the caller so that no cell's sum can
/// overflow: `max |finite grad_output| * points per map * scale < 2^62`. A contribution that
/// is not finite (an infinite or NaN output gradient) goes to `special` with a float atomic
/// instead: a sum of only infinities and NaNs is the same in any order. [`fixed_to_float_kernel`]
/// then gives each cell `special` where it is not zero, else `fixed / scale`. Both buffers
/// are zeroed, dense, with `geo`'s map strides; `Q` is the type of `grad_output` and the
/// points. Contributions are computed in f32, as the float-atomic kernel computes them.
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
pub fn point_sample_backward_input_fixed_kernel<Q: Float>(
    grad_output: &Array<Q>,
    points: &Array<Q>,
    scale: &Array<f32>,
    fixed: &mut Array<Atomic<i64>>,
    special: &mut Array<Atomic<f32>>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[comptime] channels_fastest: bool,
    #[define(Q)] _dtype: StorageType,
) {
    let channels = geo.channels as usize;
    let num_points = geo.num_points as usize;
    if ABSOLUTE_POS >= geo.n as usize * channels * num_points {
        terminate!();
    }
    let (n, c, p) = split_position(ABSOLUTE_POS, channels, num_points, channels_fastest);
    let fp = locate_point::<Q, f32>(points, geo, n, p, sampling, true);
    let grad = f32::cast_from(grad_output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize]);
    let base = n * geo.map_n as usize + c * geo.map_c as usize;
    let s = scale[0];
    let (wx0, wy0) = (1.0 - fp.tx, 1.0 - fp.ty);
    add_fixed(fixed, special, base + fp.off_y0 + fp.off_x0, grad * wx0 * wy0, s, fp.y0_in && fp.x0_in);
    add_fixed(fixed, special, base + fp.off_y0 + fp.off_x1, grad * fp.tx * wy0, s, fp.y0_in && fp.x1_in);
    add_fixed(fixed, special, base + fp.off_y1 + fp.off_x0, grad * wx0 * fp.ty, s, fp.y1_in && fp.x0_in);
    add_fixed(fixed, special, base + fp.off_y1 + fp.off_x1, grad * fp.tx * fp.ty, s, fp.y1_in && fp.x1_in);
}

/// Adds one contribution: as an integer of units `1 / scale` when finite, else as a float.
#[cube]
fn add_fixed(fixed: &mut Array<Atomic<i64>>, special: &mut Array<Atomic<f32>>, at: usize, value: f32, scale: f32, inside: bool) {
    if inside {
        // Finite on the bits (see `sampling::is_nan` for why not a float comparison).
        let finite = (u32::reinterpret(value) & 0x7f80_0000u32) != 0x7f80_0000u32;
        if finite {
            fixed[at].fetch_add(i64::cast_from(f32::round(value * scale)));
        } else {
            special[at].fetch_add(value);
        }
    }
}

/// `out[i] = out[i] != 0 ? out[i] : fixed[i] / scale` over the `n * channels * height *
/// width` elements of two dense buffers with the same strides: `out` is the `special`
/// buffer of [`point_sample_backward_input_fixed_kernel`], which becomes the gradient.
#[cube(launch, address_type = "dynamic")]
pub fn fixed_to_float_kernel(fixed: &Array<i64>, scale: &Array<f32>, out: &mut Array<f32>, geo: &GeometryArgs) {
    let count = geo.n as usize * geo.channels as usize * geo.height as usize * geo.width as usize;
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    let special = out[ABSOLUTE_POS];
    if special == 0.0 {
        out[ABSOLUTE_POS] = f32::cast_from(fixed[ABSOLUTE_POS]) / scale[0];
    }
}
