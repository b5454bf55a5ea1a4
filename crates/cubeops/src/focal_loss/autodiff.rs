//! Gradients under `Autodiff<B>`: the output gradient times the derivative kernel's result
//! (per element for the sigmoid loss, per row broadcast over the classes for the softmax one).
//! Neither the target nor the weight gets a gradient (as in mmcv).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Shape, TensorMetadata};

use super::{FocalLossBackend, FocalLossOptions};

#[derive(Debug)]
struct FocalBackward {
    options: FocalLossOptions,
    softmax: bool,
}

impl<B: FocalLossBackend> Backward<B, 1> for FocalBackward {
    /// The input, target and weight of the forward call.
    type State = (FloatTensor<B>, IntTensor<B>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_input] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, target, weight) = ops.state;
        if let Some(node) = node_input {
            let grad = if self.softmax {
                let n = grad.shape().dims::<1>()[0];
                let derivative = B::softmax_focal_loss_grad(input, target, weight, self.options);
                B::float_mul(B::float_reshape(grad, Shape::new([n, 1])), derivative)
            } else {
                B::float_mul(grad, B::sigmoid_focal_loss_grad(input, target, weight, self.options))
            };
            grads.register::<B>(node.id, grad);
        }
    }
}

type Forward<B> = fn(FloatTensor<B>, IntTensor<B>, Option<FloatTensor<B>>, FocalLossOptions) -> FloatTensor<B>;

fn tracked<B: FocalLossBackend, C: CheckpointStrategy>(
    input: FloatTensor<Autodiff<B, C>>,
    target: IntTensor<B>,
    weight: Option<FloatTensor<Autodiff<B, C>>>,
    options: FocalLossOptions,
    softmax: bool,
) -> FloatTensor<Autodiff<B, C>> {
    let forward: Forward<B> = if softmax { B::softmax_focal_loss } else { B::sigmoid_focal_loss };
    let weight = weight.map(|w| w.primitive);
    match (FocalBackward { options, softmax }).prepare::<C>([input.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let output = forward(input.primitive.clone(), target.clone(), weight.clone(), options);
            prep.finish((input.primitive, target, weight), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(input.primitive, target, weight, options)),
    }
}

impl<B: FocalLossBackend, C: CheckpointStrategy> FocalLossBackend for Autodiff<B, C> {
    fn sigmoid_focal_loss(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        tracked::<B, C>(input, target, weight, options, false)
    }

    fn softmax_focal_loss(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        tracked::<B, C>(input, target, weight, options, true)
    }
}
