//! `selmask bench`: speed and memory of the real code paths, and its flags.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::data;
use crate::data::DatasetName;
use crate::data::augment::{AugmentConfig, Augmenter};
use crate::data::batch::{augment_rng, epoch_rng, TensorSplit};
use crate::data::sampling::Sampling;
use crate::error::{Error, Result};
use crate::masks::static_mask::StaticMaskConfig;
use crate::models::NetworkConfig;
use crate::training::optim::OptimConfig;
use crate::training::step::{Learner, StepParams};
use selmask_wire::granularity::Granularity;

/// `selmask bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub what: BenchTarget,
    /// Directory with Fashion-MNIST [default: $SELMASK_DATA, then Debian's].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// train-epoch: the network, lenet5 (on Fashion-MNIST) or resnet20 (on 50,000 generated CIFAR-shaped 3x32x32 images) [default: lenet5].
    #[arg(long, value_parser = ["lenet5", "resnet20"])]
    pub network: Option<String>,
    /// Limit the epoch to this many batches (0: the whole training set, 60,000 or 50,000 images; versions: 100).
    #[arg(long, default_value_t = 0)]
    pub batches: usize,
    /// Epochs to time (the first also warms caches up; each is reported).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time the phases of the training step and print where the epoch goes.
    #[arg(long)]
    pub profile: bool,
    /// train-epoch: also run each epoch through the training loop's data pipeline (the dataset's sampling and augmentation), alternating with the plain epochs, and report the ratio.
    #[arg(long)]
    pub compare_pipeline: bool,
    /// serve: requests to send (at most 10000000).
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// serve: requests in flight at once (at most 1024).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// serve: items per request (1 = GET one item, more = POST a batch; at most 1024, the server's max_batch).
    #[arg(long, default_value_t = 1)]
    pub items_per_request: usize,
    /// serve: ask for zstd-compressed payloads.
    #[arg(long)]
    pub zstd: bool,
    /// serve: stop after this many seconds even if requests remain (at most 3600).
    #[arg(long, default_value_t = 60.0)]
    pub max_seconds: f64,
    /// serve: first hold this many stalled connections (heads or bodies that never finish) and time /health and item requests beside them (at most 1000; 0: skip).
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
    /// serve: an exported artifact to serve with its dataset's test split [default: a synthetic 28x28 dataset with a pixel mask at Q = 0.05].
    #[arg(long)]
    pub artifact: Option<PathBuf>,
    /// pack: minimum measured seconds per case.
    #[arg(long, default_value_t = 0.5)]
    pub min_seconds: f64,
}

impl BenchArgs {
    /// The validated load test of `bench serve` (`--stalled` included, so
    /// every flag of `bench serve` is checked before anything starts).
    pub fn load_test_config(&self) -> Result<selmask_wire::transfer::bench::LoadTestConfig> {
        use crate::cli::within;
        if !(self.max_seconds.is_finite() && self.max_seconds > 0.0 && self.max_seconds <= 3600.0) {
            return Err(Error::config("max-seconds", format!("{:?}", self.max_seconds), "must be a positive number of seconds, at most 3600"));
        }
        // Leaves room under the server's default 1024 connections for the
        // timed requests.
        within("stalled", self.stalled, 0..=1000)?;
        Ok(selmask_wire::transfer::bench::LoadTestConfig {
            requests: within("requests", self.requests, 1..=10_000_000)?,
            concurrency: within("concurrency", self.concurrency, 1..=1024)?,
            batch: within("items-per-request", self.items_per_request, 1..=1024)?,
            zstd: self.zstd,
            max_seconds: self.max_seconds,
            ..selmask_wire::transfer::bench::LoadTestConfig::default()
        })
    }
}

/// Benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// One training epoch of LeNet5 + static pixel mask on Fashion-MNIST (or ResNet20 on CIFAR-shaped data, --network resnet20), batch 128.
    TrainEpoch,
    /// A bounded load test of the storage server on loopback (p50/p99 latency, items/s, memory).
    Serve,
    /// Single-core static-mask packing speed of stored data (GB/s of source data).
    Pack,
    /// Making xor versions (five JPEG levels) of CIFAR-shaped batches of 128, as each training batch does (--batches, default 100; --epochs passes).
    Versions,
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Result of `bench train-epoch`.
#[derive(Debug, Serialize)]
pub struct EpochBench {
    /// What was measured.
    pub benchmark: &'static str,
    /// The network trained.
    pub network: String,
    /// Images per epoch.
    pub samples: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Seconds of each timed epoch.
    pub epochs_seconds: Vec<f64>,
    /// The fastest epoch, in seconds.
    pub epoch_seconds: f64,
    /// Images per second in the fastest epoch.
    pub samples_per_second: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// Rayon threads.
    pub threads: usize,
    /// The CPU model, from /proc/cpuinfo.
    pub cpu: Option<String>,
    /// Seconds per phase in the last epoch (with `--profile`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<(&'static str, f64)>,
    /// With `--compare-pipeline`: the same epochs through the training
    /// loop's data pipeline, interleaved with the plain ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineBench>,
}

/// Plain batches against the training pipeline's (the dataset's sampling
/// and augmentation), timed alternately in one process.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineBench {
    /// The augmentation applied (the paper's for the benchmark's dataset).
    pub augment: String,
    /// Seconds of each pipeline epoch (paired with `epochs_seconds`).
    pub epochs_seconds: Vec<f64>,
    /// The fastest pipeline epoch.
    pub epoch_seconds: f64,
    /// Fastest pipeline epoch / fastest plain epoch.
    pub ratio: f64,
    /// Seconds spent augmenting in the fastest pipeline epoch.
    pub augment_seconds: f64,
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split(':').nth(1)?.trim().to_string())
}

/// Images of the generated CIFAR-shaped training set of `bench train-epoch
/// --network resnet20` (CIFAR-10's training set size).
pub const CIFAR_SHAPED_IMAGES: usize = 50_000;

/// The training split and dataset description a benchmark epoch runs on:
/// Fashion-MNIST for lenet5, generated CIFAR-shaped data for resnet20 (its
/// speed does not depend on the pixel values, and CIFAR-10 need not be
/// installed).
fn bench_data(args: &BenchArgs, network: &str) -> anyhow::Result<(crate::data::ImageSet, crate::data::DatasetInfo, &'static str)> {
    match network {
        "lenet5" => {
            let dataset =
                data::load(DatasetName::FashionMnist, args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
            Ok((dataset.train, dataset.info, "train-epoch: LeNet5 + static pixel mask, Fashion-MNIST train set"))
        }
        "resnet20" => {
            use selmask_wire::transfer::fixtures::synthetic_set;
            let shape = [3, 32, 32];
            let set = synthetic_set(shape, CIFAR_SHAPED_IMAGES, selmask_wire::artifact::format::StoredDtype::U8, 0);
            let info = crate::data::cifar10::info();
            anyhow::ensure!(info.shape == shape, "CIFAR-10 is {:?}, not {shape:?}", info.shape);
            Ok((set, info, "train-epoch: ResNet20 + static pixel mask, 50,000 generated 3x32x32 images (CIFAR-10-shaped)"))
        }
        other => anyhow::bail!("bench train-epoch: unknown --network '{other}' (lenet5 or resnet20)"),
    }
}

/// Times training epochs of a network + a static pixel mask: LeNet5 on
/// Fashion-MNIST, or ResNet20 on CIFAR-shaped data (`--network`).
pub fn train_epoch(args: &BenchArgs) -> anyhow::Result<EpochBench> {
    let network_name = args.network.as_deref().unwrap_or("lenet5");
    let (train, info, benchmark) = bench_data(args, network_name)?;
    let device = Device::flex().autodiff();
    device.seed(0);
    let split = TensorSplit::from_set(train, &info, &device);
    let batch_size = 128;
    let shape = info.shape;
    let network = NetworkConfig::by_name(network_name, shape, info.n_classes)?;
    let mask = StaticMaskConfig {
        input_shape: shape,
        granularity: Granularity::Pixel,
        init_mean: 3.0,
        init_std: 0.01,
        input_drop_upscaling: false,
    };
    let optim = OptimConfig::default();
    let mut learner = Learner {
        net: network.init(&device),
        net_optim: optim.net(),
        mask: Some(crate::masks::Mask::Static(mask.init(&device)?)),
        mask_optim: optim.mask(),
        schedule: None,
    };
    let ce = CrossEntropyLossConfig::new().init(&device);
    let params = StepParams { lambda: 0.0005, tau: 1.0, lr_net: optim.lr_net, lr_mask: optim.lr_mask, freeze_mask: false };
    let n_batches = if args.batches == 0 { split.n_batches(batch_size) } else { args.batches.min(split.n_batches(batch_size)) };
    let samples = if args.batches == 0 { split.len } else { n_batches * batch_size };
    let mut epochs_seconds = Vec::new();
    let mut profile = Vec::new();
    // The training loop's pipeline for this data: its sampling order and
    // the paper's augmentation of the dataset (none for Fashion-MNIST).
    let sampling = Sampling::for_dataset(info.name);
    let augment = AugmentConfig::for_dataset(info.name);
    let mut augmenter = Augmenter::new(augment, shape)?;
    let (mut pipeline_seconds, mut augment_seconds) = (Vec::new(), Vec::new());
    for epoch in 0..args.epochs.max(1) {
        // Plain and pipeline epochs alternate (ABBA), so drift in the
        // machine's speed hits both alike.
        let order: &[bool] = if !args.compare_pipeline { &[false] } else if epoch % 2 == 0 { &[false, true] } else { &[true, false] };
        for &through_pipeline in order {
            crate::kernels::timing::enable(args.profile);
            let mut augmenting = 0.0f64;
            let started = Instant::now();
            let items = if through_pipeline {
                sampling.epoch_order(&split.classes, &mut epoch_rng(0, epoch))
            } else {
                split.shuffled_order(&mut epoch_rng(0, epoch))
            };
            let mut aug_rng = augment_rng(0, epoch);
            for host in split.host_batches(batch_size, &items).take(n_batches) {
                let mut host = host?;
                if through_pipeline {
                    let t = Instant::now();
                    host.augment(&mut augmenter, &mut aug_rng);
                    augmenting += t.elapsed().as_secs_f64();
                }
                let batch = split.to_device(host);
                let (next, losses) = learner.step(batch, &ce, params);
                learner = next;
                anyhow::ensure!(losses.is_finite(), "non-finite loss in the benchmark");
            }
            let seconds = started.elapsed().as_secs_f64();
            if !args.json {
                let what = if through_pipeline { "pipeline" } else { "plain" };
                eprintln!("epoch {} ({what}): {seconds:.2} s ({:.0} images/s)", epoch + 1, samples as f64 / seconds);
            }
            if through_pipeline {
                pipeline_seconds.push(seconds);
                augment_seconds.push(augmenting);
            } else {
                epochs_seconds.push(seconds);
                profile = crate::kernels::timing::take();
            }
        }
    }
    crate::kernels::timing::enable(false);
    let best = epochs_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let pipeline = args.compare_pipeline.then(|| {
        let (i, &fastest) = pipeline_seconds
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("at least one pipeline epoch");
        PipelineBench {
            augment: format!("{augment:?}"),
            epochs_seconds: pipeline_seconds.clone(),
            epoch_seconds: fastest,
            ratio: fastest / best,
            augment_seconds: augment_seconds[i],
        }
    });
    Ok(EpochBench {
        benchmark,
        network: network_name.to_string(),
        samples,
        batch_size,
        epoch_seconds: best,
        samples_per_second: samples as f64 / best,
        epochs_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        threads: rayon::current_num_threads(),
        cpu: cpu_model(),
        profile,
        pipeline,
    })
}

/// `selmask bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchTarget::TrainEpoch => {
            let r = train_epoch(args)?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}\n  {} images, batch {}, {} threads ({})\n  epoch: {:.2} s (best of {:?})\n  throughput: {:.0} images/s\n  peak RSS: {}",
                    r.benchmark,
                    r.samples,
                    r.batch_size,
                    r.threads,
                    r.cpu.as_deref().unwrap_or("unknown CPU"),
                    r.epoch_seconds,
                    r.epochs_seconds.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>(),
                    r.samples_per_second,
                    r.peak_rss_bytes.map_or("unknown".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
                );
                if let Some(p) = &r.pipeline {
                    println!(
                        "  training pipeline (sampling + augmentation {}): {:.2} s (best of {:?}), {:.3}x the plain epoch, {:.2} s augmenting",
                        p.augment,
                        p.epoch_seconds,
                        p.epochs_seconds.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>(),
                        p.ratio,
                        p.augment_seconds
                    );
                }
                if args.profile && !r.profile.is_empty() {
                    println!("  profile of the last epoch (seconds; conv phases run inside step totals):");
                    for (name, secs) in &r.profile {
                        println!("    {name:<30} {secs:>7.3}");
                    }
                }
            }
        }
        BenchTarget::Serve => serve(args)?,
        BenchTarget::Pack => pack(args)?,
        BenchTarget::Versions => {
            let r = versions_throughput(if args.batches == 0 { 100 } else { args.batches }, args.epochs)?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}\n  {} batches of {}, {} versions each, {} threads\n  {:.2} ms per batch (best of {:?} s), {:.0} items/s",
                    r.benchmark,
                    r.batches,
                    r.batch_size,
                    r.versions,
                    r.threads,
                    r.batch_ms,
                    r.passes_seconds.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>(),
                    r.items_per_second
                );
            }
        }
    }
    Ok(())
}

/// Result of `bench versions`.
#[derive(Debug, Serialize)]
pub struct VersionsBench {
    /// What was measured.
    pub benchmark: &'static str,
    /// Items per batch.
    pub batch_size: usize,
    /// Batches per timed pass.
    pub batches: usize,
    /// Versions stacked per item (the original and one per JPEG level).
    pub versions: usize,
    /// Seconds of each timed pass.
    pub passes_seconds: Vec<f64>,
    /// Milliseconds per batch in the fastest pass.
    pub batch_ms: f64,
    /// Items per second in the fastest pass.
    pub items_per_second: f64,
    /// Rayon threads.
    pub threads: usize,
}

/// `bench versions`: making the xor versions of training batches, which
/// happens per batch because versions follow augmentation: CIFAR-shaped
/// generated images (a flat rectangle with a little noise, so cheaper to
/// encode than photographs), the paper's five JPEG levels, batches of 128.
pub fn versions_throughput(batches: usize, passes: usize) -> anyhow::Result<VersionsBench> {
    use crate::data::Pixels;
    use crate::data::versions::VersionsConfig;
    let (shape, batch_size) = ([3, 32, 32], 128);
    let set = selmask_wire::transfer::fixtures::synthetic_set(shape, batch_size * batches.max(1), selmask_wire::artifact::format::StoredDtype::U8, 0);
    let Pixels::U8(pixels) = &set.pixels else { anyhow::bail!("the generated set is 8-bit") };
    let versions = VersionsConfig { quality_levels: vec![90, 70, 50, 30, 10], thumbs: vec![] };
    let mut passes_seconds = Vec::new();
    for _ in 0..passes.max(1) {
        let started = Instant::now();
        for batch in pixels.chunks(batch_size * 3 * 32 * 32) {
            std::hint::black_box(versions.stack_items(batch, shape)?);
        }
        passes_seconds.push(started.elapsed().as_secs_f64());
    }
    let best = passes_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(VersionsBench {
        benchmark: "versions: JPEG 90/70/50/30/10 round trips of 3x32x32 batches (xor selection, per training batch)",
        batch_size,
        batches: batches.max(1),
        versions: versions.n_versions(),
        passes_seconds,
        batch_ms: best / batches.max(1) as f64 * 1e3,
        items_per_second: set.len() as f64 / best,
        threads: rayon::current_num_threads(),
    })
}

/// `bench serve`: the load test of [`selmask_wire::transfer::bench::load_test`],
/// or with `--stalled N` the check of
/// [`selmask_wire::transfer::bench::stalled_clients`].
fn serve(args: &BenchArgs) -> anyhow::Result<()> {
    use selmask_wire::transfer::bench::{load_test_blocking, synthetic_state};
    use selmask_wire::transfer::server::{ServerConfig, ServerState};
    let config = args.load_test_config()?;
    let (state, id, split) = match &args.artifact {
        None => synthetic_state(ServerConfig::default(), 10_000)?,
        Some(dir) => {
            let artifact = selmask_wire::artifact::read_artifact(dir).with_context(|| format!("reading {}", dir.display()))?;
            let name: DatasetName = artifact.manifest.dataset.name.parse()?;
            let dataset = data::load(name, args.data_dir.as_deref())?;
            let mut state = ServerState::new(ServerConfig::default());
            state.add_dataset(&name.to_string(), [("test".to_string(), dataset.test)])?;
            let id = crate::cli::serve::artifact_id(dir, None)?;
            crate::deploy::model::add_served_artifact(&mut state, &id, &artifact)?;
            (state, id, "test".to_string())
        }
    };
    if args.stalled > 0 {
        return stalled(args, state, &id, &split);
    }
    let r = load_test_blocking(state, &id, &split, &config)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let mib = |k: Option<u64>| k.map_or("unknown".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "bench serve: artifact '{id}', {} requests sent ({} ok, {} errors), {} concurrent, {} item(s) per request, {}",
        r.requests_sent,
        r.ok,
        r.errors,
        config.concurrency,
        config.batch,
        if config.zstd { "zstd" } else { "uncompressed" }
    );
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    println!("  latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", r.p50_ms, r.p99_ms, r.max_ms);
    println!("  {:.0} requests/s, {:.0} items/s over {:.2} s{}", r.requests_per_s, r.items_per_s, r.elapsed_s,
        if r.stopped_by_time_limit { " (stopped by --max-seconds)" } else { "" });
    println!("  resident memory: start {}, end {}, peak {}", mib(r.rss_start_kib), mib(r.rss_end_kib), mib(r.rss_peak_kib));
    Ok(())
}

/// `bench serve --stalled N`: `/health` and item latencies beside N
/// stalled connections, on a server with the default limits.
fn stalled(args: &BenchArgs, state: selmask_wire::transfer::server::ServerState, id: &str, split: &str) -> anyhow::Result<()> {
    use selmask_wire::transfer::bench::{StalledConfig, stalled_clients_blocking};
    use selmask_wire::transfer::server::ConnectionLimits;
    let limits = ConnectionLimits::default();
    let config = StalledConfig { stalled: args.stalled, max_seconds: args.max_seconds, ..StalledConfig::default() };
    let body_timeout = state.config().body_read_timeout;
    let r = stalled_clients_blocking(state, limits, id, split, &config)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "bench serve --stalled: {} stalled connections (half mid-head, half mid-body) held on loopback, artifact '{id}'",
        r.stalled
    );
    println!(
        "  /health: {}/{} ok, p50 {:.3} ms, max {:.3} ms (new connection each)",
        r.health_ok, r.probes, r.health_p50_ms, r.health_max_ms
    );
    println!(
        "  item:    {}/{} ok, p50 {:.3} ms, max {:.3} ms (new connection each)",
        r.item_ok, r.probes, r.item_p50_ms, r.item_max_ms
    );
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    println!(
        "  stalled connections closed by the server: {}/{}, the last {:.2} s after they were opened (header timeout {} s, body timeout {} s); {:.2} s in all",
        r.stalled_closed,
        r.stalled,
        r.last_closed_s,
        limits.header_read_timeout.as_secs_f64(),
        body_timeout.as_secs_f64(),
        r.elapsed_s
    );
    Ok(())
}

/// `bench pack`: [`selmask_wire::transfer::bench::pack_throughput`].
fn pack(args: &BenchArgs) -> anyhow::Result<()> {
    use selmask_wire::transfer::bench::{PackBenchConfig, pack_throughput};
    if !(args.min_seconds.is_finite() && args.min_seconds > 0.0 && args.min_seconds <= 600.0) {
        anyhow::bail!(crate::error::Error::config("min-seconds", args.min_seconds, "must be a positive number of seconds, at most 600"));
    }
    let r = pack_throughput(&PackBenchConfig { min_seconds_per_case: args.min_seconds, ..PackBenchConfig::default() })?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!("bench pack: static-mask packing of stored u8 data, {} thread", r.threads);
    println!("  {:<34} {:>8} {:>8} {:>12} {:>12}", "case", "values", "runs", "source GB/s", "items/s");
    for c in &r.cases {
        println!(
            "  {:<34} {:>8} {:>8} {:>12.2} {:>12.0}",
            c.name, c.selected_values, c.runs, c.source_gb_per_s, c.items_per_s
        );
    }
    Ok(())
}
