use serde::{Deserialize, Serialize};

/// mmcv's `psa_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PsaType {
    /// Each position gathers from its mask's neighbourhood: `map[n, target, h, w]`.
    #[default]
    Collect,
    /// Each position spreads its mask over its neighbourhood: `map[n, h*W + w, target]`.
    Distribute,
}

/// How [`psamask`](super::psamask) maps masks to attention maps.
///
/// ```
/// use cubeops::psamask::{PsaMaskOptions, PsaType};
/// let opts: PsaMaskOptions = serde_json::from_str(r#"{"psa_type": "distribute", "mask_size": [3, 5]}"#).unwrap();
/// assert_eq!(opts, PsaMaskOptions { psa_type: PsaType::Distribute, mask_size: (3, 5) });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PsaMaskOptions {
    pub psa_type: PsaType,
    /// `(mask_h, mask_w)`: the input has `mask_h * mask_w` channels.
    pub mask_size: (usize, usize),
}

impl PsaMaskOptions {
    pub(crate) fn distribute(&self) -> bool {
        self.psa_type == PsaType::Distribute
    }
}
