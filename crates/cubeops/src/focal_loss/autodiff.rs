//! Gradient under `Autodiff<B>`: the output gradient times the derivative kernel's result.
//! Neither the target nor the weight gets a gradient (as in mmcv).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{FocalLossBackend, FocalLossOptions};

#[derive(Debug)]
struct FocalBackward {
    options: FocalLossOptions,
}

impl<B: FocalLossBackend> Backward<B, 1> for FocalBackward {
    /// The input, target and weight of the forward call.
    type State = (FloatTensor<B>, IntTensor<B>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_input] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, target, weight) = ops.state;
        if let Some(node) = node_input {
            let derivative = B::sigmoid_focal_loss_grad(input, target, weight, self.options);
            grads.register::<B>(node.id, B::float_mul(grad, derivative));
        }
    }
}

impl<B: FocalLossBackend, C: CheckpointStrategy> FocalLossBackend for Autodiff<B, C> {
    fn sigmoid_focal_loss(input: FloatTensor<Self>, target: IntTensor<Self>, weight: Option<FloatTensor<Self>>, options: FocalLossOptions) -> FloatTensor<Self> {
        let weight = weight.map(|w| w.primitive);
        match (FocalBackward { options }).prepare::<C>([input.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::sigmoid_focal_loss(input.primitive.clone(), target.clone(), weight.clone(), options);
                prep.finish((input.primitive, target, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::sigmoid_focal_loss(input.primitive, target, weight, options)),
        }
    }
}
