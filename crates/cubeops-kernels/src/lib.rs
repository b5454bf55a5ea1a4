//! cubeops-kernels: the GPU kernels of cubeops, written once in cubecl and compiled at run
//! time for the device present (CUDA through NVRTC, Vulkan/Metal/DX12 through wgpu).
//!
//! Nothing here knows burn or Python: kernels take cubecl `Tensor`s with explicit strides,
//! and the launchers take cubecl `TensorArg`s. The ops crate (`cubeops`) and the Python
//! bridge build on these.

pub mod focal_loss;
pub mod lanes;
pub mod ms_deform_attn;
pub mod point_sample;
pub mod psamask;

use cubecl::prelude::AddressType;

/// The index width of a launch: 64-bit once a buffer holds more than `u32::MAX` elements.
pub fn address_type(wide_index: bool) -> AddressType {
    if wide_index {
        AddressType::U64
    } else {
        AddressType::U32
    }
}

#[cfg(feature = "cuda")]
pub mod cuda;
