//! Multi-scale deformable attention (mmcv's `MultiScaleDeformableAttention`, Deformable
//! DETR): every query samples `P` points on each of `L` feature levels per head, bilinearly
//! (grid_sample's align_corners=False, zeros outside), and sums them weighted by its
//! attention weights. Kernels: forward, backward to the value (atomic scatter-add into a
//! float32/float64 buffer, or `ordered`: deterministic, no atomics), backward to the sampling
//! locations and attention weights.
//! `launch` holds the host-side geometry and launchers.

mod backward_fused;
mod backward_sampling;
mod backward_value;
mod backward_value_ordered;
mod forward;
mod geometry;
mod launch;

pub use backward_fused::msda_backward_fused_kernel;
pub use backward_sampling::msda_backward_sampling_kernel;
pub use backward_value::msda_backward_value_kernel;
pub use backward_value_ordered::msda_backward_value_ordered_kernel;
pub use forward::msda_forward_kernel;
pub use geometry::{MsdaGeometryArgs, MsdaGeometryArgsCompilationArg, MsdaGeometryArgsLaunch, MSDA_SAMPLING};
/// Shared with point_sample; re-exported where MSDA's callers have always found them.
pub use crate::lanes::{supports_vector_add, vector_width};
pub use launch::{
    forward_per_thread, fused_lanes, fused_vector, launch_backward_fused, launch_backward_sampling, launch_backward_value, launch_forward, msda_dtypes,
    supports_fused_backward, MsdaGeometry, MsdaVariant,
};
