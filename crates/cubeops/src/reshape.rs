use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Tensor, TensorPrimitive};

/// Reshape that takes `dims` literally. `Tensor::reshape` reads a 0 as "keep this
/// dimension", which breaks empty tensors (P = 0 points, N = 0 batches).
pub(crate) fn reshape<B: Backend, const D: usize, const D2: usize>(t: Tensor<B, D>, dims: [usize; D2]) -> Tensor<B, D2> {
    let primitive = B::float_reshape(t.into_primitive().tensor(), Shape::new(dims));
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}
