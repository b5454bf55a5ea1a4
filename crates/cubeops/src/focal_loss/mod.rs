//! Focal losses: mmcv's `sigmoid_focal_loss` (elementwise) and `softmax_focal_loss` (per row),
//! reduction 'none', on burn tensors. Same layout as the other ops: `api`, `options`,
//! `backend`, `composite`, `cube`, `autodiff`, `reference`, `cpu`.

mod api;
mod autodiff;
mod backend;
mod composite;
pub mod cpu;
mod cube;
mod options;
pub mod reference;

pub use api::{sigmoid_focal_loss, softmax_focal_loss};
pub use backend::{FocalLossAutodiffBackend, FocalLossBackend};
pub use options::FocalLossOptions;
