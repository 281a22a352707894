//! `selmask export`: one checkpoint of a training run to an artifact.
//!
//! The checkpoint is a point of the run's accuracy-versus-Q curve
//! (`summary.json`), chosen by its Q interval (`--q`) or as the best one
//! within a budget (`--max-q`). The artifact ([`selmask_wire::artifact`]) holds the
//! hard mask as trained, the network's weights and, for dynamic masks, the
//! mask model the server runs.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use super::ModelDescription;
use crate::models::weights::module_tensors;
use crate::data::DatasetName;
use crate::error::{Error, Result};
use selmask_wire::artifact::{Accuracies, ArtifactSpec, DatasetSection, Manifest, MaskSpec, SourceInfo, StoredDtype, write_artifact};
use crate::masks::static_mask::upscale_factor;
use crate::masks::{Mask, MaskConfig};
use crate::training::checkpoint::SelectionModel;
use crate::training::metrics::CurvePoint;
use crate::training::run::RunSummary;
use selmask_wire::util::read_json;

/// Which checkpoint of a run to export.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointChoice {
    /// The checkpoint of the Q interval holding this Q.
    Interval(f64),
    /// The most accurate checkpoint with Q at most this.
    Budget(f64),
}

/// What `selmask export` does.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The training run (`.../run_<i>`, holding `summary.json`).
    pub run_dir: PathBuf,
    /// Which checkpoint.
    pub choice: PointChoice,
    /// The artifact directory to write.
    pub out: PathBuf,
    /// Replace an existing artifact.
    pub overwrite: bool,
    /// How the data is stored on the server [default: the dataset's own].
    pub dtype: Option<StoredDtype>,
}

/// The point of `summary` that `choice` names.
pub fn choose_point(summary: &RunSummary, choice: PointChoice, run_dir: &Path) -> Result<CurvePoint> {
    let intervals = || {
        summary
            .curve
            .points
            .iter()
            .map(|p| format!("[{:.3}, {:.3})", p.interval[0], p.interval[1]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match choice {
        // The same bucketing as training (Q = 1 joins the last interval).
        PointChoice::Interval(q) => {
            let interval = summary.curve.interval(summary.curve.bucket(q));
            summary.curve.points.iter().find(|p| p.interval == interval)
        }
        PointChoice::Budget(max_q) => summary.curve.best_within(max_q),
    };
    found.cloned().ok_or_else(|| {
        let (field, value) = match choice {
            PointChoice::Interval(q) => ("q", q),
            PointChoice::Budget(q) => ("max-q", q),
        };
        Error::config(
            field,
            value,
            format!("{} has no checkpoint there; its Q intervals are {}", run_dir.display(), intervals()),
        )
    })
}

/// Checks that the checkpoint file holds the curve point `summary.json`
/// records for it (epoch, interval, Q and accuracies): the manifest is
/// written from those records, so a file holding another epoch's network
/// would otherwise ship under this epoch's numbers.
fn check_agrees(recorded: &CurvePoint, held: &CurvePoint, checkpoint: &Path) -> Result<()> {
    let same = recorded.epoch == held.epoch
        && recorded.interval == held.interval
        && recorded.q == held.q
        && recorded.test_accuracy == held.test_accuracy
        && recorded.selection_accuracy == held.selection_accuracy
        && recorded.val_accuracy == held.val_accuracy;
    if same {
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: checkpoint.to_path_buf(),
        reason: format!(
            "it holds epoch {} (q {}, test accuracy {}) but summary.json records epoch {} (q {}, test accuracy {}) for it; \
             the run's records and checkpoints disagree, so nothing was exported",
            held.epoch, held.q, held.test_accuracy, recorded.epoch, recorded.q, recorded.test_accuracy
        ),
    })
}

/// The stored dtype of a dataset's values, where it is fixed.
pub fn dataset_dtype(name: DatasetName) -> Option<StoredDtype> {
    match name {
        // The paper's remote sensing arrays may be stored as u8 or f32.
        DatasetName::Remote => None,
        _ => Some(StoredDtype::U8),
    }
}

/// Exports the chosen checkpoint of `opts.run_dir`; returns the manifest.
pub fn export_run(opts: &ExportOptions) -> Result<Manifest> {
    let summary: RunSummary = read_json(&opts.run_dir.join("summary.json"))?;
    let point = choose_point(&summary, opts.choice, &opts.run_dir)?;
    let checkpoint = opts.run_dir.join(&point.checkpoint);
    let model = SelectionModel::load(&checkpoint, &Device::flex())?;
    let meta = &model.meta;
    check_agrees(&point, &meta.point, &checkpoint)?;
    if matches!(meta.mask, Some(MaskConfig::Xor(_))) {
        return Err(Error::spec("mask", "xor (version) masks cannot be exported yet"));
    }
    let dtype = opts.dtype.or_else(|| dataset_dtype(meta.dataset.name)).ok_or_else(|| {
        Error::config("dtype", "-", format!("dataset {} is stored as u8 or f32: say which", meta.dataset.name))
    })?;
    let (mask, upscale) = match (&model.mask, &meta.mask) {
        (Some(Mask::Static(m)), Some(MaskConfig::Static(cfg))) => {
            let hard = m.hard_mask(meta.tau);
            // The same factor the trainer's hard mask applies.
            let upscale = if cfg.input_drop_upscaling { upscale_factor(hard.q, hard.values.len()) } else { 1.0 };
            (MaskSpec::Static { granularity: cfg.granularity, cells: hard.values }, upscale)
        }
        (Some(Mask::Dynamic(m)), Some(MaskConfig::Dynamic(cfg))) => (
            MaskSpec::Dynamic {
                granularity: cfg.granularity,
                q: point.q,
                bytes_fraction: point.bytes_fraction,
                mask_model: module_tensors(m),
            },
            // Per input (1 / its own Q) when on: the client's mask module
            // applies it; the manifest records the static factor only.
            1.0,
        ),
        (None, _) => (MaskSpec::None, 1.0),
        _ => {
            return Err(Error::Checkpoint {
                path: checkpoint,
                reason: "its mask does not match its mask settings".into(),
            });
        }
    };
    let description = ModelDescription { network: meta.network.clone(), mask: meta.mask.clone(), tau: meta.tau };
    let spec = ArtifactSpec {
        created_by: format!("selmask {}", env!("CARGO_PKG_VERSION")),
        dataset: DatasetSection::from_info(&meta.dataset, dtype),
        mask,
        input_drop_upscaling: upscale,
        accuracy: Accuracies { val: point.val_accuracy, test: Some(point.test_accuracy) },
        epoch: point.epoch,
        source: SourceInfo {
            run_dir: opts.run_dir.display().to_string(),
            checkpoint: point.checkpoint.display().to_string(),
        },
        network: serde_json::to_value(&description).map_err(|e| Error::spec("network", e.to_string()))?,
        weights: module_tensors(&model.net),
    };
    Ok(write_artifact(&opts.out, &spec, opts.overwrite)?)
}
