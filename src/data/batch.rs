//! A split held on the host as stored, and its batches.
//!
//! Items stay in their stored dtype (8-bit images take a quarter of the
//! memory of normalised floats, and xor versions are not held at all); a
//! batch is gathered on the host ([`HostBatch`]), optionally augmented, and
//! turned into device tensors by [`TensorSplit::to_device`], which makes
//! the xor versions of its items (if any) and normalises it.
//!
//! The order of the steps is the paper's: a plain batch is normalised and
//! then augmented (fills of zero-padded crops and Galaxy10's shift are the
//! channel mean); with versions, the 8-bit items are augmented first, then
//! JPEG-encoded and thumbnailed, then normalised, as the authors' transform
//! (flips and crops of the image, then `get_tensor_featuremaps_transform`).

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::Augmenter;
use super::versions::VersionsConfig;
use super::listed::FileSet;
use super::{DatasetInfo, ImageSet, Pixels, normalise_in_place};
use crate::error::Result;

/// A split on the host that yields device batches: images `[B, C', H, W]`
/// normalised (`C' = V·C` with `V` xor versions), labels `[B]`.
#[derive(Debug, Clone)]
pub struct TensorSplit {
    /// The items.
    items: Items,
    /// The dataset's normalisation (of one version).
    info: DatasetInfo,
    /// Versions made of every batch, if any, with the normalisation of
    /// their stack (the dataset's repeated per version).
    versions: Option<(VersionsConfig, DatasetInfo)>,
    device: Device,
    /// Number of items.
    pub len: usize,
    /// Class indices on the host (for class-balanced sampling).
    pub classes: Vec<u16>,
}

/// Where a split's items are.
#[derive(Debug, Clone)]
enum Items {
    /// In memory, as stored.
    Held(ImageSet),
    /// In image files, decoded per batch.
    Files(FileSet),
}

impl Items {
    fn shape(&self) -> [usize; 3] {
        match self {
            Items::Held(set) => set.shape,
            Items::Files(files) => files.shape(),
        }
    }

    /// The scale of a stored value (see [`Pixels::unit`]).
    fn unit(&self) -> f32 {
        match self {
            Items::Held(set) => set.pixels.unit(),
            Items::Files(_) => 1.0 / 255.0,
        }
    }

    /// The raw values of the items `idx`, `[N, C, H, W]`.
    fn values(&self, idx: &[usize]) -> Result<Vec<f32>> {
        match self {
            Items::Held(set) => {
                let item = set.item_len();
                let mut values = Vec::with_capacity(idx.len() * item);
                for &i in idx {
                    let range = i * item..(i + 1) * item;
                    match &set.pixels {
                        Pixels::U8(p) => values.extend(p[range].iter().map(|&v| v as f32)),
                        Pixels::F32(p) => values.extend_from_slice(&p[range]),
                    }
                }
                Ok(values)
            }
            Items::Files(files) => {
                let mut pixels = vec![0u8; idx.len() * files.shape().iter().product::<usize>()];
                files.read_items(idx, &mut pixels)?;
                Ok(pixels.into_iter().map(f32::from).collect())
            }
        }
    }
}

/// One batch on the device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, C, H, W]`.
    pub images: Tensor<4>,
    /// `[B]`.
    pub labels: Tensor<1, Int>,
}

/// One batch on the host, before it goes to the device: values `[B, C, H, W]`
/// (normalised for a plain split, raw 0-255 for a split with versions).
#[derive(Debug, Clone)]
pub struct HostBatch {
    /// Row-major values.
    pub values: Vec<f32>,
    /// One label per item.
    pub labels: Vec<u16>,
}

impl TensorSplit {
    /// A split of (a copy of) `set`, normalised with `info`, batches on
    /// `device`.
    pub fn new(set: &ImageSet, info: &DatasetInfo, device: &Device) -> Self {
        TensorSplit::from_set(set.clone(), info, device)
    }

    /// [`TensorSplit::new`] holding `set` itself.
    pub fn from_set(set: ImageSet, info: &DatasetInfo, device: &Device) -> Self {
        TensorSplit::of(Items::Held(set), info, device)
    }

    /// A split read from image files batch by batch (memory: one batch).
    pub fn from_files(files: FileSet, info: &DatasetInfo, device: &Device) -> Self {
        TensorSplit::of(Items::Files(files), info, device)
    }

    fn of(items: Items, info: &DatasetInfo, device: &Device) -> Self {
        let classes = match &items {
            Items::Held(set) => set.labels.clone(),
            Items::Files(files) => files.labels.clone(),
        };
        TensorSplit { len: classes.len(), classes, items, info: info.clone(), versions: None, device: device.clone() }
    }

    /// A split whose batches are the stacks of their items' `versions`
    /// (`[V·C, H, W]`, each version normalised with `info`), made per batch
    /// after augmentation. Refuses what versions cannot be made of (see
    /// [`VersionsConfig::check_set`]).
    /// Without `versions`, [`TensorSplit::from_set`].
    pub fn with_versions(set: ImageSet, info: &DatasetInfo, versions: Option<&VersionsConfig>, device: &Device) -> Result<Self> {
        if let Some(v) = versions {
            v.check_set(&set)?;
        }
        Ok(TensorSplit::from_set(set, info, device).versioned(versions))
    }

    /// [`TensorSplit::with_versions`] of image files (8-bit, so only the
    /// levels and boxes are checked).
    pub fn files_with_versions(files: FileSet, info: &DatasetInfo, versions: Option<&VersionsConfig>, device: &Device) -> Result<Self> {
        if let Some(v) = versions {
            v.validate(files.shape())?;
        }
        Ok(TensorSplit::from_files(files, info, device).versioned(versions))
    }

    fn versioned(mut self, versions: Option<&VersionsConfig>) -> Self {
        self.versions = versions.filter(|v| !v.is_empty()).map(|v| (v.clone(), v.stacked_info(&self.info)));
        self
    }

    /// The shape of one batch item `[C', H, W]` (`C' = V·C` with versions).
    pub fn shape(&self) -> [usize; 3] {
        let [c, h, w] = self.items.shape();
        [self.versions.as_ref().map_or(1, |(v, _)| v.n_versions()) * c, h, w]
    }

    /// The device batches go to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of batches of `batch_size` (the last one may be smaller).
    pub fn n_batches(&self, batch_size: usize) -> usize {
        self.len.div_ceil(batch_size)
    }

    /// Batches in file order (evaluation).
    pub fn ordered(&self, batch_size: usize) -> impl Iterator<Item = Result<Batch>> + '_ {
        let order: Vec<usize> = (0..self.len).collect();
        self.in_order(batch_size, &order)
    }

    /// Batches in an order shuffled by `rng` (training).
    pub fn shuffled<'a>(&'a self, batch_size: usize, rng: &mut ChaCha8Rng) -> impl Iterator<Item = Result<Batch>> + 'a {
        self.in_order(batch_size, &self.shuffled_order(rng))
    }

    /// Every item once, in an order shuffled by `rng`.
    pub fn shuffled_order(&self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(rng);
        order
    }

    /// Device batches of the items `order` (indices into the split, repeats
    /// allowed), in that order, not augmented.
    pub fn in_order<'a>(&'a self, batch_size: usize, order: &[usize]) -> impl Iterator<Item = Result<Batch>> + use<'a> {
        self.host_batches(batch_size, order).map(move |b| Ok(self.to_device(b?)))
    }

    /// Host batches of the items `order`, in that order: augment them, then
    /// [`TensorSplit::to_device`] (training with a [`Sampling`](super::sampling::Sampling)).
    /// An item read from a file that no longer decodes is an error naming it.
    pub fn host_batches<'a>(&'a self, batch_size: usize, order: &[usize]) -> impl Iterator<Item = Result<HostBatch>> + use<'a> {
        let order = order.to_vec();
        let n = order.len();
        (0..n.div_ceil(batch_size.max(1))).map(move |i| {
            let idx = &order[i * batch_size..((i + 1) * batch_size).min(n)];
            self.gather(idx)
        })
    }

    /// The items `idx`, normalised unless versions are still to be made.
    fn gather(&self, idx: &[usize]) -> Result<HostBatch> {
        let mut values = self.items.values(idx)?;
        if self.versions.is_none() {
            normalise_in_place(&mut values, self.items.shape(), self.items.unit(), &self.info);
        }
        Ok(HostBatch { values, labels: idx.iter().map(|&i| self.classes[i]).collect() })
    }

    /// The batch on the device: with versions, its items' stacks
    /// (augmented values are whole pixels: flips and crops move them,
    /// zero fills are black), normalised.
    pub fn to_device(&self, batch: HostBatch) -> Batch {
        let n = batch.labels.len();
        let [c, h, w] = self.shape();
        let values = match &self.versions {
            None => batch.values,
            Some((v, stacked_info)) => {
                let pixels: Vec<u8> = batch.values.iter().map(|&x| x.round().clamp(0.0, 255.0) as u8).collect();
                // The levels, boxes and pixel type were checked when the
                // split was made, so encoding cannot fail on bad input.
                let stacked = v.stack_items(&pixels, self.items.shape()).expect("versions of checked 8-bit items");
                let mut values: Vec<f32> = stacked.iter().map(|&x| x as f32).collect();
                normalise_in_place(&mut values, [c, h, w], 1.0 / 255.0, stacked_info);
                values
            }
        };
        let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
        Batch {
            images: Tensor::<4>::from_data(TensorData::new(values, [n, c, h, w]), &self.device),
            labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &self.device),
        }
    }
}

impl HostBatch {
    /// Augments the batch in place with `augmenter` (built for the split's
    /// stored item shape), one draw per item from `rng`.
    ///
    /// Done on the host: the draws are a per-item gather with reflection,
    /// cheap next to a training step (see `selmask bench train-epoch`), and
    /// the same code then serves every backend.
    pub fn augment(&mut self, augmenter: &mut Augmenter, rng: &mut ChaCha8Rng) {
        if augmenter.config().is_identity() {
            return;
        }
        let mut out = vec![0.0f32; self.values.len()];
        augmenter.apply(&self.values, &mut out, rng);
        self.values = out;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::AugmentConfig;
    use crate::data::{DatasetName, DatasetInfo, ImageSet, Pixels};

    fn info(c: usize, hw: usize) -> DatasetInfo {
        DatasetInfo {
            name: DatasetName::Cifar10,
            shape: [c, hw, hw],
            n_classes: 3,
            mean: (0..c).map(|i| 0.1 * (i + 1) as f32).collect(),
            std: (0..c).map(|i| 0.2 * (i + 1) as f32).collect(),
        }
    }

    /// `n` seeded 8-bit items `[c, hw, hw]` with labels `i % 3`.
    fn items(n: usize, c: usize, hw: usize) -> ImageSet {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let pixels: Vec<u8> = (0..n * c * hw * hw).map(|_| rand::RngExt::random(&mut rng)).collect();
        ImageSet { shape: [c, hw, hw], pixels: Pixels::U8(pixels), labels: (0..n).map(|i| (i % 3) as u16).collect() }
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn batches_are_the_normalised_items_in_the_given_order() {
        let (set, info) = (items(5, 3, 4), info(3, 4));
        let split = TensorSplit::new(&set, &info, &Device::flex());
        assert_eq!((split.len, split.shape(), split.n_batches(2)), (5, [3, 4, 4], 3));
        let order = [4, 0, 4, 2];
        let batches: Vec<Batch> = split.in_order(3, &order).map(Result::unwrap).collect();
        assert_eq!(batches.iter().map(|b| b.images.dims()[0]).collect::<Vec<_>>(), [3, 1]);
        let expected = set.subset(&order).normalised(&info);
        let got: Vec<f32> = batches.iter().flat_map(|b| values(b.images.clone())).collect();
        assert_eq!(got, expected);
        let labels: Vec<i64> = batches.iter().flat_map(|b| b.labels.clone().into_data().convert::<i64>().try_into_vec::<i64>().unwrap()).collect();
        assert_eq!(labels, [1, 0, 1, 2]);
        // File order covers every item once.
        let all: Vec<f32> = split.ordered(2).flat_map(|b| values(b.unwrap().images)).collect();
        assert_eq!(all, set.normalised(&info));
    }

    #[test]
    fn versions_are_made_of_the_augmented_items_then_normalised() {
        let (set, info) = (items(3, 3, 16), info(3, 16));
        let versions = VersionsConfig { quality_levels: vec![50, 10], thumbs: vec![[8, 8]] };
        let split = TensorSplit::with_versions(set.clone(), &info, Some(&versions), &Device::flex()).unwrap();
        assert_eq!(split.shape(), [18, 16, 16]);
        let config = AugmentConfig { hflip: true, vflip: true, crop_pad: 3, ..AugmentConfig::NONE };
        let mut augmenter = Augmenter::new(config, set.shape).unwrap();
        let mut host = split.host_batches(3, &[2, 0, 1]).next().unwrap().unwrap();
        host.augment(&mut augmenter, &mut ChaCha8Rng::seed_from_u64(11));
        let got = values(split.to_device(host).images);

        // By hand: the same draws on the raw items, then versions, then
        // the dataset's normalisation repeated per version.
        let Pixels::U8(raw) = &set.subset(&[2, 0, 1]).pixels else { unreachable!() };
        let raw: Vec<f32> = raw.iter().map(|&v| v as f32).collect();
        let mut moved = vec![0.0; raw.len()];
        augmenter.apply(&raw, &mut moved, &mut ChaCha8Rng::seed_from_u64(11));
        assert_ne!(moved, raw, "the draws move pixels");
        let pixels: Vec<u8> = moved.iter().map(|&v| v as u8).collect();
        let stacked = ImageSet { shape: [18, 16, 16], pixels: Pixels::U8(versions.stack_items(&pixels, set.shape).unwrap()), labels: vec![0; 3] };
        assert_eq!(got, stacked.normalised(&versions.stacked_info(&info)));
    }

    #[test]
    fn versions_of_float_data_are_refused() {
        let set = ImageSet { shape: [1, 2, 2], pixels: Pixels::F32(vec![0.5; 4]), labels: vec![0] };
        let versions = VersionsConfig { quality_levels: vec![50], thumbs: vec![] };
        let err = TensorSplit::with_versions(set, &info(1, 2), Some(&versions), &Device::flex()).unwrap_err();
        assert!(err.to_string().contains("stored as floats"), "{err}");
    }
}
