//! The public entry point: validation and dispatch.

use burn::tensor::{DType, Tensor, TensorPrimitive};

use super::{PsaMaskBackend, PsaMaskOptions};
use crate::OpError;

/// mmcv's `PSAMask(psa_type, mask_size)`: turns an `(N, mask_h * mask_w, H, W)` mask into the
/// `(N, H * W, H, W)` attention map of PSANet. Entry `(i, j)` of the mask at position
/// `(h, w)` lands at the target `(h + i - (mask_h - 1) / 2, w + j - (mask_w - 1) / 2)` when
/// that is on the map: `map[n, target, h, w]` ('collect') or `map[n, h * W + w, target]`
/// ('distribute'); everything else is 0. Gradients flow to the mask under `Autodiff<B>`.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use cubeops::psamask::{psamask, PsaMaskOptions, PsaType};
///
/// let device = Default::default();
/// // A 1x1 mask on a 1x2 map: each position only sees itself.
/// let mask = Tensor::<NdArray, 1>::from_floats([5.0, 7.0], &device).reshape([1, 1, 1, 2]);
/// let map = psamask(mask, PsaMaskOptions { psa_type: PsaType::Collect, mask_size: (1, 1) }).unwrap();
/// assert_eq!(map.dims(), [1, 2, 1, 2]);
/// assert_eq!(map.into_data().to_vec::<f32>().unwrap(), vec![5.0, 0.0, 0.0, 7.0]);
/// ```
pub fn psamask<B: PsaMaskBackend>(mask: Tensor<B, 4>, options: PsaMaskOptions) -> Result<Tensor<B, 4>, OpError> {
    let [_, channels, _, _] = mask.dims();
    let (mask_h, mask_w) = options.mask_size;
    if mask_h == 0 || mask_w == 0 {
        return Err(OpError::Shape { arg: "mask_size", message: format!("must be positive, got ({mask_h}, {mask_w})") });
    }
    if channels != mask_h * mask_w {
        return Err(OpError::Shape {
            arg: "input",
            message: format!("has {channels} channels, mask_size ({mask_h}, {mask_w}) needs {}", mask_h * mask_w),
        });
    }
    let dtype = mask.dtype();
    if !matches!(dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16) {
        return Err(OpError::DType { arg: "input", message: format!("unsupported dtype {dtype:?}") });
    }
    let map = B::psamask(mask.into_primitive().tensor(), options);
    Ok(Tensor::from_primitive(TensorPrimitive::Float(map)))
}
