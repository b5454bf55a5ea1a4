//! PSAMask: mmcv's `mmcv.ops.PSAMask` (PSANet's point-wise spatial attention) on burn
//! tensors. Same layout as `point_sample`: `api`, `options`, `backend`, `composite`, `cube`,
//! `autodiff`, `reference`, `cpu`.

mod api;
mod autodiff;
mod backend;
mod composite;
pub mod cpu;
mod cube;
mod options;
pub mod reference;

pub use api::psamask;
pub use backend::{PsaMaskAutodiffBackend, PsaMaskBackend};
pub use options::{PsaMaskOptions, PsaType};
