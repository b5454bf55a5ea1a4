//! Sigmoid focal loss (mmcv's `sigmoid_focal_loss`, RetinaNet's loss): per element of
//! `(N, C)` logits, `-alpha (1 - p)^gamma log p` for the target class and
//! `-(1 - alpha) p^gamma log(1 - p)` for the others, times the target's class weight. One
//! elementwise kernel, comptime forward/backward (the derivative by the logit).

mod kernel;
mod launch;

pub use kernel::{sigmoid_focal_loss_kernel, FocalArgs, FocalArgsCompilationArg, FocalArgsLaunch};
pub use launch::{launch_sigmoid_focal_loss, FocalGeometry, FocalVariant};
