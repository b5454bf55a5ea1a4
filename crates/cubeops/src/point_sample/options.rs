use serde::{Deserialize, Serialize};

/// Options of [`point_sample`](crate::point_sample::point_sample).
///
/// ```
/// use cubeops::point_sample::{InputLayout, PointSampleOptions};
/// let opts: PointSampleOptions = serde_json::from_str(r#"{"align_corners": true}"#).unwrap();
/// assert_eq!(opts, PointSampleOptions { align_corners: true, layout: InputLayout::Nchw });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PointSampleOptions {
    /// grid_sample's `align_corners`: with `true`, points 0 and 1 are the centres of the
    /// first and last pixels; with `false` (mmcv's default) they are the outer edges.
    pub align_corners: bool,
    /// How the input's dimensions are ordered.
    pub layout: InputLayout,
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
