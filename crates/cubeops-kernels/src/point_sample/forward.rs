//! point_sample forward: one thread per output element `out[n, c, p]`.

use cubecl::prelude::*;

use super::sampling::{Sampling, locate_point, read_or_zero, split_position, GeometryArgs};

/// `output[n, c, p] = bilinear(input[n, c], points[n, p])`, zeros outside the map.
///
/// `input` is `(N, C, H, W)`, `points` `(N, P, 2)` holding (x, y) in [0, 1], `output`
/// `(N, C, P)`, with the sizes and strides of `geo`. `F` is the storage type, `A` the
/// accumulation type (f32, or f64 for f64 storage).
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_forward_kernel<F: Float, A: Float>(
    input: &Array<F>,
    points: &Array<F>,
    output: &mut Array<F>,
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
    let fp = locate_point::<F, A>(points, geo, n, p, sampling, false);

    let base = n * geo.map_n as usize + c * geo.map_c as usize;
    let nw = read_or_zero::<F, A>(input, base + fp.off_y0 + fp.off_x0, fp.y0_in && fp.x0_in);
    let ne = read_or_zero::<F, A>(input, base + fp.off_y0 + fp.off_x1, fp.y0_in && fp.x1_in);
    let sw = read_or_zero::<F, A>(input, base + fp.off_y1 + fp.off_x0, fp.y1_in && fp.x0_in);
    let se = read_or_zero::<F, A>(input, base + fp.off_y1 + fp.off_x1, fp.y1_in && fp.x1_in);

    let one = A::new(1.0);
    let top = nw * (one - fp.tx) + ne * fp.tx;
    let bottom = sw * (one - fp.tx) + se * fp.tx;
    let value = top * (one - fp.ty) + bottom * fp.ty;

    output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize] = F::cast_from(value);
}
