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
//!
//! Layout: [`state`] (what the server holds), [`error`] (the API's errors
//! and their responses), [`extract`] (typed extractors whose rejection is
//! the API error), [`handlers`] (the routes), [`body`] (bodies read before
//! a slot is taken; panics as 500s), [`listen`] (the accept loop); this
//! module builds the [`router`].

mod body;
mod error;
mod extract;
mod handlers;
mod listen;
mod state;

use std::sync::Arc;

use axum::{BoxError, Router};
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower::ServiceBuilder;

pub use error::ApiError;
pub use extract::{ApiPath, ItemsBody};
pub use handlers::accepts_zstd;
pub use listen::{ConnectionLimits, serve, serve_with, shutdown_signal};
pub use state::{DynamicMasker, MaskerError, ServerConfig, ServerState, SplitSource};

/// Response header with the bytes a store-backed split read from storage
/// for that response (encoded chunk sizes).
pub const STORAGE_BYTES_HEADER: &str = "x-selmask-storage-bytes";

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
    let body = body::BodyLimits {
        max_bytes: state.config.max_body_bytes,
        timeout: state.config.body_read_timeout,
    };
    let concurrency = state.config.max_concurrency.max(1);
    Router::new()
        .route("/v1/datasets", get(handlers::datasets))
        .route("/v1/artifacts/{id}/items/{split}/{index}", get(handlers::get_item))
        .route("/v1/artifacts/{id}/items/{split}", post(handlers::post_items))
        .route("/v1/datasets/{dataset}/labels/{split}", post(handlers::post_labels))
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
        .route("/health", get(handlers::health))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body.max_bytes))
        .layer(axum::middleware::from_fn_with_state(body, body::read_body_first))
        // Outermost: a panic anywhere below becomes a logged 500.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(body::panic_response))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

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
