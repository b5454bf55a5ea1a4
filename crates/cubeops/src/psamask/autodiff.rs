//! Gradient under `Autodiff<B>`: PSAMask is linear, its backward is the reverse gather.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::autodiff::Autodiff;
use burn::tensor::ops::FloatTensor;

use super::{PsaMaskBackend, PsaMaskOptions};

#[derive(Debug)]
struct PsaMaskBackward {
    options: PsaMaskOptions,
}

impl<B: PsaMaskBackend> Backward<B, 1> for PsaMaskBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_mask] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_mask {
            grads.register::<B>(node.id, B::psamask_backward(grad, self.options));
        }
    }
}

impl<B: PsaMaskBackend, C: CheckpointStrategy> PsaMaskBackend for Autodiff<B, C> {
    fn psamask(mask: FloatTensor<Self>, options: PsaMaskOptions) -> FloatTensor<Self> {
        (PsaMaskBackward { options }).prepare::<C>([mask.node.clone()]).compute_bound().stateless(B::psamask(mask.primitive, options))
    }
}
