//! Random-forest feature importance: the input map of the paper's "given"
//! (RF) baseline, which removes cells in ascending importance.
//!
//! linfa-ensemble's random forest fits each tree on a bootstrap sample and
//! a random subset of the features (per tree, not per split as in
//! scikit-learn); a tree's impurity importance is mapped back to the input
//! values it saw and averaged over the trees.

use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use ndarray_linfa::{Array1, Array2};
use rand_linfa::SeedableRng;
use rand_linfa::rngs::SmallRng;

use crate::data::ImageSet;
use crate::error::{Error, Result};

/// Settings of [`forest_importance`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForestConfig {
    /// Trees in the forest.
    pub trees: usize,
    /// Depth limit of each tree.
    pub max_depth: usize,
    /// Items used (evenly spaced over the set); 0 = all.
    pub samples: usize,
    /// Fraction of the input values each tree may split on.
    pub feature_proportion: f64,
    /// Seed of the bootstrap and feature draws.
    pub seed: u64,
}

impl Default for ForestConfig {
    fn default() -> Self {
        ForestConfig { trees: 30, max_depth: 12, samples: 10_000, feature_proportion: 0.5, seed: 0 }
    }
}

impl ForestConfig {
    fn validate(&self) -> Result<()> {
        if self.trees == 0 {
            return Err(Error::config("trees", 0, "must be at least 1"));
        }
        if self.max_depth == 0 {
            return Err(Error::config("max-depth", 0, "must be at least 1"));
        }
        if !(self.feature_proportion > 0.0 && self.feature_proportion <= 1.0) {
            return Err(Error::config("feature-proportion", self.feature_proportion, "must be within (0, 1]"));
        }
        Ok(())
    }
}

/// Mean impurity importance of every input value (row-major `[C, H, W]`)
/// for predicting the labels of `set`, normalised to sum to 1. Seeded, but
/// reproducible only up to float summation order: linfa's trees sum class
/// weights from hash maps, whose order changes between runs.
pub fn forest_importance(set: &ImageSet, config: &ForestConfig) -> Result<Vec<f32>> {
    config.validate()?;
    let n_all = set.len();
    if n_all < 2 {
        return Err(Error::config("samples", n_all, "need at least 2 items to fit a forest"));
    }
    let n = if config.samples == 0 { n_all } else { config.samples.min(n_all) };
    let d = set.item_len();
    // Evenly spaced items: deterministic and covering the whole set.
    let items: Vec<usize> = (0..n).map(|k| k * n_all / n).collect();
    let records = Array2::from_shape_fn((n, d), |(r, j)| set.pixels.get(items[r] * d + j));
    let targets = Array1::from_iter(items.iter().map(|&i| set.labels[i] as usize));
    let dataset = Dataset::new(records, targets);
    let forest = EnsembleLearnerParams::new_fixed_rng(
        DecisionTree::params().max_depth(Some(config.max_depth)),
        SmallRng::seed_from_u64(config.seed),
    )
    .ensemble_size(config.trees)
    .bootstrap_proportion(1.0)
    .feature_proportion(config.feature_proportion)
    .fit(&dataset)
    .map_err(|e| Error::config("trees", config.trees, format!("random forest: {e}")))?;
    let mut importance = vec![0f64; d];
    for (tree, features) in forest.models.iter().zip(&forest.model_features) {
        for (&f, imp) in features.iter().zip(tree.feature_importance()) {
            importance[f] += imp as f64;
        }
    }
    let total: f64 = importance.iter().sum();
    Ok(importance.iter().map(|&v| if total > 0.0 { (v / total) as f32 } else { 0.0 }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Pixels;

    #[test]
    fn the_informative_values_get_the_importance() {
        // 4x4 items, label = whether value 5 is bright; everything else noise.
        let (n, d) = (400, 16);
        let mut state = 7u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        };
        let mut pixels = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = (i % 2) as u16;
            for j in 0..d {
                pixels.push(if j == 5 { if label == 1 { 200 } else { 20 } } else { noise() });
            }
            labels.push(label);
        }
        let set = ImageSet { shape: [1, 4, 4], pixels: Pixels::U8(pixels), labels };
        let cfg = ForestConfig { trees: 10, max_depth: 4, samples: 0, feature_proportion: 0.5, seed: 1 };
        let imp = forest_importance(&set, &cfg).unwrap();
        assert!((imp.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let best = imp.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(best, 5, "{imp:?}");
        // Seeded draws; linfa sums class counts from a hash map, so impurities
        // (not the trees' structure) may differ in the last float bits.
        let again = forest_importance(&set, &cfg).unwrap();
        assert!(imp.iter().zip(&again).all(|(a, b)| (a - b).abs() < 1e-3), "{imp:?} vs {again:?}");
        let bad = ForestConfig { feature_proportion: 0.0, ..cfg };
        assert!(forest_importance(&set, &bad).unwrap_err().to_string().contains("feature-proportion"));
    }
}
