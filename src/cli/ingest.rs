//! `selmask ingest`: a dataset written as a Zarr v3 store whose chunks
//! follow the mask's cells; its flags and the action.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::data::{DatasetName, ImageSet};
use crate::error::{Error, Result};
use selmask_wire::granularity::Granularity;
use selmask_wire::transfer::store::IngestConfig;
use super::load_splits;

/// `selmask ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// The dataset to write (mnist, fashion_mnist, synthetic, ...).
    #[arg(long)]
    pub dataset: DatasetName,
    /// Directory with the dataset's files [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Splits to write: test, train (repeat the flag for both).
    #[arg(long = "split", default_values_t = vec!["test".to_string()])]
    pub splits: Vec<String>,
    /// Align the chunks to this granularity's cells (any name of `selmask train --any-granularity`).
    #[arg(long, default_value = "pixel")]
    pub granularity: Granularity,
    /// Items per chunk along the item axis.
    #[arg(long, default_value_t = 256)]
    pub items_per_chunk: usize,
    /// Compress chunks with zstd at this level [default: raw chunks].
    #[arg(long)]
    pub zstd_level: Option<i32>,
    /// The Zarr v3 store directory to write (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing store at --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// Most items along a store chunk's item axis (chunks of 2^16 Fashion-MNIST
/// items are 51 MB; more only makes every read larger).
pub const MAX_ITEMS_PER_CHUNK: usize = 1 << 16;

impl IngestArgs {
    /// The validated ingest settings (checked before any data is read).
    pub fn config(&self) -> Result<IngestConfig> {
        if !(1..=MAX_ITEMS_PER_CHUNK).contains(&self.items_per_chunk) {
            return Err(Error::config("items-per-chunk", self.items_per_chunk, format!("must be within 1..={MAX_ITEMS_PER_CHUNK}")));
        }
        if let Some(level) = self.zstd_level
            && !(1..=22).contains(&level)
        {
            return Err(Error::config("zstd-level", level, "must be within 1..=22"));
        }
        for (k, split) in self.splits.iter().enumerate() {
            if split != "test" && split != "train" {
                return Err(Error::config("split", split, "must be test or train"));
            }
            if self.splits[..k].contains(split) {
                return Err(Error::config("split", split, "given twice"));
            }
        }
        Ok(IngestConfig { items_per_chunk: self.items_per_chunk, zstd_level: self.zstd_level, overwrite: self.overwrite })
    }
}

/// `selmask ingest`.
pub fn run(args: &IngestArgs) -> anyhow::Result<()> {
    let (name, granularity) = (args.dataset, args.granularity);
    // Every flag is checked before the dataset is read.
    let config = args.config()?;
    let splits = load_splits(name, args.data_dir.as_deref(), &args.splits)?;
    let refs: Vec<(&str, &ImageSet)> = splits.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let r = selmask_wire::transfer::store::ingest(&args.out, &name.to_string(), &refs, granularity, &config)
        .with_context(|| format!("writing store {}", args.out.display()))?;
    println!(
        "store written to {}: {} ({}), splits {}, chunks {:?} aligned to '{}' cells, {} of {} chunks written{}",
        args.out.display(),
        r.info.dataset,
        r.info.dtype.as_str(),
        r.info.splits.join(", "),
        r.info.chunk,
        granularity,
        r.chunks_written,
        r.chunks_total,
        r.info.zstd_level.map_or(String::new(), |l| format!(", zstd level {l}"))
    );
    Ok(())
}
