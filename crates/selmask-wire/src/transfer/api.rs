//! JSON bodies of the HTTP API, shared by the server and the client.
//!
//! Endpoints (see `docs/wire-format.md`):
//! - `GET /health` → [`Health`]
//! - `GET /v1/datasets` → [`Listing`]
//! - `GET /v1/artifacts/{id}/items/{split}/{index}` → one-item payload
//! - `POST /v1/artifacts/{id}/items/{split}` with [`ItemsRequest`] → payload
//! - `POST /v1/datasets/{dataset}/labels/{split}` with [`ItemsRequest`] →
//!   [`LabelsResponse`]
//! - any 4xx/5xx → [`ErrorBody`]

use serde::{Deserialize, Serialize};

use crate::artifact::format::{MaskKind, StoredDtype};

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"`.
    pub status: String,
}

/// `POST /v1/artifacts/{id}/items/{split}` and
/// `POST /v1/datasets/{dataset}/labels/{split}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsRequest {
    /// Item indices in the split; the response keeps this order (duplicates
    /// allowed).
    pub indices: Vec<u64>,
}

/// `POST /v1/datasets/{dataset}/labels/{split}` answer: `{"labels": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsResponse {
    /// One label per requested index, in the order asked for.
    pub labels: Vec<u16>,
}

/// Every error response: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, naming the offending value.
    pub error: String,
}

/// `GET /v1/datasets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// Datasets held in memory.
    pub datasets: Vec<DatasetListing>,
    /// Artifacts served.
    pub artifacts: Vec<ArtifactListing>,
    /// The server's request limits.
    pub limits: LimitsListing,
    /// The wire format spoken.
    pub wire: WireListing,
}

/// One dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetListing {
    /// Its name.
    pub name: String,
    /// Item shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Stored dtype.
    pub dtype: StoredDtype,
    /// Its splits.
    pub splits: Vec<SplitListing>,
}

/// One split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitListing {
    /// Its name (`train`, `test`, ...).
    pub name: String,
    /// Number of items.
    pub items: usize,
}

/// One artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactListing {
    /// Its id in URLs.
    pub id: String,
    /// The dataset it selects from.
    pub dataset: String,
    /// `static`, `dynamic` or `none`.
    pub mask_type: MaskKind,
    /// Granularity name, if any.
    pub granularity: Option<String>,
    /// Q, the cell fraction.
    pub q: f64,
    /// Fraction of values (bytes) sent.
    pub bytes_fraction: f64,
    /// Static / none: values sent per item.
    pub selected_values: Option<usize>,
    /// Values of a full item.
    pub values_per_item: usize,
    /// SHA-256 of the artifact's `manifest.json`: a client compares it with
    /// its own copy before decoding.
    pub manifest_sha256: String,
}

/// Request limits (a client sizes its batches by `max_batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsListing {
    /// Most indices in one POST.
    pub max_batch: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest (uncompressed) response payload, bytes.
    pub max_response_bytes: usize,
    /// Request timeout, seconds.
    pub request_timeout_s: f64,
}

/// The wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireListing {
    /// Wire version.
    pub version: u8,
    /// Media type of payloads.
    pub content_type: String,
    /// Fixed header bytes per response: the only framing (version 2 sends
    /// no per-item index or label).
    pub header_bytes: usize,
    /// Content codings offered (`zstd`).
    pub encodings: Vec<String>,
}
