//! Typed extractors of the API, as axum's `examples/error-handling` has
//! them: each one's rejection is an [`ApiError`] naming what is wrong, so
//! the handlers take checked arguments and no handler repeats a check.
//!
//! Extractors run in the order of a handler's arguments, those that read
//! only the request head first and the body ([`ItemsBody`]) last: names
//! are checked and looked up (404 naming the known ones) before the body's
//! content type, size, JSON and batch size, as the API reference says.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, StatusCode};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::transfer::api::ItemsRequest;
use crate::util::is_plain_name;
use super::error::ApiError;
use super::state::{ServedArtifact, ServerState, SplitSource};

/// A path's parameters; a path that does not deserialise is a 400 naming
/// the reason.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::BadPath { reason: rejection.body_text() }),
        }
    }
}

/// The named path parameters of a route.
type Params = BTreeMap<String, String>;

/// `params[name]`; the routes name every parameter their extractors read,
/// so a missing one is the server's own fault.
fn param<'p>(params: &'p Params, name: &str) -> Result<&'p str, ApiError> {
    params.get(name).map(String::as_str).ok_or_else(|| ApiError::internal(format!("route has no {{{name}}} parameter")))
}

/// The artifact and split of `/v1/artifacts/{id}/items/{split}[/...]`,
/// names checked and found.
pub(super) struct ArtifactSplit {
    pub artifact: Arc<ServedArtifact>,
    pub split: String,
    pub set: Arc<SplitSource>,
}

impl FromRequestParts<Arc<ServerState>> for ArtifactSplit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let ApiPath(params) = ApiPath::<Params>::from_request_parts(parts, state).await?;
        let (id, split) = (param(&params, "id")?, param(&params, "split")?);
        plain_name("artifact id", id)?;
        plain_name("split", split)?;
        let artifact = state.artifacts.get(id).ok_or_else(|| ApiError::UnknownArtifact {
            id: id.to_string(),
            known: join_keys(state.artifacts.keys()),
        })?;
        // Artifacts are only added for datasets the state holds (`check_artifact`).
        let set = lookup_split(state, &artifact.listing.dataset, split)?;
        Ok(ArtifactSplit { artifact: Arc::clone(artifact), split: split.to_string(), set })
    }
}

/// The dataset split of `/v1/datasets/{dataset}/labels/{split}`, names
/// checked and found.
pub(super) struct DatasetSplit {
    pub split: String,
    pub set: Arc<SplitSource>,
}

impl FromRequestParts<Arc<ServerState>> for DatasetSplit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let ApiPath(params) = ApiPath::<Params>::from_request_parts(parts, state).await?;
        let (dataset, split) = (param(&params, "dataset")?, param(&params, "split")?);
        let set = lookup_split(state, dataset, split)?;
        Ok(DatasetSplit { split: split.to_string(), set })
    }
}

/// The `{"indices": [...]}` body of a POST: checks the content type, the
/// body size, the JSON and the batch size, in that order.
pub struct ItemsBody(pub ItemsRequest);

impl FromRequest<Arc<ServerState>> for ItemsBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let is_json = content_type
            .as_deref()
            .is_some_and(|ct| ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        if !is_json {
            return Err(ApiError::UnsupportedContentType { found: content_type.unwrap_or_else(|| "(none)".into()) });
        }
        let body = Bytes::from_request(request, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge { limit: state.config.max_body_bytes }
            } else {
                ApiError::MalformedJson { reason: r.body_text() }
            }
        })?;
        let req: ItemsRequest =
            serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson { reason: e.to_string() })?;
        if req.indices.len() > state.config.max_batch {
            return Err(ApiError::BatchTooLarge { n: req.indices.len(), limit: state.config.max_batch });
        }
        Ok(ItemsBody(req))
    }
}

/// Refuses anything but a plain name (see [`is_plain_name`]).
fn plain_name(what: &'static str, value: &str) -> Result<(), ApiError> {
    if is_plain_name(value) { Ok(()) } else { Err(ApiError::InvalidName { what, value: value.to_string() }) }
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

/// The keys, comma-separated, or `(none)`.
fn join_keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() { "(none)".into() } else { v.join(", ") }
}
