//! Benchmarks the `selmask bench` command runs: static packing throughput
//! and a bounded load test of the server on loopback.
//!
//! Both return serialisable result structs; the caller prints or stores
//! them. Numbers depend on the machine and on what else runs on it: the
//! load test runs client and server in one process on the same cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dataset::Pixels;
use crate::artifact::format::{MaskSpec, StoredDtype, read_artifact, write_artifact};
use crate::transfer::fixtures;
use crate::granularity::Granularity;
use crate::transfer::codec::{self, ItemRef, StaticPlan};
use crate::error::{Error, Result};
use crate::transfer::server::{ConnectionLimits, ServerConfig, ServerState, router, serve, serve_with};

/// Settings of [`pack_throughput`].
#[derive(Debug, Clone, PartialEq)]
pub struct PackBenchConfig {
    /// Minimum measured time per case, seconds.
    pub min_seconds_per_case: f64,
    /// Seed of the data and masks.
    pub seed: u64,
}

impl Default for PackBenchConfig {
    fn default() -> Self {
        PackBenchConfig {
            min_seconds_per_case: 0.5,
            seed: 7,
        }
    }
}

/// One packing case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackCase {
    /// Short name, e.g. `28x28 pixel q=0.05`.
    pub name: String,
    /// Item shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Granularity of the random mask.
    pub granularity: String,
    /// Q (cell fraction) of the mask.
    pub q: f64,
    /// Values sent per item.
    pub selected_values: usize,
    /// Contiguous runs in the selection.
    pub runs: usize,
    /// Items per packed response.
    pub batch: usize,
    /// Items packed while measuring.
    pub items_packed: u64,
    /// Source (stored) bytes those items hold.
    pub source_bytes: u64,
    /// Payload bytes produced.
    pub payload_bytes: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Source GB (1e9 bytes) per second, one thread: the headline number.
    pub source_gb_per_s: f64,
    /// Payload GB per second.
    pub payload_gb_per_s: f64,
    /// Items per second.
    pub items_per_s: f64,
}

/// Result of [`pack_throughput`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackBench {
    /// Threads used (always 1: throughput per core).
    pub threads: usize,
    /// The cases.
    pub cases: Vec<PackCase>,
}

/// Measures single-thread static packing of stored u8 data: Q = 0.05 and
/// 0.5 on 28×28 items (pixel cells: scattered values) and on 3×384×384
/// items (12×12-grid cells: long runs; pixel cells: scattered).
pub fn pack_throughput(config: &PackBenchConfig) -> Result<PackBench> {
    let cases: [([usize; 3], &str, f64, usize, usize); 8] = [
        ([1, 28, 28], "pixel", 0.05, 8192, 256),
        ([1, 28, 28], "pixel", 0.5, 8192, 256),
        ([3, 384, 384], "CXLIVdrant", 0.05, 24, 8),
        ([3, 384, 384], "CXLIVdrant", 0.5, 24, 8),
        ([3, 384, 384], "pixel", 0.05, 24, 8),
        ([3, 384, 384], "pixel", 0.5, 24, 8),
        ([3, 384, 384], "subpixel", 0.05, 24, 8),
        ([3, 384, 384], "subpixel", 0.5, 24, 8),
    ];
    let mut out = Vec::new();
    for (k, (shape, gran, q, n_items, batch)) in cases.into_iter().enumerate() {
        let granularity: Granularity = gran.parse()?;
        let layout = granularity.layout(shape)?;
        let seed = config.seed.wrapping_add(k as u64);
        let cells = fixtures::random_cells(layout.n_cells(), q, seed);
        let selected = crate::artifact::format::selected_values(&layout, &cells);
        let plan = StaticPlan::new(shape, selected)?;
        let set = fixtures::synthetic_set(shape, n_items, StoredDtype::U8, seed);
        let Pixels::U8(values) = &set.pixels else {
            return Err(bench_err("pack", "fixture is not u8"));
        };
        let n = plan.n_values();
        let items: Vec<ItemRef<'_, u8>> = (0..n_items)
            .map(|i| ItemRef {
                index: i as u32,
                values: &values[i * n..(i + 1) * n],
            })
            .collect();
        // Warm up once (page faults, caches), then measure whole batches.
        std::hint::black_box(codec::pack_static(&plan, &items[..batch])?);
        let mut payload_bytes = 0u64;
        let (mut packed, mut b) = (0u64, 0usize);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < config.min_seconds_per_case {
            for _ in 0..16 {
                let lo = (b * batch) % (n_items - batch + 1);
                let payload = codec::pack_static(&plan, std::hint::black_box(&items[lo..lo + batch]))?;
                payload_bytes += std::hint::black_box(payload).len() as u64;
                packed += batch as u64;
                b += 1;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let source_bytes = packed * n as u64;
        out.push(PackCase {
            name: format!("{}x{}x{} {gran} q={q}", shape[0], shape[1], shape[2]),
            shape,
            granularity: granularity.to_string(),
            q,
            selected_values: plan.n_selected(),
            runs: plan.n_runs(),
            batch,
            items_packed: packed,
            source_bytes,
            payload_bytes,
            seconds,
            source_gb_per_s: source_bytes as f64 / seconds / 1e9,
            payload_gb_per_s: payload_bytes as f64 / seconds / 1e9,
            items_per_s: packed as f64 / seconds,
        });
    }
    Ok(PackBench { threads: 1, cases: out })
}

fn bench_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Bench {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Settings of [`load_test`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTestConfig {
    /// Requests to send (default 10,000).
    pub requests: usize,
    /// Requests in flight (default 32).
    pub concurrency: usize,
    /// Items per request: 1 = `GET` one item, more = `POST` a batch.
    pub batch: usize,
    /// Ask for zstd.
    pub zstd: bool,
    /// Hard stop, seconds (default 60): the test ends by itself even if the
    /// requests are not all sent.
    pub max_seconds: f64,
    /// Seed of the item indices.
    pub seed: u64,
}

impl Default for LoadTestConfig {
    fn default() -> Self {
        LoadTestConfig {
            requests: 10_000,
            concurrency: 32,
            batch: 1,
            zstd: false,
            max_seconds: 60.0,
            seed: 11,
        }
    }
}

/// Result of [`load_test`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadTestResult {
    /// Requests sent.
    pub requests_sent: usize,
    /// Answered 200 with a well-formed payload header.
    pub ok: usize,
    /// Everything else (status, transport or payload errors).
    pub errors: usize,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Slowest request, milliseconds.
    pub max_ms: f64,
    /// Items received in good responses.
    pub items: u64,
    /// Items per second over the test.
    pub items_per_s: f64,
    /// Requests per second over the test.
    pub requests_per_s: f64,
    /// Response body bytes received.
    pub wire_bytes: u64,
    /// Test duration, seconds.
    pub elapsed_s: f64,
    /// Whether the time limit stopped it before all requests were sent.
    pub stopped_by_time_limit: bool,
    /// Resident memory (VmRSS) when the test starts (state already built,
    /// server not yet listening), KiB.
    pub rss_start_kib: Option<u64>,
    /// Resident memory after the last request, before shutdown, KiB.
    pub rss_end_kib: Option<u64>,
    /// Peak resident memory of the process (VmHWM), KiB.
    pub rss_peak_kib: Option<u64>,
}

/// A field of `/proc/self/status` in KiB (Linux only; `None` elsewhere).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A server state with one synthetic MNIST-like dataset (`synthetic`, split
/// `test` of `n_items` 1×28×28 u8 items) and one static artifact
/// (`synthetic-pixel-q05`, pixel cells, Q = 0.05). The artifact is written
/// to and read back from a temporary directory (removed again), so the real
/// reader is exercised. Returns the state, artifact id and split.
pub fn synthetic_state(config: ServerConfig, n_items: usize) -> Result<(ServerState, String, String)> {
    let shape = [1, 28, 28];
    let set = fixtures::synthetic_set(shape, n_items, StoredDtype::U8, 5);
    let layout = Granularity::Pixel.layout(shape)?;
    let spec = fixtures::artifact_spec(
        fixtures::dataset_section("synthetic", shape, StoredDtype::U8),
        MaskSpec::Static {
            granularity: Granularity::Pixel,
            cells: fixtures::random_cells(layout.n_cells(), 0.05, 5),
        },
    );
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("selmask-bench-{}-{nonce}", std::process::id()));
    let artifact_dir = dir.join("artifact");
    let read = write_artifact(&artifact_dir, &spec, false).and_then(|_| read_artifact(&artifact_dir));
    let _ = std::fs::remove_dir_all(&dir);
    let artifact = read?;
    let mut state = ServerState::new(config);
    state.add_dataset("synthetic", [("test".to_string(), set)])?;
    let id = "synthetic-pixel-q05".to_string();
    state.add_artifact(&id, &artifact)?;
    Ok((state, id, "test".into()))
}

/// Starts the server of `state` on 127.0.0.1, port 0 (loopback only), sends
/// `config.requests` requests from `config.concurrency` concurrent workers
/// for random items of `split` under `artifact_id`, then shuts the server
/// down. Bounded in count and in time (`max_seconds`).
pub async fn load_test(
    state: ServerState,
    artifact_id: &str,
    split: &str,
    config: &LoadTestConfig,
) -> Result<LoadTestResult> {
    let rss_start = proc_status_kib("VmRSS");
    let n_items = state
        .listing_body()
        .artifacts
        .iter()
        .find(|a| a.id == artifact_id)
        .and_then(|a| {
            let l = state.listing_body();
            l.datasets
                .into_iter()
                .find(|d| d.name == a.dataset)?
                .splits
                .into_iter()
                .find(|s| s.name == split)
                .map(|s| s.items)
        })
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            bench_err(
                "load",
                format!("no artifact '{artifact_id}' with a non-empty split '{split}'"),
            )
        })?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Error::io("127.0.0.1:0", e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("127.0.0.1:0", e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(Arc::new(state));
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stop_rx.await;
    }));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(config.concurrency.max(1))
        .build()
        .map_err(|source| Error::Http {
            url: addr.to_string(),
            source,
        })?;
    let base = format!("http://{addr}/v1/artifacts/{artifact_id}/items/{split}");
    let sent = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(config.max_seconds.max(0.0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..config.concurrency.max(1) {
        let (http, base, sent, cfg) = (http.clone(), base.clone(), sent.clone(), config.clone());
        workers.spawn(async move {
            let mut rng = fixtures::SplitMix64(cfg.seed ^ (w as u64).wrapping_mul(0x9E37_79B9));
            let mut lat_us = Vec::new();
            let (mut ok, mut errors, mut items, mut bytes) = (0usize, 0usize, 0u64, 0u64);
            let mut first_error = None;
            loop {
                if Instant::now() >= deadline || sent.fetch_add(1, Ordering::Relaxed) >= cfg.requests {
                    break;
                }
                let batch = cfg.batch.max(1);
                let indices: Vec<u64> = (0..batch).map(|_| rng.below(n_items) as u64).collect();
                let req = if batch == 1 {
                    http.get(format!("{base}/{}", indices[0]))
                } else {
                    http.post(&base).json(&crate::transfer::api::ItemsRequest { indices })
                };
                let req = if cfg.zstd {
                    req.header("accept-encoding", "zstd")
                } else {
                    req
                };
                let t = Instant::now();
                let result = async {
                    let resp = req.send().await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let body = resp.bytes().await.map_err(|e| e.to_string())?;
                    if !status.is_success() {
                        return Err(format!("status {status}: {}", String::from_utf8_lossy(&body)));
                    }
                    Ok(body)
                }
                .await;
                lat_us.push(t.elapsed().as_micros() as u64);
                match result {
                    Ok(body) => {
                        bytes += body.len() as u64;
                        // Cheap sanity check: a well-formed header (zstd
                        // frames are checked by their magic only).
                        let good = if cfg.zstd {
                            body.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) || codec::Header::parse(&body).is_ok()
                        } else {
                            codec::Header::parse(&body).is_ok_and(|h| h.item_count as usize == batch)
                        };
                        if good {
                            ok += 1;
                            items += batch as u64;
                        } else {
                            errors += 1;
                            first_error.get_or_insert_with(|| "malformed payload".to_string());
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat_us, ok, errors, items, bytes, first_error)
        });
    }
    let mut lat = Vec::new();
    let (mut ok, mut errors, mut items, mut bytes) = (0usize, 0usize, 0u64, 0u64);
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let (l, o, e, i, b, f) = joined.map_err(|e| bench_err("load", format!("worker failed: {e}")))?;
        lat.extend(l);
        ok += o;
        errors += e;
        items += i;
        bytes += b;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Before shutdown: afterwards the state (and its datasets) is dropped.
    let rss_end = proc_status_kib("VmRSS");
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => return Err(bench_err("load", format!("server task failed: {e}"))),
        Err(_) => return Err(bench_err("load", "server did not shut down within 10 s")),
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() - 1) as f64 * p).round() as usize;
        lat[i.min(lat.len() - 1)] as f64 / 1000.0
    };
    let requests_sent = ok + errors;
    Ok(LoadTestResult {
        requests_sent,
        ok,
        errors,
        first_error,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        items,
        items_per_s: items as f64 / elapsed.max(1e-9),
        requests_per_s: requests_sent as f64 / elapsed.max(1e-9),
        wire_bytes: bytes,
        elapsed_s: elapsed,
        stopped_by_time_limit: requests_sent < config.requests,
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        rss_peak_kib: proc_status_kib("VmHWM"),
    })
}

/// [`load_test`] for synchronous callers (own two-thread runtime).
pub fn load_test_blocking(
    state: ServerState,
    artifact_id: &str,
    split: &str,
    config: &LoadTestConfig,
) -> Result<LoadTestResult> {
    crate::transfer::client::blocking_runtime("load_test_blocking")?.block_on(load_test(
        state,
        artifact_id,
        split,
        config,
    ))
}

/// Settings of [`stalled_clients`].
#[derive(Debug, Clone, PartialEq)]
pub struct StalledConfig {
    /// Stalled connections to hold: half send a request head announcing a
    /// 100-byte body and only 5 bytes of it, half send part of a head.
    pub stalled: usize,
    /// Timed `/health` requests, and as many item requests, beside them.
    pub probes: usize,
    /// Hard stop, seconds: the check ends by itself.
    pub max_seconds: f64,
}

impl Default for StalledConfig {
    fn default() -> Self {
        StalledConfig {
            stalled: 200,
            probes: 20,
            max_seconds: 60.0,
        }
    }
}

/// Result of [`stalled_clients`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StalledResult {
    /// Stalled connections opened and held while the requests were timed.
    pub stalled: usize,
    /// `/health` requests answered 200 (of `probes`).
    pub health_ok: usize,
    /// Median `/health` latency, milliseconds (new connection each time).
    pub health_p50_ms: f64,
    /// Slowest `/health` request, milliseconds.
    pub health_max_ms: f64,
    /// Item requests (`GET` one item) answered 200 (of `probes`).
    pub item_ok: usize,
    /// Median item latency, milliseconds (new connection each time).
    pub item_p50_ms: f64,
    /// Slowest item request, milliseconds.
    pub item_max_ms: f64,
    /// Requests of each kind sent.
    pub probes: usize,
    /// Stalled connections the server closed while the check waited (the
    /// longer of its header and body timeouts, plus 2 s; capped by
    /// `max_seconds`).
    pub stalled_closed: usize,
    /// When the last of those was closed, seconds after the stalled
    /// connections were opened.
    pub last_closed_s: f64,
    /// The first failed request, if any.
    pub first_error: Option<String>,
    /// Duration of the whole check, seconds.
    pub elapsed_s: f64,
}

/// Starts the server of `state` under `limits` on 127.0.0.1 (loopback
/// only), opens `config.stalled` connections that stall mid-head or
/// mid-body, then times `/health` and single-item requests of `split`
/// under `artifact_id` (each on a new connection) while those are held, and
/// finally counts the stalled connections the server closed by itself.
/// Bounded in count and in time (`max_seconds`).
pub async fn stalled_clients(
    state: ServerState,
    limits: ConnectionLimits,
    artifact_id: &str,
    split: &str,
    config: &StalledConfig,
) -> Result<StalledResult> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(config.max_seconds.clamp(1.0, 3600.0));
    let body_timeout = state.config().body_read_timeout;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Error::io("127.0.0.1:0", e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("127.0.0.1:0", e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(listener, router(Arc::new(state)), limits, async move {
        let _ = stop_rx.await;
    }));

    // Blocking sockets on the blocking pool: they only connect and write a
    // few bytes each, on loopback.
    let (n, path) = (config.stalled, format!("/v1/artifacts/{artifact_id}/items/{split}"));
    let stalled = tokio::task::spawn_blocking(move || -> Result<Vec<std::net::TcpStream>> {
        (0..n)
            .map(|k| {
                let mut s = std::net::TcpStream::connect(addr).map_err(|e| Error::io(addr.to_string(), e))?;
                let bytes = if k % 2 == 0 {
                    format!("POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"ind")
                } else {
                    format!("POST {path} HTTP/1.1\r\nhost: be")
                };
                s.write_all(bytes.as_bytes()).map_err(|e| Error::io(addr.to_string(), e))?;
                Ok(s)
            })
            .collect()
    })
    .await
    .map_err(|e| bench_err("stalled", format!("opening connections failed: {e}")))??;
    let opened = Instant::now();
    // Let the server accept them and start waiting on every one.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let _ = rustls::crypto::ring::default_provider().install_default();
    // No idle connections kept: every request connects anew, as a monitor
    // or a new client would, so the accept path is timed too.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|source| Error::Http {
            url: addr.to_string(),
            source,
        })?;
    let (mut health, mut item) = (Vec::new(), Vec::new());
    let (mut health_ok, mut item_ok) = (0, 0);
    let mut first_error = None;
    let mut probes = 0;
    while probes < config.probes && Instant::now() < deadline {
        probes += 1;
        for (url, lat, ok) in [
            (format!("http://{addr}/health"), &mut health, &mut health_ok),
            (format!("http://{addr}/v1/artifacts/{artifact_id}/items/{split}/{}", probes % 7), &mut item, &mut item_ok),
        ] {
            let t = Instant::now();
            let got = async {
                let resp = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status();
                resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
                if status.is_success() { Ok(()) } else { Err(format!("{url}: status {status}")) }
            }
            .await;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            match got {
                Ok(()) => *ok += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }

    // The server closes stalled bodies after its body timeout (with a 408)
    // and stalled heads after its header timeout.
    let wait = limits.header_read_timeout.max(body_timeout) + Duration::from_secs(2);
    let until = (Instant::now() + wait).min(deadline);
    let stalled_count = stalled.len();
    let (stalled_closed, last_closed) = tokio::task::spawn_blocking(move || {
        let (mut closed, mut last) = (0, opened);
        let mut buf = [0u8; 4096];
        for mut s in stalled {
            loop {
                // Past `until`, 1 ms: a closed socket still reads EOF at once.
                let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                if s.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) => {}
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    Err(_) => break,
                }
                closed += 1;
                last = last.max(Instant::now());
                break;
            }
        }
        (closed, last)
    })
    .await
    .map_err(|e| bench_err("stalled", format!("watching connections failed: {e}")))?;

    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => return Err(bench_err("stalled", format!("server task failed: {e}"))),
        Err(_) => return Err(bench_err("stalled", "server did not shut down within 10 s")),
    }
    let stats = |v: &mut Vec<f64>| -> (f64, f64) {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => (0.0, 0.0),
            n => (v[(n - 1) / 2], v[n - 1]),
        }
    };
    let ((health_p50_ms, health_max_ms), (item_p50_ms, item_max_ms)) = (stats(&mut health), stats(&mut item));
    Ok(StalledResult {
        stalled: stalled_count,
        health_ok,
        health_p50_ms,
        health_max_ms,
        item_ok,
        item_p50_ms,
        item_max_ms,
        probes,
        stalled_closed,
        last_closed_s: last_closed.saturating_duration_since(opened).as_secs_f64(),
        first_error,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

/// [`stalled_clients`] for synchronous callers (own two-thread runtime).
pub fn stalled_clients_blocking(
    state: ServerState,
    limits: ConnectionLimits,
    artifact_id: &str,
    split: &str,
    config: &StalledConfig,
) -> Result<StalledResult> {
    crate::transfer::client::blocking_runtime("stalled_clients_blocking")?.block_on(stalled_clients(
        state,
        limits,
        artifact_id,
        split,
        config,
    ))
}
