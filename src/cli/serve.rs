//! `selmask serve`: the storage server, its flags and the action.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::data::DatasetName;
use crate::error::{Error, Result};
use selmask_wire::artifact::read_artifact;
use selmask_wire::transfer::server::{ConnectionLimits, router, serve_with, ServerConfig, ServerState, shutdown_signal};
use selmask_wire::util::is_plain_name;
use super::{load_splits, seconds, within};

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

/// `selmask serve`: blocks until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.server_config()?;
    let limits = args.connection_limits()?;
    let mut state = ServerState::new(config);
    let name = match (&args.dataset, &args.store) {
        (_, Some(store)) => state.add_store(store).with_context(|| format!("opening store {}", store.display()))?,
        (Some(dataset), None) => {
            let name: DatasetName = *dataset;
            let dataset = load_splits(name, args.data_dir.as_deref(), &args.splits)?;
            state.add_dataset(&name.to_string(), dataset)?;
            name.to_string()
        }
        (None, None) => bail!("give --dataset or --store"),
    };
    for spec in &args.artifacts {
        let (id, dir) = parse_served_artifact(spec)?;
        let artifact = read_artifact(&dir).with_context(|| format!("reading artifact {}", dir.display()))?;
        crate::deploy::model::add_served_artifact(&mut state, &id, &artifact).with_context(|| format!("serving {}", dir.display()))?;
        eprintln!(
            "artifact '{id}': {} mask, Q {:.4}, {:.2}% of the bytes",
            artifact.manifest.mask.kind.as_str(),
            artifact.manifest.mask.q,
            100.0 * artifact.manifest.mask.bytes_fraction
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let local = listener.local_addr().context("local address")?;
        // The line scripts wait for: the URL, with the port actually bound.
        println!("serving {name} on http://{local} (Ctrl-C stops)");
        std::io::stdout().flush().ok();
        serve_with(listener, router(Arc::new(state)), limits, shutdown_signal()).await?;
        anyhow::Ok(())
    })
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
}
