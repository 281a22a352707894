//! Budget-targeted training (beyond the paper): instead of tuning λ by
//! hand, λ is driven so that Q ends at or below a target Q*.
//!
//! The constraint Q ≤ Q* is handled by dual ascent on log λ after every
//! batch: `log λ += rate · clamp((q − aim) / aim, −1, 1)` with
//! `aim = Q* − margin`, so λ grows while the batch's Q is above the aim and
//! relaxes (letting cells come back) while it is below.
//!
//! **Anti-windup.** The mask cannot follow λ at once: Adam moves each logit
//! by about its learning rate per step whatever the size of the gradient, so
//! from the default initial logit 3 a static mask needs about a thousand
//! steps before any cell's hard value flips (measured: Q stayed at 1.0 for
//! 26 epochs of 43 batches on the synthetic data). Integrating the error all
//! that time wound λ up to 3,900, and when the cells finally crossed zero
//! they all went (Q 0.0013, then 0), and λ needed dozens of epochs to come
//! back down. So the integrator is conditional: it stands still while the
//! mask is already moving towards the aim at no less than half the highest
//! speed seen (the speed it can reach), measured on the *soft* Q (mean
//! sigmoid, see [`crate::masks::Masked::soft_q`]) in logit space, where
//! Adam's constant logit steps give a constant speed. λ still grows while
//! the mask stands still or drifts slowly, and still falls while Q is below
//! the aim and the mask does not come back on its own.
//!
//! The paper's plateau rule stays as a fallback, under the same condition:
//! if Q is above Q* and has not improved for `patience` epochs, and the mask
//! was not moving for most of the epoch, λ is multiplied by the plateau
//! factor. The run stops once Q has been within budget for `patience`
//! epochs and the validation accuracy within budget has not improved for as
//! long.

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

/// Batches over which the speed of the soft Q is measured.
const SPEED_WINDOW: usize = 20;
/// Smoothing of the soft Q's logit before its speed is taken: a dynamic
/// mask's soft Q varies from batch to batch with the inputs.
const SPEED_SMOOTHING: f64 = 0.1;
/// Per-batch decay of the highest speed seen (half-life about 700 batches),
/// so that a mask that has slowed down for good is driven again.
const PEAK_DECAY: f64 = 0.999;
/// Moving towards the aim at this fraction of the highest speed seen
/// counts as moving: λ stands still.
const MOVING_FRACTION: f64 = 0.5;

/// How fast the mask moves: the speed of the soft Q in logit space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Motion {
    /// Smoothed `logit(soft Q)`.
    smoothed: Option<f64>,
    /// The last `SPEED_WINDOW + 1` smoothed values, oldest first.
    history: VecDeque<f64>,
    /// The highest speed seen (decayed).
    peak: f64,
    /// Batches of this epoch, and those in which the mask was moving
    /// towards the aim (λ held).
    epoch_batches: usize,
    epoch_moving: usize,
    /// The hard Q of the first batch, and whether it has moved since.
    first_q: Option<f64>,
    hard_q_moved: bool,
}

/// Once the hard Q has moved this far from its start, the mask has
/// arrived where λ acts on Q directly and the hold ends.
const HARD_Q_MOVED: f64 = 0.02;
/// λ falls this many times faster than it grows: after an overshoot the
/// dropped cells keep sinking until λ is back below the task's pull.
const RELEASE: f64 = 5.0;

/// The hard Q is extrapolated this many batches ahead at its current speed
/// (a derivative term): λ starts to ease before Q overshoots the aim.
const LOOKAHEAD: f64 = 2.0 * SPEED_WINDOW as f64;

/// Smoothed value and speed of a noisy per-batch series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Trend {
    smoothed: Option<f64>,
    history: VecDeque<f64>,
}

impl Trend {
    /// Records `x`; returns the smoothed value and how fast it falls per
    /// batch over the window (0 until the window is full).
    fn observe(&mut self, x: f64) -> (f64, f64) {
        let smoothed = match self.smoothed {
            Some(s) => s + SPEED_SMOOTHING * (x - s),
            None => x,
        };
        self.smoothed = Some(smoothed);
        self.history.push_back(smoothed);
        if self.history.len() > SPEED_WINDOW + 1 {
            self.history.pop_front();
        }
        let falling = match (self.history.front(), self.history.back()) {
            (Some(first), Some(last)) if self.history.len() > SPEED_WINDOW => (first - last) / SPEED_WINDOW as f64,
            _ => 0.0,
        };
        (smoothed, falling)
    }
}

impl Motion {
    /// Records a batch's soft Q; returns the speed at which the soft Q
    /// falls, in logit units per batch (negative: it rises).
    fn observe(&mut self, soft_q: f64) -> f64 {
        let p = soft_q.clamp(1e-6, 1.0 - 1e-6);
        let z = (p / (1.0 - p)).ln();
        let smoothed = match self.smoothed {
            Some(s) => s + SPEED_SMOOTHING * (z - s),
            None => z,
        };
        self.smoothed = Some(smoothed);
        self.history.push_back(smoothed);
        if self.history.len() > SPEED_WINDOW + 1 {
            self.history.pop_front();
        }
        let falling = match (self.history.front(), self.history.back()) {
            (Some(first), Some(last)) if self.history.len() > SPEED_WINDOW => (first - last) / SPEED_WINDOW as f64,
            _ => 0.0,
        };
        self.peak = (self.peak * PEAK_DECAY).max(falling.abs());
        falling
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
    #[serde(default)]
    motion: Motion,
    #[serde(default)]
    hard: Trend,
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
            motion: Motion::default(),
            hard: Trend::default(),
        }
    }

    /// The current λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Dual ascent after a batch whose (hard) Q was `q` and soft Q
    /// `soft_q`. Returns whether λ was held because the mask is already
    /// moving towards the aim.
    pub fn after_batch(&mut self, q: f64, soft_q: f64) -> bool {
        let aim = self.config.q - self.config.margin;
        let (smoothed, q_falling) = self.hard.observe(q);
        let predicted = if self.hard.history.len() > SPEED_WINDOW { smoothed - LOOKAHEAD * q_falling } else { q };
        let error = ((predicted - aim) / aim).clamp(-1.0, 1.0);
        let falling = self.motion.observe(soft_q);
        let towards = if error > 0.0 { falling } else { -falling };
        if (q - *self.motion.first_q.get_or_insert(q)).abs() > HARD_Q_MOVED {
            self.motion.hard_q_moved = true;
        }
        let moving = !self.motion.hard_q_moved && self.motion.peak > 0.0 && towards >= MOVING_FRACTION * self.motion.peak;
        self.motion.epoch_batches += 1;
        if moving {
            self.motion.epoch_moving += 1;
        } else {
            let rate = if error < 0.0 { RELEASE * self.config.rate } else { self.config.rate };
            self.lambda = (self.lambda * (rate * error).exp()).clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1);
        }
        moving
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
        // Most of the epoch moving towards the aim: the plateau is the
        // mask's own pace (hard Q waits for logits to cross zero), not a
        // lack of pressure.
        let moving = 2 * self.motion.epoch_moving > self.motion.epoch_batches;
        self.motion.epoch_batches = 0;
        self.motion.epoch_moving = 0;
        if q > self.config.q && self.epochs_without_q_gain > self.plateau_patience && !moving {
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
        // A mask standing still (soft Q constant): plain dual ascent.
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        assert!(!c.after_batch(0.9, 0.9));
        assert!((c.lambda() - (0.005f64).exp()).abs() < 1e-12, "full error clamps at +1");
        let before = c.lambda();
        c.after_batch(0.0, 0.9);
        assert!(c.lambda() < before);
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 1.0, 1.5, 2);
        c.after_batch(0.095, 0.5); // exactly the aim (0.1 - 0.005): no change
        assert!((c.lambda() - 1.0).abs() < 1e-12);
    }

    /// The soft Q of logits all at `z` moving by `-step` per batch.
    fn soft(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn lambda_stands_still_while_the_mask_moves_towards_the_aim() {
        // Logits falling from 3 at Adam's pace (0.001 per step) while the
        // hard Q stays at 1: without the hold, 1,000 batches at full error
        // would multiply λ by e^5 ≈ 148.
        let mut c = BudgetController::new(TargetQConfig::new(0.25), 1.0, 1.5, 1);
        let mut held = 0;
        for i in 0..1000 {
            held += usize::from(c.after_batch(1.0, soft(3.0 - 0.001 * i as f64)));
        }
        assert!(held > 950, "held {held} of 1000");
        assert!(c.lambda() < 1.2, "λ wound up to {}", c.lambda());
        // The mask stops (the task gradient balances λ): λ grows again.
        let before = c.lambda();
        for _ in 0..1000 {
            c.after_batch(1.0, soft(2.0));
        }
        assert!(c.lambda() > before * 50.0, "λ {} after a stalled mask", c.lambda());
    }

    #[test]
    fn lambda_stands_still_while_cells_come_back_below_the_aim() {
        let mut c = BudgetController::new(TargetQConfig::new(0.25), 10.0, 1.5, 1);
        for i in 0..500 {
            c.after_batch(0.0, soft(-3.0 + 0.001 * i as f64));
        }
        // Only the first window, before any speed is known, eases λ
        // (20 batches at the release rate: e^-0.5).
        assert!(c.lambda() > 6.0, "λ fell to {} while Q was coming back", c.lambda());
        // Below the aim and standing still: λ relaxes.
        for _ in 0..500 {
            c.after_batch(0.0, soft(-2.5));
        }
        assert!(c.lambda() < 1.0, "λ {}", c.lambda());
    }

    #[test]
    fn a_slow_drift_does_not_hold_lambda() {
        // Falling at a tenth of the speed seen before counts as stalled.
        let mut c = BudgetController::new(TargetQConfig::new(0.25), 1.0, 1.5, 1);
        for i in 0..200 {
            c.after_batch(1.0, soft(3.0 - 0.001 * i as f64));
        }
        let before = c.lambda();
        for i in 0..200 {
            c.after_batch(1.0, soft(2.8 - 0.0001 * i as f64));
        }
        assert!(c.lambda() > before * 2.0, "λ {} from {before}", c.lambda());
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
    fn plateau_fallback_waits_while_the_mask_moves() {
        let mut c = BudgetController::new(TargetQConfig::new(0.1), 2.0, 1.5, 1);
        let mut z = 3.0;
        for _ in 0..3 {
            for _ in 0..100 {
                c.after_batch(1.0, soft(z));
                z -= 0.001;
            }
            assert!(!c.after_epoch(1.0, 0.9).lambda_grew, "epoch with z falling to {z}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(TargetQConfig::new(1.5).validate().unwrap_err().to_string().contains("target-q"));
        let bad = TargetQConfig { rate: 0.0, ..TargetQConfig::new(0.1) };
        assert!(bad.validate().unwrap_err().to_string().contains("target-q-rate"));
    }
}
