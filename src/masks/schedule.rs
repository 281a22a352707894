//! The λ plateau schedule and the temperature (τ) schedule.
//!
//! Both follow the reference code (`utils.LambdaSchedule` and the τ update
//! in `train.py`): λ grows by a factor when the evaluated Q has not improved
//! on its best by more than an absolute threshold for more than `patience`
//! epochs; τ anneals by a factor per epoch down to τ_min and is reset to
//! τ_init whenever λ grows.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of the λ plateau schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LambdaScheduleConfig {
    /// λ before the first increase.
    pub init: f64,
    /// Multiplier applied on a plateau (> 1).
    pub factor: f64,
    /// Epochs without improvement tolerated before λ grows.
    pub patience: usize,
    /// Q must fall by more than this (absolute) to count as an improvement.
    pub threshold: f64,
    /// Epochs after an increase (and at the start) during which bad epochs are ignored.
    pub cooldown: usize,
}

impl LambdaScheduleConfig {
    /// Checks the ranges; names the offending field.
    pub fn validate(&self) -> Result<()> {
        if !(self.init.is_finite() && self.init >= 0.0) {
            return Err(Error::config("lambda-init", self.init, "must be finite and >= 0"));
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(Error::config("lambda-factor", self.factor, "must be finite and >= 1"));
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(Error::config("lambda-threshold", self.threshold, "must be finite and >= 0"));
        }
        Ok(())
    }

    /// A schedule in its initial state.
    pub fn init(&self) -> LambdaSchedule {
        LambdaSchedule {
            config: *self,
            lambda: self.init,
            best: f64::INFINITY,
            bad_epochs: 0,
            // As the reference: the schedule starts in cooldown.
            cooldown_left: self.cooldown,
        }
    }
}

/// The λ plateau schedule (state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaSchedule {
    config: LambdaScheduleConfig,
    lambda: f64,
    best: f64,
    bad_epochs: usize,
    cooldown_left: usize,
}

impl LambdaSchedule {
    /// The current λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The best (lowest) Q seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Records the Q evaluated after an epoch; returns `true` when λ grew.
    pub fn step(&mut self, q: f64) -> bool {
        // "Better" is |q| < |best| - threshold, the reference's 'min'/'abs' mode.
        if q.abs() < self.best.abs() - self.config.threshold {
            self.best = q;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.config.patience {
            self.lambda *= self.config.factor;
            self.cooldown_left = self.config.cooldown;
            self.bad_epochs = 0;
            return true;
        }
        false
    }
}

/// Settings of the temperature schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TauScheduleConfig {
    /// τ at the start and after every λ increase.
    pub init: f64,
    /// Lower bound of τ.
    pub min: f64,
    /// Per-epoch multiplier (<= 1).
    pub factor: f64,
}

impl TauScheduleConfig {
    /// Checks the ranges; names the offending field.
    pub fn validate(&self) -> Result<()> {
        if !(self.init.is_finite() && self.init > 0.0) {
            return Err(Error::config("tau-init", self.init, "must be finite and > 0"));
        }
        if !(self.min.is_finite() && self.min > 0.0 && self.min <= self.init) {
            return Err(Error::config("tau-min", self.min, "must be > 0 and <= tau-init"));
        }
        if !(self.factor.is_finite() && self.factor > 0.0 && self.factor <= 1.0) {
            return Err(Error::config("tau-factor", self.factor, "must be in (0, 1]"));
        }
        Ok(())
    }

    /// Epochs needed to anneal from `init` to `min`; the reference uses it as
    /// the λ schedule's cooldown so that λ waits for τ to settle.
    pub fn anneal_epochs(&self) -> usize {
        if self.factor >= 1.0 {
            return 0;
        }
        let mut tau = self.init;
        let mut n = 0;
        while tau > self.min {
            tau *= self.factor;
            n += 1;
        }
        n
    }

    /// A schedule in its initial state.
    pub fn init(&self) -> TauSchedule {
        TauSchedule {
            config: *self,
            tau: self.init,
        }
    }
}

/// The temperature schedule (state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TauSchedule {
    config: TauScheduleConfig,
    tau: f64,
}

impl TauSchedule {
    /// The current τ.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// Advances one epoch: reset to τ_init when λ just grew, else anneal.
    pub fn step(&mut self, lambda_grew: bool) -> f64 {
        self.tau = if lambda_grew {
            self.config.init
        } else {
            (self.tau * self.config.factor).max(self.config.min)
        };
        self.tau
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lambda(patience: usize, cooldown: usize) -> LambdaSchedule {
        LambdaScheduleConfig {
            init: 1.0,
            factor: 2.0,
            patience,
            threshold: 0.01,
            cooldown,
        }
        .init()
    }

    #[test]
    fn grows_only_after_more_than_patience_bad_epochs() {
        let mut s = lambda(2, 0);
        assert!(!s.step(0.9)); // improvement on +inf
        assert!(!s.step(0.9)); // bad 1
        assert!(!s.step(0.9)); // bad 2 == patience: not yet
        assert!(s.step(0.9)); // bad 3 > patience
        assert_eq!(s.lambda(), 2.0);
        // Counter reset: the third bad epoch after it grows λ again.
        assert!(!s.step(0.9) && !s.step(0.9));
        assert!(s.step(0.9));
        assert_eq!(s.lambda(), 4.0);
    }

    #[test]
    fn improvement_must_exceed_threshold() {
        let mut s = lambda(0, 0);
        assert!(!s.step(0.5));
        // 0.495 is better by 0.005 < threshold 0.01: a bad epoch, and patience 0 grows λ.
        assert!(s.step(0.495));
        assert_eq!(s.best(), 0.5);
        // Exactly the threshold is not enough either (strict inequality).
        let mut s = lambda(0, 0);
        s.step(0.5);
        assert!(s.step(0.49));
        // More than the threshold is an improvement.
        let mut s = lambda(0, 0);
        s.step(0.5);
        assert!(!s.step(0.48));
        assert_eq!(s.best(), 0.48);
    }

    #[test]
    fn cooldown_ignores_bad_epochs_at_start_and_after_growth() {
        let mut s = lambda(0, 2);
        assert!(!s.step(0.5)); // cooldown 2 -> 1
        assert!(!s.step(0.5)); // bad, but in cooldown 1 -> 0
        assert!(s.step(0.5)); // bad, out of cooldown
        assert!(!s.step(0.5)); // cooldown again
        assert!(!s.step(0.5));
        assert!(s.step(0.5));
        assert_eq!(s.lambda(), 4.0);
    }

    #[test]
    fn tau_anneals_to_min_and_resets_on_growth() {
        let cfg = TauScheduleConfig { init: 1.0, min: 0.3, factor: 0.5 };
        assert_eq!(cfg.anneal_epochs(), 2);
        let mut t = cfg.init();
        assert_eq!(t.step(false), 0.5);
        assert_eq!(t.step(false), 0.3);
        assert_eq!(t.step(false), 0.3);
        assert_eq!(t.step(true), 1.0);
    }

    #[test]
    fn default_tau_never_moves() {
        let cfg = TauScheduleConfig { init: 1.0, min: 1.0, factor: 1.0 };
        assert_eq!(cfg.anneal_epochs(), 0);
        let mut t = cfg.init();
        assert_eq!(t.step(false), 1.0);
        assert_eq!(t.step(true), 1.0);
    }

    #[test]
    fn validation_names_fields() {
        let bad = LambdaScheduleConfig { init: -1.0, factor: 1.5, patience: 1, threshold: 0.0, cooldown: 0 };
        assert!(bad.validate().unwrap_err().to_string().contains("lambda-init"));
        let bad = TauScheduleConfig { init: 1.0, min: 2.0, factor: 1.0 };
        assert!(bad.validate().unwrap_err().to_string().contains("tau-min"));
    }
}
