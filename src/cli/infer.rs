//! `selmask infer`: the client, its flags and the action.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::deploy::model::ClientModel;
use crate::error::{Error, Result};
use selmask_wire::artifact::read_artifact;
use selmask_wire::transfer::bandwidth::Bandwidth;
use selmask_wire::transfer::client::{ClientConfig, fetch_items_blocking, Items};
use super::{seconds, within};

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

/// What `selmask infer` measured.
#[derive(Debug, Serialize)]
pub struct InferReport {
    /// Items classified.
    pub items: usize,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// The trainer's test accuracy of the exported checkpoint.
    pub trainer_test_accuracy: Option<f64>,
    /// Q of the artifact (cell fraction).
    pub q: f64,
    /// Fraction of input values the mask selects.
    pub bytes_fraction: f64,
    /// Response body bytes received (after compression).
    pub bytes_received: u64,
    /// Payload bytes after decompression.
    pub payload_bytes: u64,
    /// Estimated HTTP header bytes of the responses (not in bytes_received).
    pub http_header_bytes: u64,
    /// Bytes the server read from its store for these items (store-backed splits).
    pub storage_bytes_read: Option<u64>,
    /// Bytes a full transfer of the same items would need.
    pub bytes_full: u64,
    /// bytes_received / bytes_full.
    pub ratio: f64,
    /// Requests made.
    pub requests: usize,
    /// Items per second, fetch and inference together.
    pub items_per_second: f64,
    /// Seconds spent fetching.
    pub fetch_seconds: f64,
    /// Seconds spent in the network.
    pub infer_seconds: f64,
    /// The simulated link rate, bytes per second.
    pub bandwidth_bytes_per_second: Option<f64>,
    /// At that rate, the seconds a full transfer would take.
    pub full_transfer_seconds: Option<f64>,
    /// "zstd" or "none".
    pub compression: String,
}

/// `selmask infer`.
pub fn run(args: &InferArgs) -> anyhow::Result<()> {
    let config = args.client_config()?;
    let limit = args.item_limit()?;
    let artifact =
        Arc::new(read_artifact(&args.artifact).with_context(|| format!("reading artifact {}", args.artifact.display()))?);
    let id = super::serve::artifact_id(&args.artifact, args.artifact_id.as_deref())?;
    // Build the network first: a bad artifact fails before any transfer.
    let model = ClientModel::new(artifact.clone()).context("building the artifact's network")?;
    // The index list is made once the listing has been checked against the
    // artifact (a listing may claim any number of items).
    let items = limit.map_or(Items::All, Items::First);
    let fetched = fetch_items_blocking(config, &id, &artifact, &args.split, items)
        .with_context(|| format!("fetching split '{}' from {}", args.split, args.server))?;
    let start = Instant::now();
    let predictions = model.predict(&fetched.batch, args.eval_batch_size)?;
    let infer_seconds = start.elapsed().as_secs_f64();
    let labels = &fetched.batch.labels;
    let correct = predictions.iter().zip(labels).filter(|&(&p, &l)| p == l as i64).count();
    let items = labels.len();
    if let Some(path) = &args.predictions {
        let mut csv = String::from("index,label,prediction\n");
        for ((i, l), p) in fetched.batch.indices.iter().zip(labels).zip(&predictions) {
            csv.push_str(&format!("{i},{l},{p}\n"));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let s = &fetched.stats;
    let m = &artifact.manifest;
    let bw = s.bandwidth_limit_bytes_per_s;
    let report = InferReport {
        items,
        accuracy: correct as f64 / items.max(1) as f64,
        trainer_test_accuracy: m.accuracy.test,
        q: m.mask.q,
        bytes_fraction: m.mask.bytes_fraction,
        bytes_received: s.wire_bytes,
        payload_bytes: s.payload_bytes,
        http_header_bytes: s.http_header_bytes,
        storage_bytes_read: s.storage_bytes,
        bytes_full: s.full_bytes,
        ratio: s.wire_fraction,
        requests: s.requests,
        items_per_second: items as f64 / (s.elapsed_s + infer_seconds).max(1e-9),
        fetch_seconds: s.elapsed_s,
        infer_seconds,
        bandwidth_bytes_per_second: bw,
        full_transfer_seconds: bw.map(|b| s.full_bytes as f64 / b),
        compression: s.compression.clone(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    println!("{} items of '{}' from {} (artifact '{id}')", items, args.split, args.server);
    println!(
        "  accuracy         {:.4}{}",
        report.accuracy,
        m.accuracy.test.map_or(String::new(), |a| format!(" (trainer's test accuracy {a:.4})"))
    );
    println!("  Q                {:.4} ({:.2}% of the values)", report.q, 100.0 * report.bytes_fraction);
    println!(
        "  bytes received   {} ({:.2} MiB, {}, {} requests, + ~{} header bytes)",
        report.bytes_received,
        mib(report.bytes_received),
        report.compression,
        report.requests,
        report.http_header_bytes
    );
    println!("  full transfer    {} ({:.2} MiB)", report.bytes_full, mib(report.bytes_full));
    if let Some(b) = report.storage_bytes_read {
        println!("  storage read     {b} ({:.2} MiB, by the server, from its Zarr store)", mib(b));
    }
    println!("  ratio            {:.4}", report.ratio);
    println!(
        "  time             fetch {:.2} s, inference {:.2} s, {:.0} items/s",
        report.fetch_seconds, report.infer_seconds, report.items_per_second
    );
    if let (Some(b), Some(full)) = (bw, report.full_transfer_seconds) {
        println!(
            "  link {:.2} MB/s   selected parts took {:.2} s; the full inputs would take {:.2} s ({:.1}x)",
            b / 1e6,
            report.fetch_seconds,
            full,
            full / report.fetch_seconds.max(1e-9)
        );
    }
    Ok(())
}
