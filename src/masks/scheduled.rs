//! The paper's baselines: cells removed on a schedule, not learned.
//!
//! Training starts with every cell; every `change_iter` training iterations
//! `num_del` more cells are removed, so Q falls linearly while the network
//! keeps training. `random` removes cells in a seeded random order, `given`
//! in ascending order of an importance map (e.g. a random forest's),
//! ties broken by position (ordinal ranks, as `scipy.stats.rankdata`).
//!
//! Such a mask is a static mask whose logits are set from the schedule
//! rather than learned, so evaluation, checkpoints and export are shared.

use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The order in which cells go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemovalOrder {
    /// A seeded random order.
    Random {
        /// Seed of the order.
        seed: u64,
    },
    /// Ascending importance (least important first).
    Given {
        /// Importance per cell, row-major `[c, h, w]`.
        importance: Vec<f32>,
        /// Where the map came from.
        source: PathBuf,
    },
}

/// Settings of a [`CellSchedule`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellScheduleConfig {
    /// The order of removal.
    pub order: RemovalOrder,
    /// Cells removed at each change (`--random-num-del`).
    pub num_del: usize,
    /// Training iterations between changes (`--random-change-iter`).
    pub change_iter: usize,
}

/// The state of a removal schedule (saved with a run's resume state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSchedule {
    /// Cells in the order they are removed.
    order: Vec<usize>,
    /// How many of `order` are removed.
    removed: usize,
    /// Training iterations seen (the reference counts from 1).
    iteration: usize,
    num_del: usize,
    change_iter: usize,
}

/// A logit large enough that the sigmoid rounds to exactly 0 or 1.
pub const DECIDED_LOGIT: f32 = 20.0;

impl CellScheduleConfig {
    /// Checks the settings against a mask of `n_cells` cells.
    pub fn validate(&self, n_cells: usize) -> Result<()> {
        if self.change_iter == 0 {
            return Err(Error::config("random-change-iter", 0, "must be > 0"));
        }
        if let RemovalOrder::Given { importance, source } = &self.order {
            if importance.len() != n_cells {
                return Err(Error::config(
                    "given-mask-path",
                    source.display(),
                    format!("holds {} importances, the mask has {n_cells} cells", importance.len()),
                ));
            }
            if let Some(i) = importance.iter().position(|v| !v.is_finite()) {
                return Err(Error::config("given-mask-path", source.display(), format!("importance {i} is not finite")));
            }
        }
        Ok(())
    }

    /// The schedule in its initial state (every cell kept).
    pub fn init(&self, n_cells: usize) -> Result<CellSchedule> {
        self.validate(n_cells)?;
        let mut order: Vec<usize> = (0..n_cells).collect();
        match &self.order {
            RemovalOrder::Random { seed } => order.shuffle(&mut ChaCha8Rng::seed_from_u64(*seed)),
            // A stable sort: equal importances keep their position order.
            RemovalOrder::Given { importance, .. } => order.sort_by(|&a, &b| importance[a].total_cmp(&importance[b])),
        }
        Ok(CellSchedule { order, removed: 0, iteration: 1, num_del: self.num_del, change_iter: self.change_iter })
    }
}

impl CellSchedule {
    /// Advances one training iteration (before its step, as the
    /// reference); returns whether cells were removed.
    pub fn step(&mut self) -> bool {
        let change = self.iteration.is_multiple_of(self.change_iter) && self.removed < self.order.len();
        self.iteration += 1;
        if change {
            self.removed = (self.removed + self.num_del).min(self.order.len());
        }
        change
    }

    /// Cells removed so far.
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// Mask logits: kept cells `+DECIDED_LOGIT`, removed `-DECIDED_LOGIT`.
    pub fn logits(&self) -> Vec<f32> {
        let mut logits = vec![DECIDED_LOGIT; self.order.len()];
        for &cell in &self.order[..self.removed] {
            logits[cell] = -DECIDED_LOGIT;
        }
        logits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_order_removes_num_del_every_change_iter() {
        let cfg = CellScheduleConfig { order: RemovalOrder::Random { seed: 3 }, num_del: 2, change_iter: 3 };
        let mut s = cfg.init(5).unwrap();
        let changes: Vec<bool> = (0..9).map(|_| s.step()).collect();
        // Iterations 3, 6 and 9 remove cells (counting from 1), the last only one.
        assert_eq!(changes, [false, false, true, false, false, true, false, false, true]);
        assert_eq!(s.removed(), 5);
        assert_eq!(s.logits().iter().filter(|&&l| l < 0.0).count(), 5);
        assert!(!s.step() && !s.step() && !s.step(), "nothing left to remove");
        let again: Vec<f32> = {
            let mut t = cfg.init(5).unwrap();
            (0..9).for_each(|_| {
                t.step();
            });
            t.logits()
        };
        assert_eq!(again, s.logits());
    }

    #[test]
    fn given_order_removes_least_important_first_ties_by_position() {
        let cfg = CellScheduleConfig {
            order: RemovalOrder::Given { importance: vec![0.5, 0.1, 0.5, 0.0], source: "m.npy".into() },
            num_del: 1,
            change_iter: 1,
        };
        let mut s = cfg.init(4).unwrap();
        // The order: 3 (0.0), 1 (0.1), 0 (0.5, first), 2 (0.5).
        let d = DECIDED_LOGIT;
        let expected = [[d, d, d, -d], [d, -d, d, -d], [-d, -d, d, -d], [-d, -d, -d, -d]];
        for want in expected {
            assert!(s.step());
            assert_eq!(s.logits(), want);
        }
        assert!(!s.step(), "nothing left to remove");
    }

    #[test]
    fn bad_settings_are_named() {
        let cfg = CellScheduleConfig {
            order: RemovalOrder::Given { importance: vec![1.0; 3], source: "imp.npy".into() },
            num_del: 1,
            change_iter: 1,
        };
        let msg = cfg.init(4).unwrap_err().to_string();
        assert!(msg.contains("imp.npy") && msg.contains("3 importances") && msg.contains("4 cells"), "{msg}");
        let cfg = CellScheduleConfig { order: RemovalOrder::Random { seed: 0 }, num_del: 1, change_iter: 0 };
        assert!(cfg.init(4).unwrap_err().to_string().contains("random-change-iter"));
    }
}
