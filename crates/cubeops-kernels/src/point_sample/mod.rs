//! point_sample (mmcv semantics): sampling of `(N, C, H, W)` maps at `(N, P, 2)` points
//! normalised to [0, 1], with grid_sample's modes (bilinear, nearest) and paddings (zeros,
//! border, reflection). Kernels: forward, backward to the input (atomic scatter, or
//! `ordered`: deterministic, no atomics), backward to the points; `launch` holds their
//! host-side launchers.

mod backward_input;
mod backward_input_ordered;
mod backward_points;
mod forward;
mod launch;
mod sampling;

pub use backward_input::point_sample_backward_input_kernel;
pub use backward_input_ordered::{ordered_bands, point_sample_backward_input_ordered_kernel, ORDERED_TARGET_THREADS};
pub use backward_points::point_sample_backward_points_kernel;
pub use forward::point_sample_forward_kernel;
pub use launch::{
    accumulation_type, launch_backward_input, launch_backward_points, launch_forward,
    supports_atomic_add, Geometry, Variant,
};
pub use sampling::{
    footprint, read_corners, scatter_corners, Corners, Footprint, GeometryArgs, GeometryArgsCompilationArg, GeometryArgsLaunch, Interpolation, Padding, Sampling,
};
