//! The storage server: holds datasets in memory and sends only the selected
//! values of requested items.
//!
//! [`router`] builds the whole HTTP application from a [`ServerState`]
//! without touching a socket, so tests drive it with `tower::ServiceExt::oneshot`
//! (as axum's `examples/testing` does); [`serve`] runs it on a listener until
//! a shutdown future resolves (graceful: in-flight requests finish).
//!
//! Routes: the listing, item payloads per artifact
//! (`/v1/artifacts/{id}/items/{split}`) and labels per dataset
//! (`/v1/datasets/{dataset}/labels/{split}`, evaluation only: payloads carry
//! no labels).
//!
//! Robustness: every request-derived value (ids, dataset and split names,
//! indices, JSON, headers) is checked and answered with a 4xx [`ApiError`] naming the value;
//! nothing on the request path unwraps. CPU work (packing, compression, the
//! dynamic masker) runs on tokio's blocking pool so one large batch cannot
//! stall the async workers; a panic there, or anywhere in a handler (caught
//! by `CatchPanicLayer`), becomes a logged 500 and the server keeps serving.
//! Limits: request body size, batch size, response size, a per-request
//! timeout and a global bound on requests in flight.
//!
//! Slow or stalled clients: [`serve_with`] runs its own accept loop (axum's
//! `serve` has no header-read timeout) with a bound on open connections, a
//! deadline for each request head (which also closes idle keep-alive
//! connections) and a deadline for every stalled response write. Request
//! bodies are read, with their own deadline and size limit, before a
//! request takes one of the `max_concurrency` slots, so clients that send a
//! head and then stall hold a connection, never a slot; a `Content-Length`
//! over the limit is answered 413 before any of the body is read. `/health`
//! takes no slot at all.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use tower::ServiceBuilder;

use crate::dataset::{ImageSet, Pixels};
use crate::artifact::format::{Artifact, ArtifactMask, Normalisation, StoredDtype};
use crate::granularity::CellLayout;
use crate::transfer::api::{
    ArtifactListing, DatasetListing, ErrorBody, Health, ItemsRequest, LabelsResponse, LimitsListing, Listing,
    SplitListing, WireListing,
};
use crate::transfer::codec::{self, ItemRef, Selection, StaticPlan};
use crate::error::{Error, Result};
use crate::util::is_plain_name;
use crate::transfer::store::{StoreSplit, read_store_info};

/// Response header with the bytes a store-backed split read from storage
/// for that response (encoded chunk sizes).
pub const STORAGE_BYTES_HEADER: &str = "x-selmask-storage-bytes";

/// Server limits and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Most indices in one POST (default 1024).
    pub max_batch: usize,
    /// Largest request body in bytes (default 1 MiB: 1024 indices of up to
    /// 10 digits need ~12 kB).
    pub max_body_bytes: usize,
    /// Largest uncompressed payload one request may produce (default 256 MiB;
    /// 1024 full 384×384×3 u8 items are 453 MB).
    pub max_response_bytes: usize,
    /// Per-request timeout (default 30 s), including time queued for a
    /// slot; it starts once the body has arrived (see `body_read_timeout`).
    pub request_timeout: Duration,
    /// Requests handled at once; further ones wait (default 64).
    pub max_concurrency: usize,
    /// zstd level for `Accept-Encoding: zstd` (default 3: zstd's default,
    /// fast enough not to be the bottleneck of a 1 Gbit/s link).
    pub zstd_level: i32,
    /// Longest time to receive a request's body (default 10 s; 1024
    /// indices are ~12 kB, 0.1 s even at 1 Mbit/s). Bodies are read
    /// before a request takes a slot, so this, not `request_timeout`, bounds
    /// what a client that stalls its body can hold.
    pub body_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_batch: 1024,
            max_body_bytes: 1 << 20,
            max_response_bytes: 256 << 20,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 64,
            zstd_level: 3,
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Error type of a [`DynamicMasker`].
pub type MaskerError = Box<dyn std::error::Error + Send + Sync>;

/// Computes per-item cell masks on the server (dynamic masks). The main
/// crate implements it with the artifact's mask model (Burn); this crate only
/// calls it, on tokio's blocking pool.
pub trait DynamicMasker: Send + Sync {
    /// The cell mask of one item: `item` is the normalised input, row-major
    /// `[C, H, W]` (`layout.n_values()` values); returns `layout.n_cells()`
    /// booleans, row-major `[c, h, w]`, `true` = send the cell.
    fn cell_mask(&self, item: &[f32], layout: &CellLayout) -> Result<Vec<bool>, MaskerError>;

    /// Cell masks of `n` items stored back to back in `items`. The default
    /// calls [`DynamicMasker::cell_mask`] per item; override it to run the
    /// mask model on the whole batch at once.
    fn cell_masks(&self, items: &[f32], n: usize, layout: &CellLayout) -> Result<Vec<Vec<bool>>, MaskerError> {
        let len = layout.n_values();
        (0..n)
            .map(|k| {
                let item = items
                    .get(k * len..(k + 1) * len)
                    .ok_or("fewer item values than items")?;
                self.cell_mask(item, layout)
            })
            .collect()
    }
}

/// Where a split's items are read from.
#[derive(Debug)]
pub enum SplitSource {
    /// Held in memory.
    Memory(ImageSet),
    /// A Zarr store chunked along the mask cells: only the chunks holding
    /// selected values are read per request.
    Store(StoreSplit),
}

impl SplitSource {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            SplitSource::Memory(s) => s.len(),
            SplitSource::Store(s) => s.len(),
        }
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels in item order.
    pub fn labels(&self) -> &[u16] {
        match self {
            SplitSource::Memory(s) => &s.labels,
            SplitSource::Store(s) => s.labels(),
        }
    }
}

/// A dataset: its splits in memory or in a store.
struct ServedDataset {
    shape: [usize; 3],
    dtype: StoredDtype,
    splits: BTreeMap<String, Arc<SplitSource>>,
}

/// How an artifact's items are selected, ready to serve.
#[derive(Clone)]
enum ServedMask {
    Static(Arc<StaticPlan>),
    Dynamic {
        layout: Arc<CellLayout>,
        masker: Arc<dyn DynamicMasker>,
        norm: Arc<Normalisation>,
    },
}

/// An artifact, reduced to what serving needs (no network weights).
struct ServedArtifact {
    listing: ArtifactListing,
    mask: ServedMask,
}

/// Everything the server holds: datasets by name, artifacts by id, limits.
pub struct ServerState {
    config: ServerConfig,
    datasets: BTreeMap<String, ServedDataset>,
    artifacts: BTreeMap<String, ServedArtifact>,
}

fn setup_err(what: &'static str, name: &str, reason: impl Into<String>) -> Error {
    Error::Setup {
        what,
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl ServerState {
    /// An empty state with `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerState {
            config,
            datasets: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Adds dataset `name` with its splits (e.g. `("test", set)`); all
    /// splits must share one shape and dtype.
    pub fn add_dataset(
        &mut self,
        name: &str,
        splits: impl IntoIterator<Item = (String, ImageSet)>,
    ) -> Result<()> {
        if !is_plain_name(name) {
            return Err(setup_err(
                "dataset",
                name,
                "not a plain name (letters, digits, '.', '_', '-')",
            ));
        }
        if self.datasets.contains_key(name) {
            return Err(setup_err("dataset", name, "already added"));
        }
        let mut served: Option<ServedDataset> = None;
        for (split, set) in splits {
            if !is_plain_name(&split) {
                return Err(setup_err(
                    "dataset",
                    name,
                    format!("split '{split}' is not a plain name"),
                ));
            }
            if set.labels.len() > u32::MAX as usize || set.pixels.len() != set.len() * set.item_len() {
                return Err(setup_err(
                    "dataset",
                    name,
                    format!(
                        "split '{split}' holds {} values for {} items of {:?} (or more than 2^32 items)",
                        set.pixels.len(),
                        set.len(),
                        set.shape
                    ),
                ));
            }
            let dtype = StoredDtype::of(&set.pixels);
            let d = served.get_or_insert_with(|| ServedDataset {
                shape: set.shape,
                dtype,
                splits: BTreeMap::new(),
            });
            if d.shape != set.shape || d.dtype != dtype {
                return Err(setup_err(
                    "dataset",
                    name,
                    format!(
                        "split '{split}' is {:?} {}, others {:?} {}",
                        set.shape,
                        dtype.as_str(),
                        d.shape,
                        d.dtype.as_str()
                    ),
                ));
            }
            if d.splits.insert(split.clone(), Arc::new(SplitSource::Memory(set))).is_some() {
                return Err(setup_err("dataset", name, format!("split '{split}' given twice")));
            }
        }
        let served = served.ok_or_else(|| setup_err("dataset", name, "no split given"))?;
        self.datasets.insert(name.to_string(), served);
        Ok(())
    }

    /// Adds the dataset of the Zarr store at `dir` (written by
    /// [`crate::transfer::store::ingest`]) with all its splits; items are
    /// read from the store per request. Returns the dataset's name.
    pub fn add_store(&mut self, dir: &std::path::Path) -> Result<String> {
        let info = read_store_info(dir)?;
        let name = info.dataset.clone();
        if !is_plain_name(&name) || self.datasets.contains_key(&name) {
            return Err(setup_err("dataset", &name, "not a plain name, or already added"));
        }
        let mut splits = BTreeMap::new();
        for split in &info.splits {
            splits.insert(split.clone(), Arc::new(SplitSource::Store(StoreSplit::open(dir, split)?)));
        }
        self.datasets.insert(name.clone(), ServedDataset { shape: info.shape, dtype: info.dtype, splits });
        Ok(name)
    }

    fn check_artifact(&self, id: &str, artifact: &Artifact) -> Result<()> {
        if !is_plain_name(id) {
            return Err(setup_err(
                "artifact",
                id,
                "id is not a plain name (letters, digits, '.', '_', '-')",
            ));
        }
        if self.artifacts.contains_key(id) {
            return Err(setup_err("artifact", id, "id already in use"));
        }
        let ds = &artifact.manifest.dataset;
        let d = self
            .datasets
            .get(&ds.name)
            .ok_or_else(|| setup_err("artifact", id, format!("its dataset '{}' was not added", ds.name)))?;
        if d.shape != ds.shape || d.dtype != ds.dtype {
            return Err(setup_err(
                "artifact",
                id,
                format!(
                    "made for {:?} {} items, dataset '{}' holds {:?} {}",
                    ds.shape,
                    ds.dtype.as_str(),
                    ds.name,
                    d.shape,
                    d.dtype.as_str()
                ),
            ));
        }
        Ok(())
    }

    fn listing(id: &str, artifact: &Artifact, selected: Option<usize>) -> ArtifactListing {
        let m = &artifact.manifest;
        ArtifactListing {
            id: id.to_string(),
            dataset: m.dataset.name.clone(),
            mask_type: m.mask.kind,
            granularity: m.mask.granularity.map(|g| g.to_string()),
            q: m.mask.q,
            bytes_fraction: m.mask.bytes_fraction,
            selected_values: selected,
            values_per_item: m.dataset.values_per_item(),
            manifest_sha256: artifact.manifest_sha256.clone(),
        }
    }

    /// Serves a static (or mask-less) artifact under `id`.
    pub fn add_artifact(&mut self, id: &str, artifact: &Artifact) -> Result<()> {
        self.check_artifact(id, artifact)?;
        let plan = match Selection::for_artifact(artifact)? {
            Selection::Static(plan) => plan,
            Selection::Dynamic(_) => {
                return Err(setup_err(
                    "artifact",
                    id,
                    "a dynamic artifact needs a mask model: use add_dynamic_artifact",
                ));
            }
        };
        let listing = Self::listing(id, artifact, Some(plan.n_selected()));
        self.artifacts.insert(
            id.to_string(),
            ServedArtifact {
                listing,
                mask: ServedMask::Static(Arc::new(plan)),
            },
        );
        Ok(())
    }

    /// Serves a dynamic artifact under `id`, computing masks with `masker`.
    pub fn add_dynamic_artifact(
        &mut self,
        id: &str,
        artifact: &Artifact,
        masker: Arc<dyn DynamicMasker>,
    ) -> Result<()> {
        self.check_artifact(id, artifact)?;
        let ArtifactMask::Dynamic { layout, .. } = &artifact.mask else {
            return Err(setup_err("artifact", id, "not a dynamic artifact: use add_artifact"));
        };
        let listing = Self::listing(id, artifact, None);
        self.artifacts.insert(
            id.to_string(),
            ServedArtifact {
                listing,
                mask: ServedMask::Dynamic {
                    layout: Arc::new(layout.clone()),
                    masker,
                    norm: Arc::new(artifact.manifest.dataset.normalisation.clone()),
                },
            },
        );
        Ok(())
    }

    /// The `GET /v1/datasets` body.
    pub fn listing_body(&self) -> Listing {
        Listing {
            datasets: self
                .datasets
                .iter()
                .map(|(name, d)| DatasetListing {
                    name: name.clone(),
                    shape: d.shape,
                    dtype: d.dtype,
                    splits: d
                        .splits
                        .iter()
                        .map(|(s, set)| SplitListing {
                            name: s.clone(),
                            items: set.len(),
                        })
                        .collect(),
                })
                .collect(),
            artifacts: self.artifacts.values().map(|a| a.listing.clone()).collect(),
            limits: LimitsListing {
                max_batch: self.config.max_batch,
                max_body_bytes: self.config.max_body_bytes,
                max_response_bytes: self.config.max_response_bytes,
                request_timeout_s: self.config.request_timeout.as_secs_f64(),
            },
            wire: WireListing {
                version: codec::WIRE_VERSION,
                content_type: codec::CONTENT_TYPE.to_string(),
                header_bytes: codec::HEADER_BYTES,
                encodings: vec!["zstd".to_string()],
            },
        }
    }
}

/// What a request can do wrong (4xx) or what went wrong inside (5xx).
///
/// Every variant answers with `{"error": "<message>"}`; 5xx messages are
/// generic and the details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An id or split that is not a plain name (path-like, empty, odd bytes).
    #[error("invalid {what} '{value}': must be a plain name (letters, digits, '.', '_', '-'; no '/' or '..')")]
    InvalidName { what: &'static str, value: String },
    /// A path segment that does not decode.
    #[error("invalid request path: {reason}")]
    BadPath { reason: String },
    /// An item index that is not a non-negative integer.
    #[error("invalid item index '{value}': expected a non-negative integer")]
    InvalidIndex { value: String },
    /// No artifact with this id.
    #[error("unknown artifact '{id}'; served: {known}")]
    UnknownArtifact { id: String, known: String },
    /// No dataset with this name.
    #[error("unknown dataset '{name}'; served: {known}")]
    UnknownDataset { name: String, known: String },
    /// No such split in the artifact's dataset.
    #[error("unknown split '{split}' of dataset '{dataset}'; splits: {known}")]
    UnknownSplit {
        split: String,
        dataset: String,
        known: String,
    },
    /// An index past the end of the split.
    #[error("item index {index} out of range for split '{split}' ({len} items)")]
    IndexOutOfRange { index: u64, split: String, len: usize },
    /// A POST body that is not the expected JSON.
    #[error("malformed json body: {reason}; expected {{\"indices\": [0, 1, ...]}}")]
    MalformedJson { reason: String },
    /// A POST body that is not declared as JSON.
    #[error("unsupported content type '{found}'; send application/json")]
    UnsupportedContentType { found: String },
    /// A body over the size limit.
    #[error("request body over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A `Content-Length` over the size limit (answered before any of the
    /// body is read).
    #[error("request body of {declared} bytes (content-length) over the limit of {limit} bytes")]
    DeclaredBodyTooLarge { declared: u64, limit: usize },
    /// A body that did not arrive in time.
    #[error("request body not received within {secs} s ({received} bytes arrived)")]
    BodyTimeout { secs: f64, received: usize },
    /// A body that could not be read (the connection broke, bad chunking).
    #[error("request body could not be read: {reason}")]
    BodyUnreadable { reason: String },
    /// More indices than allowed in one batch.
    #[error("batch of {n} indices over the limit of {limit}; split it")]
    BatchTooLarge { n: usize, limit: usize },
    /// A batch whose payload would exceed the response limit.
    #[error("batch would send up to {bytes} bytes, over the limit of {limit}; ask for fewer items")]
    ResponseTooLarge { bytes: usize, limit: usize },
    /// No route.
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    /// A route that exists, with another method.
    #[error("method {method} not allowed for {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The request took longer than the timeout.
    #[error("request timed out after {secs} s")]
    Timeout { secs: f64 },
    /// Anything that is the server's fault; `detail` is logged, not sent.
    #[error("internal server error")]
    Internal { detail: String },
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidName { .. }
            | ApiError::BadPath { .. }
            | ApiError::InvalidIndex { .. }
            | ApiError::MalformedJson { .. }
            | ApiError::BodyUnreadable { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownArtifact { .. }
            | ApiError::UnknownDataset { .. }
            | ApiError::UnknownSplit { .. }
            | ApiError::IndexOutOfRange { .. }
            | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout { .. } | ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::BodyTooLarge { .. }
            | ApiError::DeclaredBodyTooLarge { .. }
            | ApiError::BatchTooLarge { .. }
            | ApiError::ResponseTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal { detail: detail.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            let detail = match &self {
                ApiError::Internal { detail } => detail.as_str(),
                _ => "",
            };
            tracing::error!(status = status.as_u16(), detail, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
        }
        (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// Builds the application: routes, limits, timeout and panic handling.
///
/// Layers, outermost first: panics become 500s; the body is read (size
/// limit, deadline) before anything else; then, for every route but
/// `/health` and the fallbacks, the request timeout and the concurrency
/// limit. `/health` answers without a slot, so a server whose slots are
/// all busy still reports itself alive.
pub fn router(state: Arc<ServerState>) -> Router {
    let timeout = state.config.request_timeout;
    let secs = timeout.as_secs_f64();
    let body = BodyLimits {
        max_bytes: state.config.max_body_bytes,
        timeout: state.config.body_read_timeout,
    };
    let concurrency = state.config.max_concurrency.max(1);
    Router::new()
        .route("/v1/datasets", get(datasets))
        .route("/v1/artifacts/{id}/items/{split}/{index}", get(get_item))
        .route("/v1/artifacts/{id}/items/{split}", post(post_items))
        .route("/v1/datasets/{dataset}/labels/{split}", post(post_labels))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |err: BoxError| async move {
                    if err.is::<tower::timeout::error::Elapsed>() {
                        ApiError::Timeout { secs }
                    } else {
                        ApiError::internal(format!("middleware: {err}"))
                    }
                }))
                .timeout(timeout)
                // Shared by these routes: at most `concurrency` requests are
                // handled at once, the rest wait (inside the timeout).
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(concurrency)),
        )
        // Added after `route_layer`: outside the limit and the timeout.
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body.max_bytes))
        .layer(axum::middleware::from_fn_with_state(body, read_body_first))
        // Outermost: a panic anywhere below becomes a logged 500.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
}

/// Size and deadline of request bodies.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    max_bytes: usize,
    timeout: Duration,
}

/// Reads the whole request body before the request goes on (to a slot):
/// a declared `Content-Length` over the limit is answered 413 at once,
/// without reading; a body that grows past the limit 413; one that has not
/// arrived within the deadline 408. Those answers close the connection
/// (the rest of the body is never read).
async fn read_body_first(
    State(limits): State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if let Some(declared) = declared
        && declared > limits.max_bytes as u64
    {
        return closing(ApiError::DeclaredBodyTooLarge {
            declared,
            limit: limits.max_bytes,
        });
    }
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = CountedBody {
        inner: http_body_util::Limited::new(body, limits.max_bytes),
        received: received.clone(),
    };
    let collected = tokio::time::timeout(limits.timeout, http_body_util::BodyExt::collect(counted)).await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return closing(ApiError::BodyTooLarge { limit: limits.max_bytes });
        }
        Ok(Err(e)) => return closing(ApiError::BodyUnreadable { reason: e.to_string() }),
        Err(_) => {
            return closing(ApiError::BodyTimeout {
                secs: limits.timeout.as_secs_f64(),
                received: received.load(std::sync::atomic::Ordering::Relaxed),
            });
        }
    };
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes))).await
}

/// `error`'s response with `Connection: close`: the body was not read to
/// its end, so the connection cannot carry another request.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A body that counts the data bytes it yields (for the 408 message).
struct CountedBody<B> {
    inner: B,
    received: Arc<std::sync::atomic::AtomicUsize>,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = http_body::Body::poll_frame(std::pin::Pin::new(&mut self.inner), cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.received.fetch_add(data.len(), std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests
/// in flight finish; [`serve_with`] with the default [`ConnectionLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with(listener, app, ConnectionLimits::default(), shutdown).await
}

/// Limits of the connections [`serve_with`] accepts: what one slow or
/// stalled client can hold is a connection, for a bounded time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    /// Longest wait for a request's head, from the moment the server waits
    /// for it: on a new connection, and on a kept-alive one after each
    /// response, so it is also the idle limit (default 10 s). The
    /// connection is closed when it passes.
    pub header_read_timeout: Duration,
    /// Longest a response write may make no progress, i.e. the client reads
    /// nothing while the socket buffers are full (default 30 s); then the
    /// connection is closed and the response dropped, so a client that
    /// stops reading cannot pin up to `max_response_bytes` in memory.
    pub write_stall_timeout: Duration,
    /// Connections open at once (default 1024); one more is closed as soon
    /// as it is accepted. Each costs a socket and a few kB until a
    /// request arrives.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` (HTTP/1.1) under `limits` until `shutdown`
/// resolves; then stops accepting, lets every connection finish the request
/// it is handling, and returns once all are closed.
///
/// Accept errors (out of file descriptors, a connection reset before it was
/// accepted) are logged and retried after a pause, never returned: the
/// server outlives them.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let max = limits.max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut refused = 0u64;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Closed at once: a clear failure for the client, and the
            // kernel's backlog does not fill with connections nobody serves.
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, max, "connection limit reached; closing new connections");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(StallGuard::new(stream, limits.write_stall_timeout));
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true)
                .serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    // Every connection gives its permit back when it closes.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// A socket whose writes fail once they have been blocked (the peer reads
/// nothing, the buffers are full) for longer than `limit`.
struct StallGuard {
    inner: tokio::net::TcpStream,
    limit: Duration,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl StallGuard {
    fn new(inner: tokio::net::TcpStream, limit: Duration) -> Self {
        StallGuard { inner, limit, stalled: None }
    }

    /// Maps a write's poll: progress clears the stall clock, `Pending`
    /// starts it (or checks it), and past the limit the write fails.
    fn guard<T>(&mut self, cx: &mut std::task::Context<'_>, polled: std::task::Poll<std::io::Result<T>>) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        match polled {
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("client read nothing for {} s", limit.as_secs_f64()),
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl tokio::io::AsyncRead for StallGuard {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.inner), cx, buf)
    }
}

impl tokio::io::AsyncWrite for StallGuard {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = tokio::io::AsyncWrite::poll_write(std::pin::Pin::new(&mut self.inner), cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = tokio::io::AsyncWrite::poll_write_vectored(std::pin::Pin::new(&mut self.inner), cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        tokio::io::AsyncWrite::is_write_vectored(&self.inner)
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let polled = tokio::io::AsyncWrite::poll_flush(std::pin::Pin::new(&mut self.inner), cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let polled = tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.inner), cx);
        self.guard(cx, polled)
    }
}

/// Resolves on Ctrl-C or SIGTERM: pass to [`serve`] as its shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

async fn datasets(State(state): State<Arc<ServerState>>) -> Json<Listing> {
    Json(state.listing_body())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::BadPath {
        reason: rejection.body_text(),
    }
}

async fn get_item(
    State(state): State<Arc<ServerState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((id, split, index)) = path.map_err(path_error)?;
    // Validate the names before the index, so a path-like id is reported as such.
    let (artifact, set) = lookup(&state, &id, &split)?;
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::InvalidIndex { value: index.clone() })?;
    respond(&state, artifact, set, &split, vec![index], &headers).await
}

async fn post_items(
    State(state): State<Arc<ServerState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path((id, split)) = path.map_err(path_error)?;
    let (artifact, set) = lookup(&state, &id, &split)?;
    let req = items_request(&state, &headers, body)?;
    respond(&state, artifact, set, &split, req.indices, &headers).await
}

/// `POST /v1/datasets/{dataset}/labels/{split}`: the labels of the items,
/// in the order asked for, as JSON. Labels are evaluation data, not model
/// input, so they stay out of the payloads and out of `wire_bytes`.
async fn post_labels(
    State(state): State<Arc<ServerState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LabelsResponse>, ApiError> {
    let Path((dataset, split)) = path.map_err(path_error)?;
    let set = lookup_split(&state, &dataset, &split)?;
    let req = items_request(&state, &headers, body)?;
    let idx = check_indices(&set, &split, &req.indices)?;
    // A label lookup per index: cheap enough for the async worker (at most
    // `max_batch` of them), unlike packing.
    Ok(Json(LabelsResponse {
        labels: idx.iter().map(|&i| set.labels()[i as usize]).collect(),
    }))
}

/// The `{"indices": [...]}` body of a POST: checks the content type, the
/// body size, the JSON and the batch size, in that order.
fn items_request(
    state: &ServerState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ItemsRequest, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(ApiError::UnsupportedContentType {
            found: content_type.unwrap_or_else(|| "(none)".into()),
        });
    }
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge {
                limit: state.config.max_body_bytes,
            }
        } else {
            ApiError::MalformedJson { reason: r.body_text() }
        }
    })?;
    let req: ItemsRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson { reason: e.to_string() })?;
    if req.indices.len() > state.config.max_batch {
        return Err(ApiError::BatchTooLarge {
            n: req.indices.len(),
            limit: state.config.max_batch,
        });
    }
    Ok(req)
}

/// Refuses anything but a plain name (see [`is_plain_name`]).
fn plain_name(what: &'static str, value: &str) -> Result<(), ApiError> {
    if is_plain_name(value) {
        Ok(())
    } else {
        Err(ApiError::InvalidName { what, value: value.to_string() })
    }
}

/// Checks the names and finds the artifact and the split it serves.
fn lookup<'s>(state: &'s ServerState, id: &str, split: &str) -> Result<(&'s ServedArtifact, Arc<SplitSource>), ApiError> {
    plain_name("artifact id", id)?;
    plain_name("split", split)?;
    let artifact = state.artifacts.get(id).ok_or_else(|| ApiError::UnknownArtifact {
        id: id.to_string(),
        known: join_keys(state.artifacts.keys()),
    })?;
    // Artifacts are only added for datasets the state holds (`check_artifact`).
    Ok((artifact, lookup_split(state, &artifact.listing.dataset, split)?))
}

/// Checks the names and finds split `split` of dataset `dataset`.
fn lookup_split(state: &ServerState, dataset: &str, split: &str) -> Result<Arc<SplitSource>, ApiError> {
    plain_name("dataset", dataset)?;
    plain_name("split", split)?;
    let d = state.datasets.get(dataset).ok_or_else(|| ApiError::UnknownDataset {
        name: dataset.to_string(),
        known: join_keys(state.datasets.keys()),
    })?;
    let set = d.splits.get(split).ok_or_else(|| ApiError::UnknownSplit {
        split: split.to_string(),
        dataset: dataset.to_string(),
        known: join_keys(d.splits.keys()),
    })?;
    Ok(Arc::clone(set))
}

/// Checks every index against the split's length (first offender named).
fn check_indices(set: &SplitSource, split: &str, indices: &[u64]) -> Result<Vec<u32>, ApiError> {
    let len = set.len();
    indices
        .iter()
        .map(|&i| {
            if i >= len as u64 {
                return Err(ApiError::IndexOutOfRange {
                    index: i,
                    split: split.to_string(),
                    len,
                });
            }
            // len <= u32::MAX was checked when the dataset was added.
            Ok(i as u32)
        })
        .collect()
}

fn join_keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() { "(none)".into() } else { v.join(", ") }
}

/// Whether the client accepts zstd (`Accept-Encoding: zstd`, q > 0).
pub fn accepts_zstd(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| {
            let mut parts = token.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            coding.eq_ignore_ascii_case("zstd") && q > 0.0
        })
}

/// Checks indices, packs (and compresses) on the blocking pool, answers.
async fn respond(
    state: &ServerState,
    artifact: &ServedArtifact,
    set: Arc<SplitSource>,
    split: &str,
    indices: Vec<u64>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let idx = check_indices(&set, split, &indices)?;
    let dtype = state
        .datasets
        .get(&artifact.listing.dataset)
        .map(|d| d.dtype)
        .ok_or_else(|| ApiError::internal("artifact without dataset"))?;
    let max_bytes = match &artifact.mask {
        ServedMask::Static(plan) => codec::static_payload_bytes(idx.len(), plan.n_selected(), dtype),
        ServedMask::Dynamic { layout, .. } => codec::dynamic_max_payload_bytes(layout, dtype, idx.len()),
    };
    if max_bytes > state.config.max_response_bytes {
        return Err(ApiError::ResponseTooLarge {
            bytes: max_bytes,
            limit: state.config.max_response_bytes,
        });
    }
    let zstd_level = accepts_zstd(headers).then_some(state.config.zstd_level);
    let mask = artifact.mask.clone();
    let work = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, bool, Option<u64>), ApiError> {
        let pack = |set: &ImageSet, idx: &[u32]| match &mask {
            ServedMask::Static(plan) => codec::pack_static_set(set, idx, plan),
            ServedMask::Dynamic { layout, masker, norm } => pack_dynamic_items(set, idx, layout, masker.as_ref(), norm),
        };
        let (payload, storage_bytes) = match &*set {
            SplitSource::Memory(set) => (pack(set, &idx), None),
            SplitSource::Store(store) => {
                // Static masks: only the chunks of selected cells; dynamic
                // masks need whole items (the mask model sees them).
                let selected = match &mask {
                    ServedMask::Static(plan) => Some(plan.selected()),
                    ServedMask::Dynamic { .. } => None,
                };
                let (part, bytes) = store
                    .read_items(&idx, selected)
                    .map_err(|e| ApiError::internal(format!("reading the store: {e}")))?;
                let local: Vec<u32> = (0..idx.len() as u32).collect();
                (pack(&part, &local), Some(bytes))
            }
        };
        let payload = payload.map_err(|e| ApiError::internal(format!("packing: {e}")))?;
        let with_storage = |(body, compressed)| (body, compressed, storage_bytes);
        match zstd_level {
            Some(level) => {
                let packed =
                    zstd::bulk::compress(&payload, level).map_err(|e| ApiError::internal(format!("zstd: {e}")))?;
                // Identity when compression does not pay (random data).
                Ok(with_storage(if packed.len() < payload.len() {
                    (packed, true)
                } else {
                    (payload, false)
                }))
            }
            None => Ok(with_storage((payload, false))),
        }
    });
    let (body, compressed, storage_bytes) = work
        .await
        .map_err(|e| ApiError::internal(format!("packing task failed: {e}")))??;
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(codec::CONTENT_TYPE));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if compressed {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    }
    if let Some(bytes) = storage_bytes {
        h.insert(STORAGE_BYTES_HEADER, HeaderValue::from(bytes));
    }
    Ok(response)
}

/// Normalises the items, asks the masker for their cell masks and packs.
fn pack_dynamic_items(
    set: &ImageSet,
    idx: &[u32],
    layout: &CellLayout,
    masker: &dyn DynamicMasker,
    norm: &Normalisation,
) -> Result<Vec<u8>> {
    let n = layout.n_values();
    let [c, h, w] = layout.input;
    let plane = h * w;
    let coef: Vec<(f32, f32)> = (0..c)
        .map(|ch| (norm.scale as f32 / norm.std[ch], norm.mean[ch] / norm.std[ch]))
        .collect();
    let mut normalised = vec![0f32; idx.len() * n];
    for (k, out) in normalised.chunks_exact_mut(n).enumerate() {
        let base = idx[k] as usize * n;
        for (v, o) in out.iter_mut().enumerate() {
            let (a, b) = coef[v / plane];
            *o = set.pixels.get(base + v) * a - b;
        }
    }
    let masks = masker
        .cell_masks(&normalised, idx.len(), layout)
        .map_err(|e| Error::payload(format!("dynamic masker: {e}")))?;
    if masks.len() != idx.len() || masks.iter().any(|m| m.len() != layout.n_cells()) {
        return Err(Error::payload(format!(
            "dynamic masker returned {} masks for {} items (each needs {} cells)",
            masks.len(),
            idx.len(),
            layout.n_cells()
        )));
    }
    fn items<'a, T>(values: &'a [T], idx: &[u32], n: usize) -> Vec<ItemRef<'a, T>> {
        idx.iter()
            .map(|&i| ItemRef {
                index: i,
                values: &values[i as usize * n..(i as usize + 1) * n],
            })
            .collect()
    }
    match &set.pixels {
        Pixels::U8(v) => codec::pack_dynamic(layout, &items(v, idx, n), &masks),
        Pixels::F32(v) => codec::pack_dynamic(layout, &items(v, idx, n), &masks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_zstd(&m)
        };
        assert!(h("zstd"));
        assert!(h("gzip, zstd;q=0.5"));
        assert!(h("ZSTD"));
        assert!(!h("zstd;q=0"));
        assert!(!h("gzip, br"));
        assert!(!accepts_zstd(&HeaderMap::new()));
    }

    #[test]
    fn every_api_error_has_a_4xx_or_5xx_status() {
        assert_eq!(
            ApiError::InvalidIndex { value: "x".into() }.status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ApiError::internal("boom").to_string(), "internal server error");
    }
}
