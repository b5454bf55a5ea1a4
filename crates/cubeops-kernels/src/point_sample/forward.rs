//! point_sample forward: one thread per output element `out[n, c, p]`.

use cubecl::prelude::*;

use super::sampling::{Sampling, locate_point, read_corners, split_position, GeometryArgs};

/// `output[n, c, p] = bilinear(input[n, c], points[n, p])`, zeros outside the map.
///
/// `input` is `(N, C, H, W)`, `points` `(N, P, 2)` holding (x, y) in [0, 1], `output`
/// `(N, C, P)`, with the sizes and strides of `geo`. `F` is the map's storage type, `Q` that
/// of the points and the output (`F`, or f32 for 16-bit maps under torch.autocast, see
/// [`super::Variant::f32_points`]), `A` the accumulation type (f32, or f64 for f64 storage).
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_forward_kernel<F: Float, Q: Float, A: Float>(
    input: &Array<F>,
    points: &Array<Q>,
    output: &mut Array<Q>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[comptime] channels_fastest: bool,
    #[define(F, Q, A)] _dtypes: [StorageType; 3],
) {
    let channels = geo.channels as usize;
    let num_points = geo.num_points as usize;
    if ABSOLUTE_POS >= geo.n as usize * channels * num_points {
        terminate!();
    }
    let (n, c, p) = split_position(ABSOLUTE_POS, channels, num_points, channels_fastest);
    let fp = locate_point::<Q, A>(points, geo, n, p, sampling, false);

    let base = n * geo.map_n as usize + c * geo.map_c as usize;
    let value = read_corners::<F, A>(input, base, &fp).interpolate(&fp);

    output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize] = Q::cast_from(value);
}
