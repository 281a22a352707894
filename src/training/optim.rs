//! The paper's optimisers: AdamW with AMSGrad, betas (0.5, 0.999), one for
//! the network and one for the mask.
//!
//! Burn's AdamW implements AMSGrad with PyTorch's update rule (decoupled
//! decay `θ ← θ(1 − lr·wd)`, then `θ ← θ − lr·m̂ / (sqrt(max v̂) + ε)`);
//! only its default ε differs (1e-5 against PyTorch's 1e-8), so ε is set
//! explicitly. A test checks the rule step by step.

use burn::optim::{AdamWConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of the two optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Network learning rate (`--lr-net`).
    pub lr_net: f64,
    /// Mask learning rate (`--lr`).
    pub lr_mask: f64,
    /// Network weight decay.
    pub weight_decay_net: f32,
    /// Mask weight decay.
    pub weight_decay_mask: f32,
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Denominator epsilon (PyTorch's default).
    pub epsilon: f32,
}

impl Default for OptimConfig {
    /// The paper's settings with `--lr 0.001 --lr-net 0.001`.
    fn default() -> Self {
        OptimConfig {
            lr_net: 1e-3,
            lr_mask: 1e-3,
            weight_decay_net: 1e-4,
            weight_decay_mask: 1e-7,
            beta_1: 0.5,
            beta_2: 0.999,
            epsilon: 1e-8,
        }
    }
}

impl OptimConfig {
    /// Checks the ranges; names the offending field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("lr-net", self.lr_net), ("lr", self.lr_mask)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(field, v, "must be finite and > 0"));
            }
        }
        Ok(())
    }

    fn adamw(&self, weight_decay: f32) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(weight_decay)
            .with_amsgrad(true)
    }

    /// The network's optimiser.
    pub fn net(&self) -> ModuleOptimizer {
        self.adamw(self.weight_decay_net).init()
    }

    /// The mask's optimiser.
    pub fn mask(&self) -> ModuleOptimizer {
        self.adamw(self.weight_decay_mask).init()
    }
}
