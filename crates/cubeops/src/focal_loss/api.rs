//! The public entry point: validation and dispatch.

use burn::tensor::{DType, Int, Tensor, TensorPrimitive};

use super::{FocalLossBackend, FocalLossOptions};
use crate::OpError;

/// mmcv's `sigmoid_focal_loss(input, target, gamma, alpha, weight, reduction='none')`
/// (RetinaNet's focal loss): for logits `input (N, C)` and class indices `target (N,)`, with
/// `p = sigmoid(input[n, c])`, the loss is `-alpha (1 - p)^gamma log p` where
/// `c == target[n]` and `-(1 - alpha) p^gamma log(1 - p)` elsewhere, times `weight[target[n]]`
/// when a `(C,)` weight is given (a target outside [0, C), such as mmdet's background index
/// C, is negative for every class and weighs 1). Returns the `(N, C)` elementwise loss; take
/// its sum or mean for mmcv's other reductions. Gradients flow to `input` under `Autodiff<B>`.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use cubeops::focal_loss::{sigmoid_focal_loss, FocalLossOptions};
///
/// let device = Default::default();
/// let logits = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0]], &device);
/// let target = Tensor::<NdArray, 1, Int>::from_ints([0], &device);
/// let loss = sigmoid_focal_loss(logits, target, None, FocalLossOptions { gamma: 0.0, alpha: 0.5 }).unwrap();
/// // p = 0.5 for both classes: 0.5 * ln 2 each.
/// let want = 0.5 * 2f32.ln();
/// for v in loss.into_data().to_vec::<f32>().unwrap() {
///     assert!((v - want).abs() < 1e-6);
/// }
/// ```
pub fn sigmoid_focal_loss<B: FocalLossBackend>(
    input: Tensor<B, 2>,
    target: Tensor<B, 1, Int>,
    weight: Option<Tensor<B, 1>>,
    options: FocalLossOptions,
) -> Result<Tensor<B, 2>, OpError> {
    check(&input, &target, weight.as_ref(), options)?;
    let loss = B::sigmoid_focal_loss(
        input.into_primitive().tensor(),
        target.into_primitive(),
        weight.map(|w| w.into_primitive().tensor()),
        options,
    );
    Ok(Tensor::from_primitive(TensorPrimitive::Float(loss)))
}

/// mmcv's `softmax_focal_loss(input, target, gamma, alpha, weight, reduction='none')`: for
/// logits `input (N, C)` and class indices `target (N,)`, with `p = softmax(input[n])[target[n]]`,
/// row n's loss is `-alpha (1 - p)^gamma log p`, times `weight[target[n]]` when a `(C,)` weight
/// is given; a row whose target is outside [0, C) costs 0 (mmcv reads out of bounds there).
/// `log p` is `log max(p, FLT_MIN)`, as mmcv. Returns the `(N,)` losses; gradients flow to
/// `input` under `Autodiff<B>`.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use cubeops::focal_loss::{softmax_focal_loss, FocalLossOptions};
///
/// let device = Default::default();
/// let logits = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0], [0.0, 0.0]], &device);
/// let target = Tensor::<NdArray, 1, Int>::from_ints([1, -1], &device);
/// let loss = softmax_focal_loss(logits, target, None, FocalLossOptions { gamma: 0.0, alpha: 1.0 }).unwrap();
/// // p = 0.5: cross-entropy ln 2; the row without a class costs nothing.
/// let loss = loss.into_data().to_vec::<f32>().unwrap();
/// assert!((loss[0] - 2f32.ln()).abs() < 1e-6 && loss[1] == 0.0);
/// ```
pub fn softmax_focal_loss<B: FocalLossBackend>(
    input: Tensor<B, 2>,
    target: Tensor<B, 1, Int>,
    weight: Option<Tensor<B, 1>>,
    options: FocalLossOptions,
) -> Result<Tensor<B, 1>, OpError> {
    check(&input, &target, weight.as_ref(), options)?;
    let loss = B::softmax_focal_loss(
        input.into_primitive().tensor(),
        target.into_primitive(),
        weight.map(|w| w.into_primitive().tensor()),
        options,
    );
    Ok(Tensor::from_primitive(TensorPrimitive::Float(loss)))
}

/// What both losses require of their arguments.
fn check<B: FocalLossBackend>(
    input: &Tensor<B, 2>,
    target: &Tensor<B, 1, Int>,
    weight: Option<&Tensor<B, 1>>,
    options: FocalLossOptions,
) -> Result<(), OpError> {
    let [n, c] = input.dims();
    if target.dims() != [n] {
        return Err(OpError::Shape { arg: "target", message: format!("must be ({n},) for {n} rows, got {:?}", target.dims()) });
    }
    let dtype = input.dtype();
    if !matches!(dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16) {
        return Err(OpError::DType { arg: "input", message: format!("unsupported dtype {dtype:?}") });
    }
    if let Some(w) = weight {
        if w.dims() != [c] {
            return Err(OpError::Shape { arg: "weight", message: format!("must be ({c},) for {c} classes, got {:?}", w.dims()) });
        }
        if w.dtype() != dtype {
            return Err(OpError::DType { arg: "weight", message: format!("has dtype {:?}, `input` has {dtype:?}", w.dtype()) });
        }
    }
    let device = input.device();
    if target.device() != device || weight.is_some_and(|w| w.device() != device) {
        return Err(OpError::Device { arg: "target", message: "`input`, `target` and `weight` must be on one device".into() });
    }
    if !(options.gamma >= 0.0 && options.gamma.is_finite() && options.alpha.is_finite()) {
        return Err(OpError::Shape { arg: "gamma", message: format!("gamma must be finite and >= 0 and alpha finite, got {options:?}") });
    }
    Ok(())
}
