//! The PSAMask gather kernel: forward and backward, collect and distribute.

use cubecl::prelude::*;

/// Sizes and strides (in elements) of a PSAMask launch, all `u32` kernel scalars.
#[derive(CubeLaunch, CubeType)]
pub struct PsaGeometryArgs {
    pub n: u32,
    pub height: u32,
    pub width: u32,
    pub mask_h: u32,
    pub mask_w: u32,
    /// `(mask - 1) / 2`: the mask cell that sits on the position itself.
    pub half_h: u32,
    pub half_w: u32,
    /// Strides of what the kernel reads: the mask (forward) or grad_output (backward).
    pub src_n: u32,
    pub src_c: u32,
    pub src_h: u32,
    pub src_w: u32,
    /// Strides of what it writes: the attention map (forward) or grad_input (backward).
    pub dst_n: u32,
    pub dst_c: u32,
    pub dst_h: u32,
    pub dst_w: u32,
}

/// Forward (`backward = false`): `dst (N, H*W, H, W)` from the mask `src (N, mh*mw, H, W)`.
/// Backward: `dst (N, mh*mw, H, W)` = grad of the mask, from `src` = grad of the map.
///
/// mmcv's definition, for a position (h, w) and a mask cell (i, j) whose target
/// (y, x) = (h + i - half_h, w + j - half_w) lies on the map:
/// collect: `map[n, y*W + x, h, w] = mask[n, i*mw + j, h, w]`;
/// distribute: `map[n, h*W + w, y, x] = mask[n, i*mw + j, h, w]`; every other map entry is 0.
/// The backward reads the same pairs the other way round.
#[cube(launch, address_type = "dynamic")]
pub fn psamask_kernel<F: Float>(
    src: &Array<F>,
    dst: &mut Array<F>,
    geo: &PsaGeometryArgs,
    #[comptime] distribute: bool,
    #[comptime] backward: bool,
    #[define(F)] _dtype: StorageType,
) {
    let (h_size, w_size) = (geo.height as usize, geo.width as usize);
    let (mask_h, mask_w) = (geo.mask_h as usize, geo.mask_w as usize);
    let (half_h, half_w) = (geo.half_h as usize, geo.half_w as usize);
    let hw = h_size * w_size;
    let channels = if backward { mask_h * mask_w } else { hw };
    if ABSOLUTE_POS >= geo.n as usize * channels * hw {
        terminate!();
    }
    let w_pos = ABSOLUTE_POS % w_size;
    let h_pos = (ABSOLUTE_POS / w_size) % h_size;
    let c = (ABSOLUTE_POS / hw) % channels;
    let n = ABSOLUTE_POS / (hw * channels);

    // (h, w): the position that owns the mask; (y, x): its target shifted by (half_h,
    // half_w), so that all offsets stay non-negative: mask cell (i, j) = (y - h, x - w).
    let (h, w, y, x) = if backward {
        // dst is the mask's gradient at (c = i*mw + j, h, w)
        (h_pos, w_pos, h_pos + c / mask_w, w_pos + c % mask_w)
    } else if distribute {
        // dst is map[n, h*W + w, target]
        (c / w_size, c % w_size, h_pos + half_h, w_pos + half_w)
    } else {
        // collect: dst is map[n, target, h, w]
        (h_pos, w_pos, c / w_size + half_h, c % w_size + half_w)
    };
    // The target is on the map.
    let mut value = F::new(0.0);
    let shifted_in = y >= half_h && x >= half_w && y < h_size + half_h && x < w_size + half_w;
    if shifted_in {
        let (ty, tx) = (y - half_h, x - half_w);
        if backward {
            // src is grad of the map: (channel, row, column) of the pair's map entry
            let (c_src, h_src, w_src) = if distribute { (h * w_size + w, ty, tx) } else { (ty * w_size + tx, h, w) };
            value = src[n * geo.src_n as usize
                + c_src * geo.src_c as usize
                + h_src * geo.src_h as usize
                + w_src * geo.src_w as usize];
        } else if y >= h && x >= w && y - h < mask_h && x - w < mask_w {
            // forward: mask cell (i, j) = (y - h, x - w) in the shifted frame
            let cell = (y - h) * mask_w + (x - w);
            value = src[n * geo.src_n as usize + cell * geo.src_c as usize + h * geo.src_h as usize + w * geo.src_w as usize];
        }
    }
    dst[n * geo.dst_n as usize + c * geo.dst_c as usize + h_pos * geo.dst_h as usize + w_pos * geo.dst_w as usize] = value;
}
