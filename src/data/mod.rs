//! Datasets: loading, splitting, synthetic data and batching.
//!
//! Images are kept in their stored dtype (u8 for every dataset so far) until
//! they are turned into one normalised tensor per split, once, before
//! training: batches are then views into that tensor, never per-batch copies
//! of host memory.

pub mod augment;
pub mod batch;
pub mod cifar10;
pub mod files;
pub mod galaxy10;
pub mod idx;
pub mod listed;
pub mod locate;
pub mod mat5;
pub mod mnist;
pub mod remote;
pub mod sampling;
pub mod ships;
pub mod split;
pub mod svhn;
pub mod synthetic;
pub mod versions;


use std::path::Path;

use crate::error::{Error, Result};

// What a dataset is (name, shape and normalisation, stored values) lives in
// the Burn-free bottom crate, so that the artifact format, the server and
// the client share it; the loaders here produce it.
pub use selmask_wire::dataset::{DatasetInfo, DatasetName, ImageSet, Pixels, normalise_in_place};

/// A dataset's train and test sets.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Shape, classes, normalisation.
    pub info: DatasetInfo,
    /// The training set (validation is split from it).
    pub train: ImageSet,
    /// The test set, only ever reported on (unless `--select-on test`).
    pub test: ImageSet,
}

/// A dataset as training reads it: in memory, or (ships with `--stream`)
/// listed as files and decoded batch by batch.
#[derive(Debug, Clone)]
pub enum TrainingData {
    /// Every item in memory.
    Held(Dataset),
    /// Image files, read per batch.
    Listed(listed::ListedDataset),
}

impl TrainingData {
    /// Shape, classes, normalisation.
    pub fn info(&self) -> &DatasetInfo {
        match self {
            TrainingData::Held(d) => &d.info,
            TrainingData::Listed(d) => &d.info,
        }
    }
}

/// [`load_with`], or with `stream` only the list of the ships' image files
/// ([`ships::list`]; the other datasets are single files, read whole).
pub fn load_for_training(name: DatasetName, data_dir: Option<&Path>, max_per_class: Option<usize>, stream: bool) -> Result<TrainingData> {
    if !stream {
        return Ok(TrainingData::Held(load_with(name, data_dir, max_per_class)?));
    }
    if name != DatasetName::Ships {
        return Err(Error::config(
            "stream",
            "set",
            format!("only applies to ships (image folders read per batch), not {name}, which is read whole from its files"),
        ));
    }
    check_max_per_class(name, max_per_class)?;
    let options = ships::ShipsOptions { max_per_class, ..ships::ShipsOptions::default() };
    Ok(TrainingData::Listed(ships::list(&locate::dataset_root(name, data_dir)?, options)?))
}

/// `--max-per-class` applies to ships only, and keeps at least one image.
fn check_max_per_class(name: DatasetName, max_per_class: Option<usize>) -> Result<()> {
    if let Some(cap) = max_per_class {
        if name != DatasetName::Ships {
            return Err(Error::config("max-per-class", cap, format!("only applies to ships, not {name}")));
        }
        if cap == 0 {
            return Err(Error::config("max-per-class", 0, "must be at least 1"));
        }
    }
    Ok(())
}

/// Loads a dataset by name; `data_dir` is only used by file-backed datasets.
pub fn load(name: DatasetName, data_dir: Option<&Path>) -> Result<Dataset> {
    load_with(name, data_dir, None)
}

/// [`load`], reading at most `max_per_class` images per class and split
/// (ships only: the other datasets are single files read whole).
pub fn load_with(name: DatasetName, data_dir: Option<&Path>, max_per_class: Option<usize>) -> Result<Dataset> {
    check_max_per_class(name, max_per_class)?;
    match name {
        DatasetName::Mnist | DatasetName::FashionMnist => {
            let dir = locate::find_data_dir(name, data_dir)?;
            mnist::load(name, &dir)
        }
        DatasetName::Cifar10 => cifar10::load(&locate::dataset_root(name, data_dir)?),
        DatasetName::Svhn => svhn::load(&locate::dataset_root(name, data_dir)?),
        DatasetName::Galaxy10 => galaxy10::load(&locate::dataset_root(name, data_dir)?),
        DatasetName::Remote => remote::load(&locate::dataset_root(name, data_dir)?, remote::SPLIT_SEED),
        DatasetName::Ships => ships::load(
            &locate::dataset_root(name, data_dir)?,
            ships::ShipsOptions { max_per_class, ..ships::ShipsOptions::default() },
        ),
        // The synthetic set is fixed (its own seed), so that repeats differ
        // only in their training seed, as with real data.
        DatasetName::Synthetic => Ok(synthetic::SyntheticConfig::default().generate().dataset),
    }
}
