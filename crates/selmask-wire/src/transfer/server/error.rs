//! The API's errors: every refusal a status, a JSON body naming the value
//! at fault, and no detail of a 5xx leaked to the client (it is logged).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::transfer::api::ErrorBody;

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

    /// A 500 whose `detail` is logged, never sent.
    pub(super) fn internal(detail: impl Into<String>) -> Self {
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
