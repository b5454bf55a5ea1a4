//! PSAMask (mmcv semantics, PSANet's point-wise spatial attention masks): a pure index
//! remap between an `(N, mask_h * mask_w, H, W)` mask and an `(N, H * W, H, W)` attention
//! map, in both directions ("collect", "distribute") and both passes. Every pass is a gather
//! (one thread per output element, no atomics), so results are deterministic.

mod kernel;
mod launch;

pub use kernel::{psamask_kernel, PsaGeometryArgs, PsaGeometryArgsCompilationArg, PsaGeometryArgsLaunch};
pub use launch::{launch_psamask, PsaGeometry, PsaVariant};
