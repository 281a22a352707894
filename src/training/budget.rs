//! Budget-targeted training (beyond the paper): instead of tuning λ by
//! hand, λ is driven so that Q ends at or below a target Q*.
//!
//! The constraint Q ≤ Q* is handled by dual ascent on log λ after every
//! batch: `log λ += rate · clamp((q − aim) / aim, −1, 1)` with
//! `aim = Q* − margin`, so λ grows while the batch's Q is above the aim and
//! relaxes (letting cells come back) while it is below. The paper's
//! plateau rule stays as a fallback: if Q is above Q* and has not improved
//! for `patience` epochs, λ is also multiplied by the plateau factor.
//! The run stops once Q has been within budget for `patience` epochs and
//! the validation accuracy within budget has not improved for as long.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of budget-targeted training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetQConfig {
    /// The budget Q*.
    pub q: f64,
    /// λ aims at `q - margin`, so that the evaluated Q lands within budget.
    pub margin: f64,
    /// Step of log λ per batch at full relative error.
    pub rate: f64,
    /// Epochs within budget without accuracy gain before stopping.
    pub patience: usize,
}

impl TargetQConfig {
    /// The defaults for a budget of `q`: margin 0.25 of the budget (at most
    /// 0.005), rate 0.005, patience 5 epochs.
    pub fn new(q: f64) -> Self {
        TargetQConfig { q, margin: (0.25 * q).min(0.005), rate: 0.005, patience: 5 }
    }

    /// Checks the ranges; names the offending flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.q > 0.0 && self.q < 1.0) {
            return Err(Error::config("target-q", self.q, "must be in (0, 1)"));
        }
        if !(self.margin >= 0.0 && self.margin < self.q) {
            return Err(Error::config("target-q-margin", self.margin, "must be in [0, target-q)"));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(Error::config("target-q-rate", self.rate, "must be > 0"));
        }
        if self.patience == 0 {
            return Err(Error::config("target-q-patience", 0, "must be > 0"));
        }
        Ok(())
    }
}

/// λ bounds of the controller (far outside any useful value).
const LAMBDA_RANGE: (f64, f64) = (1e-6, 1e6);

/// The state of budget-targeted training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetController {
    config: TargetQConfig,
    lambda: f64,
    plateau_factor: f64,
    plateau_patience: usize,
    best_q: f64,
    epochs_without_q_gain: usize,
    epochs_within: usize,
    best_accuracy_within: f64,
    epochs_since_best: usize,
}

/// What the controller says after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochVerdict {
    /// The plateau fallback raised λ.
    pub lambda_grew: bool,
    /// The budget is met and accuracy has settled: stop.
    pub stop: bool,
}

impl BudgetController {
    /// A controller starting at `lambda`, with the plateau rule's `factor`
    /// and `patience` as fallback.
    pub fn new(config: TargetQConfig, lambda: f64, factor: f64, patience: usize) -> Self {
        BudgetController {
            config,
            lambda: lambda.clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1),
            plateau_factor: factor,
            plateau_patience: patience,
            best_q: f64::INFINITY,
            epochs_without_q_gain: 0,
            epochs_within: 0,
            best_accuracy_within: f64::NEG_INFINITY,
            epochs_since_best: 0,
        }
    }

    /// The current λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Dual ascent after a batch whose Q was `q`.
    pub fn after_batch(&mut self, q: f64) {
        let aim = self.config.q - self.config.margin;
        let error = ((q - aim) / aim).clamp(-1.0, 1.0);
        self.lambda = (self.lambda * (self.config.rate * error).exp()).clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1);
    }

    /// After an epoch evaluated at `q` with selection accuracy `accuracy`.
    pub fn after_epoch(&mut self, q: f64, accuracy: f64) -> EpochVerdict {
        let mut lambda_grew = false;
        if q < self.best_q - 0.0025 {
            self.best_q = q;
            self.epochs_without_q_gain = 0;
        } else {
            self.epochs_without_q_gain += 1;
        }
        if q > self.config.q && self.epochs_without_q_gain > self.plateau_patience {
            self.lambda = (self.lambda * self.plateau_factor).min(LAMBDA_RANGE.1);
            self.epochs_without_q_gain = 0;
            lambda_grew = true;
        }
        if q <= self.config.q {
            self.epochs_within += 1;
            if accuracy > self.best_accuracy_within {
                self.best_accuracy_within = accuracy;
                self.epochs_since_best = 0;
            } else {
                self.epochs_since_best += 1;
            }
        } else {
            self.epochs_within = 0;
        }
        let stop = self.epochs_within >= self.config.patience && self.epochs_since_best >= self.config.patience;
        EpochVerdict { lambda_grew, stop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_rises_above_the_aim_and_relaxes_below() {
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        c.after_batch(0.9);
        assert!((c.lambda() - (0.005f64).exp()).abs() < 1e-12, "full error clamps at +1");
        let before = c.lambda();
        c.after_batch(0.0);
        assert!(c.lambda() < before);
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        c.after_batch(0.095); // exactly the aim (0.1 - 0.005): no change
        assert!((c.lambda() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn stops_only_within_budget_after_accuracy_settles() {
        let mut c = BudgetController::new(TargetQConfig { patience: 2, ..TargetQConfig::new(0.1) }, 1.0, 1.5, 10);
        assert!(!c.after_epoch(0.5, 0.9).stop);
        assert!(!c.after_epoch(0.09, 0.80).stop); // within 1, best
        assert!(!c.after_epoch(0.08, 0.82).stop); // within 2, best again
        assert!(!c.after_epoch(0.09, 0.81).stop); // since best 1
        assert!(c.after_epoch(0.095, 0.80).stop); // since best 2, within 4
        // Leaving the budget resets the count.
        let mut c = BudgetController::new(TargetQConfig { patience: 1, ..TargetQConfig::new(0.1) }, 1.0, 1.5, 10);
        c.after_epoch(0.09, 0.8);
        assert!(!c.after_epoch(0.2, 0.7).stop);
    }

    #[test]
    fn plateau_fallback_raises_lambda_above_budget() {
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 2.0, 1.5, 1);
        assert!(!c.after_epoch(0.5, 0.9).lambda_grew);
        assert!(!c.after_epoch(0.5, 0.9).lambda_grew);
        assert!(c.after_epoch(0.5, 0.9).lambda_grew);
        assert!((c.lambda() - 3.0).abs() < 1e-12);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(TargetQConfig::new(1.5).validate().unwrap_err().to_string().contains("target-q"));
        let bad = TargetQConfig { rate: 0.0, ..TargetQConfig::new(0.1) };
        assert!(bad.validate().unwrap_err().to_string().contains("target-q-rate"));
    }
}
