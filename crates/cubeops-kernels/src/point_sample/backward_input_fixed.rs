//! point_sample backward to the input, deterministic through fixed-point atomics: integer
//! addition is associative, so the sums do not depend on the order the atomics land in.
//!
//! Three kernels, all on the device (no host sync): [`grad_output_max_kernel`] finds the
//! largest finite |grad_output|, from which every kernel derives the same power-of-two scale
//! ([`fixed_scale`]); [`point_sample_backward_input_fixed_kernel`] adds the scaled, rounded
//! contributions with 64-bit integer atomics; [`fixed_to_float_kernel`] divides by the scale.

use cubecl::prelude::*;

use super::sampling::{locate_point, split_position, GeometryArgs, Sampling};

/// Elements of `grad_output` each thread of [`grad_output_max_kernel`] reads.
pub const MAX_PER_THREAD: usize = 32;

/// `largest[0] = max(largest[0], bits of the largest finite |grad_output|)`: the bits of a
/// non-negative float order as the floats do, so an unsigned atomic max finds it. Each thread
/// reads [`MAX_PER_THREAD`] elements (threads apart), a plane reduces them, one atomic per
/// plane. `largest` must start at zero.
#[cube(launch, address_type = "dynamic")]
pub fn grad_output_max_kernel<Q: Float>(
    grad_output: &Array<Q>,
    largest: &mut Array<Atomic<u32>>,
    geo: &GeometryArgs,
    #[comptime] channels_fastest: bool,
    #[define(Q)] _dtype: StorageType,
) {
    let channels = geo.channels as usize;
    let num_points = geo.num_points as usize;
    let total = geo.n as usize * channels * num_points;
    let per_thread = comptime!(MAX_PER_THREAD);
    let threads = (total + per_thread - 1) / per_thread;
    let mut bits = 0u32;
    #[unroll]
    for k in 0..per_thread {
        let e = ABSOLUTE_POS + k * threads;
        if e < total {
            let (n, c, p) = split_position(e, channels, num_points, channels_fastest);
            let g = f32::cast_from(grad_output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize]);
            let magnitude = u32::reinterpret(g) & 0x7fff_ffffu32;
            // Finite only: infinities and NaNs go their own way (see `add_fixed`).
            if magnitude < 0x7f80_0000u32 && magnitude > bits {
                bits = magnitude;
            }
        }
    }
    let bits = plane_max(bits);
    if UNIT_POS_PLANE == 0 {
        largest[0].fetch_max(bits);
    }
}

/// The power of two the fixed-point sums are counted in: with `m` the largest finite
/// |grad_output| (`largest_bits`, its f32 bits) and `P` points per map, a cell gets at most
/// `P` contributions of at most `m` each, so `2^62 / 2^ceil(log2(m * P))` keeps every sum
/// below 2^62; clamped to f32's normal powers.
#[cube]
pub fn fixed_scale(largest_bits: u32, num_points: u32) -> f32 {
    // m < 2^(its exponent + 1); zero and subnormals count as 2^-126.
    let m_exp = i32::cast_from(largest_bits >> 23) - 126;
    let p_bits = u32::reinterpret(f32::cast_from(num_points));
    let p_exp = i32::cast_from(p_bits >> 23) - 126;
    let e = clamp(62 - m_exp - p_exp, -126, 127);
    f32::reinterpret(u32::cast_from(e + 127) << 23)
}

/// `fixed[n, c, corner] += round(weight(corner) * grad_output[n, c, p] * scale)` as 64-bit
/// integers, one thread per `(n, c, p)`; the scale is [`fixed_scale`] of `largest` (from
/// [`grad_output_max_kernel`]).
///
/// A contribution that is not finite (an infinite or NaN output gradient) goes to `special`
/// with a float atomic instead: a sum of only infinities and NaNs is the same in any order.
/// [`fixed_to_float_kernel`] then gives each cell `special` where it is not zero, else
/// `fixed / scale`. Both buffers are zeroed, dense, with `geo`'s map strides; `Q` is the type
/// of `grad_output` and the points. Contributions are computed in f32, as the float-atomic
/// kernel computes them.
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
pub fn point_sample_backward_input_fixed_kernel<Q: Float>(
    grad_output: &Array<Q>,
    points: &Array<Q>,
    largest: &Array<u32>,
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
    let s = fixed_scale(largest[0], geo.num_points);
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
pub fn fixed_to_float_kernel(fixed: &Array<i64>, largest: &Array<u32>, out: &mut Array<f32>, geo: &GeometryArgs) {
    let count = geo.n as usize * geo.channels as usize * geo.height as usize * geo.width as usize;
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    let special = out[ABSOLUTE_POS];
    if special == 0.0 {
        out[ABSOLUTE_POS] = f32::cast_from(fixed[ABSOLUTE_POS]) / fixed_scale(largest[0], geo.num_points);
    }
}
