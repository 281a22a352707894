//! Synthetic data whose labels depend only on a known set of mask cells.
//!
//! Each informative cell carries one standard-normal feature `z_j` (every
//! value of the cell holds it); every other value is independent noise of
//! the same distribution. The label is `argmax(W z)` for a fixed random
//! projection `W`. A perfect selection mask therefore keeps exactly the
//! informative cells: that is what the learning tests check.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand::seq::index::sample;

use super::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels};
use selmask_wire::granularity::{CellLayout, Granularity};

/// Pixel value of feature 0.
const CENTRE: f64 = 128.0;
/// Pixel values per unit of feature.
const SPREAD: f64 = 40.0;

/// How to generate a synthetic dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// One input's shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// The granularity whose cells carry the signal.
    pub granularity: Granularity,
    /// How many cells are informative.
    pub n_informative: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Training items.
    pub n_train: usize,
    /// Test items.
    pub n_test: usize,
    /// Seed of cells, projection and items.
    pub seed: u64,
    /// Whether the informative cell moves: each item then carries its
    /// signal in one random cell, bright enough to be found in a thumbnail
    /// (dynamic masks can follow it, a static mask cannot).
    pub moving: bool,
}

impl Default for SyntheticConfig {
    /// MNIST-shaped, 20 informative pixels (Q* ≈ 0.026), 4 classes.
    fn default() -> Self {
        SyntheticConfig {
            shape: [1, 28, 28],
            granularity: Granularity::Pixel,
            n_informative: 20,
            n_classes: 4,
            n_train: 6000,
            n_test: 1000,
            seed: 0,
            moving: false,
        }
    }
}

/// A generated dataset with its ground truth.
#[derive(Debug, Clone)]
pub struct SyntheticData {
    /// The data.
    pub dataset: Dataset,
    /// Flat indices of the informative cells, ascending (fixed placement).
    pub informative: Vec<usize>,
    /// Moving placement: the informative cell of each train item, then of
    /// each test item.
    pub item_cells: Vec<usize>,
    /// The cell layout the signal follows.
    pub layout: CellLayout,
}

/// A standard normal sample (Box-Muller; one of the pair is enough here).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn to_pixel(v: f64) -> u8 {
    (CENTRE + SPREAD * v).round().clamp(0.0, 255.0) as u8
}

impl SyntheticConfig {
    /// Returns the config with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Generates the dataset.
    ///
    /// # Panics
    /// If the granularity does not fit the shape or there are more
    /// informative cells than cells (a programming error in the caller).
    pub fn generate(&self) -> SyntheticData {
        let layout = self.granularity.layout(self.shape).expect("granularity fits shape");
        let n_cells = layout.n_cells();
        assert!(self.n_informative >= 1 && self.n_informative <= n_cells);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut informative = sample(&mut rng, n_cells, self.n_informative).into_vec();
        informative.sort_unstable();
        let mut feature_of_cell = vec![usize::MAX; n_cells];
        for (j, &cell) in informative.iter().enumerate() {
            feature_of_cell[cell] = j;
        }
        // Moving placement: one feature per value of the (largest) cell.
        let n_features = if self.moving { layout.values_per_cell.iter().copied().max().unwrap_or(1) } else { self.n_informative };
        let projection: Vec<f64> = (0..self.n_classes * n_features).map(|_| normal(&mut rng)).collect();
        let label_of = |z: &[f64]| {
            (0..self.n_classes)
                .map(|k| projection[k * n_features..(k + 1) * n_features].iter().zip(z).map(|(w, v)| w * v).sum::<f64>())
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k as u16)
                .unwrap_or(0)
        };

        let mut item_cells = Vec::new();
        let mut make = |n: usize, rng: &mut ChaCha8Rng| {
            let values = layout.n_values();
            let mut pixels = Vec::with_capacity(n * values);
            let mut labels = Vec::with_capacity(n);
            let mut z = vec![0.0f64; n_features];
            for _ in 0..n {
                z.iter_mut().for_each(|v| *v = normal(rng));
                if self.moving {
                    // Bright signal (around +2.5) in one random cell, faint
                    // noise (within ±0.6) elsewhere.
                    let cell = rng.random_range(0..n_cells);
                    item_cells.push(cell);
                    let mut k = 0;
                    for &c in &layout.cell_of_value {
                        let v = if c == cell {
                            k += 1;
                            2.5 + 0.5 * z[k - 1]
                        } else {
                            (0.2 * normal(rng)).clamp(-0.6, 0.6)
                        };
                        pixels.push(to_pixel(v));
                    }
                } else {
                    for &cell in &layout.cell_of_value {
                        let j = feature_of_cell[cell];
                        let v = if j == usize::MAX { normal(rng) } else { z[j] };
                        pixels.push(to_pixel(v));
                    }
                }
                labels.push(label_of(&z));
            }
            ImageSet {
                shape: self.shape,
                pixels: Pixels::U8(pixels),
                labels,
            }
        };
        let train = make(self.n_train, &mut rng);
        let test = make(self.n_test, &mut rng);
        let c = self.shape[0];
        let info = DatasetInfo {
            name: DatasetName::Synthetic,
            shape: self.shape,
            n_classes: self.n_classes,
            mean: vec![(CENTRE / 255.0) as f32; c],
            std: vec![(SPREAD / 255.0) as f32; c],
        };
        SyntheticData {
            dataset: Dataset { info, train, test },
            informative,
            item_cells,
            layout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            shape: [2, 6, 6],
            granularity: "subquadrant".parse().unwrap(),
            n_informative: 3,
            n_classes: 3,
            n_train: 200,
            n_test: 50,
            seed: 5,
            moving: false,
        }
    }

    #[test]
    fn informative_cells_hold_one_value_each() {
        let data = small().generate();
        assert_eq!(data.informative.len(), 3);
        let set = &data.dataset.train;
        for i in 0..set.len() {
            for &cell in &data.informative {
                let vals: Vec<f32> = data
                    .layout
                    .cell_of_value
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == cell)
                    .map(|(j, _)| set.pixels.get(i * set.item_len() + j))
                    .collect();
                assert!(vals.windows(2).all(|w| w[0] == w[1]));
            }
        }
    }

    #[test]
    fn generation_is_seeded_and_labels_use_every_class() {
        let a = small().generate();
        let b = small().generate();
        assert_eq!(a.dataset.train, b.dataset.train);
        let c = small().with_seed(6).generate();
        assert_ne!(a.dataset.train.pixels, c.dataset.train.pixels);
        for k in 0..3u16 {
            assert!(a.dataset.train.labels.contains(&k), "class {k} missing");
        }
    }
}
