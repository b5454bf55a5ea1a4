//! Handing burn's cubecl tensors to the kernels of `cubeops-kernels`: shared by every op's
//! `cube.rs`.

use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::ir::AddressType;
use cubecl::prelude::ArrayArg;

/// The tensor's whole buffer as a flat array; kernels index it through explicit strides.
pub(crate) fn array<R: CubeRuntime>(t: &CubeTensor<R>) -> ArrayArg<R> {
    let len = t.handle.size() as usize / t.dtype.size();
    // SAFETY: the length is the handle's own size in elements.
    unsafe { ArrayArg::from_raw_parts(t.handle.clone(), len) }
}

/// The tensor as an array of vectors of `vector` elements (the kernel reads whole vectors).
pub(crate) fn vectors<R: CubeRuntime>(t: &CubeTensor<R>, vector: usize) -> ArrayArg<R> {
    let len = t.handle.size() as usize / t.dtype.size() / vector;
    // SAFETY: the length is the handle's own size in whole vectors.
    unsafe { ArrayArg::from_raw_parts(t.handle.clone(), len) }
}

/// Where the tensor starts inside its allocation, in bytes (allocations themselves start
/// on a boundary wider than any vector).
pub(crate) fn byte_offset<R: CubeRuntime>(t: &CubeTensor<R>) -> u64 {
    t.handle.offset_start.unwrap_or(0)
}

/// The strides of a tensor whose rank the op's API has checked.
pub(crate) fn strides<R: CubeRuntime, const D: usize>(t: &CubeTensor<R>) -> [usize; D] {
    t.meta.strides().as_ref().try_into().expect("rank checked by the API")
}

/// Whether any of the tensors needs 64-bit indexing.
pub(crate) fn wide_index<R: CubeRuntime>(tensors: &[&CubeTensor<R>]) -> bool {
    tensors.iter().any(|t| t.required_address_type() == AddressType::U64)
}
