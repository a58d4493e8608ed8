//! `/metrics` on the health port, in the OpenMetrics text format (prometheus-client): what a
//! platform team alerts on. Every request is counted once, when its log line is written
//! (`log`), from what it turned out to be (`note`); the credential and certificate gauges are
//! read at scrape time from their owners.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `epinio_irsa_gateway_requests_total` | `operation`, `status` | requests answered |
//! | `epinio_irsa_gateway_refusals_total` | `reason` | requests refused before AWS: `authentication`, `bucket`, `operation`, `query`, `header`, `key`, `body`, `request` |
//! | `epinio_irsa_gateway_received_bytes_total`, `..._sent_bytes_total` | | request and response bodies |
//! | `epinio_irsa_gateway_request_duration_seconds` | `operation` | whole request, streamed body included (histogram) |
//! | `epinio_irsa_gateway_backend_errors_total` | `code` | AWS's error codes, and `unreachable` |
//! | `epinio_irsa_gateway_credentials_ready` | | 1 when the role's credentials are usable |
//! | `epinio_irsa_gateway_credentials_expiry_seconds` | | seconds until they expire |
//! | `epinio_irsa_gateway_connections_open` | | S3 connections open |
//! | `epinio_irsa_gateway_certificate_expiry_seconds` | | seconds until the served certificate expires (TLS only) |

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use super::credentials::{CredentialState, Phase};
use super::tls::Reloading;

type Labels = Vec<(&'static str, String)>;
type Seconds = Gauge<f64, AtomicU64>;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One finished request, as `log` saw it.
pub struct Finished<'a> {
    pub operation: &'a str,
    pub status: u16,
    pub refusal: Option<&'static str>,
    pub backend_error: Option<&'a str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    received: Counter,
    sent: Counter,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    backend_errors: Family<Labels, Counter>,
    credentials_ready: Gauge,
    credentials_expiry: Seconds,
    connections: Gauge,
    certificate_expiry: Seconds,
    credentials: CredentialState,
    tls: Option<Arc<Reloading>>,
}

fn duration_histogram() -> Histogram {
    // 5 ms to about 80 s: a HeadBucket to a large upload.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Metrics {
    pub fn new(credentials: CredentialState, tls: Option<Arc<Reloading>>) -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            refusals: Family::default(),
            received: Counter::default(),
            sent: Counter::default(),
            duration: Family::new_with_constructor(duration_histogram),
            backend_errors: Family::default(),
            credentials_ready: Gauge::default(),
            credentials_expiry: Seconds::default(),
            connections: Gauge::default(),
            certificate_expiry: Seconds::default(),
            credentials,
            tls,
            registry: Registry::default(),
        };
        let p = "epinio_irsa_gateway_";
        r.register(
            format!("{p}requests"),
            "S3 requests answered",
            m.requests.clone(),
        );
        r.register(
            format!("{p}refusals"),
            "Requests refused before AWS, by reason",
            m.refusals.clone(),
        );
        r.register_with_unit(
            format!("{p}received"),
            "Request body bytes received",
            Unit::Bytes,
            m.received.clone(),
        );
        r.register_with_unit(
            format!("{p}sent"),
            "Response body bytes sent",
            Unit::Bytes,
            m.sent.clone(),
        );
        r.register_with_unit(
            format!("{p}request_duration"),
            "Whole request, body included",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register(
            format!("{p}backend_errors"),
            "Errors from S3 by code (unreachable: no answer)",
            m.backend_errors.clone(),
        );
        r.register(
            format!("{p}credentials_ready"),
            "1 when the role's credentials are usable",
            m.credentials_ready.clone(),
        );
        r.register_with_unit(
            format!("{p}credentials_expiry"),
            "Time until the role's credentials expire",
            Unit::Seconds,
            m.credentials_expiry.clone(),
        );
        r.register(
            format!("{p}connections_open"),
            "S3 connections open",
            m.connections.clone(),
        );
        if m.tls.is_some() {
            r.register_with_unit(
                format!("{p}certificate_expiry"),
                "Time until the served certificate expires",
                Unit::Seconds,
                m.certificate_expiry.clone(),
            );
        }
        Metrics { registry: r, ..m }
    }

    pub fn finished(&self, f: &Finished<'_>) {
        let op = || vec![("operation", f.operation.to_string())];
        let mut labels = op();
        labels.push(("status", f.status.to_string()));
        self.requests.get_or_create(&labels).inc();
        if let Some(reason) = f.refusal {
            self.refusals
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc();
        }
        if let Some(code) = f.backend_error {
            self.backend_errors
                .get_or_create(&vec![("code", code.to_string())])
                .inc();
        }
        self.received.inc_by(f.bytes_in);
        self.sent.inc_by(f.bytes_out);
        self.duration
            .get_or_create(&op())
            .observe(f.duration.as_secs_f64());
    }

    /// The connections gauge, for `serve` to count S3 connections with.
    pub fn connections(&self) -> Gauge {
        self.connections.clone()
    }

    /// The scrape: gauges read now, then everything encoded.
    pub fn render(&self) -> String {
        let now = SystemTime::now();
        let until = |t: SystemTime| match t.duration_since(now) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        let (phase, expires) = self.credentials.phase_and_expiry();
        self.credentials_ready.set(i64::from(phase == Phase::Ready));
        self.credentials_expiry.set(expires.map_or(0.0, until));
        if let Some(tls) = &self.tls {
            self.certificate_expiry.set(until(tls.current().not_after));
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
