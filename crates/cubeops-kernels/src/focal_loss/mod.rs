//! Focal losses (mmcv's `sigmoid_focal_loss` and `softmax_focal_loss`, RetinaNet's loss).
//! Sigmoid: per element of `(N, C)` logits, `-alpha (1 - p)^gamma log p` for the target class
//! and `-(1 - alpha) p^gamma log(1 - p)` for the others, times the target's class weight.
//! Softmax: per row of `(N, C)` softmax probabilities, `-alpha (1 - p_t)^gamma log p_t` times
//! the weight. One kernel each, comptime forward/backward (the derivative by the logits).

mod kernel;
mod launch;

pub use kernel::{sigmoid_focal_loss_kernel, softmax_focal_loss_kernel, FocalArgs, FocalArgsCompilationArg, FocalArgsLaunch};
pub use launch::{launch_focal_loss, FocalGeometry, FocalLoss, FocalVariant};
