//! The gateway's own environment contract (`EPINIO_IRSA_GATEWAY_*`), read once from an
//! iterator of `(name, value)` pairs and validated before anything listens. It needs none of
//! the hook's `EPINIO_IRSA_*` settings. Every problem is reported together, each naming its
//! variable; the key pair's files are read here too, so a missing or empty Secret stops the
//! start with the file's path, and the values never reach a log (`Secret` redacts them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Bucket, ConfigError, ConfigErrors, LogFormat, Region, Secret};

pub const LISTEN: &str = "EPINIO_IRSA_GATEWAY_LISTEN";
pub const HEALTH_LISTEN: &str = "EPINIO_IRSA_GATEWAY_HEALTH_LISTEN";
pub const BUCKET: &str = "EPINIO_IRSA_GATEWAY_BUCKET";
pub const REGION: &str = "EPINIO_IRSA_GATEWAY_REGION";
pub const ACCESS_KEY_FILE: &str = "EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE";
pub const SECRET_KEY_FILE: &str = "EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE";
pub const TLS_CERT_FILE: &str = "EPINIO_IRSA_GATEWAY_TLS_CERT_FILE";
pub const TLS_KEY_FILE: &str = "EPINIO_IRSA_GATEWAY_TLS_KEY_FILE";
pub const PATH_STYLE: &str = "EPINIO_IRSA_GATEWAY_PATH_STYLE";
pub const LOG_FORMAT: &str = "EPINIO_IRSA_GATEWAY_LOG_FORMAT";
pub const HEADER_READ_TIMEOUT: &str = "EPINIO_IRSA_GATEWAY_HEADER_READ_TIMEOUT_SECONDS";
pub const DRAIN: &str = "EPINIO_IRSA_GATEWAY_DRAIN_SECONDS";
/// The standard AWS variables the region falls back to, in this order.
const AWS_REGION: &str = "AWS_REGION";
const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";

const PREFIX: &str = "EPINIO_IRSA_GATEWAY_";
const DEFAULT_LISTEN: &str = "0.0.0.0:9000";
const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:9090";
/// Where the chart mounts the Secret with Epinio's key pair (the keys of Epinio's own
/// `s3.accessKeyID` / `s3.secretAccessKey`).
pub const DEFAULT_ACCESS_KEY_FILE: &str = "/etc/epinio-irsa-gateway/keys/accessKeyID";
pub const DEFAULT_SECRET_KEY_FILE: &str = "/etc/epinio-irsa-gateway/keys/secretAccessKey";
const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
/// Below Kubernetes' default termination grace period of 30 s.
const DEFAULT_DRAIN_SECONDS: u64 = 25;

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub health_listen: SocketAddr,
    /// The one bucket clients may use.
    pub bucket: Bucket,
    /// The bucket's region: where requests are signed for and buckets are created.
    pub region: Region,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub tls: Option<TlsFiles>,
    /// Address the backend path-style (for S3-compatible backends such as the test emulator).
    pub path_style: bool,
    pub log_format: LogFormat,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The raw strings, as `envy` reads them after the prefix (lower-cased).
#[derive(Deserialize, Default)]
struct Raw {
    listen: Option<String>,
    health_listen: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    access_key_file: Option<String>,
    secret_key_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    path_style: Option<String>,
    log_format: Option<String>,
    header_read_timeout_seconds: Option<String>,
    drain_seconds: Option<String>,
}

/// Reads and validates the configuration from `(name, value)` pairs (the process environment
/// in production). Unset and empty are the same, as Helm renders unset values empty.
pub fn from_pairs<I, K, V>(pairs: I) -> Result<GatewayConfig, ConfigErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let all: HashMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let raw = raw(&all)?;
    let mut errors = Vec::new();
    let mut fail = |variable: &'static str, value: &str, allowed: String| {
        errors.push(ConfigError {
            variable,
            value: value.to_string(),
            allowed,
        })
    };
    let listen = addr(LISTEN, raw.listen, DEFAULT_LISTEN, &mut fail);
    let health_listen = addr(
        HEALTH_LISTEN,
        raw.health_listen,
        DEFAULT_HEALTH_LISTEN,
        &mut fail,
    );
    let bucket = match raw.bucket {
        None => {
            fail(BUCKET, "", "required: Epinio's bucket (s3.bucket)".into());
            None
        }
        Some(b) => b.parse::<Bucket>().map_err(|e| fail(BUCKET, &b, e)).ok(),
    };
    let region = region(raw.region, &all, &mut fail);
    let (access_key_id, secret_access_key) =
        key_pair(raw.access_key_file, raw.secret_key_file, &mut fail);
    let tls = tls(raw.tls_cert_file, raw.tls_key_file, &mut fail);
    let path_style = boolean(PATH_STYLE, raw.path_style, &mut fail);
    let log_format = log_format(raw.log_format, &mut fail);
    let header_read_timeout = seconds(
        HEADER_READ_TIMEOUT,
        raw.header_read_timeout_seconds,
        DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
        &mut fail,
    );
    let drain = seconds(DRAIN, raw.drain_seconds, DEFAULT_DRAIN_SECONDS, &mut fail);
    match (bucket, region, access_key_id, secret_access_key) {
        (Some(bucket), Some(region), Some(access_key_id), Some(secret_access_key))
            if errors.is_empty() =>
        {
            Ok(GatewayConfig {
                listen,
                health_listen,
                bucket,
                region,
                access_key_id,
                secret_access_key,
                tls,
                path_style,
                log_format,
                header_read_timeout,
                drain,
            })
        }
        _ => Err(ConfigErrors(errors)),
    }
}

type Fail<'a> = dyn FnMut(&'static str, &str, String) + 'a;

/// The `EPINIO_IRSA_GATEWAY_*` variables of `all`, as strings.
fn raw(all: &HashMap<String, String>) -> Result<Raw, ConfigErrors> {
    let ours = all
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()));
    envy::prefixed(PREFIX).from_iter(ours).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            variable: "EPINIO_IRSA_GATEWAY_*",
            value: String::new(),
            allowed: e.to_string(),
        }])
    })
}

/// Epinio's key pair from its two files (the mounted Secret); the access key id must be
/// usable in SigV4's credential scope.
fn key_pair(
    access: Option<String>,
    secret: Option<String>,
    fail: &mut Fail,
) -> (Option<Secret>, Option<Secret>) {
    let access_key_file = path(access, DEFAULT_ACCESS_KEY_FILE);
    let secret_key_file = path(secret, DEFAULT_SECRET_KEY_FILE);
    let access_key_id = key_file(ACCESS_KEY_FILE, &access_key_file, fail);
    let secret_access_key = key_file(SECRET_KEY_FILE, &secret_key_file, fail);
    if let Some(id) = &access_key_id {
        if !id.expose().chars().all(|c| c.is_ascii_graphic()) || id.expose().contains('/') {
            let shown = access_key_file.display().to_string();
            fail(ACCESS_KEY_FILE, &shown, "the access key id must be printable ASCII without spaces or '/' (it is part of SigV4's credential scope)".into());
        }
    }
    (access_key_id, secret_access_key)
}

fn addr(var: &'static str, raw: Option<String>, default: &str, fail: &mut Fail) -> SocketAddr {
    let fallback = || {
        default
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    };
    match raw {
        None => fallback(),
        Some(s) => s.parse().unwrap_or_else(|_| {
            fail(
                var,
                &s,
                "an IP address and port, such as 0.0.0.0:9000 or [::]:9000".into(),
            );
            fallback()
        }),
    }
}

/// `EPINIO_IRSA_GATEWAY_REGION`, else the standard `AWS_REGION` / `AWS_DEFAULT_REGION`.
fn region(raw: Option<String>, all: &HashMap<String, String>, fail: &mut Fail) -> Option<Region> {
    let (var, value) = match raw {
        Some(r) => (REGION, r),
        None => match all.get(AWS_REGION).or_else(|| all.get(AWS_DEFAULT_REGION)) {
            Some(r) => (AWS_REGION, r.clone()),
            None => {
                fail(
                    REGION,
                    "",
                    "required: the bucket's region (or set AWS_REGION)".into(),
                );
                return None;
            }
        },
    };
    value.parse().map_err(|e| fail(var, &value, e)).ok()
}

fn tls(cert: Option<String>, key: Option<String>, fail: &mut Fail) -> Option<TlsFiles> {
    match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (Some(cert), None) => {
            fail(
                TLS_KEY_FILE,
                "",
                format!("required when {TLS_CERT_FILE} is set ({cert})"),
            );
            None
        }
        (None, Some(key)) => {
            fail(
                TLS_CERT_FILE,
                "",
                format!("required when {TLS_KEY_FILE} is set ({key})"),
            );
            None
        }
    }
}

fn log_format(raw: Option<String>, fail: &mut Fail) -> LogFormat {
    match raw.as_deref() {
        None => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(f) => {
            fail(LOG_FORMAT, f, "must be text or json".into());
            LogFormat::Text
        }
    }
}

fn path(raw: Option<String>, default: &str) -> PathBuf {
    raw.map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// One key of the pair, from its file; a trailing newline (as `echo` leaves it) is dropped.
fn key_file(var: &'static str, path: &Path, fail: &mut Fail) -> Option<Secret> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let value = s.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                fail(var, &shown, "the file is empty: mount the Secret that holds Epinio's s3.accessKeyID and s3.secretAccessKey".into());
                None
            } else {
                Some(Secret::new(value))
            }
        }
        Err(e) => {
            fail(var, &shown, format!("cannot read the key file ({e}): mount the Secret that holds Epinio's s3.accessKeyID and s3.secretAccessKey"));
            None
        }
    }
}

fn boolean(var: &'static str, raw: Option<String>, fail: &mut Fail) -> bool {
    match raw {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            fail(var, &v, "must be true or false (any case)".into());
            false
        }
    }
}

fn seconds(var: &'static str, raw: Option<String>, default: u64, fail: &mut Fail) -> Duration {
    let n = match raw {
        None => default,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (1..=3600).contains(&n) => n,
            _ => {
                fail(var, &s, "whole seconds from 1 to 3600".into());
                default
            }
        },
    };
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests;
