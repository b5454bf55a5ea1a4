//! MSDA forward: a group of threads per `(n, q, m)`, each thread `per_thread` units of `N`
//! neighbouring channels (units `lane, lane + lanes, ...`), so each point is located once for
//! several channels, a unit's cells are read as one vector each, and a warp still reads
//! neighbouring channels of the same cells.

use cubecl::prelude::*;

use crate::lanes::read_vector;

use super::geometry::{level, locate, location_index, weight_index, MsdaGeometryArgs};
use crate::point_sample::Footprint;

/// `output[n, q, m, d] = sum over levels l and points p of attn[n, q, m, l, p] *
/// bilinear(value_l[n, :, m, d], loc[n, q, m, l, p])`.
///
/// `F` is the storage type, `A` the accumulation type (f32, or f64 for f64 storage), `I` the
/// integer type of the spatial shapes and level start index, `N` the vector width of the
/// value and output reads and writes: `N` divides D, and for `N > 1` both have unit channel
/// stride and their other strides and offsets are multiples of `N`
/// ([`crate::lanes::vector_width`]). Threads: `ceil(D / (N * per_thread))` per `(n, q, m)`
/// ([`super::MsdaGeometry::forward_threads`]).
#[cube(launch, address_type = "dynamic")]
pub fn msda_forward_kernel<F: Float, A: Float, I: Int, N: Size>(
    value: &Array<Vector<F, N>>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    output: &mut Array<Vector<F, N>>,
    geo: &MsdaGeometryArgs,
    #[comptime] per_thread: u32,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let width = comptime!(per_thread as usize);
    let vec = value.vector_size();
    let units = geo.channels as usize / vec;
    let heads = geo.num_heads as usize;
    let queries = geo.num_queries as usize;
    let lanes = (units + width - 1) / width;
    let group = ABSOLUTE_POS / lanes;
    let lane = ABSOLUTE_POS % lanes;
    if group >= geo.n as usize * queries * heads {
        terminate!();
    }
    let m = group % heads;
    let q = (group / heads) % queries;
    let n = group / (heads * queries);

    let mut acc = Array::<Vector<A, N>>::new(width);
    #[unroll]
    for k in 0..width {
        acc[k] = Vector::<A, N>::new(A::new(0.0));
    }
    let unit_stride = vec * geo.value_d as usize;
    for l in 0..geo.num_levels as usize {
        let (h, w, start) = level::<I>(shapes, starts, l);
        let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize;
        for p in 0..geo.num_points as usize {
            let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, false);
            let weight = A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
            #[unroll]
            for k in 0..width {
                let unit = lane + k * lanes;
                if unit < units {
                    acc[k] += sample_vector::<F, A, N>(value, base + unit * unit_stride, &fp) * Vector::new(weight);
                }
            }
        }
    }
    let out_base = n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize;
    #[unroll]
    for k in 0..width {
        let unit = lane + k * lanes;
        if unit < units {
            output[(out_base + unit * vec * geo.out_d as usize) / vec] = Vector::cast_from(acc[k]);
        }
    }
}

/// The bilinear sample of the `N` channels at element offset `at` of the plane (zero off the
/// map), each corner read as one vector.
#[cube]
fn sample_vector<F: Float, A: Float, N: Size>(value: &Array<Vector<F, N>>, at: usize, fp: &Footprint<A>) -> Vector<A, N> {
    let one = A::new(1.0);
    let (wx0, wy0) = (one - fp.tx, one - fp.ty);
    let nw = read_vector::<F, A, N>(value, at + fp.off_y0 + fp.off_x0, fp.y0_in && fp.x0_in);
    let ne = read_vector::<F, A, N>(value, at + fp.off_y0 + fp.off_x1, fp.y0_in && fp.x1_in);
    let sw = read_vector::<F, A, N>(value, at + fp.off_y1 + fp.off_x0, fp.y1_in && fp.x0_in);
    let se = read_vector::<F, A, N>(value, at + fp.off_y1 + fp.off_x1, fp.y1_in && fp.x1_in);
    // Same operation order as point_sample's `Corners::interpolate`.
    let top = nw * Vector::new(wx0) + ne * Vector::new(fp.tx);
    let bottom = sw * Vector::new(wx0) + se * Vector::new(fp.tx);
    top * Vector::new(wy0) + bottom * Vector::new(fp.ty)
}
