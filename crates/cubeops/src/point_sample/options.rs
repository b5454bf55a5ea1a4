use serde::{Deserialize, Serialize};

pub use cubeops_kernels::point_sample::{Interpolation, Padding, Sampling};

/// Options of [`point_sample`](crate::point_sample::point_sample): grid_sample's
/// `align_corners`, `mode` and `padding_mode`, the input's layout, and whether the gradient
/// must be deterministic.
///
/// ```
/// use cubeops::point_sample::{InputLayout, Interpolation, Padding, PointSampleOptions};
/// let opts: PointSampleOptions =
///     serde_json::from_str(r#"{"align_corners": true, "mode": "nearest", "padding_mode": "border"}"#).unwrap();
/// assert_eq!(
///     opts,
///     PointSampleOptions {
///         align_corners: true,
///         mode: Interpolation::Nearest,
///         padding_mode: Padding::Border,
///         layout: InputLayout::Nchw,
///         deterministic: false,
///     }
/// );
/// assert_eq!(serde_json::from_str::<PointSampleOptions>("{}").unwrap(), PointSampleOptions::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PointSampleOptions {
    /// grid_sample's `align_corners`: with `true`, points 0 and 1 are the centres of the
    /// first and last pixels; with `false` (mmcv's default) they are the outer edges.
    pub align_corners: bool,
    /// grid_sample's `mode`: bilinear (default) or nearest (no gradient to the points).
    pub mode: Interpolation,
    /// grid_sample's `padding_mode`: zeros (default), border or reflection.
    pub padding_mode: Padding,
    /// How the input's dimensions are ordered.
    pub layout: InputLayout,
    /// The gradient to the input is the same bit for bit on every run (what
    /// `torch.use_deterministic_algorithms(True)` asks for): on the GPU a kernel without
    /// float atomics, slower than the default scatter when many points share few rows.
    pub deterministic: bool,
}

impl PointSampleOptions {
    /// The part of the options the kernels see.
    pub fn sampling(&self) -> Sampling {
        Sampling { align_corners: self.align_corners, mode: self.mode, padding: self.padding_mode }
    }
}

/// Dimension order of point_sample's input tensor. Either way the output is `(N, C, ...)`,
/// as in mmcv; a channels-last tensor is read in place, not copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputLayout {
    /// `(N, C, H, W)`, as mmcv and torch take it (its memory may still be channels-last).
    #[default]
    Nchw,
    /// `(N, H, W, C)`.
    Nhwc,
}
