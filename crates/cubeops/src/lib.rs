//! cubeops: mmcv-compatible vision ops on burn tensors: `point_sample`, `psamask`,
//! `ms_deform_attn`, `sigmoid_focal_loss`, `softmax_focal_loss`.
//!
//! Each op runs fused cubecl kernels (crate `cubeops-kernels`) on burn's cubecl backends
//! (CUDA, wgpu), a composition of burn tensor ops on other backends, and has gradients
//! under `Autodiff<B>`. Errors are [`OpError`] values, never panics.

mod cube_args;
mod error;
mod reshape;
pub mod focal_loss;
pub mod ms_deform_attn;
pub mod point_sample;
pub mod psamask;

pub use error::OpError;
pub use focal_loss::{sigmoid_focal_loss, softmax_focal_loss, FocalLossOptions};
pub use ms_deform_attn::ms_deform_attn;
pub use point_sample::{point_sample, InputLayout, PointSampleOptions};
pub use psamask::{psamask, PsaMaskOptions, PsaType};
