//! The backend extension trait: a fused kernel on burn's cubecl backends, tensor-op
//! composition everywhere else.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{composite, FocalLossOptions};

/// A burn backend that can run the focal losses. Arguments are validated by
/// [`sigmoid_focal_loss`](super::sigmoid_focal_loss) and
/// [`softmax_focal_loss`](super::softmax_focal_loss): logits `input (N, C)`, `target (N,)`,
/// `weight (C,)` of the input's dtype.
pub trait FocalLossBackend: Backend {
    /// The `(N, C)` elementwise loss.
    fn sigmoid_focal_loss(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        composite::sigmoid_focal_loss::<Self>(input, target, weight, options, false)
    }

    /// `(N, C)` derivative of the elementwise loss by the logits.
    fn sigmoid_focal_loss_grad(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        composite::sigmoid_focal_loss::<Self>(input, target, weight, options, true)
    }

    /// The `(N,)` softmax focal loss of each row.
    fn softmax_focal_loss(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        composite::softmax_focal_loss::<Self>(input, target, weight, options, false)
    }

    /// `(N, C)` derivative of each row's softmax focal loss by its logits.
    fn softmax_focal_loss_grad(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        composite::softmax_focal_loss::<Self>(input, target, weight, options, true)
    }
}

/// An autodiff backend whose inner backend runs the focal loss.
pub trait FocalLossAutodiffBackend: FocalLossBackend + AutodiffBackend {}

impl<B: FocalLossBackend + AutodiffBackend> FocalLossAutodiffBackend for B {}

impl<E, I, Q> FocalLossBackend for burn::backend::NdArray<E, I, Q>
where
    Self: Backend,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<E>> + From<burn::backend::ndarray::SharedArray<I>>,
{
}
