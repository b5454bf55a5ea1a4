//! The backend extension trait: fused kernels on burn's cubecl backends, a composition of
//! point_sample's tensor-op path everywhere else.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;

use super::composite;
use crate::point_sample::PointSampleBackend;

/// The three gradients of MSDA: value, sampling locations, attention weights.
pub type MsdaGrads<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// A burn backend that can run multi-scale deformable attention. Arguments are validated by
/// [`ms_deform_attn`](super::ms_deform_attn): value `(N, S, M, D)`, `levels` each level's
/// `[H, W]` (areas summing to S), locations `(N, Lq, M, L, P, 2)`, weights `(N, Lq, M, L, P)`,
/// grad_output `(N, Lq, M, D)`, one float dtype on one device.
pub trait MsDeformAttnBackend: PointSampleBackend {
    /// `(N, Lq, M, D)`.
    fn ms_deform_attn(value: FloatTensor<Self>, levels: Vec<[usize; 2]>, locations: FloatTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self> {
        composite::forward::<Self>(value, &levels, locations, weights)
    }

    /// Gradients of value, locations and weights for `grad_output`.
    fn ms_deform_attn_backward(
        grad_output: FloatTensor<Self>,
        value: FloatTensor<Self>,
        levels: Vec<[usize; 2]>,
        locations: FloatTensor<Self>,
        weights: FloatTensor<Self>,
    ) -> MsdaGrads<Self> {
        composite::backward::<Self>(grad_output, value, &levels, locations, weights)
    }
}

/// An autodiff backend whose inner backend runs MSDA.
pub trait MsDeformAttnAutodiffBackend: MsDeformAttnBackend + AutodiffBackend {}

impl<B: MsDeformAttnBackend + AutodiffBackend> MsDeformAttnAutodiffBackend for B {}

impl<E, I, Q> MsDeformAttnBackend for burn::backend::NdArray<E, I, Q>
where
    Self: PointSampleBackend,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<E>> + From<burn::backend::ndarray::SharedArray<I>>,
{
}
