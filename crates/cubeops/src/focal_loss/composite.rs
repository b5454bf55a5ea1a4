//! The sigmoid focal loss as burn tensor ops (log-sigmoid for both logs).

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorPrimitive};

use super::FocalLossOptions;

/// The `(N, C)` loss or (`backward`) its derivative by the logits.
pub(crate) fn sigmoid_focal_loss<B: Backend>(
    input: FloatTensor<B>,
    target: IntTensor<B>,
    weight: Option<FloatTensor<B>>,
    options: FocalLossOptions,
    backward: bool,
) -> FloatTensor<B> {
    let x: Tensor<B, 2> = Tensor::from_primitive(TensorPrimitive::Float(input));
    let target: Tensor<B, 1, Int> = Tensor::from_primitive(target);
    let [n, c] = x.dims();
    let device = x.device();
    let (gamma, alpha) = (options.gamma, options.alpha);
    let classes = Tensor::<B, 1, Int>::arange(0..c as i64, &device).reshape([1, c]);
    let positive = target.clone().reshape([n, 1]).equal(classes);
    let (log_p, log_q) = (log_sigmoid(x.clone()), log_sigmoid(-x));
    let (p, q) = (log_p.clone().exp(), log_q.clone().exp());
    let (p_gamma, q_gamma) = (p.clone().powf_scalar(gamma), q.clone().powf_scalar(gamma));
    let (pos, neg) = if backward {
        (
            q_gamma * (q.clone() - p.clone() * log_p * gamma) * (-alpha),
            p_gamma * (q * log_q * gamma - p) * (alpha - 1.0),
        )
    } else {
        (q_gamma * log_p * (-alpha), p_gamma * log_q * (alpha - 1.0))
    };
    let mut out = neg.mask_where(positive, pos);
    if let Some(weight) = weight {
        let weight: Tensor<B, 1> = Tensor::from_primitive(TensorPrimitive::Float(weight));
        let inside = target.clone().greater_equal_elem(0).bool_and(target.clone().lower_elem(c as i64));
        let index = target.clamp(0, c.saturating_sub(1) as i64);
        let w = weight.select(0, index).mask_fill(inside.bool_not(), 1.0);
        out = out * w.reshape([n, 1]);
    }
    out.into_primitive().tensor()
}
