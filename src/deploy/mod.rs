//! Deployment glue between the Burn side (networks, masks, checkpoints) and
//! the Burn-free artifact format and transfer path: exporting a checkpoint
//! ([`export`]), rebuilding its network on a client and running dynamic
//! masks on a server ([`infer`]). Both name tensors as
//! [`crate::models::weights`] does.

pub mod export;
pub mod infer;

use serde::{Deserialize, Serialize};

use crate::masks::MaskConfig;
use crate::models::NetworkConfig;

/// What an artifact's manifest records about the model (its `network`
/// field): enough to rebuild the network and the mask module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescription {
    /// The task network.
    pub network: NetworkConfig,
    /// The mask settings (absent without a mask).
    pub mask: Option<MaskConfig>,
    /// The mask temperature τ of the checkpoint (dynamic masks round
    /// `sigmoid(logits / τ)`).
    pub tau: f64,
}
