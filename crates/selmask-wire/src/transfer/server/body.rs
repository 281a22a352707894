//! Request bodies read whole, with a size limit and a deadline, before a
//! request takes a concurrency slot; and panics turned into 500s.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::Result;
use super::error::ApiError;

/// Size and deadline of request bodies.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub(super) max_bytes: usize,
    pub(super) timeout: Duration,
}

/// Reads the whole request body before the request goes on (to a slot):
/// a declared `Content-Length` over the limit is answered 413 at once,
/// without reading; a body that grows past the limit 413; one that has not
/// arrived within the deadline 408. Those answers close the connection
/// (the rest of the body is never read).
pub(super) async fn read_body_first(
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

pub(super) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}
