//! point_sample: mmcv's `mmcv.ops.point_sample` on burn tensors.
//!
//! Layout of this op (copy it for the next one): `api` (public function, validation),
//! `options`, `backend` (extension trait, composite default), `composite` (tensor-op
//! path), `cube` (fused cubecl kernels), `autodiff` (backward step), `reference` (f64 oracle),
//! `cpu` (multi-threaded kernels over strided memory, for the Python bridge).

mod api;
mod autodiff;
mod backend;
pub(crate) mod composite;
pub mod cpu;
mod cube;
pub(crate) mod footprint;
mod options;
pub mod reference;

pub use api::point_sample;
pub use backend::{PointSampleAutodiffBackend, PointSampleBackend};
pub use options::{InputLayout, Interpolation, Padding, PointSampleOptions, Sampling};
