//! The accept loop: a bound on open connections, a deadline for each
//! request head and for every stalled response write, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::error::Result;

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
