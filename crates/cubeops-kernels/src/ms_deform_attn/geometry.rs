//! Device-side pieces shared by the MSDA kernels: the launch geometry and where a sampling
//! location lands on its level.

use cubecl::prelude::*;

use crate::point_sample::{footprint, Footprint, Sampling};

/// mmcv's MSDA sampling: `grid_sample(value_l, 2 * loc - 1, align_corners=False,
/// padding_mode='zeros')`, i.e. pixel = loc * size - 0.5 (its CUDA kernel's `h_im`).
pub const MSDA_SAMPLING: Sampling = Sampling {
    align_corners: false,
    mode: crate::point_sample::Interpolation::Bilinear,
    padding: crate::point_sample::Padding::Zeros,
};

/// Sizes and strides (in elements) of an MSDA launch, all `u32` kernel scalars.
///
/// value `(N, S, M, D)` (S keys over all levels), sampling locations `(N, Lq, M, L, P, 2)`,
/// attention weights `(N, Lq, M, L, P)`, output `(N, Lq, M, D)` (mmcv's `(N, Lq, M * D)`).
#[derive(CubeLaunch, CubeType)]
pub struct MsdaGeometryArgs {
    pub n: u32,
    pub num_keys: u32,
    pub num_heads: u32,
    pub channels: u32,
    pub num_levels: u32,
    pub num_queries: u32,
    pub num_points: u32,
    /// Strides of the value (or of the value-gradient buffer in the scatter kernel).
    pub value_n: u32,
    pub value_s: u32,
    pub value_m: u32,
    pub value_d: u32,
    pub loc_n: u32,
    pub loc_q: u32,
    pub loc_m: u32,
    pub loc_l: u32,
    pub loc_p: u32,
    pub loc_k: u32,
    pub attn_n: u32,
    pub attn_q: u32,
    pub attn_m: u32,
    pub attn_l: u32,
    pub attn_p: u32,
    /// Strides of the output (forward) or of its gradient (backward).
    pub out_n: u32,
    pub out_q: u32,
    pub out_m: u32,
    pub out_d: u32,
}

/// Level `l`: `(height, width, first key)`, from the `(L, 2)` spatial shapes and the `(L,)`
/// level start index (contiguous integer arrays). Garbage there only misplaces reads, which
/// stay bounds-checked.
#[cube]
pub fn level<I: Int>(shapes: &Array<I>, starts: &Array<I>, l: usize) -> (usize, usize, usize) {
    (usize::cast_from(shapes[2 * l]), usize::cast_from(shapes[2 * l + 1]), usize::cast_from(starts[l]))
}

/// Where sampling location `(n, q, m, l, p)` lands on its `h x w` level, whose rows are
/// `w * value_s` elements apart in the value (or its gradient).
#[cube]
pub fn locate<F: Float, A: Float>(
    locations: &Array<F>,
    geo: &MsdaGeometryArgs,
    at: usize,
    h: usize,
    w: usize,
    #[comptime] backward: bool,
) -> Footprint<A> {
    let px = A::cast_from(locations[at]);
    let py = A::cast_from(locations[at + geo.loc_k as usize]);
    let key_stride = geo.value_s as usize;
    footprint::<A>(px, py, h, w, w * key_stride, key_stride, MSDA_SAMPLING, backward)
}

/// The output element `(n, q, m, d)` of thread `pos` (channels fastest), and whether it exists.
#[cube]
pub fn output_element(geo: &MsdaGeometryArgs, pos: usize) -> (bool, usize, usize, usize, usize) {
    let channels = geo.channels as usize;
    let heads = geo.num_heads as usize;
    let queries = geo.num_queries as usize;
    let inside = pos < geo.n as usize * queries * heads * channels;
    let d = pos % channels;
    let m = (pos / channels) % heads;
    let q = (pos / (channels * heads)) % queries;
    (inside, pos / (channels * heads * queries), q, m, d)
}

/// Flat index of `(n, q, m, l, p)` in the locations (without the x/y axis).
#[cube]
pub fn location_index(geo: &MsdaGeometryArgs, n: usize, q: usize, m: usize, l: usize, p: usize) -> usize {
    n * geo.loc_n as usize + q * geo.loc_q as usize + m * geo.loc_m as usize + l * geo.loc_l as usize + p * geo.loc_p as usize
}

/// Flat index of `(n, q, m, l, p)` in the attention weights.
#[cube]
pub fn weight_index(geo: &MsdaGeometryArgs, n: usize, q: usize, m: usize, l: usize, p: usize) -> usize {
    n * geo.attn_n as usize + q * geo.attn_q as usize + m * geo.attn_m as usize + l * geo.attn_l as usize + p * geo.attn_p as usize
}
