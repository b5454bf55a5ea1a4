//! PSAMask as burn tensor ops: both passes are one `select` (a gather) from the flattened
//! source with a zero appended, through an index map built on the host.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};

use super::{reference, PsaMaskOptions};
use crate::reshape::reshape;

/// For each destination element of one batch item, the flat source element it copies, or
/// `len` (the appended zero). Derived from the reference's pairs so both agree by construction
/// of the definition, not of the kernels.
fn index_map(h: usize, w: usize, options: &PsaMaskOptions, backward: bool) -> (Vec<i64>, usize) {
    let (mh, mw) = options.mask_size;
    let (src_len, dst_len) = if backward { (h * w * h * w, mh * mw * h * w) } else { (mh * mw * h * w, h * w * h * w) };
    // Push a numbered source through the reference: every destination receives its source's
    // number, or 0 for "nothing" (numbers start at 1).
    let numbered: Vec<f64> = (1..=src_len).map(|i| i as f64).collect();
    let dst = if backward {
        reference::backward(&numbered, [1, h, w], (mh, mw), options.psa_type)
    } else {
        reference::forward(&numbered, [1, h, w], (mh, mw), options.psa_type)
    };
    debug_assert_eq!(dst.len(), dst_len);
    (dst.into_iter().map(|v| if v == 0.0 { src_len as i64 } else { v as i64 - 1 }).collect(), src_len)
}

/// `src (N, Cs, H, W)` -> `dst (N, Cd, H, W)`: forward (mask -> map) or backward (grad map
/// -> grad mask).
pub fn remap<B: Backend>(src: FloatTensor<B>, h: usize, w: usize, options: &PsaMaskOptions, backward: bool) -> FloatTensor<B> {
    let src: Tensor<B, 4> = Tensor::from_primitive(TensorPrimitive::Float(src));
    let n = src.dims()[0];
    let device = src.device();
    let (map, src_len) = index_map(h, w, options, backward);
    let channels = map.len() / (h * w).max(1);
    let flat = reshape::<B, 4, 2>(src, [n, src_len]);
    let zero = Tensor::<B, 2>::zeros([n, 1], &device).cast(flat.dtype());
    let padded = Tensor::cat(vec![flat, zero], 1);
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(map.clone(), [map.len()]), &device);
    reshape::<B, 2, 4>(padded.select(1, index), [n, channels, h, w]).into_primitive().tensor()
}
