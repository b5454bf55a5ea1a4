//! Multi-scale deformable attention: mmcv's `MultiScaleDeformableAttention` core
//! (`multi_scale_deformable_attn`) on burn tensors. Same layout as `point_sample`: `api`,
//! `backend`, `composite`, `cube`, `autodiff`, `reference`, `cpu`.

mod api;
mod autodiff;
mod backend;
mod composite;
pub mod cpu;
mod cube;
pub mod reference;

pub use api::ms_deform_attn;
pub use backend::{MsDeformAttnAutodiffBackend, MsDeformAttnBackend, MsdaGrads};
