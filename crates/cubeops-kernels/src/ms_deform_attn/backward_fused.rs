//! MSDA backward, all three gradients in one pass.

use cubecl::prelude::*;

use super::geometry::{level, locate, location_index, weight_index, MsdaGeometryArgs};
use crate::lanes::{group_sum, read_vector};
use crate::point_sample::Corners;

/// The three gradients of one pass over the sampling points, for `grad_output (N, Lq, M, D)`:
/// `grad_value[n, key(corner), m, d] += attn * corner weight * g` (when `scatter`), and per
/// point `grad_attn = sum_d g * sample_d`, `grad_loc = attn * sum_d g * d sample_d / d loc`.
///
/// A group of `lanes` threads (a power of two, at most the plane size) serves one `(n, q, m)`:
/// thread `i` takes units `i, i + lanes, ...` of `N` neighbouring channels (`N` divides D), so
/// neighbouring threads read neighbouring channels of the same cells, as in the forward: it
/// reads each corner and the output gradient as one vector of `N`, and adds into the value's
/// gradient one vector of `N` per corner (`red.global.add.v4.f32` on sm_90+; `N = 1`
/// elsewhere). For `N > 1` the value and `grad_output` have unit channel stride and their
/// other strides and offsets are multiples of `N` ([`crate::lanes::vector_width`]). Each point is located and its value cells
/// read once for all three gradients; the channel sums are reduced across the group with
/// plane shuffles, and the group's first thread writes them (no atomics there).
///
/// `grad_value` is a zeroed contiguous `(N, S, M, D)` accumulation-type buffer (f32, or f64
/// for f64 storage) in vectors of `N`, the value's own strides are the geometry's; without `scatter` it is not
/// touched (the deterministic kernel fills it). `grad_locations` `(N, Lq, M, L, P, 2)` and
/// `grad_weights` `(N, Lq, M, L, P)` are contiguous.
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
pub fn msda_backward_fused_kernel<F: Float, A: Float, I: Int, N: Size>(
    grad_output: &Array<Vector<F, N>>,
    value: &Array<Vector<F, N>>,
    shapes: &Array<I>,
    starts: &Array<I>,
    locations: &Array<F>,
    weights: &Array<F>,
    grad_value: &mut Array<Atomic<Vector<A, N>>>,
    grad_locations: &mut Array<F>,
    grad_weights: &mut Array<F>,
    geo: &MsdaGeometryArgs,
    #[comptime] lanes: u32,
    #[comptime] scatter: bool,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let heads = geo.num_heads as usize;
    let queries = geo.num_queries as usize;
    let channels = geo.channels as usize;
    let width = comptime!(lanes as usize);
    let group = ABSOLUTE_POS / width;
    let lane = ABSOLUTE_POS % width;
    // Threads past the last group stay for the shuffles (on group 0's data) and write nothing.
    let active = group < geo.n as usize * queries * heads;
    let g = select(active, group, 0);
    let m = g % heads;
    let q = (g / heads) % queries;
    let n = g / (heads * queries);

    let one = A::new(1.0);
    // Threads work in units of `vec` neighbouring channels (`N`, which divides D).
    let vec = grad_value.vector_size();
    let units = channels / vec;
    let chunks = (units + width - 1) / width;
    let out_base = n * geo.out_n as usize + q * geo.out_q as usize + m * geo.out_m as usize;
    let key_stride = heads * channels; // of the contiguous grad_value
    let levels = geo.num_levels as usize;
    let points = geo.num_points as usize;
    for l in 0..levels {
        let (h, w, start) = level::<I>(shapes, starts, l);
        let base = n * geo.value_n as usize + start * geo.value_s as usize + m * geo.value_m as usize;
        let acc_base = ((n * geo.num_keys as usize + start) * heads + m) * channels;
        for p in 0..points {
            let fp = locate::<F, A>(locations, geo, location_index(geo, n, q, m, l, p), h, w, true);
            let attn = A::cast_from(weights[weight_index(geo, n, q, m, l, p)]);
            let (nw_in, ne_in) = (fp.y0_in && fp.x0_in, fp.y0_in && fp.x1_in);
            let (sw_in, se_in) = (fp.y1_in && fp.x0_in, fp.y1_in && fp.x1_in);
            let (wx0, wy0) = (one - fp.tx, one - fp.ty);
            let mut gw = A::new(0.0);
            let mut gx = A::new(0.0);
            let mut gy = A::new(0.0);
            for k in 0..chunks {
                let unit = lane + k * width;
                if active && unit < units {
                    let d0 = unit * vec;
                    let at = base + d0 * geo.value_d as usize;
                    let nw = read_vector::<F, A, N>(value, at + fp.off_y0 + fp.off_x0, nw_in);
                    let ne = read_vector::<F, A, N>(value, at + fp.off_y0 + fp.off_x1, ne_in);
                    let sw = read_vector::<F, A, N>(value, at + fp.off_y1 + fp.off_x0, sw_in);
                    let se = read_vector::<F, A, N>(value, at + fp.off_y1 + fp.off_x1, se_in);
                    let grads = Vector::<A, N>::cast_from(grad_output[(out_base + d0 * geo.out_d as usize) / vec]);
                    let mut add_nw = Vector::<A, N>::empty();
                    let mut add_ne = Vector::<A, N>::empty();
                    let mut add_sw = Vector::<A, N>::empty();
                    let mut add_se = Vector::<A, N>::empty();
                    #[unroll]
                    for j in 0..vec {
                        let cells = Corners::<A> { nw: nw[j], ne: ne[j], sw: sw[j], se: se[j] };
                        let grad = grads[j];
                        let (dx, dy) = cells.gradient(&fp);
                        gw += grad * cells.interpolate(&fp);
                        gx += grad * dx;
                        gy += grad * dy;
                        let gv = grad * attn;
                        add_nw[j] = gv * wx0 * wy0;
                        add_ne[j] = gv * fp.tx * wy0;
                        add_sw[j] = gv * wx0 * fp.ty;
                        add_se[j] = gv * fp.tx * fp.ty;
                    }
                    if comptime!(scatter) {
                        // Whole vectors of `vec` channels: one (vector) atomic per corner.
                        let row0 = (acc_base + fp.y0 * w * key_stride + d0) / vec;
                        let row1 = (acc_base + fp.y1 * w * key_stride + d0) / vec;
                        let (x0, x1) = (fp.x0 * key_stride / vec, fp.x1 * key_stride / vec);
                        if nw_in {
                            grad_value[row0 + x0].fetch_add(add_nw);
                        }
                        if ne_in {
                            grad_value[row0 + x1].fetch_add(add_ne);
                        }
                        if sw_in {
                            grad_value[row1 + x0].fetch_add(add_sw);
                        }
                        if se_in {
                            grad_value[row1 + x1].fetch_add(add_se);
                        }
                    }
                }
            }
            let gw = group_sum::<A>(gw, lanes, 1u32);
            let gx = group_sum::<A>(gx, lanes, 1u32);
            let gy = group_sum::<A>(gy, lanes, 1u32);
            if active && lane == 0 {
                let point = (g * levels + l) * points + p;
                grad_weights[point] = F::cast_from(gw);
                grad_locations[point * 2] = F::cast_from(attn * gx * fp.scale_x);
                grad_locations[point * 2 + 1] = F::cast_from(attn * gy * fp.scale_y);
            }
        }
    }
}
