//! Health, on its own small listener (the chart points the probes at it, never at the S3
//! port):
//! - `/livez`: the process serves HTTP.
//! - `/readyz`: the S3 listener is open and not shutting down. It does NOT wait for the
//!   role's credentials: the hook that creates the role runs after `helm install --wait` (or
//!   Argo CD's PostSync) sees the gateway ready, so waiting here would deadlock a first
//!   install. Until credentials come, S3 requests get `ServiceUnavailable` instead.
//! - `/credentials`: the credential state as JSON (state, provider, expiry, last error),
//!   never a key.
//! - `/metrics`: the Prometheus metrics (`metrics`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};

use super::credentials::CredentialState;
use super::metrics::{self, Metrics};

pub struct Health {
    /// True from the moment the S3 listener is bound until shutdown starts.
    pub serving: Arc<AtomicBool>,
    pub credentials: CredentialState,
    pub metrics: Arc<Metrics>,
}

pub async fn handle<B>(
    health: Arc<Health>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    Ok(match req.uri().path() {
        "/livez" => plain(StatusCode::OK, "ok\n"),
        "/readyz" if health.serving.load(Ordering::Acquire) => plain(StatusCode::OK, "ready\n"),
        "/readyz" => plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        "/metrics" => {
            let mut res = plain(StatusCode::OK, &health.metrics.render());
            res.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            res
        }
        "/credentials" => {
            let body = health.credentials.report().to_string() + "\n";
            let mut res = plain(StatusCode::OK, &body);
            res.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            res
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /livez, /readyz, /credentials or /metrics\n",
        ),
    })
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
