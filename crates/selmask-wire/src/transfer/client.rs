//! The client: fetches a split from the storage server in batches, decodes
//! the payloads into dense inputs and measures what crossed the wire.
//!
//! The client holds the same artifact as the server (it needs the network's
//! weights anyway): the selection it decodes with comes from its local copy,
//! and the server's listing must report the same `manifest.json` hash, so a
//! client can never silently decode with a different mask.
//!
//! Bytes are counted as received, i.e. after compression: `wire_bytes` is the
//! sum of payload response bodies as they arrived; HTTP status lines and
//! headers are estimated from the parsed headers and reported apart. A
//! simulated link (`bandwidth`) delays reading so that everything received
//! so far, headers included, never arrives faster than the given rate.
//!
//! Labels are not model input (a deployment never needs them, evaluation
//! does), so payloads carry none: with [`ClientConfig::labels`] the client
//! fetches them from the labels endpoint for the same batches, after the
//! payloads, and counts them apart (`label_bytes`, `label_http_header_bytes`).
//! They stay out of `wire_bytes`, `elapsed_s` and the simulated link, which
//! all describe the data a deployment would move.
//!
//! The client does not trust the server's sizes: every response body is
//! read in chunks and cut off once it passes the size its request implies
//! (an item payload: the header plus the selected values of the items
//! asked for; zstd payloads are decoded into at most that many bytes), and
//! a `Content-Length` above it fails before any of the body is read. The
//! listing is checked against the local artifact (shape, dtype, selected
//! values) and against what the client can hold (32-bit item indices,
//! [`ClientConfig::max_decoded_bytes`]) before anything is allocated for
//! the split.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};
use serde::Serialize;

use crate::dataset::Pixels;
use crate::artifact::format::{Artifact, StoredDtype};
use crate::transfer::api::{ErrorBody, Health, ItemsRequest, LabelsResponse, Listing};
use crate::transfer::bandwidth::Bandwidth;
use crate::transfer::codec::{self, DecodedBatch, Selection};
use crate::error::{Error, Result};

/// Client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The server, e.g. `http://127.0.0.1:8080` (no trailing slash needed).
    pub base_url: String,
    /// Items per request (capped by the server's `max_batch`; default 256).
    pub batch_size: usize,
    /// Requests in flight at once (default 4).
    pub concurrency: usize,
    /// Ask for zstd-compressed responses.
    pub zstd: bool,
    /// Simulated link rate; `None` = as fast as the network allows.
    pub bandwidth: Option<Bandwidth>,
    /// Per-request timeout (default 60 s).
    pub timeout: Duration,
    /// Show a progress bar (only ever drawn when stderr is a terminal).
    pub progress: bool,
    /// Also fetch the items' labels (default true; needed for evaluation,
    /// not for inference). Without them `DecodedBatch::labels` is empty.
    pub labels: bool,
    /// Most bytes of decoded (dense) values one fetch may hold; a listing
    /// that implies more is refused before anything is allocated (default:
    /// the machine's physical memory, 64 GiB where it is unknown).
    pub max_decoded_bytes: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: "http://127.0.0.1:8080".into(),
            batch_size: 256,
            concurrency: 4,
            zstd: false,
            bandwidth: None,
            timeout: Duration::from_secs(60),
            progress: true,
            labels: true,
            max_decoded_bytes: physical_memory_bytes().unwrap_or(64 << 30),
        }
    }
}

/// What a fetch moved and how fast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferStats {
    /// Items received.
    pub items: usize,
    /// HTTP requests made.
    pub requests: usize,
    /// Payload response body bytes as received (after compression); labels
    /// not included.
    pub wire_bytes: u64,
    /// Payload response body bytes after decompression (the wire-format
    /// payloads).
    pub payload_bytes: u64,
    /// Estimated HTTP status-line and header bytes of the payload responses.
    pub http_header_bytes: u64,
    /// Bytes the server read from storage for these payloads (store-backed
    /// splits only; `None` when served from memory).
    pub storage_bytes: Option<u64>,
    /// Label requests made (0 when labels were not asked for).
    pub label_requests: usize,
    /// Label response body bytes as received (JSON), apart from `wire_bytes`.
    pub label_bytes: u64,
    /// Estimated HTTP status-line and header bytes of the label responses.
    pub label_http_header_bytes: u64,
    /// Bytes a full transfer of the same items would need (all values in
    /// the stored dtype, no framing).
    pub full_bytes: u64,
    /// `wire_bytes / full_bytes`.
    pub wire_fraction: f64,
    /// Wall time of fetching the payloads, seconds (labels not included).
    pub elapsed_s: f64,
    /// Items per second (payloads only).
    pub items_per_s: f64,
    /// Wire bytes per second.
    pub wire_bytes_per_s: f64,
    /// The simulated link rate, bytes per second, if any.
    pub bandwidth_limit_bytes_per_s: Option<f64>,
    /// `"zstd"` if requested, else `"none"`.
    pub compression: String,
    /// Items per request used.
    pub batch_size: usize,
    /// Requests in flight used.
    pub concurrency: usize,
}

/// Items of a split, decoded, in the order asked for.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Dense stored values (0 where not sent), indices, and labels unless
    /// [`ClientConfig::labels`] was off.
    pub batch: DecodedBatch,
    /// The selection the payloads were decoded with.
    pub selection: Selection,
    /// Transfer measurements.
    pub stats: TransferStats,
}

impl Fetched {
    /// The network's input: normalised sent values, 0 elsewhere, times the
    /// artifact's input-drop-upscaling factor; row-major `[N, C, H, W]`.
    pub fn network_input(&self, artifact: &Artifact) -> Result<Vec<f32>> {
        let m = &artifact.manifest;
        self.batch.masked_normalised(
            &self.selection,
            &m.dataset.normalisation,
            m.mask.input_drop_upscaling as f32,
        )
    }
}

/// Paces reading so that bytes received / elapsed never exceeds the rate.
struct Throttle {
    bytes_per_s: f64,
    start: Instant,
    received: AtomicU64,
}

impl Throttle {
    /// Accounts `n` more bytes and sleeps until the link could have
    /// delivered everything so far; fails at once instead when that is past
    /// `deadline` (when the request times out), so a slow simulated link
    /// ends in an error naming the rate, not in a sleep of hours.
    async fn consume(&self, n: u64, url: &str, deadline: Instant, timeout: Duration) -> Result<()> {
        let total = self.received.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        let secs = total as f64 / self.bytes_per_s;
        let due = Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| self.start.checked_add(d))
            .filter(|due| *due <= deadline);
        let Some(due) = due else {
            return Err(Error::Mismatch {
                url: url.to_string(),
                reason: format!(
                    "at the simulated {} the {total} bytes received so far take {secs:.1} s, but this request times out {:.1} s into the transfer (timeout {} s per request); raise the bandwidth or lower the batch size",
                    Bandwidth::from_bytes_per_s(self.bytes_per_s).map_or_else(|| format!("{} B/s", self.bytes_per_s), |b| b.to_string()),
                    deadline.saturating_duration_since(self.start).as_secs_f64(),
                    timeout.as_secs_f64(),
                ),
            });
        };
        tokio::time::sleep_until(due.into()).await;
        Ok(())
    }
}

/// Largest `/health` body accepted (it is `{"status":"ok"}`).
const HEALTH_MAX_BYTES: u64 = 4 << 10;
/// Largest listing accepted: a few hundred bytes per dataset and artifact,
/// so 4 MiB is thousands of them.
const LISTING_MAX_BYTES: u64 = 4 << 20;
/// Most bytes of an error body read (the message is a line of JSON); the
/// rest is left unread.
const ERROR_BODY_MAX_BYTES: u64 = 64 << 10;

/// Reads `resp`'s body, refusing a `Content-Length` above `limit` before
/// reading and stopping once more than `limit` bytes arrived; `what` says
/// where the limit comes from. With a throttle, every chunk is paced.
async fn read_capped(
    mut resp: reqwest::Response,
    url: &str,
    limit: u64,
    what: &str,
    throttle: Option<(&Throttle, Instant, Duration)>,
) -> Result<Vec<u8>> {
    if let Some(declared) = resp.content_length()
        && declared > limit
    {
        return Err(Error::ResponseTooLarge {
            url: url.to_string(),
            size: format!("declares {declared} bytes (content-length)"),
            limit,
            what: what.to_string(),
        });
    }
    // The declared length is within the limit here (or absent): reserve it.
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|source| Error::Http {
        url: url.to_string(),
        source,
    })? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(Error::ResponseTooLarge {
                url: url.to_string(),
                size: format!("sent at least {} bytes", body.len() as u64 + chunk.len() as u64),
                limit,
                what: what.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
        if let Some((t, deadline, timeout)) = throttle {
            t.consume(chunk.len() as u64, url, deadline, timeout).await?;
        }
    }
    Ok(body)
}

/// Reads at most [`ERROR_BODY_MAX_BYTES`] of an error response's body (a
/// longer one is cut, not refused: the status is the news).
async fn read_error_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = ERROR_BODY_MAX_BYTES as usize - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_MAX_BYTES as usize {
            break;
        }
    }
    body
}

/// `MemTotal` of `/proc/meminfo`, bytes (Linux only).
fn physical_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Bytes of one response.
#[derive(Debug, Clone, Copy, Default)]
struct ResponseBytes {
    wire: u64,
    payload: u64,
    headers: u64,
    /// Bytes the server read from storage, when it says (store-backed splits).
    storage: Option<u64>,
}

/// Estimated size of an HTTP/1.1 status line and headers.
fn header_bytes(status: reqwest::StatusCode, headers: &HeaderMap) -> u64 {
    let status_line = "HTTP/1.1 ".len() + 3 + 1 + status.canonical_reason().map_or(0, str::len) + 2;
    let fields: usize = headers.iter().map(|(k, v)| k.as_str().len() + 2 + v.len() + 2).sum();
    (status_line + fields + 2) as u64
}

/// A connection to one server.
#[derive(Debug, Clone)]
pub struct TransferClient {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

impl TransferClient {
    /// A client for `config.base_url`.
    pub fn new(config: ClientConfig) -> Result<Self> {
        // reqwest is built without a default TLS crypto provider; use ring
        // (already in the main crate's tree). Fails harmlessly if the process
        // installed one before.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = config.base_url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|source| Error::Http {
                url: base.clone(),
                source,
            })?;
        Ok(TransferClient { http, base, config })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, limit: u64, what: &str) -> Result<T> {
        let url = self.url(path);
        let resp = self.http.get(&url).send().await.map_err(|source| Error::Http {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(&url, status, &read_error_body(resp).await));
        }
        let body = read_capped(resp, &url, limit, what, None).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Mismatch {
            url,
            reason: format!("unexpected json: {e}"),
        })
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health> {
        self.get_json("/health", HEALTH_MAX_BYTES, "a health answer").await
    }

    /// `GET /v1/datasets`.
    pub async fn listing(&self) -> Result<Listing> {
        self.get_json("/v1/datasets", LISTING_MAX_BYTES, "a listing").await
    }

    /// Fetches one batch (`POST`) and decodes it as the answer to
    /// `indices` (its labels stay empty: see [`TransferClient::fetch_labels`]).
    pub async fn fetch_batch(
        &self,
        artifact_id: &str,
        split: &str,
        indices: &[u32],
        selection: &Selection,
    ) -> Result<DecodedBatch> {
        // The dtype is not known here: allow the widest.
        Ok(self
            .fetch_batch_counted(artifact_id, split, indices, selection, StoredDtype::F32, None)
            .await?
            .0)
    }

    async fn fetch_batch_counted(
        &self,
        artifact_id: &str,
        split: &str,
        indices: &[u32],
        selection: &Selection,
        dtype: StoredDtype,
        throttle: Option<&Throttle>,
    ) -> Result<(DecodedBatch, ResponseBytes)> {
        let url = self.url(&format!("/v1/artifacts/{artifact_id}/items/{split}"));
        let body = ItemsRequest {
            indices: indices.iter().map(|&i| i as u64).collect(),
        };
        let mut req = self.http.post(&url).json(&body);
        if self.config.zstd {
            req = req.header(ACCEPT_ENCODING, "zstd");
        }
        let http_err = |source: reqwest::Error| Error::Http {
            url: url.clone(),
            source,
        };
        let deadline = Instant::now() + self.config.timeout;
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        let mut bytes = ResponseBytes {
            headers: header_bytes(status, resp.headers()),
            storage: resp
                .headers()
                .get(crate::transfer::server::STORAGE_BYTES_HEADER)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            ..Default::default()
        };
        if let Some(t) = throttle {
            t.consume(bytes.headers, &url, deadline, self.config.timeout).await?;
        }
        let zstd = resp
            .headers()
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"zstd"));
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if !status.is_success() {
            return Err(status_error(&url, status, &read_error_body(resp).await));
        }
        // The largest payload these items can be under the selection (exact
        // for static masks); a zstd body is smaller (the server sends
        // identity when compression does not pay).
        let max_payload = selection.max_payload_bytes(dtype, indices.len());
        let what = format!(
            "the payload of {} items of {} {} values at most, with its {}-byte header",
            indices.len(),
            match selection {
                Selection::Static(p) => p.n_selected(),
                Selection::Dynamic(l) => l.n_values(),
            },
            dtype.as_str(),
            codec::HEADER_BYTES
        );
        let wire = read_capped(resp, &url, max_payload as u64, &what, throttle.map(|t| (t, deadline, self.config.timeout))).await?;
        bytes.wire = wire.len() as u64;
        if content_type.as_deref() != Some(codec::CONTENT_TYPE) {
            return Err(Error::Mismatch {
                url,
                reason: format!("content type {content_type:?}, expected {}", codec::CONTENT_TYPE),
            });
        }
        let payload = if zstd {
            // Bound decompression by the largest payload this batch can be,
            // so a hostile stream cannot balloon.
            zstd::bulk::decompress(&wire, max_payload).map_err(|e| {
                Error::payload(format!("{url}: zstd payload does not decode into {max_payload} bytes ({what}): {e}"))
            })?
        } else {
            wire
        };
        bytes.payload = payload.len() as u64;
        // The payload does not name its items: the decoder checks the count
        // and takes the indices from the request.
        let decoded = codec::unpack(&payload, selection, indices)?;
        Ok((decoded, bytes))
    }

    /// `POST /v1/datasets/{dataset}/labels/{split}`: the labels of
    /// `indices`, in that order.
    pub async fn fetch_labels(&self, dataset: &str, split: &str, indices: &[u32]) -> Result<Vec<u16>> {
        Ok(self.fetch_labels_counted(dataset, split, indices).await?.0)
    }

    async fn fetch_labels_counted(
        &self,
        dataset: &str,
        split: &str,
        indices: &[u32],
    ) -> Result<(Vec<u16>, ResponseBytes)> {
        let url = self.url(&format!("/v1/datasets/{dataset}/labels/{split}"));
        let body = ItemsRequest {
            indices: indices.iter().map(|&i| i as u64).collect(),
        };
        let http_err = |source: reqwest::Error| Error::Http {
            url: url.clone(),
            source,
        };
        let resp = self.http.post(&url).json(&body).send().await.map_err(http_err)?;
        let status = resp.status();
        let headers = header_bytes(status, resp.headers());
        if !status.is_success() {
            return Err(status_error(&url, status, &read_error_body(resp).await));
        }
        // `{"labels":[...]}`: at most 5 digits and a comma per label.
        let limit = 16 + 6 * indices.len() as u64;
        let what = format!("{} labels of at most 5 digits", indices.len());
        let body = read_capped(resp, &url, limit, &what, None).await?;
        let bytes = ResponseBytes {
            wire: body.len() as u64,
            payload: body.len() as u64,
            headers,
            storage: None,
        };
        let got: LabelsResponse = serde_json::from_slice(&body).map_err(|e| Error::Mismatch {
            url: url.clone(),
            reason: format!("unexpected labels json: {e}"),
        })?;
        if got.labels.len() != indices.len() {
            return Err(Error::Mismatch {
                url,
                reason: format!("asked for {} labels, got {}", indices.len(), got.labels.len()),
            });
        }
        Ok((got.labels, bytes))
    }

    /// Fetches `indices` (all items when `None`) of `split` under the
    /// artifact the server serves as `artifact_id`, which must be the same
    /// as the local `artifact`. Items come back in the order asked for.
    pub async fn fetch_split(
        &self,
        artifact_id: &str,
        artifact: &Artifact,
        split: &str,
        indices: Option<Vec<u32>>,
    ) -> Result<Fetched> {
        let items = Items::from(indices);
        self.fetch_items(artifact_id, artifact, split, items).await
    }

    /// [`TransferClient::fetch_split`] for `items` of the split: the index
    /// list is made only once the listing has been checked.
    pub async fn fetch_items(
        &self,
        artifact_id: &str,
        artifact: &Artifact,
        split: &str,
        items: Items,
    ) -> Result<Fetched> {
        let listing_url = self.url("/v1/datasets");
        let listing = self.listing().await?;
        let served = listing
            .artifacts
            .iter()
            .find(|a| a.id == artifact_id)
            .ok_or_else(|| Error::Mismatch {
                url: listing_url.clone(),
                reason: format!("the server serves no artifact '{artifact_id}'"),
            })?;
        if served.manifest_sha256 != artifact.manifest_sha256 {
            return Err(Error::Mismatch {
                url: listing_url,
                reason: format!(
                    "artifact '{artifact_id}' differs from the local one at {} (manifest sha-256 {} on the server, {} here)",
                    artifact.dir.display(),
                    served.manifest_sha256,
                    artifact.manifest_sha256
                ),
            });
        }
        let selection = Arc::new(Selection::for_artifact(artifact)?);
        let mismatch = |reason: String| Error::Mismatch {
            url: listing_url.clone(),
            reason,
        };
        let m = &artifact.manifest.dataset;
        let dataset = listing
            .datasets
            .iter()
            .find(|d| d.name == served.dataset)
            .ok_or_else(|| mismatch(format!("artifact '{artifact_id}' selects from dataset '{}', which the server does not list", served.dataset)))?;
        if dataset.shape != m.shape || dataset.dtype != m.dtype || served.values_per_item != m.values_per_item() {
            return Err(mismatch(format!(
                "dataset '{}' has shape {:?} {} ({} values per item) on the server, the artifact was made for shape {:?} {}",
                dataset.name,
                dataset.shape,
                dataset.dtype.as_str(),
                served.values_per_item,
                m.shape,
                m.dtype.as_str()
            )));
        }
        if let Selection::Static(plan) = &*selection
            && served.selected_values != Some(plan.n_selected())
        {
            return Err(mismatch(format!(
                "artifact '{artifact_id}' sends {} selected values per item on the server, the local artifact selects {}",
                served.selected_values.map_or("no fixed number of".into(), |n| n.to_string()),
                plan.n_selected()
            )));
        }
        let n_items = dataset
            .splits
            .iter()
            .find(|s| s.name == split)
            .map(|s| s.items)
            .ok_or_else(|| mismatch(format!("dataset '{}' has no split '{split}' on the server", served.dataset)))?;
        // Item indices are 32-bit on the wire (and in the server).
        let n_items = u32::try_from(n_items).map_err(|_| {
            mismatch(format!(
                "split '{split}' lists {n_items} items, more than the {} that 32-bit item indices can name",
                u32::MAX
            ))
        })?;
        let count = match &items {
            Items::All => n_items as usize,
            Items::First(n) => (*n).min(n_items as usize),
            Items::These(v) => v.len(),
        };
        let decoded = count as u128 * m.values_per_item() as u128 * m.dtype.value_bytes() as u128;
        if decoded > self.config.max_decoded_bytes as u128 {
            return Err(mismatch(format!(
                "split '{split}' lists {n_items} items; {count} of them are {decoded} bytes decoded ({} {} values each), more than the client's limit of {} bytes; ask for fewer items",
                m.values_per_item(),
                m.dtype.as_str(),
                self.config.max_decoded_bytes
            )));
        }
        let indices = match items {
            Items::All | Items::First(_) => (0..count as u32).collect(),
            Items::These(v) => {
                if let Some(&i) = v.iter().find(|&&i| i >= n_items) {
                    return Err(mismatch(format!("item index {i} is past the {n_items} items of split '{split}'")));
                }
                v
            }
        };
        let batch_size = self.config.batch_size.clamp(1, listing.limits.max_batch.max(1));
        let chunks: Arc<Vec<Vec<u32>>> = Arc::new(indices.chunks(batch_size).map(<[u32]>::to_vec).collect());
        let concurrency = self.config.concurrency.max(1).min(chunks.len().max(1));

        let progress = if self.config.progress && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(indices.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} items, {per_sec}, eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(format!("fetching {split}"));
            bar
        } else {
            ProgressBar::hidden()
        };

        let start = Instant::now();
        let throttle = self.config.bandwidth.map(|b| {
            Arc::new(Throttle {
                bytes_per_s: b.bytes_per_s(),
                start,
                received: AtomicU64::new(0),
            })
        });
        let dtype = m.dtype;
        let parts = {
            let (client, chunks, selection) = (self.clone(), chunks.clone(), selection.clone());
            let (throttle, progress) = (throttle.clone(), progress.clone());
            let (id, split) = (Arc::<str>::from(artifact_id), Arc::<str>::from(split));
            run_chunks(chunks.len(), concurrency, move |k| {
                let (client, chunks, selection) = (client.clone(), chunks.clone(), selection.clone());
                let (throttle, progress, id, split) = (throttle.clone(), progress.clone(), id.clone(), split.clone());
                async move {
                    let chunk = &chunks[k];
                    let r = client
                        .fetch_batch_counted(&id, &split, chunk, &selection, dtype, throttle.as_deref())
                        .await?;
                    progress.inc(chunk.len() as u64);
                    Ok(r)
                }
            })
            .await?
        };
        let elapsed = start.elapsed().as_secs_f64();
        progress.finish_and_clear();

        // Labels after the payloads, so they cannot slow the measured data
        // transfer down; same batches, so the same limits apply.
        let label_parts = if self.config.labels {
            let (client, chunks) = (self.clone(), chunks.clone());
            let (dataset, split) = (Arc::<str>::from(served.dataset.as_str()), Arc::<str>::from(split));
            run_chunks(chunks.len(), concurrency, move |k| {
                let (client, chunks, dataset, split) = (client.clone(), chunks.clone(), dataset.clone(), split.clone());
                async move { client.fetch_labels_counted(&dataset, &split, &chunks[k]).await }
            })
            .await?
        } else {
            Vec::new()
        };

        let m = &artifact.manifest;
        let mut totals = ResponseBytes::default();
        let n = m.dataset.values_per_item();
        let mut out = DecodedBatch {
            shape: m.dataset.shape,
            indices: Vec::with_capacity(indices.len()),
            labels: Vec::with_capacity(indices.len()),
            values: match m.dataset.dtype {
                crate::artifact::format::StoredDtype::U8 => Pixels::U8(Vec::with_capacity(indices.len() * n)),
                crate::artifact::format::StoredDtype::F32 => Pixels::F32(Vec::with_capacity(indices.len() * n)),
            },
            cell_masks: matches!(*selection, Selection::Dynamic(_)).then(Vec::new),
        };
        for (part, bytes) in parts {
            totals.wire += bytes.wire;
            totals.payload += bytes.payload;
            totals.headers += bytes.headers;
            if let Some(b) = bytes.storage {
                *totals.storage.get_or_insert(0) += b;
            }
            out.indices.extend_from_slice(&part.indices);
            match (&mut out.values, part.values) {
                (Pixels::U8(a), Pixels::U8(b)) => a.extend_from_slice(&b),
                (Pixels::F32(a), Pixels::F32(b)) => a.extend_from_slice(&b),
                _ => {
                    return Err(Error::Mismatch {
                        url: self.base.clone(),
                        reason: format!("payload dtype differs from the artifact's {}", m.dataset.dtype.as_str()),
                    });
                }
            }
            if let (Some(a), Some(b)) = (out.cell_masks.as_mut(), part.cell_masks) {
                a.extend_from_slice(&b);
            }
        }
        let mut label_totals = ResponseBytes::default();
        for (labels, bytes) in &label_parts {
            label_totals.wire += bytes.wire;
            label_totals.headers += bytes.headers;
            out.labels.extend_from_slice(labels);
        }
        let items = out.indices.len();
        let full_bytes = (items * n * m.dataset.dtype.value_bytes()) as u64;
        let stats = TransferStats {
            items,
            requests: chunks.len(),
            wire_bytes: totals.wire,
            payload_bytes: totals.payload,
            http_header_bytes: totals.headers,
            storage_bytes: totals.storage,
            label_requests: label_parts.len(),
            label_bytes: label_totals.wire,
            label_http_header_bytes: label_totals.headers,
            full_bytes,
            wire_fraction: if full_bytes > 0 {
                totals.wire as f64 / full_bytes as f64
            } else {
                0.0
            },
            elapsed_s: elapsed,
            items_per_s: if elapsed > 0.0 { items as f64 / elapsed } else { 0.0 },
            wire_bytes_per_s: if elapsed > 0.0 {
                totals.wire as f64 / elapsed
            } else {
                0.0
            },
            bandwidth_limit_bytes_per_s: self.config.bandwidth.map(|b| b.bytes_per_s()),
            compression: if self.config.zstd { "zstd" } else { "none" }.into(),
            batch_size,
            concurrency,
        };
        let selection = Arc::try_unwrap(selection).unwrap_or_else(|s| (*s).clone());
        Ok(Fetched {
            batch: out,
            selection,
            stats,
        })
    }
}

/// Which items of a split [`TransferClient::fetch_items`] fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Items {
    /// All of them.
    All,
    /// The first `n` (all of them if the split has fewer).
    First(usize),
    /// These indices, in this order (duplicates allowed).
    These(Vec<u32>),
}

impl From<Option<Vec<u32>>> for Items {
    /// These indices, or (`None`) all of them.
    fn from(indices: Option<Vec<u32>>) -> Self {
        indices.map_or(Items::All, Items::These)
    }
}

/// Runs `fetch(k)` for `k` in `0..n` with at most `concurrency` in flight;
/// returns the results in `k` order, or the first error.
async fn run_chunks<T, F, Fut>(n: usize, concurrency: usize, fetch: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let fetch = Arc::new(fetch);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1).min(n.max(1)) {
        let (fetch, next) = (fetch.clone(), next.clone());
        workers.spawn(async move {
            let mut got = Vec::new();
            loop {
                // Workers take the next chunk as they free up, so a slow
                // response does not hold back a fixed share of the work.
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                got.push((k, fetch(k).await?));
            }
            Result::Ok(got)
        });
    }
    let mut parts = Vec::with_capacity(n);
    while let Some(joined) = workers.join_next().await {
        let got = joined.map_err(|e| Error::payload(format!("fetch worker failed: {e}")))??;
        parts.extend(got);
    }
    parts.sort_by_key(|(k, _)| *k);
    Ok(parts.into_iter().map(|(_, r)| r).collect())
}

/// A [`Error::Status`] from an error response (its JSON message if
/// it has one).
fn status_error(url: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    Error::Status {
        url: url.to_string(),
        status: status.as_u16(),
        message,
    }
}

/// [`TransferClient::fetch_split`] for synchronous callers: runs its own
/// two-thread tokio runtime. Must not be called from inside a runtime.
pub fn fetch_split_blocking(
    config: ClientConfig,
    artifact_id: &str,
    artifact: &Artifact,
    split: &str,
    indices: Option<Vec<u32>>,
) -> Result<Fetched> {
    let items = Items::from(indices);
    fetch_items_blocking(config, artifact_id, artifact, split, items)
}

/// [`TransferClient::fetch_items`] for synchronous callers (see
/// [`fetch_split_blocking`]).
pub fn fetch_items_blocking(
    config: ClientConfig,
    artifact_id: &str,
    artifact: &Artifact,
    split: &str,
    items: Items,
) -> Result<Fetched> {
    let runtime = blocking_runtime("fetch_items_blocking")?;
    let client = TransferClient::new(config)?;
    runtime.block_on(client.fetch_items(artifact_id, artifact, split, items))
}

/// A small multi-thread runtime for blocking entry points.
pub(crate) fn blocking_runtime(what: &str) -> Result<tokio::runtime::Runtime> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Setup {
            what: "runtime for",
            name: what.to_string(),
            reason: "called inside a tokio runtime; use the async function instead".into(),
        });
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))
}
