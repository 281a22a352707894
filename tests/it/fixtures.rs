//! Tiny seeded fixtures shared by the tests.

use std::path::Path;

use burn::prelude::*;
use selmask::data::{DatasetInfo, idx};
use selmask::data::synthetic::{SyntheticConfig, SyntheticData};
use selmask_wire::granularity::Granularity;
use selmask::masks::schedule::LambdaScheduleConfig;
use selmask::models::NetworkConfig;
use selmask::training::optim::OptimConfig;
use selmask::training::TrainConfig;

/// The training device of the tests.
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// Writes the four (Fashion-)MNIST IDX files of a tiny dataset into `dir`
/// (`n_train` and `n_test` items of 28x28, labels `i % 10`), gzipped or raw.
pub fn write_mnist(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    use std::io::Write;
    let write = |name: &str, bytes: Vec<u8>| {
        if gzip {
            let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
            let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            enc.finish().unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write(&format!("{prefix}-images-idx3-ubyte"), idx::encode(&[n as u32, 28, 28], &pixels));
        write(&format!("{prefix}-labels-idx1-ubyte"), idx::encode(&[n as u32], &labels));
    }
}

/// A small synthetic problem: 10x10 single-channel inputs, 10 informative
/// pixels, 4 classes.
pub fn small_synthetic(seed: u64) -> SyntheticData {
    SyntheticConfig {
        shape: [1, 10, 10],
        granularity: Granularity::Pixel,
        n_informative: 10,
        n_classes: 4,
        n_train: 3000,
        n_test: 500,
        seed,
        moving: false,
    }
    .generate()
}

/// A dynamic mask with the linear g on inputs of `data`, bias and g both
/// learned, starting from "send everything" (bias 3), no upscaling.
pub fn linear_dynamic(data: &SyntheticData, granularity: Granularity) -> selmask::masks::dynamic::DynamicMaskConfig {
    selmask::masks::dynamic::DynamicMaskConfig {
        input_shape: data.dataset.info.shape,
        granularity,
        model: selmask::masks::dynamic::models::MaskModelKind::Linear,
        server_hw: None,
        learn_static: true,
        learn_dynamic: true,
        init_mean: 3.0,
        init_std: 0.01,
        input_drop_upscaling: false,
    }
}

/// A training configuration for the small synthetic problem (MLP network).
pub fn synthetic_config(data: &SyntheticData, n_epochs: usize) -> TrainConfig {
    config_for(&data.dataset.info, n_epochs)
}

/// [`synthetic_config`] for any small dataset of `info`: an MLP and a
/// static per-pixel mask.
pub fn config_for(info: &DatasetInfo, n_epochs: usize) -> TrainConfig {
    TrainConfig {
        batch_size: 64,
        eval_batch_size: 500,
        n_epochs,
        optim: OptimConfig { lr_net: 2e-3, lr_mask: 0.05, ..OptimConfig::default() },
        lambda: LambdaScheduleConfig { init: 1.0, factor: 1.0, patience: 1, threshold: 0.0025, cooldown: 0 },
        seed: 3,
        log_iter: 0,
        augment: Default::default(),
        sampling: Default::default(),
        ..TrainConfig::new(info.name, NetworkConfig::by_name("mlp", info.shape, info.n_classes).unwrap(), info.shape)
    }
}

/// A server on 127.0.0.1:0 in its own thread and runtime; stops on drop.
pub struct RunningServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Serves `state` with the default connection limits.
    pub fn start(state: selmask_wire::transfer::server::ServerState) -> Self {
        Self::start_with(state, selmask_wire::transfer::server::ConnectionLimits::default())
    }

    /// Serves `state` with `limits`.
    pub fn start_with(
        state: selmask_wire::transfer::server::ServerState,
        limits: selmask_wire::transfer::server::ConnectionLimits,
    ) -> Self {
        use selmask_wire::transfer::server::{router, serve_with};
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve_with(listener, router(std::sync::Arc::new(state)), limits, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            // Connections a test still holds must not keep the thread.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        });
        RunningServer { addr: addr_rx.recv().unwrap(), stop: Some(stop), thread: Some(thread) }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `selmask` binary with `args`, one compute thread (runs repeat bit
/// for bit) and its output captured.
pub fn selmask(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_selmask"));
    c.args(args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// A JSON file's value.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The epochs `run_dir`'s `summary.json` records as finished (0 while it
/// is missing or being replaced).
pub fn epochs_completed(run_dir: &Path) -> u64 {
    std::fs::read(run_dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|s| s["epochs_completed"].as_u64())
        .unwrap_or(0)
}

/// Kills `child` (SIGKILL) as soon as `ready(epochs completed)` holds,
/// polling every `poll` for at most 5 minutes; returns the epochs completed
/// at the kill. Panics if the run ends first (`what`: what it ended before).
pub fn kill_when(
    mut child: std::process::Child,
    run_dir: &Path,
    what: &str,
    poll: std::time::Duration,
    mut ready: impl FnMut(u64) -> bool,
) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let done = epochs_completed(run_dir);
        if ready(done) {
            child.kill().unwrap();
            child.wait().unwrap();
            return done;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}");
        }
        assert!(std::time::Instant::now() < deadline, "not {what} within 5 minutes");
        std::thread::sleep(poll);
    }
}
