//! Seeded train/validation split of a training set.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::ImageSet;
use crate::error::{Error, Result};

/// A training set divided into the part trained on and the part that
/// drives the λ schedule and checkpoint choice.
#[derive(Debug, Clone)]
pub struct TrainVal {
    /// Items trained on.
    pub train: ImageSet,
    /// Held-out items (empty when the fraction is 0).
    pub val: ImageSet,
}

/// Splits `set` into train and validation, `fraction` of the items (rounded
/// down) going to validation, chosen by a permutation seeded with `seed`.
///
/// The training part is `set` itself with the validation items taken out
/// in place, so a large set is never held twice.
pub fn train_val_split(mut set: ImageSet, fraction: f64, seed: u64) -> Result<TrainVal> {
    let (train_idx, val_idx) = split_indices(set.len(), fraction, seed)?;
    let val = set.subset(&val_idx);
    set.retain_items(&train_idx);
    Ok(TrainVal { train: set, val })
}

/// The items of a training set of `len` items that [`train_val_split`]
/// keeps for training and holds out for validation, each ascending.
pub fn split_indices(len: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::config("val-split", fraction, "must be in [0, 1)"));
    }
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_val = (fraction * len as f64).floor() as usize;
    if fraction > 0.0 && n_val == 0 {
        return Err(Error::config("val-split", fraction, format!("leaves no validation item out of {len}")));
    }
    let (val_idx, train_idx) = order.split_at(n_val);
    // Sorted, so both parts keep the file order (and are easy to audit).
    let (mut val_idx, mut train_idx) = (val_idx.to_vec(), train_idx.to_vec());
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    Ok((train_idx, val_idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        ImageSet {
            shape: [1, 1, 1],
            pixels: super::super::Pixels::U8((0..n).map(|i| i as u8).collect()),
            labels: (0..n).map(|i| i as u16).collect(),
        }
    }

    #[test]
    fn split_is_disjoint_complete_and_seeded() {
        let s = set(100);
        let a = train_val_split(s.clone(), 0.1, 7).unwrap();
        assert_eq!((a.train.len(), a.val.len()), (90, 10));
        let mut all: Vec<u16> = a.train.labels.iter().chain(&a.val.labels).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<u16>>());
        let b = train_val_split(s.clone(), 0.1, 7).unwrap();
        assert_eq!(a.val.labels, b.val.labels);
        let c = train_val_split(s.clone(), 0.1, 8).unwrap();
        assert_ne!(a.val.labels, c.val.labels);
    }

    #[test]
    fn the_training_part_keeps_file_order_and_its_values() {
        let s = ImageSet {
            shape: [1, 1, 2],
            pixels: super::super::Pixels::F32((0..40).map(|i| i as f32).collect()),
            labels: (0..20).collect(),
        };
        let parts = train_val_split(s.clone(), 0.25, 3).unwrap();
        assert!(parts.train.labels.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parts.train, s.subset(&parts.train.labels.iter().map(|&l| l as usize).collect::<Vec<_>>()));
        assert_eq!(parts.val, s.subset(&parts.val.labels.iter().map(|&l| l as usize).collect::<Vec<_>>()));
    }

    #[test]
    fn zero_fraction_keeps_everything() {
        let a = train_val_split(set(5), 0.0, 1).unwrap();
        assert_eq!((a.train.len(), a.val.len()), (5, 0));
    }

    #[test]
    fn bad_fractions_are_rejected() {
        for bad in [1.0, -0.1] {
            let e = train_val_split(set(5), bad, 1).unwrap_err().to_string();
            assert_eq!(e, format!("invalid val-split = {bad}: must be in [0, 1)"));
        }
        assert!(train_val_split(set(5), 0.1, 1).unwrap_err().to_string().contains("no validation item"));
    }
}
