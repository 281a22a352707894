//! `selmask export`: a checkpoint turned into an artifact directory; its
//! flags and the action.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::deploy::from_checkpoint::{export_run, ExportOptions, PointChoice};
use crate::error::{Error, Result};
use selmask_wire::artifact::StoredDtype;

/// `selmask export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The training run directory (`.../run_<i>`, holding summary.json).
    pub run_dir: PathBuf,
    /// Export the checkpoint of the Q interval holding this Q (see the run's summary table).
    #[arg(long, conflicts_with = "max_q", required_unless_present = "max_q")]
    pub q: Option<f64>,
    /// Export the most accurate checkpoint with Q at most this (a bandwidth budget).
    #[arg(long)]
    pub max_q: Option<f64>,
    /// The artifact directory to write (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing artifact at --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Stored dtype of the data on the server: u8 or f32 [default: the dataset's, u8 for image datasets].
    #[arg(long, value_parser = ["u8", "f32"])]
    pub dtype: Option<String>,
}

fn check_q(field: &'static str, q: f64) -> Result<f64> {
    if q.is_finite() && (0.0..=1.0).contains(&q) {
        Ok(q)
    } else {
        Err(Error::config(field, q, "must be within [0, 1]"))
    }
}

impl ExportArgs {
    /// The validated export.
    pub fn to_options(&self) -> Result<ExportOptions> {
        let choice = match (self.q, self.max_q) {
            (Some(q), None) => PointChoice::Interval(check_q("q", q)?),
            (None, Some(q)) => PointChoice::Budget(check_q("max-q", q)?),
            _ => return Err(Error::config("q", "-", "give exactly one of --q and --max-q")),
        };
        let dtype = match self.dtype.as_deref() {
            None => None,
            Some("u8") => Some(StoredDtype::U8),
            Some("f32") => Some(StoredDtype::F32),
            Some(other) => return Err(Error::config("dtype", other, "must be u8 or f32")),
        };
        Ok(ExportOptions {
            run_dir: self.run_dir.clone(),
            choice,
            out: self.out.clone(),
            overwrite: self.overwrite,
            dtype,
        })
    }
}

/// `selmask export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let opts = args.to_options()?;
    let m = export_run(&opts).with_context(|| format!("exporting {}", opts.run_dir.display()))?;
    println!(
        "artifact written to {} (format v{}): {} mask, {}, Q {:.4}, bytes fraction {:.4}, epoch {}, test accuracy {}",
        opts.out.display(),
        m.format_version,
        m.mask.kind.as_str(),
        m.mask.granularity.map_or("-".into(), |g| g.to_string()),
        m.mask.q,
        m.mask.bytes_fraction,
        m.epoch,
        m.accuracy.test.map_or("-".into(), |a| format!("{a:.4}"))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_limits_name_their_flag() {
        let q = ExportArgs {
            run_dir: "r".into(),
            q: Some(1.5),
            max_q: None,
            out: "o".into(),
            overwrite: false,
            dtype: None,
        };
        assert!(q.to_options().unwrap_err().to_string().contains("q"));
        let d = ExportArgs { q: Some(0.05), dtype: Some("f16".into()), ..q };
        assert!(d.to_options().unwrap_err().to_string().contains("dtype"));
    }
}
