//! Listening: HTTP/1.1 connections (optionally TLS) handed to a handler, bounded header
//! reads, and a graceful shutdown. When `shutdown` turns true the listener is closed at once
//! (new connections are refused), requests in flight finish, idle keep-alive connections
//! close, and whatever is still open after the drain time is left to the process exit.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::error::GatewayError;

/// hyper's read buffer per connection, and so the hard limit of a request's line and header
/// section: larger ones get `431` from hyper. Room for the 16 KiB header section that gets
/// S3's own error (`early::MAX_HEADER_BYTES`) and an 8 KiB request line (a presigned URL with
/// a long key); no more, since every connection may hold one full buffer.
pub const MAX_BUF: usize = 24 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Settings {
    pub name: &'static str,
    pub header_read_timeout: Duration,
    pub drain: Duration,
    pub tls: Option<TlsAcceptor>,
    /// Connections served at once. Beyond it the listener stops accepting, so new ones wait
    /// in the kernel's backlog until one closes (a slow header is closed after
    /// `header_read_timeout`).
    pub max_connections: usize,
    /// Counts the connections open, when given.
    pub open: Option<prometheus_client::metrics::gauge::Gauge>,
}

pub async fn bind(name: &'static str, addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind {
            listener: name,
            addr,
            source,
        })
}

/// Serves `listener` until `shutdown` turns true, then drains.
pub async fn serve<H, Fut, B, E>(
    listener: TcpListener,
    settings: Settings,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    loop {
        let slot = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(listener = settings.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = settings.tls.clone();
        let open = settings.open.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open.map(Open::new);
            let Some(io) = accept_io(tcp, tls).await else {
                return;
            };
            // Boxed: an idle connection then holds a pointer, not the whole request future.
            let service = service_fn(move |req| Box::pin(handler(peer, req)));
            let conn = http.serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        listener = settings.name,
        "closed; draining requests in flight"
    );
    if tokio::time::timeout(settings.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = settings.name,
            drain_seconds = settings.drain.as_secs(),
            "requests still in flight after the drain time; closing them"
        );
    }
}

/// One open connection in the gauge, for as long as it lives.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Open {
    fn new(gauge: prometheus_client::metrics::gauge::Gauge) -> Open {
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn accept_io(tcp: TcpStream, tls: Option<TlsAcceptor>) -> Option<Box<dyn Io>> {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = tls else {
        return Some(Box::new(tcp));
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}
