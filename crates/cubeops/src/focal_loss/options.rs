use serde::{Deserialize, Serialize};

/// mmcv's `sigmoid_focal_loss(input, target, gamma, alpha, ...)` parameters.
///
/// ```
/// use cubeops::focal_loss::FocalLossOptions;
/// let opts: FocalLossOptions = serde_json::from_str(r#"{"gamma": 2.0, "alpha": 0.25}"#).unwrap();
/// assert_eq!(opts, FocalLossOptions::default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FocalLossOptions {
    /// Focusing exponent (mmcv's default 2).
    pub gamma: f64,
    /// Weight of the target class; the others get `1 - alpha` (mmcv's default 0.25).
    pub alpha: f64,
}

impl Default for FocalLossOptions {
    fn default() -> Self {
        FocalLossOptions { gamma: 2.0, alpha: 0.25 }
    }
}
