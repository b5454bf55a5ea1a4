//! point_sample backward to the input, deterministic, without atomics: each point's four
//! corners become entries keyed by their cell (int64), the caller sorts the keys stably
//! (torch.sort), and each cell's entries are then summed in that order, one thread per
//! (cell, channel). Meant for channels-last maps, where neighbouring threads then read and
//! write neighbouring channels, and where the fixed-point path's 64-bit atomics cost up to
//! ~4x the float atomics.

use cubecl::prelude::*;

use super::sampling::{locate_point, GeometryArgs, Sampling};

/// Entries per point: its four corners.
pub const CORNERS: usize = 4;

/// Entry `(n * P + p) * 4 + corner` of point `(n, p)`: the key of the corner's cell,
/// `(n * H + y) * W + x`, or `N * H * W` (after every cell) where the corner is off the map;
/// and the corner's bilinear weight (the atomic kernel's, in its order of operations).
/// One thread per point.
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_corner_keys_kernel<Q: Float>(
    points: &Array<Q>,
    keys: &mut Array<i64>,
    weights: &mut Array<f32>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[define(Q)] _dtype: StorageType,
) {
    let num_points = geo.num_points as usize;
    if ABSOLUTE_POS >= geo.n as usize * num_points {
        terminate!();
    }
    let n = ABSOLUTE_POS / num_points;
    let p = ABSOLUTE_POS % num_points;
    let fp = locate_point::<Q, f32>(points, geo, n, p, sampling, true);
    let width = geo.width as usize;
    let plane = geo.height as usize * width;
    let off_map = i64::cast_from(geo.n as usize * plane);
    let (wx0, wy0) = (1.0 - fp.tx, 1.0 - fp.ty);
    let row0 = n * plane + fp.y0 * width;
    let row1 = n * plane + fp.y1 * width;
    let at = ABSOLUTE_POS * CORNERS;
    keys[at] = select(fp.y0_in && fp.x0_in, i64::cast_from(row0 + fp.x0), off_map);
    keys[at + 1] = select(fp.y0_in && fp.x1_in, i64::cast_from(row0 + fp.x1), off_map);
    keys[at + 2] = select(fp.y1_in && fp.x0_in, i64::cast_from(row1 + fp.x0), off_map);
    keys[at + 3] = select(fp.y1_in && fp.x1_in, i64::cast_from(row1 + fp.x1), off_map);
    weights[at] = wx0 * wy0;
    weights[at + 1] = fp.tx * wy0;
    weights[at + 2] = wx0 * fp.ty;
    weights[at + 3] = fp.tx * fp.ty;
}

/// `grad_input[n, c, y, x] = sum, in key order, of weight * grad_output[n, c, p]` over the
/// entries of cell `(n, y, x)`, from [`point_sample_corner_keys_kernel`]'s `weights`, its
/// keys sorted stably (`keys`) and where each sorted entry came from (`order`, torch.sort's
/// indices). One thread per (sorted entry, channel), channels fastest; the thread of a
/// run's first entry sums the run and writes the cell, the others return. `grad_input` is
/// in the map's dtype `G` with its strides (`geo`'s map strides) and zeroed by the caller
/// (cells no corner reaches stay zero); `Q` is the type of `grad_output`.
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_input_sorted_kernel<Q: Float, G: Float>(
    grad_output: &Array<Q>,
    keys: &Array<i64>,
    order: &Array<i64>,
    weights: &Array<f32>,
    grad_input: &mut Array<G>,
    geo: &GeometryArgs,
    #[define(Q, G)] _dtypes: [StorageType; 2],
) {
    let channels = geo.channels as usize;
    let num_points = geo.num_points as usize;
    let entries = geo.n as usize * num_points * CORNERS;
    if ABSOLUTE_POS >= entries * channels {
        terminate!();
    }
    let e = ABSOLUTE_POS / channels;
    let c = ABSOLUTE_POS % channels;
    let width = geo.width as usize;
    let plane = geo.height as usize * width;
    let key = keys[e];
    let first = e == 0 || keys[select(e > 0, e - 1, 0)] != key;
    if first && key < i64::cast_from(geo.n as usize * plane) {
        let mut sum = 0.0f32;
        let mut j = e;
        while j < entries && keys[j] == key {
            let from = usize::cast_from(order[j]);
            let point = from / CORNERS;
            let n = point / num_points;
            let p = point % num_points;
            let grad = f32::cast_from(grad_output[n * geo.out_n as usize + c * geo.out_c as usize + p * geo.out_p as usize]);
            sum += grad * weights[from];
            j += 1;
        }
        let cell = usize::cast_from(key);
        let n = cell / plane;
        let y = cell % plane / width;
        let x = cell % width;
        let at = n * geo.map_n as usize + c * geo.map_c as usize + y * geo.map_h as usize + x * geo.map_w as usize;
        grad_input[at] = G::cast_from(sum);
    }
}
