//! Deployment glue between the Burn side (networks, masks, checkpoints) and
//! the Burn-free artifact format and transfer path: an artifact made from a
//! checkpoint ([`from_checkpoint`]), and an artifact's modules rebuilt in
//! Burn ([`model`]): the client's network and the server's dynamic masker.
//! Both name tensors as
//! [`crate::models::weights`] does.

pub mod from_checkpoint;
pub mod model;

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
