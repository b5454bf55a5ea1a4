//! Multi-threaded CPU PSAMask over strided memory: the CPU path of the Python bridge. Same
//! gather as the kernel: every destination element is written (0 where no pair lands).

use rayon::prelude::*;

use super::PsaMaskOptions;
use crate::point_sample::cpu::{CpuElement, View};
use crate::OpError;

/// `dst` (contiguous): the `(N, H*W, H, W)` map from the mask `src` (forward), or the
/// `(N, mh*mw, H, W)` mask gradient from the map's gradient `src` (backward).
pub fn remap<T: CpuElement>(src: View<T, 4>, dst: &mut [T], options: PsaMaskOptions, backward: bool) -> Result<(), OpError> {
    let [n, src_c, h, w] = src.shape();
    let (mh, mw) = options.mask_size;
    let hw = h * w;
    let (want_src, dst_c) = if backward { (hw, mh * mw) } else { (mh * mw, hw) };
    if src_c != want_src {
        return Err(OpError::Shape { arg: "input", message: format!("has {src_c} channels, expected {want_src}") });
    }
    if dst.len() != n * dst_c * hw {
        return Err(OpError::Shape { arg: "output", message: format!("buffer holds {} elements, {} needed", dst.len(), n * dst_c * hw) });
    }
    if hw == 0 {
        return Ok(());
    }
    let (half_h, half_w) = ((mh - 1) / 2, (mw - 1) / 2);
    let distribute = options.distribute();
    dst.par_chunks_mut(hw).enumerate().for_each(|(row, plane)| {
        let (b, c) = (row / dst_c, row % dst_c);
        for (pos, value) in plane.iter_mut().enumerate() {
            let (h_pos, w_pos) = (pos / w, pos % w);
            // As in the kernel: (hh, ww) owns the mask, (y, x) is its target shifted by half.
            let (hh, ww, y, x) = if backward {
                (h_pos, w_pos, h_pos + c / mw, w_pos + c % mw)
            } else if distribute {
                (c / w, c % w, h_pos + half_h, w_pos + half_w)
            } else {
                (h_pos, w_pos, c / w + half_h, c % w + half_w)
            };
            let on_map = y >= half_h && x >= half_w && y < h + half_h && x < w + half_w;
            *value = if !on_map {
                T::from_f64(0.0)
            } else if backward {
                let (ty, tx) = (y - half_h, x - half_w);
                if distribute { src.at([b, hh * w + ww, ty, tx]) } else { src.at([b, ty * w + tx, hh, ww]) }
            } else if y >= hh && x >= ww && y - hh < mh && x - ww < mw {
                src.at([b, (y - hh) * mw + (x - ww), hh, ww])
            } else {
                T::from_f64(0.0)
            };
        }
    });
    Ok(())
}
