//! Gradients under `Autodiff<B>`: the backward step calls the inner backend's gradient
//! kernels, computing only the gradients that are tracked.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::tensor::ops::FloatTensor;

use super::{PointSampleBackend, Sampling};

#[derive(Debug)]
struct PointSampleBackward {
    sampling: Sampling,
    deterministic: bool,
}

impl<B: PointSampleBackend> Backward<B, 2> for PointSampleBackward {
    /// Checkpointed node ids of input and points.
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_input, node_points] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input_id, points_id) = ops.state;
        let input: FloatTensor<B> = checkpointer.retrieve_node_output(input_id);
        let points: FloatTensor<B> = checkpointer.retrieve_node_output(points_id);

        if let Some(node) = node_points {
            let g = B::point_sample_grad_points(grad.clone(), input.clone(), points.clone(), self.sampling);
            grads.register::<B>(node.id, g);
        }
        if let Some(node) = node_input {
            let g = B::point_sample_grad_input(grad, input, points, self.sampling, self.deterministic);
            grads.register::<B>(node.id, g);
        }
    }
}

impl<B: PointSampleBackend, C: CheckpointStrategy> PointSampleBackend for Autodiff<B, C> {
    fn point_sample(input: FloatTensor<Self>, points: FloatTensor<Self>, sampling: Sampling, deterministic: bool) -> FloatTensor<Self> {
        let step = PointSampleBackward { sampling, deterministic };
        match step.prepare::<C>([input.node.clone(), points.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&input), prep.checkpoint(&points));
                let output = B::point_sample(input.primitive, points.primitive, sampling, deterministic);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::point_sample(input.primitive, points.primitive, sampling, deterministic)),
        }
    }
}
