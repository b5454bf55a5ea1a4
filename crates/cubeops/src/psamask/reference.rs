//! Float64 reference written from the definition (loops over positions and mask cells),
//! independent of the kernels' gather formulation.

use super::PsaType;

/// The `(N, H*W, H, W)` attention map of an `(N, mh*mw, H, W)` mask, contiguous.
pub fn forward(mask: &[f64], [n, h, w]: [usize; 3], (mh, mw): (usize, usize), psa_type: PsaType) -> Vec<f64> {
    let hw = h * w;
    let mut out = vec![0.0; n * hw * hw];
    for_each_pair(n, h, w, mh, mw, |b, cell, y, x, ty, tx| {
        let value = mask[((b * mh * mw + cell) * h + y) * w + x];
        out[map_index(b, hw, w, y, x, ty, tx, psa_type)] = value;
    });
    out
}

/// The `(N, mh*mw, H, W)` gradient of the mask from the map's gradient, contiguous.
pub fn backward(grad_map: &[f64], [n, h, w]: [usize; 3], (mh, mw): (usize, usize), psa_type: PsaType) -> Vec<f64> {
    let hw = h * w;
    let mut out = vec![0.0; n * mh * mw * hw];
    for_each_pair(n, h, w, mh, mw, |b, cell, y, x, ty, tx| {
        out[((b * mh * mw + cell) * h + y) * w + x] = grad_map[map_index(b, hw, w, y, x, ty, tx, psa_type)];
    });
    out
}

/// Calls `f(batch, mask cell, y, x, target y, target x)` for every position (y, x) and
/// mask cell whose target (y + i - (mh-1)/2, x + j - (mw-1)/2) lies on the map.
fn for_each_pair(n: usize, h: usize, w: usize, mh: usize, mw: usize, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
    let (half_h, half_w) = (((mh as i64) - 1) / 2, ((mw as i64) - 1) / 2);
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for i in 0..mh {
                    for j in 0..mw {
                        let ty = y as i64 + i as i64 - half_h;
                        let tx = x as i64 + j as i64 - half_w;
                        if ty >= 0 && tx >= 0 && ty < h as i64 && tx < w as i64 {
                            f(b, i * mw + j, y, x, ty as usize, tx as usize);
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn map_index(b: usize, hw: usize, w: usize, y: usize, x: usize, ty: usize, tx: usize, psa_type: PsaType) -> usize {
    match psa_type {
        PsaType::Collect => ((b * hw + ty * w + tx) * hw) + y * w + x,
        PsaType::Distribute => ((b * hw + y * w + x) * hw) + ty * w + tx,
    }
}
