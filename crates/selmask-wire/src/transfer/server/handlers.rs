//! The routes' handlers: the listing, item payloads and labels. Their
//! arguments are typed extractors ([`super::extract`]) whose rejection is
//! the API error, so a handler starts from checked names and bodies.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;

use crate::artifact::format::Normalisation;
use crate::dataset::{ImageSet, Pixels};
use crate::error::{Error, Result};
use crate::granularity::CellLayout;
use crate::transfer::codec;
use crate::transfer::api::{Health, LabelsResponse, Listing};
use crate::transfer::codec::ItemRef;
use super::STORAGE_BYTES_HEADER;
use super::error::ApiError;
use super::extract::{ApiPath, ArtifactSplit, DatasetSplit, ItemsBody};
use super::state::{DynamicMasker, ServedArtifact, ServedMask, ServerState, SplitSource};

pub(super) async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

pub(super) async fn datasets(State(state): State<Arc<ServerState>>) -> Json<Listing> {
    Json(state.listing_body())
}

pub(super) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// `GET /v1/artifacts/{id}/items/{split}/{index}`: one item's payload.
pub(super) async fn get_item(
    State(state): State<Arc<ServerState>>,
    target: ArtifactSplit,
    ApiPath((_, _, index)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The names were checked (and looked up) before the index, so a
    // path-like id is reported as such.
    let index: u64 = index.parse().map_err(|_| ApiError::InvalidIndex { value: index.clone() })?;
    respond(&state, &target.artifact, target.set, &target.split, vec![index], &headers).await
}

/// `POST /v1/artifacts/{id}/items/{split}`: the payload of the items.
pub(super) async fn post_items(
    State(state): State<Arc<ServerState>>,
    target: ArtifactSplit,
    headers: HeaderMap,
    ItemsBody(req): ItemsBody,
) -> Result<Response, ApiError> {
    respond(&state, &target.artifact, target.set, &target.split, req.indices, &headers).await
}

/// `POST /v1/datasets/{dataset}/labels/{split}`: the labels of the items,
/// in the order asked for, as JSON. Labels are evaluation data, not model
/// input, so they stay out of the payloads and out of `wire_bytes`.
pub(super) async fn post_labels(target: DatasetSplit, ItemsBody(req): ItemsBody) -> Result<Json<LabelsResponse>, ApiError> {
    let idx = check_indices(&target.set, &target.split, &req.indices)?;
    // A label lookup per index: cheap enough for the async worker (at most
    // `max_batch` of them), unlike packing.
    Ok(Json(LabelsResponse {
        labels: idx.iter().map(|&i| target.set.labels()[i as usize]).collect(),
    }))
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
