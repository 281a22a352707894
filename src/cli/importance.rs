//! `selmask importance`: random-forest importance maps for the given
//! baseline, its flags and the action.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::data;
use crate::data::DatasetName;

/// `selmask importance`.
#[derive(Debug, Clone, Args)]
pub struct ImportanceArgs {
    /// The dataset (its training split is used).
    #[arg(long)]
    pub dataset: DatasetName,
    /// Directory with the dataset's files [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The NPY file to write (float32, shape [C, H, W]).
    #[arg(long)]
    pub out: PathBuf,
    /// Trees in the forest.
    #[arg(long, default_value_t = 30)]
    pub trees: usize,
    /// Depth limit of each tree.
    #[arg(long, default_value_t = 12)]
    pub max_depth: usize,
    /// Training items used, evenly spaced (0: all).
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// Fraction of the input values each tree may split on.
    #[arg(long, default_value_t = 0.5)]
    pub feature_proportion: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `selmask importance`.
pub fn run(args: &ImportanceArgs) -> anyhow::Result<()> {
    use crate::masks::forest::{ForestConfig, forest_importance};
    let name = args.dataset;
    let dataset = data::load(name, args.data_dir.as_deref()).with_context(|| format!("loading dataset {name}"))?;
    let config = ForestConfig {
        trees: args.trees,
        max_depth: args.max_depth,
        samples: args.samples,
        feature_proportion: args.feature_proportion,
        seed: args.seed,
    };
    let start = std::time::Instant::now();
    let imp = forest_importance(&dataset.train, &config)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::masks::importance::write_npy(&args.out, &dataset.info.shape, &imp)?;
    let mut order: Vec<usize> = (0..imp.len()).collect();
    order.sort_by(|&a, &b| imp[b].total_cmp(&imp[a]));
    println!(
        "importance of {} input values ({} trees, depth <= {}, {} items) written to {} in {:.1} s; most important values: {:?}",
        imp.len(),
        config.trees,
        config.max_depth,
        if config.samples == 0 { dataset.train.len() } else { config.samples.min(dataset.train.len()) },
        args.out.display(),
        start.elapsed().as_secs_f64(),
        &order[..order.len().min(8)]
    );
    Ok(())
}
