//! Host side of the focal losses: geometry, variant, launcher generic over the runtime.

use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::kernel::{sigmoid_focal_loss_kernel, softmax_focal_loss_kernel, FocalArgsLaunch};
use crate::point_sample::accumulation_type;

/// Which focal loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FocalLoss {
    /// Elementwise on logits: `(N, C)` loss or derivative.
    #[default]
    Sigmoid,
    /// On softmax probabilities: `(N,)` loss, `(N, C)` derivative by the logits.
    Softmax,
}

/// One launch: `(n, classes)` input and the output with their strides (the output's class
/// stride is unused for the softmax loss's `(N,)` output), and the loss parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FocalGeometry {
    pub n: usize,
    pub classes: usize,
    pub gamma: f64,
    pub alpha: f64,
    pub input_strides: [usize; 2],
    pub output_strides: [usize; 2],
}

impl FocalGeometry {
    /// The kernel scalars, in `FocalArgs` field order; sizes and strides must fit `u32`.
    pub fn scalars(&self) -> Result<[u32; 10], String> {
        let [in_n, in_c] = self.input_strides;
        let [out_n, out_c] = self.output_strides;
        let fit = |v: usize| u32::try_from(v).map_err(|_| format!("size or stride {v} does not fit 32 bits"));
        Ok([
            fit(self.n)?,
            fit(self.classes)?,
            split(self.gamma).0,
            split(self.gamma).1,
            split(self.alpha).0,
            split(self.alpha).1,
            fit(in_n)?,
            fit(in_c)?,
            fit(out_n)?,
            fit(out_c)?,
        ])
    }

    /// One thread per element, but per row for the softmax loss's forward.
    pub fn threads(&self, loss: FocalLoss, backward: bool) -> usize {
        match (loss, backward) {
            (FocalLoss::Softmax, false) => self.n,
            _ => self.n * self.classes,
        }
    }
}

/// `x` as two f32 bit patterns whose sum is `x` to ~48 bits.
fn split(x: f64) -> (u32, u32) {
    let hi = x as f32;
    (hi.to_bits(), ((x - hi as f64) as f32).to_bits())
}

/// The compile-time choices of a launch besides the dtypes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FocalVariant {
    pub loss: FocalLoss,
    /// A per-class weight array is given.
    pub weighted: bool,
    /// d loss / d logit instead of the loss.
    pub backward: bool,
    pub wide_index: bool,
}

/// The loss (sigmoid: `(N, C)`, softmax: `(N,)`) or its `(N, C)` derivative by the logits, into
/// `output`. `index` is the integer type of `target (N,)`; `weight (C,)` is read only when
/// `variant.weighted`.
pub fn launch_focal_loss<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &FocalGeometry,
    variant: FocalVariant,
    storage: StorageType,
    index: StorageType,
    [input, target, weight, output]: [ArrayArg<R>; 4],
) {
    let threads = geo.threads(variant.loss, variant.backward);
    if threads == 0 {
        return;
    }
    let s = geo.scalars().expect("geometry checked by the caller");
    let args = FocalArgsLaunch::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9]);
    let cube_dim = CubeDim::new(client, threads);
    let count = calculate_cube_count_elemwise(client, threads, cube_dim);
    let addr = crate::address_type(variant.wide_index);
    let dtypes = [storage, accumulation_type(storage), index];
    let (weighted, backward) = (variant.weighted, variant.backward);
    match variant.loss {
        FocalLoss::Sigmoid => sigmoid_focal_loss_kernel::launch::<R>(
            client, count, cube_dim, addr, input, target, weight, output, args, weighted, backward, dtypes,
        ),
        FocalLoss::Softmax => softmax_focal_loss_kernel::launch::<R>(
            client, count, cube_dim, addr, input, target, weight, output, args, weighted, backward, dtypes,
        ),
    }
}
