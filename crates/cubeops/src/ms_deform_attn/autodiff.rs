//! Gradients under `Autodiff<B>`: the backward step calls the inner backend's backward and
//! registers the gradients of the tracked inputs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::tensor::ops::FloatTensor;

use super::MsDeformAttnBackend;

#[derive(Debug)]
struct MsdaBackward {
    levels: Vec<[usize; 2]>,
}

impl<B: MsDeformAttnBackend> Backward<B, 3> for MsdaBackward {
    /// Checkpointed node ids of value, locations and weights.
    type State = (NodeId, NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_value, node_locations, node_weights] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (value_id, locations_id, weights_id) = ops.state;
        let value: FloatTensor<B> = checkpointer.retrieve_node_output(value_id);
        let locations: FloatTensor<B> = checkpointer.retrieve_node_output(locations_id);
        let weights: FloatTensor<B> = checkpointer.retrieve_node_output(weights_id);
        let (gv, gl, gw) = B::ms_deform_attn_backward(grad, value, self.levels, locations, weights);
        for (node, g) in [(node_value, gv), (node_locations, gl), (node_weights, gw)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: MsDeformAttnBackend, C: CheckpointStrategy> MsDeformAttnBackend for Autodiff<B, C> {
    fn ms_deform_attn(value: FloatTensor<Self>, levels: Vec<[usize; 2]>, locations: FloatTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self> {
        let step = MsdaBackward { levels: levels.clone() };
        let parents = [value.node.clone(), locations.node.clone(), weights.node.clone()];
        match step.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&value), prep.checkpoint(&locations), prep.checkpoint(&weights));
                let output = B::ms_deform_attn(value.primitive, levels, locations.primitive, weights.primitive);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ms_deform_attn(value.primitive, levels, locations.primitive, weights.primitive)),
        }
    }
}
