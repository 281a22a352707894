//! `selmask export`, `serve` and `infer`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cli::deploy::{ExportArgs, IngestArgs, InferArgs, ServeArgs, artifact_id, parse_served_artifact};
use crate::data::{self, DatasetName, ImageSet};
use crate::deploy::export::export_run;
use crate::deploy::infer::{BurnMasker, ClientModel};
use selmask_wire::artifact::{Artifact, ArtifactMask, read_artifact};
use selmask_wire::transfer::client::{Items, fetch_items_blocking};
use selmask_wire::transfer::server::{ServerState, router, serve_with, shutdown_signal};

/// `selmask export`.
pub fn export(args: &ExportArgs) -> Result<()> {
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

/// Adds `artifact` to `state` under `id`, with a mask model for dynamic ones.
pub fn add_served_artifact(state: &mut ServerState, id: &str, artifact: &Artifact) -> Result<()> {
    match artifact.mask {
        ArtifactMask::Dynamic { .. } => {
            let masker = BurnMasker::new(artifact)?;
            state.add_dynamic_artifact(id, artifact, Arc::new(masker))?;
        }
        _ => state.add_artifact(id, artifact)?,
    }
    Ok(())
}

/// The named splits (`test`, `train`) of dataset `name`.
fn load_splits(name: DatasetName, data_dir: Option<&std::path::Path>, splits: &[String]) -> Result<Vec<(String, ImageSet)>> {
    let dataset = data::load(name, data_dir).with_context(|| format!("loading dataset {name}"))?;
    splits
        .iter()
        .map(|split| match split.as_str() {
            "test" => Ok(("test".to_string(), dataset.test.clone())),
            "train" => Ok(("train".to_string(), dataset.train.clone())),
            other => bail!("unknown split '{other}': test and/or train"),
        })
        .collect()
}

/// `selmask ingest`.
pub fn ingest(args: &IngestArgs) -> Result<()> {
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

/// `selmask serve`: blocks until Ctrl-C or SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<()> {
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
        add_served_artifact(&mut state, &id, &artifact).with_context(|| format!("serving {}", dir.display()))?;
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
pub fn infer(args: &InferArgs) -> Result<()> {
    let config = args.client_config()?;
    let limit = args.item_limit()?;
    let artifact =
        Arc::new(read_artifact(&args.artifact).with_context(|| format!("reading artifact {}", args.artifact.display()))?);
    let id = artifact_id(&args.artifact, args.artifact_id.as_deref())?;
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
