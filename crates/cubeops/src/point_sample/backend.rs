//! The backend extension trait (burn's custom-kernel pattern): fused kernels on burn's
//! cubecl backends, tensor-op composition everywhere else.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;

use super::{composite, Sampling};

/// A burn backend that can run point_sample.
///
/// Arguments are already validated by [`point_sample`](super::point_sample): `input` is
/// `(N, C, H, W)` (any strides) with `H, W > 0`, `points` is `(N, P, 2)`, `grad_output` is
/// `(N, C, P)`, all of one float dtype on one device. The provided methods compose burn
/// tensor ops, so any backend gets point_sample with `impl PointSampleBackend for MyBackend {}`.
///
/// `deterministic` asks for a gradient to the input that is the same bit for bit on every
/// run (torch's `use_deterministic_algorithms`); the forward pass only passes it on to the
/// backward step. The composition is deterministic where the backend's scatter-add is.
pub trait PointSampleBackend: Backend {
    /// `(N, C, P)` samples.
    fn point_sample(input: FloatTensor<Self>, points: FloatTensor<Self>, sampling: Sampling, deterministic: bool) -> FloatTensor<Self> {
        let _ = deterministic;
        composite::forward::<Self>(input, points, sampling)
    }

    /// `(N, C, H, W)` gradient with respect to `input`.
    fn point_sample_grad_input(
        grad_output: FloatTensor<Self>,
        input: FloatTensor<Self>,
        points: FloatTensor<Self>,
        sampling: Sampling,
        deterministic: bool,
    ) -> FloatTensor<Self> {
        let _ = deterministic;
        composite::grad_input::<Self>(grad_output, input, points, sampling)
    }

    /// `(N, P, 2)` gradient with respect to `points` (zeros for nearest sampling).
    fn point_sample_grad_points(
        grad_output: FloatTensor<Self>,
        input: FloatTensor<Self>,
        points: FloatTensor<Self>,
        sampling: Sampling,
    ) -> FloatTensor<Self> {
        composite::grad_points::<Self>(grad_output, input, points, sampling)
    }
}

/// An autodiff backend whose inner backend runs point_sample: `Autodiff<B>` for any
/// [`PointSampleBackend`] `B`.
pub trait PointSampleAutodiffBackend: PointSampleBackend + AutodiffBackend {}

impl<B: PointSampleBackend + AutodiffBackend> PointSampleAutodiffBackend for B {}

impl<E, I, Q> PointSampleBackend for burn::backend::NdArray<E, I, Q>
where
    Self: Backend,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<E>> + From<burn::backend::ndarray::SharedArray<I>>,
{
}
