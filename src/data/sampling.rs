//! Which training items an epoch visits, and in what order.
//!
//! Most datasets visit every item once per epoch in a shuffled order. The
//! paper's ship data are imbalanced (19% ships), and its code draws, each
//! epoch, `min_k n_k` items *without replacement* with per-item weights
//! `1 - n_k / N` (torch's `WeightedRandomSampler(replacement=False)`), which
//! under-samples the majority class. [`Sampling::ClassBalanced`] does the
//! same with the Efraimidis–Spirakis method (key `u^(1/w)`, keep the largest
//! keys), which draws exactly that distribution of ordered samples.

use std::fmt;
use std::str::FromStr;

use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::DatasetName;
use super::ships::class_balanced_weights;
use crate::error::{Error, Result};

/// How an epoch's training items are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Every item once, shuffled.
    #[default]
    Shuffle,
    /// `min_k n_k` items without replacement, weighted `1 - n_k / N` (the
    /// paper's ships sampler).
    ClassBalanced,
}

impl Sampling {
    /// The paper's sampling of `name`: class-balanced for ships only.
    pub fn for_dataset(name: DatasetName) -> Sampling {
        match name {
            DatasetName::Ships => Sampling::ClassBalanced,
            _ => Sampling::Shuffle,
        }
    }

    /// The items of one epoch, in visiting order, for a split with `labels`.
    ///
    /// `Shuffle` consumes the generator exactly as a plain shuffle of
    /// `0..n`, so runs from before this type existed see the same batches.
    pub fn epoch_order(&self, labels: &[u16], rng: &mut ChaCha8Rng) -> Vec<usize> {
        match self {
            Sampling::Shuffle => {
                let mut order: Vec<usize> = (0..labels.len()).collect();
                order.shuffle(rng);
                order
            }
            Sampling::ClassBalanced => balanced_order(labels, rng),
        }
    }

    /// Items drawn per epoch from a split with `labels`.
    pub fn epoch_len(&self, labels: &[u16]) -> usize {
        match self {
            Sampling::Shuffle => labels.len(),
            Sampling::ClassBalanced => balanced_count(labels),
        }
    }
}

/// The size of the smallest class present.
fn balanced_count(labels: &[u16]) -> usize {
    let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts.into_iter().filter(|&c| c > 0).min().unwrap_or(0)
}

fn balanced_order(labels: &[u16], rng: &mut ChaCha8Rng) -> Vec<usize> {
    let k = balanced_count(labels);
    let mut weights = class_balanced_weights(labels);
    // One class only: every weight is 0 and the draw is uniform.
    if weights.iter().all(|&w| w <= 0.0) {
        weights.iter_mut().for_each(|w| *w = 1.0);
    }
    // Key u^(1/w), compared through its logarithm ln(u)/w (larger is
    // earlier); the k largest keys in decreasing order are a weighted
    // sample without replacement in draw order.
    let mut keyed: Vec<(f64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (u.ln() / w, i)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.truncate(k);
    keyed.into_iter().map(|(_, i)| i).collect()
}

impl FromStr for Sampling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "shuffle" => Ok(Sampling::Shuffle),
            "class-balanced" | "class_balanced" | "balanced" => Ok(Sampling::ClassBalanced),
            _ => Err(Error::config("sampling", s, "must be paper, shuffle or class-balanced")),
        }
    }
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sampling::Shuffle => "shuffle",
            Sampling::ClassBalanced => "class-balanced",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::epoch_rng;

    #[test]
    fn shuffle_visits_every_item_once() {
        let labels = vec![0u16, 1, 1, 2, 0, 1];
        let mut order = Sampling::Shuffle.epoch_order(&labels, &mut epoch_rng(3, 1));
        assert_eq!(order.len(), 6);
        order.sort_unstable();
        assert_eq!(order, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn balanced_draws_the_smallest_class_size_without_repeats() {
        // 90 of class 0, 10 of class 1: 10 items per epoch.
        let labels: Vec<u16> = (0..100).map(|i| u16::from(i >= 90)).collect();
        let order = Sampling::ClassBalanced.epoch_order(&labels, &mut epoch_rng(0, 1));
        assert_eq!(order.len(), 10);
        assert_eq!(Sampling::ClassBalanced.epoch_len(&labels), 10);
        let mut unique = order.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn balanced_favours_the_minority_class_as_the_weights_say() {
        // Weights 0.1 (majority, 90 items) and 0.9 (minority, 10 items):
        // each draw takes a minority item with probability 0.9·m / (0.9·m +
        // 0.1·M) for the remaining counts, so on average far above the 10%
        // of a uniform draw. Over many epochs, minority share > 40%.
        let labels: Vec<u16> = (0..100).map(|i| u16::from(i >= 90)).collect();
        let mut minority = 0usize;
        let mut total = 0usize;
        for epoch in 1..=200 {
            let order = Sampling::ClassBalanced.epoch_order(&labels, &mut epoch_rng(7, epoch));
            minority += order.iter().filter(|&&i| labels[i] == 1).count();
            total += order.len();
        }
        let share = minority as f64 / total as f64;
        assert!(share > 0.4 && share < 0.8, "minority share {share}");
    }

    #[test]
    fn balanced_is_seeded_and_handles_one_class() {
        let labels: Vec<u16> = (0..50).map(|i| (i % 3) as u16).collect();
        let a = Sampling::ClassBalanced.epoch_order(&labels, &mut epoch_rng(1, 2));
        let b = Sampling::ClassBalanced.epoch_order(&labels, &mut epoch_rng(1, 2));
        assert_eq!(a, b);
        let one = vec![0u16; 5];
        assert_eq!(Sampling::ClassBalanced.epoch_order(&one, &mut epoch_rng(0, 1)).len(), 5);
    }

    #[test]
    fn names_parse_and_bad_names_are_refused() {
        assert_eq!("shuffle".parse::<Sampling>().unwrap(), Sampling::Shuffle);
        assert_eq!("class-balanced".parse::<Sampling>().unwrap(), Sampling::ClassBalanced);
        let err = "weighted".parse::<Sampling>().unwrap_err().to_string();
        assert!(err.contains("sampling") && err.contains("weighted"), "{err}");
        assert_eq!(Sampling::for_dataset(DatasetName::Ships), Sampling::ClassBalanced);
        assert_eq!(Sampling::for_dataset(DatasetName::Cifar10), Sampling::Shuffle);
    }
}
