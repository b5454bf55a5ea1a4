//! The focal losses as burn tensor ops (sigmoid: log-sigmoid for both logs).

use burn::tensor::activation::{log_sigmoid, softmax};
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

/// The softmax focal loss of logits `input (N, C)`: the `(N,)` loss or (`backward`) its
/// `(N, C)` derivative by the logits, with the kernel's formulas on `softmax(input)`.
pub(crate) fn softmax_focal_loss<B: Backend>(
    input: FloatTensor<B>,
    target: IntTensor<B>,
    weight: Option<FloatTensor<B>>,
    options: FocalLossOptions,
    backward: bool,
) -> FloatTensor<B> {
    let x: Tensor<B, 2> = Tensor::from_primitive(TensorPrimitive::Float(input));
    let target: Tensor<B, 1, Int> = Tensor::from_primitive(target);
    let [n, c] = x.dims();
    let (gamma, alpha) = (options.gamma, options.alpha);
    let p = softmax(x, 1);
    let valid = target.clone().greater_equal_elem(0).bool_and(target.clone().lower_elem(c as i64));
    let label = target.clamp(0, c.saturating_sub(1) as i64).reshape([n, 1]);
    let p_t = p.clone().gather(1, label.clone()).reshape([n]);
    let q = p_t.clone().neg().add_scalar(1.0);
    let log_p = p_t.clone().clamp_min(f32::MIN_POSITIVE as f64).log();
    let mut term = if backward {
        (pow_or_zero(q.clone(), gamma - 1.0) * p_t * log_p * gamma - pow_or_zero(q, gamma)) * alpha
    } else {
        pow_or_zero(q, gamma) * log_p * (-alpha)
    };
    if let Some(weight) = weight {
        let weight: Tensor<B, 1> = Tensor::from_primitive(TensorPrimitive::Float(weight));
        term = term * weight.select(0, label.clone().reshape([n]));
    }
    let term = term.mask_fill(valid.bool_not(), 0.0);
    if !backward {
        return term.into_primitive().tensor();
    }
    let classes = Tensor::<B, 1, Int>::arange(0..c as i64, &p.device()).reshape([1, c]);
    let own = label.equal(classes);
    // delta(c, t) - p_c, in p's dtype.
    let minus_p = p.neg();
    let delta = minus_p.clone().mask_where(own, minus_p.add_scalar(1.0));
    (term.reshape([n, 1]) * delta).into_primitive().tensor()
}

/// `base^e`, 0 where `base <= 0` (1 when `e` is 0), as the kernel's `pow_or_zero`.
fn pow_or_zero<B: Backend>(base: Tensor<B, 1>, e: f64) -> Tensor<B, 1> {
    let outside = base.clone().lower_equal_elem(0.0);
    base.powf_scalar(e).mask_fill(outside, if e == 0.0 { 1.0 } else { 0.0 })
}
