//! Flags of `selmask export`, `serve` and `infer`, and their validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::deploy::export::{ExportOptions, PointChoice};
use crate::error::{Error, Result};
use crate::export::StoredDtype;
use crate::transfer::bandwidth::Bandwidth;
use crate::transfer::client::ClientConfig;
use crate::transfer::is_plain_name;
use crate::transfer::server::ServerConfig;

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
    #[arg(long)]
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

/// The id an artifact is served under: `--artifact-id`, else the artifact
/// directory's name.
pub fn artifact_id(dir: &Path, given: Option<&str>) -> Result<String> {
    let id = match given {
        Some(id) => id.to_string(),
        None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    if is_plain_name(&id) {
        Ok(id)
    } else {
        Err(Error::config(
            "artifact-id",
            &id,
            "must be a plain name (letters, digits, '.', '_', '-'); pass --artifact-id",
        ))
    }
}

/// An artifact to serve: `DIR` (served under the directory's name) or `ID=DIR`.
pub fn parse_served_artifact(s: &str) -> Result<(String, PathBuf)> {
    match s.split_once('=') {
        Some((id, dir)) if is_plain_name(id) => Ok((id.to_string(), PathBuf::from(dir))),
        Some((id, _)) => Err(Error::config("artifact", s, format!("'{id}' is not a plain name"))),
        None => {
            let dir = PathBuf::from(s);
            Ok((artifact_id(&dir, None)?, dir))
        }
    }
}

/// `selmask ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// The dataset to write (mnist, fashion_mnist, synthetic, ...).
    #[arg(long)]
    pub dataset: String,
    /// Directory with the dataset's files [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Splits to write: test, train (repeat the flag for both).
    #[arg(long = "split", default_values_t = vec!["test".to_string()])]
    pub splits: Vec<String>,
    /// Align the chunks to this granularity's cells (any name of `selmask train --any-granularity`).
    #[arg(long, default_value = "pixel")]
    pub granularity: String,
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

/// `selmask serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The dataset to hold in memory and serve (mnist, fashion_mnist, synthetic, ...).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    pub dataset: Option<String>,
    /// Serve from a Zarr store written by `selmask ingest` instead (reads only the chunks of selected cells).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Directory with the dataset's files [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Splits to serve: test, train (repeat the flag for both).
    #[arg(long = "split", default_values_t = vec!["test".to_string()])]
    pub splits: Vec<String>,
    /// An exported artifact to serve, as DIR (id = the directory's name) or ID=DIR; repeatable.
    #[arg(long = "artifact", required = true)]
    pub artifacts: Vec<String>,
    /// Address to listen on (port 0 picks a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Most items in one POST request.
    #[arg(long, default_value_t = 1024)]
    pub max_batch: usize,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Requests handled at once; more wait their turn.
    #[arg(long, default_value_t = 64)]
    pub max_concurrency: usize,
    /// Per-request timeout, seconds (including time spent waiting for a slot).
    #[arg(long, default_value_t = 30.0)]
    pub timeout_s: f64,
    /// zstd level for clients that send Accept-Encoding: zstd.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
}

impl ServeArgs {
    /// The validated connection limits.
    pub fn connection_limits(&self) -> Result<crate::transfer::server::ConnectionLimits> {
        Ok(crate::transfer::server::ConnectionLimits::default())
    }

    /// The validated server limits.
    pub fn server_config(&self) -> Result<ServerConfig> {
        if self.max_batch == 0 {
            return Err(Error::config("max-batch", 0, "must be at least 1"));
        }
        if self.max_concurrency == 0 {
            return Err(Error::config("max-concurrency", 0, "must be at least 1"));
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Err(Error::config("timeout-s", self.timeout_s, "must be a positive number of seconds"));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(Error::config("zstd-level", self.zstd_level, "must be within 1..=22"));
        }
        Ok(ServerConfig {
            max_batch: self.max_batch,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs_f64(self.timeout_s),
            max_concurrency: self.max_concurrency,
            zstd_level: self.zstd_level,
            ..ServerConfig::default()
        })
    }
}

/// `selmask infer`.
#[derive(Debug, Clone, Args)]
pub struct InferArgs {
    /// The storage server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub server: String,
    /// The exported artifact (the client's copy: network weights and mask).
    #[arg(long)]
    pub artifact: PathBuf,
    /// The id the server serves the artifact under [default: the artifact directory's name].
    #[arg(long)]
    pub artifact_id: Option<String>,
    /// The split to fetch and classify.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Only the first N items of the split [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Items per request.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Ask the server for zstd-compressed payloads.
    #[arg(long)]
    pub zstd: bool,
    /// Simulate a link of this rate, e.g. 10MB/s, 100Mbit/s [default: no limit].
    #[arg(long)]
    pub bandwidth: Option<String>,
    /// Items per forward pass; the trainer's evaluation batch (1000) gives bit-identical predictions.
    #[arg(long, default_value_t = 1000)]
    pub eval_batch_size: usize,
    /// Write each item's predicted class to this CSV file (index,label,prediction).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl InferArgs {
    /// The validated `--limit`.
    pub fn item_limit(&self) -> Result<Option<usize>> {
        Ok(self.limit)
    }

    /// The validated client settings.
    pub fn client_config(&self) -> Result<ClientConfig> {
        if self.batch_size == 0 {
            return Err(Error::config("batch-size", 0, "must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(Error::config("concurrency", 0, "must be at least 1"));
        }
        if self.eval_batch_size == 0 {
            return Err(Error::config("eval-batch-size", 0, "must be at least 1"));
        }
        let bandwidth = self.bandwidth.as_deref().map(str::parse::<Bandwidth>).transpose()?;
        Ok(ClientConfig {
            base_url: self.server.trim_end_matches('/').to_string(),
            batch_size: self.batch_size,
            concurrency: self.concurrency,
            zstd: self.zstd,
            bandwidth,
            progress: !self.json,
            ..ClientConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_artifacts_and_ids() {
        assert_eq!(parse_served_artifact("a/b/fm-q05").unwrap(), ("fm-q05".into(), PathBuf::from("a/b/fm-q05")));
        assert_eq!(parse_served_artifact("x=../dir").unwrap(), ("x".into(), PathBuf::from("../dir")));
        assert!(parse_served_artifact("../x=dir").unwrap_err().to_string().contains("plain name"));
        assert!(artifact_id(Path::new("/"), None).unwrap_err().to_string().contains("artifact-id"));
    }

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
