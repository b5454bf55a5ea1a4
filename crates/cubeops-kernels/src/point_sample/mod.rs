//! point_sample (mmcv semantics): sampling of `(N, C, H, W)` maps at `(N, P, 2)` points
//! normalised to [0, 1], with grid_sample's modes (bilinear, nearest) and paddings (zeros,
//! border, reflection). Kernels: forward, backward (to the input by atomic scatter and/or
//! to the points, one pass), backward to the input `shared` (NCHW planes summed in shared
//! memory; CUDA, through the zero-copy launcher), `ordered` (deterministic, no atomics) and
//! `fixed` (deterministic, integer atomics; CUDA, through the zero-copy launcher), `sorted`
//! (deterministic, corners sorted by cell; CUDA, through the zero-copy launcher); `launch`
//! holds their host-side launchers.

mod backward;
mod backward_input_fixed;
mod backward_input_ordered;
mod backward_input_shared;
mod backward_input_sorted;
mod forward;
mod launch;
mod sampling;

pub use backward::point_sample_backward_kernel;
pub use backward_input_fixed::{
    fixed_scale, fixed_to_float_kernel, grad_output_max_kernel, point_sample_backward_input_fixed_kernel, MAX_PER_THREAD,
};
pub use backward_input_ordered::{ordered_bands, point_sample_backward_input_ordered_kernel, ORDERED_TARGET_THREADS};
pub use backward_input_shared::{
    point_sample_backward_input_shared_fixed_kernel, point_sample_backward_input_shared_kernel, shared_tiles,
    large_shared_cells, shared_cube_dim, shared_tile_bytes, small_shared_cells, SHARED_CELLS, SHARED_FIXED_CELLS, SHARED_MAX_TILES,
};
pub use backward_input_sorted::{point_sample_backward_input_sorted_kernel, point_sample_corner_keys_kernel, CORNERS};
pub use forward::point_sample_forward_kernel;
pub use launch::{
    accumulation_type, backward_vector, launch_backward, launch_backward_input_ordered, launch_forward, supports_atomic_add,
    supports_plane_sums, BackwardPass, Geometry, Variant,
};
pub use sampling::{
    footprint, read_corners, scatter_corners, Corners, Footprint, GeometryArgs, GeometryArgsCompilationArg, GeometryArgsLaunch, Interpolation, Padding, Sampling,
};
