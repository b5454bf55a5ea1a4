//! point_sample backward: the gradients to the input and to the points from one pass over
//! grad_output.

use cubecl::prelude::*;

use super::sampling::{locate_point, Corners, GeometryArgs, Sampling};
use crate::lanes::{group_sum, read_vector};

/// `grad_input[n, c, corner] += weight(corner) * grad_output[n, c, p]` for the four corners
/// (when `scatter`) and `grad_points[n, p] = sum_c grad_output[n, c, p] * d output[n, c, p]
/// / d (x, y)` (when `gather`).
///
/// A group of `lanes` threads serves one point: it is located once, and thread `i` takes
/// units `i, i + lanes, ...` of `N` neighbouring channels. A plane holds `stride` points'
/// groups interleaved: thread `t` of a block of `lanes * stride` is lane `t / stride` of point
/// `t % stride`, so for NCHW maps (`stride > 1`) neighbouring threads read neighbouring
/// points of `grad_output` in one channel, and for channels-last ones (`stride = 1`)
/// neighbouring channels. `N > 1` (channels-last, unit channel stride, other strides and
/// offsets whole vectors) reads a vector per corner and adds one vector per corner
/// (`red.global.add.v4.f32` on sm_90+). The channel sums of `gather` are reduced across the
/// group with plane shuffles, and the group's first thread writes them: no atomics there,
/// and the same bits on every run.
///
/// `F` is the input's storage type, `Q` that of the points, `grad_output` and `grad_points`
/// (`F`, or f32 for 16-bit maps under torch.autocast), `A` the accumulation type.
/// `grad_input` is a zeroed buffer of `G`, the accumulation type (f32, or f64 for f64
/// storage), with `geo`'s map strides (the input's, when `gather` reads the input in the same
/// pass), cast by the caller; untouched
/// without `scatter` (`G` is then f32, which every device with float atomics can declare:
/// f64 atomics cannot even be declared on wgpu; see [`super::BackwardPass::dtypes`]).
/// `grad_points` is a contiguous `(N, P, 2)` buffer; untouched without `gather`. `input` is
/// only read with `gather`. Float atomics make `grad_input` order-dependent in the last bits
/// where several points share a cell (the `ordered` kernel is not).
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
pub fn point_sample_backward_kernel<F: Float, Q: Float, A: Float, G: Float, N: Size>(
    grad_output: &Array<Vector<Q, N>>,
    input: &Array<Vector<F, N>>,
    points: &Array<Q>,
    grad_input: &mut Array<Atomic<Vector<G, N>>>,
    grad_points: &mut Array<Q>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[comptime] lanes: u32,
    #[comptime] stride: u32,
    #[comptime] scatter: bool,
    #[comptime] gather: bool,
    #[define(F, Q, A, G)] _dtypes: [StorageType; 4],
) {
    let block = comptime!((lanes * stride) as usize);
    let interleave = comptime!(stride as usize);
    let within = ABSOLUTE_POS % block;
    let lane = within / interleave;
    let group = ABSOLUTE_POS / block * interleave + within % interleave;
    let num_points = geo.num_points as usize;
    // Threads past the last point stay for the shuffles (on point 0) and write nothing.
    let active = group < geo.n as usize * num_points;
    let g = select(active, group, 0);
    let n = g / num_points;
    let p = g % num_points;
    let fp = locate_point::<Q, A>(points, geo, n, p, sampling, true);

    let one = A::new(1.0);
    let (nw_in, ne_in) = (fp.y0_in && fp.x0_in, fp.y0_in && fp.x1_in);
    let (sw_in, se_in) = (fp.y1_in && fp.x0_in, fp.y1_in && fp.x1_in);
    let (nw_off, ne_off) = (fp.off_y0 + fp.off_x0, fp.off_y0 + fp.off_x1);
    let (sw_off, se_off) = (fp.off_y1 + fp.off_x0, fp.off_y1 + fp.off_x1);
    let (wx0, wy0) = (one - fp.tx, one - fp.ty);
    let (w_nw, w_ne, w_sw, w_se) = (wx0 * wy0, fp.tx * wy0, wx0 * fp.ty, fp.tx * fp.ty);

    let vec = grad_output.vector_size();
    let units = geo.channels as usize / vec;
    let width = comptime!(lanes as usize);
    let chunks = (units + width - 1) / width;
    let map_base = n * geo.map_n as usize;
    let out_base = n * geo.out_n as usize + p * geo.out_p as usize;
    let mut gx = A::new(0.0);
    let mut gy = A::new(0.0);
    for k in 0..chunks {
        let unit = lane + k * width;
        if active && unit < units {
            let c0 = unit * vec;
            let at = map_base + c0 * geo.map_c as usize;
            let grads = Vector::<A, N>::cast_from(grad_output[(out_base + c0 * geo.out_c as usize) / vec]);
            if comptime!(gather) {
                let nw = read_vector::<F, A, N>(input, at + nw_off, nw_in);
                let ne = read_vector::<F, A, N>(input, at + ne_off, ne_in);
                let sw = read_vector::<F, A, N>(input, at + sw_off, sw_in);
                let se = read_vector::<F, A, N>(input, at + se_off, se_in);
                #[unroll]
                for j in 0..vec {
                    let (dx, dy) = Corners::<A> { nw: nw[j], ne: ne[j], sw: sw[j], se: se[j] }.gradient(&fp);
                    gx += grads[j] * dx;
                    gy += grads[j] * dy;
                }
            }
            if comptime!(scatter) {
                // One (vector) atomic per corner on the map.
                if nw_in {
                    grad_input[(at + nw_off) / vec].fetch_add(Vector::cast_from(grads * Vector::new(w_nw)));
                }
                if ne_in {
                    grad_input[(at + ne_off) / vec].fetch_add(Vector::cast_from(grads * Vector::new(w_ne)));
                }
                if sw_in {
                    grad_input[(at + sw_off) / vec].fetch_add(Vector::cast_from(grads * Vector::new(w_sw)));
                }
                if se_in {
                    grad_input[(at + se_off) / vec].fetch_add(Vector::cast_from(grads * Vector::new(w_se)));
                }
            }
        }
    }
    if comptime!(gather) {
        let gx = group_sum::<A>(gx, lanes, stride);
        let gy = group_sum::<A>(gy, lanes, stride);
        if active && lane == 0 {
            grad_points[g * 2] = Q::cast_from(gx * fp.scale_x);
            grad_points[g * 2 + 1] = Q::cast_from(gy * fp.scale_y);
        }
    }
}
