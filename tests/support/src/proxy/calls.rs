//! The proxy's call log: one [`Call`] per request, its JSON line form ([`CallRecord`]) and
//! the `--log` file reader.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::KUBE_SERVICE;

/// One call seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `iam`, `sts`, `eks` (SigV4 credential scope) or [`KUBE_SERVICE`].
    pub service: String,
    /// Operation name, see [`classify`](super::classify).
    pub op: String,
    /// Main resource: IAM role name / policy ARN / provider ARN / URL / policy
    /// name; EKS cluster name; Kubernetes `namespace/name` (cluster-scoped:
    /// `name`; namespaced collection: `namespace/*`).
    pub resource: Option<String>,
    /// When the request head arrived.
    pub start: Instant,
    /// When the response was complete (or the connection was dropped).
    pub end: Instant,
    /// HTTP status returned to the client; 0 when the connection was reset
    /// (or the client went away before an answer). Under a `CommitThen*` fault: the status
    /// upstream answered, which the client never saw.
    pub status: u16,
    /// Name of the injected fault ([`Fault::name`](super::Fault::name)), or `"CrashAfterWrites"`.
    pub injected: Option<String>,
    /// AWS: operation not `Get*`/`List*`/`Describe*`; Kubernetes: not GET.
    pub is_write: bool,
    /// AWS Query calls: the decoded form parameters (what IAM authorizes on). Not kept in
    /// the `--log` file.
    pub params: Vec<(String, String)>,
}

impl Call {
    /// The first value of a form parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Any AWS service (everything that is not [`KUBE_SERVICE`]).
    pub fn is_aws(&self) -> bool {
        self.service != KUBE_SERVICE
    }

    /// 2xx and not injected.
    pub fn is_success(&self) -> bool {
        self.injected.is_none() && (200..300).contains(&self.status)
    }

    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Serializable form of a [`Call`] (one JSON line of the `--log` file).
/// Times are milliseconds since the proxy started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub service: String,
    pub op: String,
    pub resource: Option<String>,
    pub start_ms: f64,
    pub end_ms: f64,
    pub status: u16,
    pub injected: Option<String>,
    pub is_write: bool,
}

impl CallRecord {
    pub fn from_call(call: &Call, origin: Instant) -> CallRecord {
        let ms = |t: Instant| t.saturating_duration_since(origin).as_secs_f64() * 1000.0;
        CallRecord {
            service: call.service.clone(),
            op: call.op.clone(),
            resource: call.resource.clone(),
            start_ms: ms(call.start),
            end_ms: ms(call.end),
            status: call.status,
            injected: call.injected.clone(),
            is_write: call.is_write,
        }
    }

    /// Rebuild a [`Call`] (for the analysis helpers) with times relative to
    /// `origin`.
    pub fn to_call(&self, origin: Instant) -> Call {
        let at = |ms: f64| origin + Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        Call {
            service: self.service.clone(),
            op: self.op.clone(),
            resource: self.resource.clone(),
            start: at(self.start_ms),
            end: at(self.end_ms),
            status: self.status,
            injected: self.injected.clone(),
            is_write: self.is_write,
            params: Vec::new(),
        }
    }
}

/// Read a `--log` JSONL file back into calls (times relative to `origin`).
pub fn read_log(path: &Path, origin: Instant) -> io::Result<Vec<Call>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<CallRecord>(l)
                .map(|r| r.to_call(origin))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
        .collect()
}
