//! The backend extension trait: fused kernels on burn's cubecl backends, tensor-op
//! composition everywhere else.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorMetadata;

use super::{composite, PsaMaskOptions};

/// A burn backend that can run PSAMask. Arguments are validated by
/// [`psamask`](super::psamask): `mask` is `(N, mh*mw, H, W)`, `grad_map` `(N, H*W, H, W)`.
pub trait PsaMaskBackend: Backend {
    /// `(N, H*W, H, W)` attention map.
    fn psamask(mask: FloatTensor<Self>, options: PsaMaskOptions) -> FloatTensor<Self> {
        let [_, _, h, w] = mask.shape().dims();
        composite::remap::<Self>(mask, h, w, &options, false)
    }

    /// `(N, mh*mw, H, W)` gradient of the mask.
    fn psamask_backward(grad_map: FloatTensor<Self>, options: PsaMaskOptions) -> FloatTensor<Self> {
        let [_, _, h, w] = grad_map.shape().dims();
        composite::remap::<Self>(grad_map, h, w, &options, true)
    }
}

/// An autodiff backend whose inner backend runs PSAMask.
pub trait PsaMaskAutodiffBackend: PsaMaskBackend + AutodiffBackend {}

impl<B: PsaMaskBackend + AutodiffBackend> PsaMaskAutodiffBackend for B {}

impl<E, I, Q> PsaMaskBackend for burn::backend::NdArray<E, I, Q>
where
    Self: Backend,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<E>> + From<burn::backend::ndarray::SharedArray<I>>,
{
}
