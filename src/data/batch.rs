//! A split held as one normalised tensor, and its batches.
//!
//! The split is normalised and moved to the device once; a batch is then a
//! gather of its rows (shuffled order) or a slice (fixed order), so no host
//! buffer is built per batch.

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::Augmenter;
use super::{DatasetInfo, ImageSet};

/// A split on the device: images `[N, C, H, W]` normalised, labels `[N]`.
#[derive(Debug, Clone)]
pub struct TensorSplit {
    /// Normalised inputs.
    pub images: Tensor<4>,
    /// Class indices.
    pub labels: Tensor<1, Int>,
    /// Number of items.
    pub len: usize,
    /// Class indices on the host (for class-balanced sampling).
    pub classes: Vec<u16>,
}

/// One batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, C, H, W]`.
    pub images: Tensor<4>,
    /// `[B]`.
    pub labels: Tensor<1, Int>,
}

impl TensorSplit {
    /// Normalises `set` with `info` and puts it on `device`.
    pub fn new(set: &ImageSet, info: &DatasetInfo, device: &Device) -> Self {
        let [c, h, w] = set.shape;
        let n = set.len();
        let images = Tensor::<4>::from_data(TensorData::new(set.normalised(info), [n, c, h, w]), device);
        let labels: Vec<i64> = set.labels.iter().map(|&l| l as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
        TensorSplit { images, labels, len: n, classes: set.labels.clone() }
    }

    /// Number of batches of `batch_size` (the last one may be smaller).
    pub fn n_batches(&self, batch_size: usize) -> usize {
        self.len.div_ceil(batch_size)
    }

    /// Batches in file order (evaluation).
    pub fn ordered(&self, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
        (0..self.n_batches(batch_size)).map(move |i| {
            let range = i * batch_size..((i + 1) * batch_size).min(self.len);
            Batch {
                images: self.images.clone().slice(range.clone()),
                labels: self.labels.clone().slice(range),
            }
        })
    }

    /// Batches in an order shuffled by `rng` (training).
    pub fn shuffled<'a>(&'a self, batch_size: usize, rng: &mut ChaCha8Rng) -> impl Iterator<Item = Batch> + 'a {
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(rng);
        self.in_order(batch_size, &order)
    }

    /// Batches of the items `order` (indices into the split, repeats
    /// allowed), in that order (training with a [`Sampling`](super::sampling::Sampling)).
    pub fn in_order<'a>(&'a self, batch_size: usize, order: &[usize]) -> impl Iterator<Item = Batch> + use<'a> {
        let n = order.len();
        let device = self.images.device();
        let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let order = Tensor::<1, Int>::from_data(TensorData::new(order, [n]), &device);
        (0..n.div_ceil(batch_size)).map(move |i| {
            let range = i * batch_size..((i + 1) * batch_size).min(n);
            let idx = order.clone().slice(range);
            Batch {
                images: self.images.clone().select(0, idx.clone()),
                labels: self.labels.clone().select(0, idx),
            }
        })
    }
}

impl Batch {
    /// The batch with its images augmented by `augmenter`, one draw per
    /// item from `rng`.
    ///
    /// Done on the host: the draws are a per-item gather with reflection,
    /// cheap next to a training step (see `selmask bench train-epoch`), and
    /// the same code then serves every backend.
    pub fn augmented(self, augmenter: &mut Augmenter, rng: &mut ChaCha8Rng) -> Batch {
        if augmenter.config().is_identity() {
            return self;
        }
        let device = self.images.device();
        let dims = self.images.dims();
        let src: Vec<f32> = self.images.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 images");
        let mut dst = vec![0.0f32; src.len()];
        augmenter.apply(&src, &mut dst, rng);
        Batch { images: Tensor::<4>::from_data(TensorData::new(dst, dims), &device), labels: self.labels }
    }
}

/// The seeded generator of an epoch's order: one stream per (seed, epoch),
/// so a resumed or repeated run sees the same batches.
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    rng
}

/// The seeded generator of an epoch's augmentation draws: a stream apart
/// from [`epoch_rng`]'s, so turning augmentation on or off leaves the order
/// of the batches as it was.
pub fn augment_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((1u64 << 32) + epoch as u64);
    rng
}
