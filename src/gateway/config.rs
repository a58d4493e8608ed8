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

use crate::config::{Bucket, ConfigError, ConfigErrors, LogFormat, Region, Secret, Validator};

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
pub const MAX_CONNECTIONS: &str = "EPINIO_IRSA_GATEWAY_MAX_CONNECTIONS";
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
/// About 24 MiB of header buffers when every one is full (`serve::MAX_BUF`): far below the
/// chart's 256 MiB memory limit, and far above what Epinio's server and stagings open.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;

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
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
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
    max_connections: Option<String>,
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
    let mut v = Validator::default();
    let listen = addr(&mut v, LISTEN, raw.listen, DEFAULT_LISTEN);
    let health_listen = addr(
        &mut v,
        HEALTH_LISTEN,
        raw.health_listen,
        DEFAULT_HEALTH_LISTEN,
    );
    if raw.bucket.is_none() {
        v.fail(BUCKET, "", "required: Epinio's bucket (s3.bucket)");
    }
    let bucket: Option<Bucket> = v.parse(BUCKET, raw.bucket);
    let region = region(&mut v, raw.region, &all);
    let (access_key_id, secret_access_key) =
        key_pair(&mut v, raw.access_key_file, raw.secret_key_file);
    let tls = tls(&mut v, raw.tls_cert_file, raw.tls_key_file);
    let path_style = v.boolean(PATH_STYLE, raw.path_style, false);
    let log_format = v.log_format(LOG_FORMAT, raw.log_format);
    let seconds = |v: &mut Validator, var, raw, default| {
        Duration::from_secs(v.number(var, raw, 1..=3600, default, " of seconds"))
    };
    let header_read_timeout = seconds(
        &mut v,
        HEADER_READ_TIMEOUT,
        raw.header_read_timeout_seconds,
        DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
    );
    let drain = seconds(&mut v, DRAIN, raw.drain_seconds, DEFAULT_DRAIN_SECONDS);
    let max_connections = v.number(
        MAX_CONNECTIONS,
        raw.max_connections,
        1..=65_536,
        DEFAULT_MAX_CONNECTIONS,
        "",
    );
    match (bucket, region, access_key_id, secret_access_key) {
        (Some(bucket), Some(region), Some(access_key_id), Some(secret_access_key))
            if v.errors.is_empty() =>
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
                max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            })
        }
        _ => Err(ConfigErrors(v.errors)),
    }
}

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
    v: &mut Validator,
    access: Option<String>,
    secret: Option<String>,
) -> (Option<Secret>, Option<Secret>) {
    let access_key_file = path(access, DEFAULT_ACCESS_KEY_FILE);
    let secret_key_file = path(secret, DEFAULT_SECRET_KEY_FILE);
    let access_key_id = key_file(v, ACCESS_KEY_FILE, &access_key_file);
    let secret_access_key = key_file(v, SECRET_KEY_FILE, &secret_key_file);
    if let Some(id) = &access_key_id {
        if !id.expose().chars().all(|c| c.is_ascii_graphic()) || id.expose().contains('/') {
            let shown = access_key_file.display().to_string();
            v.fail(ACCESS_KEY_FILE, &shown, "the access key id must be printable ASCII without spaces or '/' (it is part of SigV4's credential scope)");
        }
    }
    (access_key_id, secret_access_key)
}

fn addr(v: &mut Validator, var: &'static str, raw: Option<String>, default: &str) -> SocketAddr {
    let fallback = || {
        default
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    };
    match raw {
        None => fallback(),
        Some(s) => s.parse().unwrap_or_else(|_| {
            v.fail(
                var,
                &s,
                "an IP address and port, such as 0.0.0.0:9000 or [::]:9000",
            );
            fallback()
        }),
    }
}

/// `EPINIO_IRSA_GATEWAY_REGION`, else the standard `AWS_REGION` / `AWS_DEFAULT_REGION`.
fn region(v: &mut Validator, raw: Option<String>, all: &HashMap<String, String>) -> Option<Region> {
    let (var, value) = match raw {
        Some(r) => (REGION, r),
        None => match all.get(AWS_REGION).or_else(|| all.get(AWS_DEFAULT_REGION)) {
            Some(r) => (AWS_REGION, r.clone()),
            None => {
                v.fail(
                    REGION,
                    "",
                    "required: the bucket's region (or set AWS_REGION)",
                );
                return None;
            }
        },
    };
    v.parse(var, Some(value))
}

fn tls(v: &mut Validator, cert: Option<String>, key: Option<String>) -> Option<TlsFiles> {
    match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (Some(cert), None) => {
            v.fail(
                TLS_KEY_FILE,
                "",
                format!("required when {TLS_CERT_FILE} is set ({cert})"),
            );
            None
        }
        (None, Some(key)) => {
            v.fail(
                TLS_CERT_FILE,
                "",
                format!("required when {TLS_KEY_FILE} is set ({key})"),
            );
            None
        }
    }
}

fn path(raw: Option<String>, default: &str) -> PathBuf {
    raw.map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// One key of the pair, from its file; a trailing newline (as `echo` leaves it) is dropped.
fn key_file(v: &mut Validator, var: &'static str, path: &Path) -> Option<Secret> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let value = s.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                v.fail(var, &shown, "the file is empty: mount the Secret that holds Epinio's s3.accessKeyID and s3.secretAccessKey");
                None
            } else {
                Some(Secret::new(value))
            }
        }
        Err(e) => {
            v.fail(var, &shown, format!("cannot read the key file ({e}): mount the Secret that holds Epinio's s3.accessKeyID and s3.secretAccessKey"));
            None
        }
    }
}

#[cfg(test)]
mod tests;
