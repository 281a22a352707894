//! The TensorBoard log of a training run (`--tensorboard`, on by default):
//! an event file in the run directory, as PyTorch's `SummaryWriter(log_dir)`
//! writes, so that `tensorboard --logdir runs/` shows every run.
//!
//! Tags (TensorBoard groups them by the part before the first `/`):
//!
//! - every `--log-iter` iterations, step = iterations since the run began:
//!   `train/loss`, `train/task_loss`, `train/q` (the values of that batch);
//! - every epoch, step = epoch, the scalars of `metrics.jsonl`:
//!   `eval/q`, `eval/bytes_fraction`, `eval/lambda`, `eval/tau`,
//!   `eval/val_loss`, `eval/val_acc` (with a validation split),
//!   `eval/test_loss`, `eval/test_acc`, `eval/q_p10`, `eval/q_p50`,
//!   `eval/q_p90` (dynamic masks), `eval/versions/<mask>/<version>` (xor
//!   selection), `train_epoch/loss`, `train_epoch/task_loss`,
//!   `train_epoch/q`, `time/epoch_seconds`, `time/train_seconds`;
//! - every epoch, images of the input's size: `mask/keep`, the share of each
//!   input pixel's values sent (static masks and the baselines: the hard
//!   mask; dynamic masks: the mean over the first evaluation batch of the
//!   selection split; xor selection: the mean transfer weight, so cheaper
//!   versions show partly sent) and, for static masks,
//!   `mask/keep_prob`, σ(logits/τ), which moves before cells flip.
//!
//! A resumed run drops from the earlier files whatever was logged after the
//! state it resumes from (it logs those steps again) and writes a new file;
//! a run started afresh removes the run directory's event files, as it
//! truncates `metrics.jsonl`.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::metrics::EpochMetrics;
use super::step::StepLosses;
use super::run::PreparedData;
use super::{SelectOn, TrainConfig};
use crate::data::batch::TensorSplit;
use crate::error::{Error, Result};
use crate::masks::Mask;
use crate::masks::picture::mask_png;
use crate::tensorboard::{EventWriter, SummaryValue, event_files, keep_records};

/// Tags of this prefix count iterations; every other tag counts epochs.
pub const ITERATION_PREFIX: &str = "train/";

/// Writes one run's TensorBoard log.
#[derive(Debug)]
pub struct RunBoard {
    writer: EventWriter,
    /// Batches per epoch: iteration steps go on across epochs.
    n_batches: usize,
}

impl RunBoard {
    /// Opens the log of `run_dir` for a run that continues after epoch
    /// `after_epoch` (0: a run starting afresh) with `n_batches` batches per
    /// epoch: earlier event files are cleaned up (see the module docs), also
    /// when this run does not log (they describe training it is about to
    /// redo), and when `enabled` a new one is created.
    pub fn open(run_dir: &Path, after_epoch: usize, n_batches: usize, enabled: bool) -> Result<Option<Self>> {
        let last_iteration = (after_epoch * n_batches) as i64;
        for file in event_files(run_dir)? {
            if after_epoch == 0 {
                std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
            } else {
                let keep = |tag: &str, step: i64| {
                    if tag.starts_with(ITERATION_PREFIX) { step <= last_iteration } else { step <= after_epoch as i64 }
                };
                keep_records(&file, &keep)?;
            }
        }
        if !enabled {
            return Ok(None);
        }
        Ok(Some(RunBoard { writer: EventWriter::create(run_dir)?, n_batches }))
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// Logs the losses of batch `batch` (0-based) of `epoch` (1-based).
    pub fn iteration(&mut self, epoch: usize, batch: usize, losses: &StepLosses) -> Result<()> {
        let step = ((epoch - 1) * self.n_batches + batch + 1) as i64;
        self.writer.scalars(
            step,
            &[("train/loss", losses.loss as f64), ("train/task_loss", losses.task as f64), ("train/q", losses.q as f64)],
        )
    }

    /// Logs epoch `m.epoch`: its metrics and the images of `mask` (the
    /// evaluated, non-autodiff copy; absent for a plain network), then
    /// flushes.
    pub fn epoch(&mut self, m: &EpochMetrics, mask: Option<&Mask>, data: &PreparedData, config: &TrainConfig) -> Result<()> {
        let step = m.epoch as i64;
        let mut values = vec![
            SummaryValue::scalar("eval/q", m.q),
            SummaryValue::scalar("eval/bytes_fraction", m.bytes_fraction),
            SummaryValue::scalar("eval/lambda", m.lambda),
            SummaryValue::scalar("eval/tau", m.tau),
            SummaryValue::scalar("eval/test_loss", m.test_loss),
            SummaryValue::scalar("eval/test_acc", m.test_accuracy),
        ];
        if let (Some(loss), Some(acc)) = (m.val_loss, m.val_accuracy) {
            values.push(SummaryValue::scalar("eval/val_loss", loss));
            values.push(SummaryValue::scalar("eval/val_acc", acc));
        }
        if let Some([p10, p50, p90]) = m.q_percentiles {
            values.extend([("eval/q_p10", p10), ("eval/q_p50", p50), ("eval/q_p90", p90)].map(|(t, v)| SummaryValue::scalar(t, v)));
        }
        for v in &m.version_fractions {
            for (version, f) in v.versions.iter().zip(&v.fractions) {
                values.push(SummaryValue::scalar(format!("eval/versions/{}/{version}", v.mask), *f));
            }
        }
        values.extend(
            [
                ("train_epoch/loss", m.train_loss),
                ("train_epoch/task_loss", m.task_loss),
                ("train_epoch/q", m.train_q),
                ("time/epoch_seconds", m.seconds),
                ("time/train_seconds", m.train_seconds),
            ]
            .map(|(t, v)| SummaryValue::scalar(t, v)),
        );
        self.writer.write(&crate::tensorboard::Event::summary(step, values))?;

        if let Some(mask) = mask {
            let split = match (config.select_on, &data.val) {
                (SelectOn::Val, Some(v)) => v,
                _ => &data.test,
            };
            let mut images = Vec::new();
            if let Some((shape, keep)) = keep_map(mask, m.tau, split, config.eval_batch_size)? {
                images.push(("mask/keep", shape, keep));
            }
            if let Mask::Static(s) = mask {
                let prob = sigmoid(s.logits.val().detach().div_scalar(m.tau)).into_data().convert::<f32>();
                let prob: Vec<f32> = prob.try_into_vec::<f32>().expect("f32 probabilities");
                images.push(("mask/keep_prob", s.layout().input, s.layout().upsample(&prob)));
            }
            let images = images
                .into_iter()
                .map(|(tag, shape @ [_, h, w], values)| Ok(SummaryValue::image(tag, mask_png(shape, &values)?, w as u32, h as u32, 3)))
                .collect::<Result<Vec<_>>>()?;
            if !images.is_empty() {
                self.writer.write(&crate::tensorboard::Event::summary(step, images))?;
            }
        }
        self.writer.flush()
    }
}

/// The share of each input value that `mask` sends, `[C, H, W]` with its
/// shape: the hard static mask, or for masks that depend on the input the
/// mean over the first batch of `split` (none for an empty split).
fn keep_map(mask: &Mask, tau: f64, split: &TensorSplit, batch_size: usize) -> Result<Option<([usize; 3], Vec<f32>)>> {
    // Read only when needed: for listed datasets a batch decodes images.
    let first = || split.ordered(batch_size).next().transpose();
    let mean_over_items = |t: Tensor<4>| {
        let [_, c, h, w] = t.dims();
        let values: Vec<f32> = t.mean_dim(0).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 mask");
        ([c, h, w], values)
    };
    Ok(match mask {
        Mask::Static(m) => Some((m.layout().input, m.layout().upsample(&m.hard_values(tau)))),
        Mask::Dynamic(m) => first()?.map(|b| {
            let (_, cells) = mean_over_items(m.hard(b.images, tau));
            (m.layout().input, m.layout().upsample(&cells))
        }),
        Mask::Xor(p) => first()?.map(|b| mean_over_items(p.sent(b.images, tau).1)),
    })
}
