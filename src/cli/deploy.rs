//! Flags of `selmask export`, `serve` and `infer`, and their validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::data::DatasetName;
use crate::deploy::export::{ExportOptions, PointChoice};
use crate::error::{Error, Result};
use selmask_wire::artifact::StoredDtype;
use selmask_wire::granularity::Granularity;
use selmask_wire::transfer::bandwidth::Bandwidth;
use selmask_wire::transfer::client::ClientConfig;
use selmask_wire::util::is_plain_name;
use selmask_wire::transfer::server::{ConnectionLimits, ServerConfig};
use selmask_wire::transfer::store::IngestConfig;

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

/// `selmask serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The dataset to hold in memory and serve (mnist, fashion_mnist, synthetic, ...).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    pub dataset: Option<DatasetName>,
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
    /// Most items in one POST request (at most 1048576).
    #[arg(long, default_value_t = 1024)]
    pub max_batch: usize,
    /// Largest request body, bytes (64 to 1073741824); a larger Content-Length is answered 413 at once.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Requests handled at once; more wait their turn (at most 65536; /health never waits).
    #[arg(long, default_value_t = 64)]
    pub max_concurrency: usize,
    /// Per-request timeout, seconds (including time spent waiting for a slot; at most 86400).
    #[arg(long, default_value_t = 30.0)]
    pub timeout_s: f64,
    /// Longest wait for a request's head, seconds; also how long an idle connection stays open.
    #[arg(long, default_value_t = 10.0)]
    pub header_timeout_s: f64,
    /// Longest wait for a request's body, seconds (408 after it; the body is read before the request takes a slot).
    #[arg(long, default_value_t = 10.0)]
    pub body_timeout_s: f64,
    /// A response write blocked this many seconds (the client reads nothing) closes the connection.
    #[arg(long, default_value_t = 30.0)]
    pub write_stall_timeout_s: f64,
    /// Connections open at once (at most 100000); further ones are closed at once.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// zstd level for clients that send Accept-Encoding: zstd.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
}

/// Longest duration a flag accepts: a day. Longer is no timeout in
/// practice, and `Duration::from_secs_f64` panics past ~5.8e11 years.
pub const MAX_SECONDS: f64 = 86_400.0;

/// A duration flag: finite, positive, at most [`MAX_SECONDS`].
pub fn seconds(field: &'static str, s: f64) -> Result<Duration> {
    if s.is_finite() && s > 0.0 && s <= MAX_SECONDS {
        Ok(Duration::from_secs_f64(s))
    } else {
        // `{:?}` writes 1e300 as such, not as 301 digits.
        Err(Error::config(field, format!("{s:?}"), format!("must be a positive number of seconds, at most {MAX_SECONDS} (a day)")))
    }
}

/// A count or size flag within `range`.
pub fn within(field: &'static str, value: usize, range: std::ops::RangeInclusive<usize>) -> Result<usize> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::config(field, value, format!("must be within {}..={}", range.start(), range.end())))
    }
}

impl ServeArgs {
    /// The validated connection limits.
    pub fn connection_limits(&self) -> Result<ConnectionLimits> {
        Ok(ConnectionLimits {
            header_read_timeout: seconds("header-timeout-s", self.header_timeout_s)?,
            write_stall_timeout: seconds("write-stall-timeout-s", self.write_stall_timeout_s)?,
            // Each connection is a file descriptor.
            max_connections: within("max-connections", self.max_connections, 1..=100_000)?,
        })
    }

    /// The validated server limits.
    pub fn server_config(&self) -> Result<ServerConfig> {
        if !(1..=22).contains(&self.zstd_level) {
            return Err(Error::config("zstd-level", self.zstd_level, "must be within 1..=22"));
        }
        Ok(ServerConfig {
            // 2^20 indices are ~11 MB of JSON.
            max_batch: within("max-batch", self.max_batch, 1..=1 << 20)?,
            // 64 bytes hold `{"indices": [...]}` with a few indices.
            max_body_bytes: within("max-body-bytes", self.max_body_bytes, 64..=1 << 30)?,
            request_timeout: seconds("timeout-s", self.timeout_s)?,
            body_read_timeout: seconds("body-timeout-s", self.body_timeout_s)?,
            max_concurrency: within("max-concurrency", self.max_concurrency, 1..=65_536)?,
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
    /// Only the first N items of the split, 1 to 4294967295 (all of them if the split has fewer) [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Items per request (at most 1048576; the server's max_batch caps it too).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Requests in flight at once (at most 1024).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Per-request timeout, seconds (at most 86400).
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
    /// Ask the server for zstd-compressed payloads.
    #[arg(long)]
    pub zstd: bool,
    /// Simulate a link of this rate, e.g. 10MB/s, 100Mbit/s; at least 1kB/s [default: no limit].
    #[arg(long)]
    pub bandwidth: Option<Bandwidth>,
    /// Items per forward pass (at most 1048576); the trainer's evaluation batch (1000) gives bit-identical predictions.
    #[arg(long, default_value_t = 1000)]
    pub eval_batch_size: usize,
    /// Write each item's predicted class to this CSV file (index,label,prediction).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Slowest `--bandwidth` accepted, bytes per second: at 1 kB/s (8 kbit/s,
/// slower than a 1990s modem) Fashion-MNIST's test set at Q = 0.05 (10,000
/// items of 41 bytes) already takes 7 minutes; slower rates measure nothing
/// but waiting (and each request must still finish within `--timeout-s`).
pub const MIN_BANDWIDTH_BYTES_PER_S: f64 = 1e3;

impl InferArgs {
    /// The validated `--limit`: items are named by 32-bit indices, so at
    /// most 2^32 - 1 (more used to wrap around to 0).
    pub fn item_limit(&self) -> Result<Option<usize>> {
        self.limit
            .map(|n| within("limit", n, 1..=u32::MAX as usize))
            .transpose()
    }

    /// The validated client settings.
    pub fn client_config(&self) -> Result<ClientConfig> {
        within("eval-batch-size", self.eval_batch_size, 1..=1 << 20)?;
        let bandwidth = self.bandwidth;
        if let Some(b) = bandwidth
            && b.bytes_per_s() < MIN_BANDWIDTH_BYTES_PER_S
        {
            return Err(Error::config(
                "bandwidth",
                b,
                "below the floor of 1 kB/s: a transfer would take hours (give at least 1kB/s, or 8kbit/s)",
            ));
        }
        Ok(ClientConfig {
            base_url: self.server.trim_end_matches('/').to_string(),
            batch_size: within("batch-size", self.batch_size, 1..=1 << 20)?,
            concurrency: within("concurrency", self.concurrency, 1..=1024)?,
            zstd: self.zstd,
            bandwidth,
            timeout: seconds("timeout-s", self.timeout_s)?,
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
