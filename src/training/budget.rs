//! Budget-targeted training (beyond the paper): instead of tuning λ by
//! hand, λ is driven so that Q ends within [Q* − 0.02, Q*] for a target Q*.
//!
//! The constraint is handled by dual ascent on log λ after every batch:
//! `log λ += rate · clamp((q̂ − aim) / aim, −1, 1)` with `aim = Q* − margin`,
//! so λ grows while Q is above the aim and eases (letting cells come back)
//! while it is below, [`RELEASE`] times faster than it grows. `q̂` is the
//! batch's Q smoothed and extrapolated [`LOOKAHEAD`] batches ahead at its
//! current speed (a derivative term), so λ starts to ease before Q reaches
//! the aim.
//!
//! **Windup.** The mask cannot follow λ at once: Adam moves each logit by
//! about its learning rate per step whatever the size of the gradient, so
//! from the default initial logit 3 no cell flips for a thousand-odd steps,
//! and λ, integrating the full error all that time, grows by orders of
//! magnitude (to 3,877 after 26 epochs on the synthetic data, measured).
//! That growth is not all waste: a gradient that keeps growing outruns
//! Adam's second-moment estimate, and the logits then move faster than the
//! learning rate (here about 2.6 times), which is what brings Q down within
//! a run's epochs (holding λ instead left Q at 1.0 for all 50 epochs). But
//! when the cells finally cross zero they all go (Q 0.0013, then 0), and λ
//! needed dozens of epochs to come back down. So when Q arrives within the
//! aim after λ grew more than [`CUT_RATIO`] times past its last value
//! there, λ is cut at once to the geometric mean of the two. Adam's
//! second-moment estimate still remembers the large gradients, so the cut
//! all but freezes the logits where they stand (measured on a synthetic
//! problem where the budget binds: Q 1.0 → 0.28 → 0.23 instead of → 0).
//!
//! The paper's plateau rule stays as a fallback: if Q is above Q* and has
//! not improved for `patience` epochs, λ is multiplied by the plateau
//! factor. The run stops once Q has been within budget for `patience`
//! epochs, is in [Q* − [`LANDING_BAND`], Q*], and the validation accuracy
//! within budget has not improved for `patience` epochs.

use std::collections::VecDeque;

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

/// Batches over which the speed of Q is measured.
const SPEED_WINDOW: usize = 20;
/// Smoothing of the per-batch Q before its speed is taken: a dynamic
/// mask's Q varies from batch to batch with the inputs.
const SMOOTHING: f64 = 0.1;
/// How far ahead Q is extrapolated. Without it a static mask on the
/// binding synthetic problem ended 0.02 below the band; 200 batches (with a
/// 100-batch window, or 20) amplified the batch-to-batch noise of a dynamic
/// mask's Q so much that λ never grew on the moving-signal test.
pub const LOOKAHEAD: f64 = 2.0 * SPEED_WINDOW as f64;
/// λ eases this many times faster than it grows: after an overshoot the
/// dropped cells keep sinking until λ is back below the task's pull.
pub const RELEASE: f64 = 5.0;
/// λ is cut on arrival when it grew more than this since it was last
/// within the aim.
pub const CUT_RATIO: f64 = 4.0;
/// A run stops early only with Q in [Q* − this, Q*].
pub const LANDING_BAND: f64 = 0.02;

/// Smoothed value and speed of the per-batch Q.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Trend {
    smoothed: Option<f64>,
    /// The last `SPEED_WINDOW + 1` smoothed values, oldest first.
    history: VecDeque<f64>,
}

impl Trend {
    /// Records `q`; returns it extrapolated [`LOOKAHEAD`] batches ahead
    /// (just `q` until the window is full).
    fn predict(&mut self, q: f64) -> f64 {
        let smoothed = match self.smoothed {
            Some(s) => s + SMOOTHING * (q - s),
            None => q,
        };
        self.smoothed = Some(smoothed);
        self.history.push_back(smoothed);
        if self.history.len() > SPEED_WINDOW + 1 {
            self.history.pop_front();
        }
        match (self.history.front(), self.history.back()) {
            (Some(first), Some(last)) if self.history.len() > SPEED_WINDOW => {
                let falling = (first - last) / SPEED_WINDOW as f64;
                smoothed - LOOKAHEAD * falling
            }
            _ => q,
        }
    }
}

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
    trend: Trend,
    /// Whether the last batch's predicted Q was above the aim.
    above: bool,
    /// λ at the last batch whose predicted Q was within the aim (at start:
    /// the initial λ).
    lambda_within: f64,
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
        let lambda = lambda.clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1);
        BudgetController {
            config,
            lambda,
            plateau_factor: factor,
            plateau_patience: patience,
            best_q: f64::INFINITY,
            epochs_without_q_gain: 0,
            epochs_within: 0,
            best_accuracy_within: f64::NEG_INFINITY,
            epochs_since_best: 0,
            trend: Trend::default(),
            above: false,
            lambda_within: lambda,
        }
    }

    /// The current λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Dual ascent after a batch whose Q was `q`.
    pub fn after_batch(&mut self, q: f64) {
        let aim = self.config.q - self.config.margin;
        let predicted = self.trend.predict(q);
        let within = predicted <= aim;
        if within && self.above && self.lambda > CUT_RATIO * self.lambda_within {
            self.lambda = (self.lambda * self.lambda_within).sqrt();
        }
        self.above = !within;
        let error = ((predicted - aim) / aim).clamp(-1.0, 1.0);
        let rate = if error < 0.0 { RELEASE * self.config.rate } else { self.config.rate };
        self.lambda = (self.lambda * (rate * error).exp()).clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1);
        if within {
            self.lambda_within = self.lambda;
        }
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
        // Only a run that has landed in the band stops: one that overshot
        // goes on while λ eases and cells come back.
        let landed = q >= self.config.q - LANDING_BAND;
        let stop = landed && self.epochs_within >= self.config.patience && self.epochs_since_best >= self.config.patience;
        EpochVerdict { lambda_grew, stop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_rises_above_the_aim_and_eases_faster_below() {
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        c.after_batch(0.9);
        assert!((c.lambda() - (0.005f64).exp()).abs() < 1e-12, "full error clamps at +1");
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        c.after_batch(0.0);
        assert!((c.lambda() - (-0.025f64).exp()).abs() < 1e-12, "eases at 5 times the rate");
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        c.after_batch(0.095); // exactly the aim (0.1 - 0.005): no change
        assert!((c.lambda() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn lambda_wound_up_before_q_moved_is_cut_when_q_arrives() {
        let mut c = BudgetController::new(TargetQConfig::new(0.25), 1.0, 1.5, 1);
        for _ in 0..1000 {
            c.after_batch(1.0);
        }
        let wound = c.lambda();
        assert!((wound - 5f64.exp()).abs() < 1e-6, "λ {wound}");
        // The block of cells crosses zero at once: once the smoothed,
        // extrapolated Q is below the aim, λ is cut to √(148 · 1), then
        // eased.
        for _ in 0..25 {
            c.after_batch(0.0);
        }
        let cut = c.lambda();
        assert!(cut < wound.sqrt() && cut > 1.0, "λ {cut} after arriving from {wound}");
    }

    #[test]
    fn lambda_near_its_last_value_within_budget_is_not_cut() {
        let mut c = BudgetController::new(TargetQConfig::new(0.25), 1.0, 1.5, 1);
        for _ in 0..100 {
            c.after_batch(0.3); // error 0.22: λ grows by e^0.11 in all
        }
        let before = c.lambda();
        c.after_batch(0.0);
        assert!(c.lambda() > before * 0.9, "λ {} from {before}", c.lambda());
    }

    #[test]
    fn a_q_falling_fast_towards_the_aim_already_eases_lambda() {
        let mut c = BudgetController::new(TargetQConfig::new(0.25), 100.0, 1.5, 1);
        let mut q = 1.0;
        for _ in 0..30 {
            c.after_batch(q);
            q -= 0.02; // 0.8 in 40 batches: it would end far below the aim
        }
        assert!(q > 0.3, "still above the aim ({q})");
        assert!(c.lambda() < 100.0, "λ {} grew while Q was about to overshoot", c.lambda());
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
    fn a_run_below_the_landing_band_does_not_stop() {
        let mut c = BudgetController::new(TargetQConfig { patience: 1, ..TargetQConfig::new(0.25) }, 1.0, 1.5, 10);
        for _ in 0..5 {
            assert!(!c.after_epoch(0.2, 0.8).stop, "Q 0.2 is below [0.23, 0.25]");
        }
        assert!(c.after_epoch(0.24, 0.8).stop);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(TargetQConfig::new(1.5).validate().unwrap_err().to_string().contains("target-q"));
        let bad = TargetQConfig { rate: 0.0, ..TargetQConfig::new(0.1) };
        assert!(bad.validate().unwrap_err().to_string().contains("target-q-rate"));
    }
}
