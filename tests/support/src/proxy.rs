//! An HTTP/1.1 forwarding proxy for tests and benchmarks, with fault
//! injection, added latency and a per-call log.
//!
//! The proxy sits between the job and moto (AWS emulator; the SDK is pointed
//! at the proxy with `AWS_ENDPOINT_URL`) or between the job and the
//! Kubernetes API stand-in. Every request is buffered, classified into an
//! operation name (see [`classify`]), optionally answered with an injected
//! fault (see [`Fault`] and [`Rule`]), and otherwise forwarded unchanged
//! (hop-by-hop headers aside; `Host` is kept as the client sent it, so SigV4
//! signatures stay valid).
//!
//! ```no_run
//! # async fn demo() {
//! use testkit::proxy::{Fault, Proxy, Rule};
//! let proxy = Proxy::start("http://127.0.0.1:5000").await;
//! proxy.add_rule(Rule::new("CreateRole", Fault::Throttling, 2));
//! // point the job at proxy.url() ...
//! let depth = testkit::proxy::critical_path_depth(&proxy.calls());
//! # let _ = depth;
//! # }
//! ```
//!
//! The same proxy can run as a standalone process for shell benchmarks, the demo and the
//! image tests, see [`cli_main`]. Either way it also serves the EKS Pod Identity stand-in
//! ([`crate::pod_identity`]) at the EKS endpoint.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// `service` value of Kubernetes API calls in [`Call`].
pub const KUBE_SERVICE: &str = "kube";

// ---------------------------------------------------------------------------
// Faults and rules
// ---------------------------------------------------------------------------

/// A fault the proxy can inject instead of (or before) forwarding a call.
///
/// The response is shaped after the protocol of the call: AWS Query
/// (IAM/STS) XML `ErrorResponse`, AWS REST-JSON (EKS) `{"message"}` plus
/// `x-amzn-ErrorType`, or a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// AWS Query: 400 `Throttling`; EKS: 429 `ThrottlingException`;
    /// Kubernetes: 429 `TooManyRequests` with `Retry-After: 1`.
    Throttling,
    /// 503: AWS `ServiceUnavailable` (EKS `ServiceUnavailableException`);
    /// Kubernetes Status `ServiceUnavailable`.
    ServiceUnavailable,
    /// 500: AWS `InternalFailure`; Kubernetes Status `InternalError`.
    InternalFailure,
    /// 404: IAM `NoSuchEntity` ("The role with name X cannot be found.");
    /// EKS `ResourceNotFoundException`; Kubernetes `NotFound`.
    NoSuchEntity,
    /// 409: IAM `ConcurrentModification`; EKS `ResourceInUseException`;
    /// Kubernetes Status reason `Conflict`.
    Conflict,
    /// AWS Query: 403 `AccessDenied`, as STS answers while a fresh role or trust
    /// propagates ("Not authorized to perform sts:AssumeRoleWithWebIdentity").
    AccessDenied,
    /// AWS Query: 400 `MalformedPolicyDocument` "Invalid principal in policy", as IAM
    /// answers for a principal (an OIDC provider) it created seconds ago.
    InvalidPrincipal,
    /// Drop the TCP connection (RST) without any HTTP response.
    ResetConnection,
    /// Wait this long, then forward (pick a duration above the client's
    /// timeout to model a hung upstream).
    Slow(Duration),
    /// The answer is lost: forward the call and let it commit upstream, then drop the
    /// connection (RST) instead of relaying the response.
    CommitThenReset,
    /// The answer is lost: forward the call and let it commit upstream, then answer 500
    /// (`InternalFailure` / `InternalError`) instead of the real response.
    CommitThenInternalFailure,
}

impl Fault {
    /// The name recorded in [`Call::injected`] (`"Throttling"`, `"Slow"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttling => "Throttling",
            Fault::ServiceUnavailable => "ServiceUnavailable",
            Fault::InternalFailure => "InternalFailure",
            Fault::NoSuchEntity => "NoSuchEntity",
            Fault::Conflict => "Conflict",
            Fault::AccessDenied => "AccessDenied",
            Fault::InvalidPrincipal => "InvalidPrincipal",
            Fault::ResetConnection => "ResetConnection",
            Fault::Slow(_) => "Slow",
            Fault::CommitThenReset => "CommitThenReset",
            Fault::CommitThenInternalFailure => "CommitThenInternalFailure",
        }
    }

    /// Parse a CLI fault name: `throttling`, `unavailable`, `internal`,
    /// `nosuchentity`, `conflict`, `reset`, `slow:MS`, `commit-reset`, `commit-500`
    /// (case-insensitive; the
    /// [`Fault::name`] spellings are accepted too).
    pub fn parse(s: &str) -> Result<Fault, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(ms) = lower.strip_prefix("slow:").or(lower.strip_prefix("slow=")) {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("bad slow duration in {s:?}"))?;
            return Ok(Fault::Slow(Duration::from_millis(ms)));
        }
        Ok(match lower.as_str() {
            "throttling" | "throttle" => Fault::Throttling,
            "unavailable" | "serviceunavailable" | "503" => Fault::ServiceUnavailable,
            "internal" | "internalfailure" | "500" => Fault::InternalFailure,
            "nosuchentity" | "notfound" | "404" => Fault::NoSuchEntity,
            "conflict" | "409" => Fault::Conflict,
            "accessdenied" | "403" => Fault::AccessDenied,
            "invalidprincipal" => Fault::InvalidPrincipal,
            "reset" | "resetconnection" => Fault::ResetConnection,
            "commit-reset" | "committhenreset" => Fault::CommitThenReset,
            "commit-500" | "committheninternalfailure" => Fault::CommitThenInternalFailure,
            _ => return Err(format!("unknown fault {s:?}")),
        })
    }
}

/// Inject `fault` into calls whose operation is `op` (exact name, or `"*"`
/// for every call): skip the first `after` matching calls, then inject into
/// the next `times` matching calls, then pass through.
///
/// Rules are checked in insertion order; every matching rule counts every
/// matching call, and the first rule that is "due" injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Exact operation name (`CreateRole`, `DescribeCluster`,
    /// `apply serviceaccounts`, ...) or `"*"`.
    pub op: String,
    pub fault: Fault,
    /// How many calls to fault; `usize::MAX` = persistent.
    pub times: usize,
    /// Skip the first `after` matching calls.
    pub after: usize,
}

impl Rule {
    /// Fault the next `times` calls of `op`.
    pub fn new(op: impl Into<String>, fault: Fault, times: usize) -> Rule {
        Rule {
            op: op.into(),
            fault,
            times,
            after: 0,
        }
    }

    /// Fault the next call of `op`.
    pub fn once(op: impl Into<String>, fault: Fault) -> Rule {
        Rule::new(op, fault, 1)
    }

    /// Fault every call of `op` until [`Proxy::clear_rules`].
    pub fn always(op: impl Into<String>, fault: Fault) -> Rule {
        Rule::new(op, fault, usize::MAX)
    }

    /// Let the first `n` matching calls pass before faulting.
    pub fn after(mut self, n: usize) -> Rule {
        self.after = n;
        self
    }

    /// Parse the CLI form `OP=FAULT[*TIMES][@AFTER]`, e.g.
    /// `CreateRole=throttling*2`, `*=unavailable*inf`, `GetRole=nosuchentity@1`,
    /// `DescribeCluster=slow:5000`. `TIMES` defaults to 1; `inf` = persistent.
    pub fn parse(spec: &str) -> Result<Rule, String> {
        let (op, rest) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("fault spec {spec:?} is not OP=FAULT[*TIMES][@AFTER]"))?;
        let (rest, after) = match rest.split_once('@') {
            Some((r, a)) => (
                r,
                a.parse::<usize>()
                    .map_err(|_| format!("bad AFTER in {spec:?}"))?,
            ),
            None => (rest, 0),
        };
        let (fault, times) = match rest.split_once('*') {
            Some((f, "inf")) => (f, usize::MAX),
            Some((f, t)) => (
                f,
                t.parse::<usize>()
                    .map_err(|_| format!("bad TIMES in {spec:?}"))?,
            ),
            None => (rest, 1),
        };
        if op.is_empty() {
            return Err(format!("empty operation in {spec:?}"));
        }
        Ok(Rule::new(op, Fault::parse(fault)?, times).after(after))
    }
}

// ---------------------------------------------------------------------------
// Call log
// ---------------------------------------------------------------------------

/// One call seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `iam`, `sts`, `eks` (SigV4 credential scope) or [`KUBE_SERVICE`].
    pub service: String,
    /// Operation name, see [`classify`].
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
    /// Name of the injected fault ([`Fault::name`]), or `"CrashAfterWrites"`.
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

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

/// Wire protocol of a call, which decides the shape of injected errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS Query (form-encoded `Action=...`; IAM, STS), XML errors.
    AwsQuery,
    /// AWS REST-JSON (EKS), JSON errors with `x-amzn-ErrorType`.
    AwsRestJson,
    /// S3 REST-XML: `<Error><Code>` bodies (none for HEAD), throttling as 503 `SlowDown`.
    S3Rest,
    /// Kubernetes API, `Status` errors.
    Kubernetes,
}

/// What [`classify`] found out about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub protocol: Protocol,
    pub service: String,
    pub op: String,
    pub resource: Option<String>,
    pub is_write: bool,
    pub params: Vec<(String, String)>,
}

/// Classify a request into service / operation / resource.
///
/// * AWS Query (IAM, STS): op = the `Action` value; resource = first present
///   of `RoleName`, `PolicyArn`, `OpenIDConnectProviderArn`, `Url`,
///   `PolicyName`.
/// * EKS REST: `GET /clusters/{name}` → `DescribeCluster`, `POST /clusters`
///   → `CreateCluster`, `GET /clusters` → `ListClusters`, others
///   `EKS:{METHOD} {path}`.
/// * The service comes from the SigV4 credential scope
///   (`.../REGION/SERVICE/aws4_request`); unsigned Query calls fall back to
///   the Host name, then to the action (STS actions → `sts`, else `iam`).
/// * Anything without SigV4/`x-amz-*` headers and without a Query `Action`
///   is Kubernetes: op = `{verb} {resource}` with verb get, list, watch,
///   create, update, patch, apply (PATCH with
///   `application/apply-patch+yaml`), delete, deletecollection.
pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Classification {
    let path = uri.path();
    let scope_service = sigv4_service(headers);
    let has_amz =
        scope_service.is_some() || headers.keys().any(|k| k.as_str().starts_with("x-amz-"));

    // AWS Query: Action in the form body (POST) or in the query string (GET).
    let form_body = is_form(headers) || body.starts_with(b"Action=");
    let mut params = if form_body {
        parse_form(body)
    } else {
        Vec::new()
    };
    if !params.iter().any(|(k, _)| k == "Action") {
        if let Some(q) = uri.query() {
            let qp = parse_form(q.as_bytes());
            if qp.iter().any(|(k, _)| k == "Action") {
                params = qp;
            }
        }
    }
    if let Some(action) = param(&params, "Action") {
        let service = scope_service
            .or_else(|| host_service(headers))
            .unwrap_or_else(|| {
                if is_sts_action(action) {
                    "sts".to_string()
                } else {
                    "iam".to_string()
                }
            });
        let resource = [
            "RoleName",
            "RoleArn",
            "PolicyArn",
            "OpenIDConnectProviderArn",
            "Url",
            "PolicyName",
        ]
        .iter()
        .find_map(|k| param(&params, k))
        .map(str::to_string);
        return Classification {
            protocol: Protocol::AwsQuery,
            service,
            op: action.to_string(),
            resource,
            is_write: !is_read_op(action),
            params: params.clone(),
        };
    }

    if has_amz && scope_service.as_deref() == Some("s3") {
        return classify_s3(method, uri);
    }
    if has_amz {
        let service = scope_service
            .or_else(|| host_service(headers))
            .unwrap_or_else(|| "aws".to_string());
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let decoded: Vec<String> = segs.iter().map(|s| percent_decode(s)).collect();
        if let Some(route) = crate::pod_identity::Route::of(method.as_str(), &decoded) {
            return classify_pod_identity(&route, uri, body, service);
        }
        let (op, resource) = match (method, segs.as_slice()) {
            (&Method::GET, ["clusters", name]) => {
                ("DescribeCluster".to_string(), Some(percent_decode(name)))
            }
            (&Method::GET, ["clusters"]) => ("ListClusters".to_string(), None),
            (&Method::POST, ["clusters"]) => {
                ("CreateCluster".to_string(), json_str(body, &["name"]))
            }
            _ => (
                format!("{}:{} {}", service.to_ascii_uppercase(), method, path),
                segs.get(1).map(|s| percent_decode(s)),
            ),
        };
        let is_write = if op.contains(':') {
            !matches!(*method, Method::GET | Method::HEAD)
        } else {
            !is_read_op(&op)
        };
        return Classification {
            protocol: Protocol::AwsRestJson,
            service,
            op,
            resource,
            is_write,
            params: Vec::new(),
        };
    }

    classify_kube(method, uri, headers, body)
}

/// The Pod Identity stand-in's operations: resource = the association id (for create and list
/// `namespace/serviceAccount`, else the cluster; the add-on for `DescribeAddon`); params = the path's cluster and id, the
/// query and the body's scalar fields (`roleArn`, `namespace`, `serviceAccount`), and
/// `tagged=true` when the body carries tags.
fn classify_pod_identity(
    route: &crate::pod_identity::Route,
    uri: &Uri,
    body: &[u8],
    service: String,
) -> Classification {
    use crate::pod_identity::Route;
    let mut params = vec![("clusterName".to_string(), route.cluster().to_string())];
    let resource = match route {
        Route::Create { cluster } | Route::List { cluster } => cluster.clone(),
        Route::Describe { id, .. } | Route::Update { id, .. } | Route::Delete { id, .. } => {
            params.push(("associationId".into(), id.clone()));
            id.clone()
        }
        Route::DescribeAddon { addon, .. } => {
            params.push(("addonName".into(), addon.clone()));
            addon.clone()
        }
        Route::Tag { arn, .. } => {
            let id = arn.rsplit('/').next().unwrap_or_default().to_string();
            params.push(("associationId".into(), id.clone()));
            params.push(("resourceArn".into(), arn.clone()));
            id
        }
    };
    if let Some(q) = uri.query() {
        params.extend(parse_form(q.as_bytes()));
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for (k, v) in &map {
            match v {
                serde_json::Value::String(s) => params.push((k.clone(), s.clone())),
                serde_json::Value::Object(o) if k == "tags" && !o.is_empty() => {
                    params.push(("tagged".into(), "true".into()))
                }
                _ => {}
            }
        }
    }
    // Create and list name a ServiceAccount when they carry one, as the job's errors do.
    let subject = match (
        param(&params, "namespace"),
        param(&params, "serviceAccount"),
    ) {
        (Some(ns), Some(sa)) => Some(format!("{ns}/{sa}")),
        _ => None,
    };
    let resource = match route {
        Route::Create { .. } | Route::List { .. } => subject.unwrap_or(resource),
        _ => resource,
    };
    let op = route.operation();
    Classification {
        protocol: Protocol::AwsRestJson,
        service,
        op: op.to_string(),
        resource: Some(resource),
        is_write: !is_read_op(op),
        params,
    }
}

/// S3 REST (path-style): the operations `verify` and the tests make, by method and path.
fn classify_s3(method: &Method, uri: &Uri) -> Classification {
    let segs: Vec<String> = uri
        .path()
        .splitn(3, '/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = uri.query().unwrap_or("");
    let op = match (method, segs.len()) {
        (&Method::HEAD, 1) => "HeadBucket",
        (&Method::GET, 1) if query.contains("list-type=2") => "ListObjectsV2",
        (&Method::GET, 1) => "ListObjects",
        (&Method::PUT, 1) => "CreateBucket",
        (&Method::DELETE, 1) => "DeleteBucket",
        (&Method::PUT, 2) => "PutObject",
        (&Method::GET, 2) => "GetObject",
        (&Method::HEAD, 2) => "HeadObject",
        (&Method::DELETE, 2) => "DeleteObject",
        _ => "S3:other",
    };
    Classification {
        protocol: Protocol::S3Rest,
        service: "s3".to_string(),
        op: op.to_string(),
        resource: segs.first().cloned(),
        is_write: matches!(*method, Method::PUT | Method::POST | Method::DELETE),
        params: Vec::new(),
    }
}

fn classify_kube(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Classification {
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let rest: &[String] = match segs.first().map(String::as_str) {
        Some("api") if segs.len() >= 2 => &segs[2..],
        Some("apis") if segs.len() >= 3 => &segs[3..],
        _ => &[],
    };
    let query = parse_form(uri.query().unwrap_or("").as_bytes());
    let watch = matches!(param(&query, "watch"), Some("true" | "1"));

    // Split into (namespace, resource, name, subresource).
    let (ns, resource, name, sub): (Option<&str>, Option<&str>, Option<&str>, Option<&str>) =
        match rest {
            [] => (None, None, None, None),
            [ns_kw, ns] if ns_kw == "namespaces" => (None, Some("namespaces"), Some(ns), None),
            [ns_kw, ns, res, tail @ ..] if ns_kw == "namespaces" => (
                Some(ns),
                Some(res),
                tail.first().map(String::as_str),
                tail.get(1).map(String::as_str),
            ),
            [res, tail @ ..] => (
                None,
                Some(res),
                tail.first().map(String::as_str),
                tail.get(1).map(String::as_str),
            ),
        };

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET | Method::HEAD if name.is_some() || resource.is_none() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    let op = match resource {
        Some(res) => match sub {
            Some(sub) => format!("{verb} {res}/{sub}"),
            None => format!("{verb} {res}"),
        },
        None => format!("{verb} {}", uri.path()),
    };
    let name = name.map(str::to_string).or_else(|| match *method {
        Method::POST if resource.is_some() => json_str(body, &["metadata", "name"]),
        _ => None,
    });
    let resource_name = match (ns, name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n),
        (Some(ns), None) => Some(format!("{ns}/*")),
        (None, None) => None,
    };
    Classification {
        protocol: Protocol::Kubernetes,
        service: KUBE_SERVICE.to_string(),
        op,
        resource: resource_name,
        // A TokenRequest creates no object: it changes no state.
        is_write: !(matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || (resource == Some("serviceaccounts") && sub == Some("token"))),
        params: Vec::new(),
    }
}

/// Operations that change no state: reads, and STS's credential exchanges.
fn is_read_op(op: &str) -> bool {
    ["Get", "List", "Describe", "AssumeRole"]
        .iter()
        .any(|p| op.starts_with(p))
}

fn is_sts_action(action: &str) -> bool {
    action.starts_with("AssumeRole")
        || matches!(
            action,
            "GetCallerIdentity"
                | "GetSessionToken"
                | "GetFederationToken"
                | "GetAccessKeyInfo"
                | "DecodeAuthorizationMessage"
        )
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

/// Service from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`
/// (or a presigned `X-Amz-Credential`, which is not used here).
fn sigv4_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() >= 5 && parts[parts.len() - 1] == "aws4_request" {
        Some(parts[parts.len() - 2].to_string())
    } else {
        None
    }
}

fn host_service(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let first = host.split('.').next()?;
    matches!(first, "iam" | "sts" | "eks").then(|| first.to_string())
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Decode `%XX` escapes (form bodies, and IAM's URL-encoded policy documents).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn json_str(body: &[u8], path: &[&str]) -> Option<String> {
    let root: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut v = &root;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------
// Injected responses
// ---------------------------------------------------------------------------

fn request_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    format!(
        "fa017000-0000-4000-8000-{:012x}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn not_found_message(c: &Classification) -> String {
    let what = c.resource.clone().unwrap_or_else(|| "unknown".to_string());
    let op = c.op.as_str();
    if op.contains("OpenIDConnectProvider") {
        format!("OpenIDConnect Provider not found for arn {what}")
    } else if op.contains("Policy") && !op.contains("Role") {
        format!("Policy {what} was not found.")
    } else if op.contains("Cluster") || c.service == "eks" {
        format!("No cluster found for name: {what}.")
    } else {
        format!("The role with name {what} cannot be found.")
    }
}

/// Build the response for an injected fault (not for `ResetConnection` /
/// `Slow`, which are not responses).
fn fault_response(c: &Classification, fault: &Fault) -> Response<Full<Bytes>> {
    match c.protocol {
        Protocol::AwsQuery => {
            let (status, kind, code, message) = match fault {
                Fault::Throttling => (400, "Sender", "Throttling", "Rate exceeded".to_string()),
                Fault::ServiceUnavailable => (
                    503,
                    "Receiver",
                    "ServiceUnavailable",
                    "Service is unavailable. Please try again later.".to_string(),
                ),
                Fault::NoSuchEntity => (404, "Sender", "NoSuchEntity", not_found_message(c)),
                Fault::Conflict => (
                    409,
                    "Sender",
                    "ConcurrentModification",
                    "Rate of concurrent modifications exceeded; please try again.".to_string(),
                ),
                Fault::AccessDenied => (
                    403,
                    "Sender",
                    "AccessDenied",
                    format!("Not authorized to perform sts:{}", c.op),
                ),
                Fault::InvalidPrincipal => (
                    400,
                    "Sender",
                    "MalformedPolicyDocument",
                    "Invalid principal in policy: \"Federated\"".to_string(),
                ),
                _ => (
                    500,
                    "Receiver",
                    "InternalFailure",
                    "We encountered an internal error. Please try again.".to_string(),
                ),
            };
            let ns = if c.service == "sts" {
                "https://sts.amazonaws.com/doc/2011-06-15/"
            } else {
                "https://iam.amazonaws.com/doc/2010-05-08/"
            };
            let rid = request_id();
            let body = format!(
                "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
                 <Message>{}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>",
                xml_escape(&message)
            );
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/xml")
                .header("x-amzn-RequestId", rid)
                .body(Full::new(Bytes::from(body)))
                .expect("valid response")
        }
        Protocol::S3Rest => {
            let (status, code, message) = match fault {
                Fault::Throttling => (503, "SlowDown", "Please reduce your request rate."),
                Fault::ServiceUnavailable => (503, "ServiceUnavailable", "Service is unavailable."),
                Fault::NoSuchEntity => (404, "NoSuchBucket", "The specified bucket does not exist"),
                Fault::Conflict => (
                    409,
                    "OperationAborted",
                    "A conflicting conditional operation is in progress.",
                ),
                Fault::AccessDenied => (403, "AccessDenied", "Access Denied"),
                _ => (
                    500,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ),
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>{}</RequestId></Error>",
                request_id()
            );
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/xml")
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        }
        Protocol::AwsRestJson => {
            let (status, code, message) = match fault {
                Fault::Throttling => (429, "ThrottlingException", "Rate exceeded".to_string()),
                Fault::ServiceUnavailable => (
                    503,
                    "ServiceUnavailableException",
                    "Service is unavailable. Please try again later.".to_string(),
                ),
                Fault::NoSuchEntity => (404, "ResourceNotFoundException", not_found_message(c)),
                Fault::Conflict => (
                    409,
                    "ResourceInUseException",
                    "The resource is in use by another operation.".to_string(),
                ),
                Fault::AccessDenied => (
                    403,
                    "AccessDeniedException",
                    format!("User is not authorized to perform: eks:{}", c.op),
                ),
                Fault::InvalidPrincipal => (
                    400,
                    "InvalidParameterException",
                    "Role provided does not exist or is not accessible yet".to_string(),
                ),
                _ => (
                    500,
                    "InternalFailure",
                    "We encountered an internal error. Please try again.".to_string(),
                ),
            };
            let body = serde_json::json!({ "message": message }).to_string();
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-amzn-ErrorType", code)
                .header("x-amzn-RequestId", request_id())
                .body(Full::new(Bytes::from(body)))
                .expect("valid response")
        }
        Protocol::Kubernetes => {
            let res = c.op.split_once(' ').map(|(_, r)| r).unwrap_or("");
            let kind_res = res.split('/').next().unwrap_or(res);
            let name = c
                .resource
                .as_deref()
                .map(|r| r.rsplit('/').next().unwrap_or(r))
                .unwrap_or("");
            let (status, reason, message) = match fault {
                Fault::Throttling => (
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.".to_string(),
                ),
                Fault::ServiceUnavailable => (
                    503,
                    "ServiceUnavailable",
                    "The server is currently unable to handle the request".to_string(),
                ),
                Fault::NoSuchEntity => {
                    (404, "NotFound", format!("{kind_res} \"{name}\" not found"))
                }
                Fault::Conflict => (
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {kind_res} \"{name}\": the object has \
                         been modified; please apply your changes to the latest version and try \
                         again"
                    ),
                ),
                _ => (
                    500,
                    "InternalError",
                    "Internal error occurred: injected by fault proxy".to_string(),
                ),
            };
            let mut details = serde_json::json!({ "name": name, "kind": kind_res });
            if status == 429 {
                details["retryAfterSeconds"] = serde_json::json!(1);
            }
            let body = serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "details": details,
                "code": status,
            })
            .to_string();
            let mut b = Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json");
            if status == 429 {
                b = b.header(header::RETRY_AFTER, "1");
            }
            b.body(Full::new(Bytes::from(body)))
                .expect("valid response")
        }
    }
}

// ---------------------------------------------------------------------------
// Proxy state
// ---------------------------------------------------------------------------

struct RuleState {
    rule: Rule,
    seen: usize,
    fired: usize,
}

#[derive(Default)]
struct CrashState {
    limit: Option<usize>,
    ok: usize,
    inflight: usize,
}

struct State {
    upstream: Upstream,
    client: Client<HttpConnector, Full<Bytes>>,
    origin: Instant,
    rules: Mutex<Vec<RuleState>>,
    delay_us: AtomicU64,
    calls: Mutex<Vec<Call>>,
    log: Mutex<Option<File>>,
    crash: Mutex<CrashState>,
    crash_notify: Notify,
    pod_identity: Arc<crate::pod_identity::PodIdentity>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn pick_fault(&self, op: &str) -> Option<Fault> {
        let mut rules = lock(&self.rules);
        let mut chosen = None;
        for rs in rules.iter_mut() {
            if rs.rule.op != "*" && rs.rule.op != op {
                continue;
            }
            rs.seen += 1;
            if chosen.is_none() && rs.seen > rs.rule.after && rs.fired < rs.rule.times {
                rs.fired += 1;
                chosen = Some(rs.rule.fault.clone());
            }
        }
        chosen
    }

    fn record(&self, call: Call) {
        if let Some(file) = lock(&self.log).as_mut() {
            if let Ok(mut line) = serde_json::to_string(&CallRecord::from_call(&call, self.origin))
            {
                line.push('\n');
                let _ = file.write_all(line.as_bytes());
            }
        }
        lock(&self.calls).push(call);
    }

    /// Gate for writes under `crash_after_writes`.
    async fn admit_write(self: &Arc<Self>) -> Admit {
        loop {
            let notified = self.crash_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = lock(&self.crash);
                match s.limit {
                    None => return Admit::Free,
                    Some(k) if s.ok >= k => return Admit::Crash,
                    Some(k) if s.ok + s.inflight < k => {
                        s.inflight += 1;
                        return Admit::Slot(WriteSlot {
                            state: self.clone(),
                            success: false,
                        });
                    }
                    Some(_) => {}
                }
            }
            // Writes in flight could still bring us to k: wait for them.
            notified.await;
        }
    }
}

enum Admit {
    Free,
    Crash,
    Slot(WriteSlot),
}

/// A reserved write under `crash_after_writes`; released on drop.
struct WriteSlot {
    state: Arc<State>,
    success: bool,
}

impl Drop for WriteSlot {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.state.crash);
            s.inflight = s.inflight.saturating_sub(1);
            if self.success {
                s.ok += 1;
            }
        }
        self.state.crash_notify.notify_waiters();
    }
}

/// Records the call when finished, or with status 0 if the handler is
/// dropped (client went away / connection reset).
struct CallGuard {
    state: Arc<State>,
    call: Option<Call>,
}

impl CallGuard {
    fn set_injected(&mut self, name: &str) {
        if let Some(c) = self.call.as_mut() {
            c.injected = Some(name.to_string());
        }
    }

    fn finish(mut self, status: u16) {
        if let Some(mut c) = self.call.take() {
            c.status = status;
            c.end = Instant::now();
            self.state.record(c);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.call.take() {
            c.status = 0;
            c.end = Instant::now();
            self.state.record(c);
        }
    }
}

#[derive(Debug, Clone)]
struct Upstream {
    scheme: String,
    authority: String,
    base: String,
}

impl Upstream {
    fn parse(url: &str) -> Result<Upstream, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("bad upstream URL {url:?}: {e}"))?;
        let scheme = uri.scheme_str().unwrap_or("http");
        if scheme != "http" {
            return Err(format!("upstream {url:?}: only http:// is supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("upstream {url:?} has no host"))?
            .to_string();
        Ok(Upstream {
            scheme: scheme.to_string(),
            authority,
            base: uri.path().trim_end_matches('/').to_string(),
        })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, hyper::http::Error> {
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Uri::builder()
            .scheme(self.scheme.as_str())
            .authority(self.authority.as_str())
            .path_and_query(format!("{}{}", self.base, pq))
            .build()
    }
}

// ---------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------

/// Error returned by the service to make hyper drop the connection.
#[derive(Debug)]
struct ResetRequested;

impl fmt::Display for ResetRequested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset injected by fault proxy")
    }
}

impl std::error::Error for ResetRequested {}

/// TCP stream that turns into a hard reset (RST, no FIN, no bytes) once its
/// flag is raised.
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

fn reset_err() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, ResetRequested)
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_reset() {
            return Poll::Ready(Err(reset_err()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_reset() {
            return Poll::Ready(Err(reset_err()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_reset() {
            return Poll::Ready(Err(reset_err()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_reset() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_reset() {
            // No FIN: the drop below sends an RST instead.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.is_reset() {
            let _ = self.inner.set_zero_linger();
        }
    }
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn copy_end_to_end(src: &HeaderMap, dst: &mut HeaderMap, also_drop: &[HeaderName]) {
    let listed: Vec<String> = src
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for (name, value) in src {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || listed.iter().any(|l| l == n) || also_drop.contains(name) {
            continue;
        }
        dst.append(name.clone(), value.clone());
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(text)))
        .expect("valid response")
}

async fn forward(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let target = match state.upstream.target(&parts.uri) {
        Ok(t) => t,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("fault-proxy: bad URI: {e}"),
            )
        }
    };
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = target;
    // `Host` is copied as sent by the client (the legacy client only sets it
    // when missing), so SigV4 signatures over it stay valid.
    copy_end_to_end(&parts.headers, req.headers_mut(), &[header::EXPECT]);
    let resp = match state.client.request(req).await {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("fault-proxy: upstream error: {e:?}"),
            )
        }
    };
    let (rparts, rbody) = resp.into_parts();
    let bytes = match rbody.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("fault-proxy: upstream body error: {e}"),
            )
        }
    };
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = rparts.status;
    copy_end_to_end(&rparts.headers, out.headers_mut(), &[]);
    out
}

/// Ask moto something with the caller's own headers (so it passes wherever the call itself
/// would): `(status, body)`, or `None` when moto could not be reached.
async fn ask_moto(
    state: &State,
    parts: &hyper::http::request::Parts,
    method: Method,
    path: String,
    body: Option<String>,
) -> Option<(u16, Bytes)> {
    let mut req = Request::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
    *req.method_mut() = method;
    let uri: Uri = match path.parse() {
        Ok(u) => u,
        Err(_) => Uri::from_static("/"),
    };
    let target = state.upstream.target(&uri);
    copy_end_to_end(
        &parts.headers,
        req.headers_mut(),
        &[header::EXPECT, header::CONTENT_LENGTH, header::CONTENT_TYPE],
    );
    if body.is_some() {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        // moto routes Query calls by the credential scope's service: IAM's.
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let iam = auth.replace("/eks/aws4_request", "/iam/aws4_request");
            if let Ok(v) = header::HeaderValue::from_str(&iam) {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
        }
    }
    *req.uri_mut() = target.ok()?;
    let resp = state.client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, bytes))
}

/// moto counts an `AttachRolePolicy` of a policy already attached to the role as a second
/// attachment (its `attachment_count` goes up again, so a later `DeletePolicy` fails with
/// `DeleteConflict` after one detach). IAM attaches once and answers success. So the proxy
/// asks moto first and answers such a call itself, as IAM would.
async fn already_attached(
    state: &State,
    parts: &hyper::http::request::Parts,
    class: &Classification,
) -> bool {
    let (Some(role), Some(policy)) = (
        param(&class.params, "RoleName"),
        param(&class.params, "PolicyArn"),
    ) else {
        return false;
    };
    let form = format!(
        "Action=ListAttachedRolePolicies&Version=2010-05-08&RoleName={}",
        percent_encoding::utf8_percent_encode(role, percent_encoding::NON_ALPHANUMERIC)
    );
    match ask_moto(state, parts, Method::POST, "/".into(), Some(form)).await {
        Some((200, body)) => String::from_utf8_lossy(&body)
            .contains(&format!("<PolicyArn>{}</PolicyArn>", xml_escape(policy))),
        _ => false,
    }
}

fn attached_already() -> Response<Full<Bytes>> {
    let body = format!(
        "<AttachRolePolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AttachRolePolicyResponse>",
        request_id()
    );
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// The role's ARN and trust policy from IAM's `GetRole` XML (the document URL-encoded, as IAM
/// returns it).
fn iam_role(xml: &[u8]) -> Option<crate::pod_identity::IamRole> {
    let xml = String::from_utf8_lossy(xml);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(
            xml[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    let arn = element("Arn")?;
    let trust =
        serde_json::from_str(&percent_decode(&element("AssumeRolePolicyDocument")?)).ok()?;
    Some(crate::pod_identity::IamRole::Found { arn, trust })
}

/// Answer a Pod Identity call from the stand-in, after asking moto what it needs: the cluster
/// (`DescribeCluster`) and, when the body names a role, whether it exists (`GetRole`). Both go
/// with the caller's own headers, so they pass wherever the call itself would.
async fn serve_pod_identity(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    route: &crate::pod_identity::Route,
) -> Response<Full<Bytes>> {
    let ask = |method: Method, path: String, body: Option<String>| {
        ask_moto(state, parts, method, path, body)
    };
    let cluster = route.cluster().to_string();
    let cluster_path = format!(
        "/clusters/{}",
        percent_encoding::utf8_percent_encode(&cluster, percent_encoding::NON_ALPHANUMERIC)
    );
    let failure = |what: &str| {
        let body = serde_json::json!({ "message": format!("stand-in: could not ask moto {what}") });
        Response::builder()
            .status(500)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-amzn-ErrorType", "ServerException")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("valid response")
    };
    let cluster_arn = match ask(Method::GET, cluster_path, None).await {
        Some((200, bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["cluster"]["arn"].as_str().map(str::to_string)),
        Some((404, _)) => None,
        _ => return failure("for the cluster"),
    };
    let role = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["roleArn"].as_str().map(str::to_string));
    let role = match role.as_deref().and_then(crate::pod_identity::role_name) {
        None => None,
        Some(name) => {
            let form = format!(
                "Action=GetRole&Version=2010-05-08&RoleName={}",
                percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
            );
            match ask(Method::POST, "/".into(), Some(form)).await {
                Some((200, xml)) => match iam_role(&xml) {
                    Some(found) => Some(found),
                    None => return failure("for the role (unreadable GetRole answer)"),
                },
                Some((404, _)) => Some(crate::pod_identity::IamRole::Missing),
                _ => return failure("for the role"),
            }
        }
    };
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| parse_form(q.as_bytes()))
        .unwrap_or_default();
    let answer = state.pod_identity.serve(
        route,
        &query,
        body,
        &crate::pod_identity::World { cluster_arn, role },
    );
    let mut b = Response::builder()
        .status(answer.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-amzn-RequestId", request_id());
    if let Some(t) = answer.error_type {
        b = b.header("x-amzn-ErrorType", t);
    }
    b.body(Full::new(Bytes::from(answer.body.to_string())))
        .expect("valid response")
}

async fn handle(
    state: Arc<State>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ResetRequested> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(ResetRequested),
    };
    let class = classify(&parts.method, &parts.uri, &parts.headers, &body);
    let mut guard = CallGuard {
        state: state.clone(),
        call: Some(Call {
            service: class.service.clone(),
            op: class.op.clone(),
            resource: class.resource.clone(),
            start,
            end: start,
            status: 0,
            injected: None,
            is_write: class.is_write,
            params: class.params.clone(),
        }),
    };

    let delay = Duration::from_micros(state.delay_us.load(Ordering::Relaxed));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let mut slot = None;
    if class.is_write {
        match state.admit_write().await {
            Admit::Free => {}
            Admit::Slot(s) => slot = Some(s),
            Admit::Crash => {
                guard.set_injected("CrashAfterWrites");
                reset.store(true, Ordering::SeqCst);
                guard.finish(0);
                return Err(ResetRequested);
            }
        }
    }

    // A fault that loses the answer is applied after the call has committed upstream.
    let mut lost = None;
    if let Some(fault) = state.pick_fault(&class.op) {
        guard.set_injected(fault.name());
        match fault {
            Fault::ResetConnection => {
                reset.store(true, Ordering::SeqCst);
                guard.finish(0);
                return Err(ResetRequested);
            }
            Fault::Slow(d) => tokio::time::sleep(d).await,
            Fault::CommitThenReset | Fault::CommitThenInternalFailure => lost = Some(fault),
            other => {
                let resp = fault_response(&class, &other);
                guard.finish(resp.status().as_u16());
                return Ok(resp);
            }
        }
    }

    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let route = (class.protocol == Protocol::AwsRestJson)
        .then(|| crate::pod_identity::Route::of(parts.method.as_str(), &segments))
        .flatten();
    let resp = match route {
        Some(route) => serve_pod_identity(&state, &parts, &body, &route).await,
        None if class.op == "AttachRolePolicy"
            && already_attached(&state, &parts, &class).await =>
        {
            attached_already()
        }
        None => forward(&state, &parts, body).await,
    };
    if let Some(mut s) = slot {
        s.success = resp.status().is_success();
    }
    match lost {
        // Both are recorded with the status upstream gave, which the client never sees.
        Some(Fault::CommitThenReset) => {
            reset.store(true, Ordering::SeqCst);
            guard.finish(resp.status().as_u16());
            Err(ResetRequested)
        }
        Some(_) => {
            guard.finish(resp.status().as_u16());
            Ok(fault_response(&class, &Fault::InternalFailure))
        }
        None => {
            guard.finish(resp.status().as_u16());
            Ok(resp)
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let reset = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(ResettableStream {
            inner: stream,
            reset: reset.clone(),
        });
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req| handle(state.clone(), reset.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

// ---------------------------------------------------------------------------
// Public handle
// ---------------------------------------------------------------------------

/// A running proxy (spawned on the current tokio runtime; stops on drop).
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Start a proxy on `127.0.0.1:0` forwarding to `upstream`
    /// (`http://host:port[/base]`). Panics on a bad URL or bind failure.
    pub async fn start(upstream: &str) -> Proxy {
        Proxy::start_on(upstream, 0)
            .await
            .unwrap_or_else(|e| panic!("fault proxy: {e}"))
    }

    /// Like [`Proxy::start`], on `127.0.0.1:port` (0 = any free port).
    pub async fn start_on(upstream: &str, port: u16) -> io::Result<Proxy> {
        let upstream = Upstream::parse(upstream)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let state = Arc::new(State {
            upstream,
            client,
            origin: Instant::now(),
            rules: Mutex::new(Vec::new()),
            delay_us: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
            log: Mutex::new(None),
            crash: Mutex::new(CrashState::default()),
            crash_notify: Notify::new(),
            pod_identity: Arc::default(),
        });
        let (shutdown, rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(Proxy {
            addr,
            state,
            accept,
            shutdown,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the proxy started (origin of [`CallRecord`] times).
    pub fn origin(&self) -> Instant {
        self.state.origin
    }

    pub fn add_rule(&self, rule: Rule) {
        lock(&self.state.rules).push(RuleState {
            rule,
            seen: 0,
            fired: 0,
        });
    }

    pub fn clear_rules(&self) {
        lock(&self.state.rules).clear();
    }

    /// The EKS Pod Identity stand-in this proxy serves (see [`crate::pod_identity`]).
    pub fn pod_identity(&self) -> &crate::pod_identity::PodIdentity {
        &self.state.pod_identity
    }

    /// Latency added to every call before it is answered or forwarded.
    pub fn set_delay(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.state.delay_us.store(us, Ordering::Relaxed);
    }

    /// Calls so far, ordered by start time.
    pub fn calls(&self) -> Vec<Call> {
        let mut calls = lock(&self.state.calls).clone();
        calls.sort_by_key(|c| c.start);
        calls
    }

    pub fn clear_calls(&self) {
        lock(&self.state.calls).clear();
    }

    /// Stop forwarding writes after the `k`-th successful (2xx) write from
    /// now on: every later write gets a reset connection (recorded with
    /// `injected = "CrashAfterWrites"`), reads still pass. Concurrent writes
    /// wait while in-flight writes could still reach `k`, so exactly `k`
    /// writes succeed. `None` turns this off.
    pub fn crash_after_writes(&self, k: Option<usize>) {
        {
            let mut s = lock(&self.state.crash);
            s.limit = k;
            s.ok = 0;
        }
        self.state.crash_notify.notify_waiters();
    }

    /// Append one JSON line ([`CallRecord`]) per finished call to `path`
    /// (created/truncated now; written as calls complete).
    pub fn set_log_file(&self, path: &Path) -> io::Result<()> {
        let file = File::create(path)?;
        *lock(&self.state.log) = Some(file);
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.shutdown.send(true);
    }
}

// ---------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------

/// Length of the longest chain of calls where each call started at or after
/// the end of the previous one (longest path in the interval order). A fully
/// sequential run of n calls gives n, fully parallel calls give 1.
pub fn critical_path_depth(calls: &[Call]) -> usize {
    let mut order: Vec<&Call> = calls.iter().collect();
    order.sort_by_key(|c| (c.start, c.end));
    let mut depth = vec![1usize; order.len()];
    for i in 0..order.len() {
        for j in 0..i {
            if order[j].end <= order[i].start {
                depth[i] = depth[i].max(depth[j] + 1);
            }
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

/// Read calls made more than once with the same (service, op, resource),
/// in order of first appearance. A call that directly follows a failed
/// (injected, reset or non-2xx) call with the same key is a retry and is not
/// counted.
pub fn duplicates(calls: &[Call]) -> Vec<(String, Option<String>, usize)> {
    let mut order: Vec<&Call> = calls.iter().filter(|c| !c.is_write).collect();
    order.sort_by_key(|c| c.start);
    type Key = (String, String, Option<String>);
    let mut seen: HashMap<Key, (usize, usize, bool)> = HashMap::new(); // (first index, count, last ok)
    for (i, c) in order.iter().enumerate() {
        let key = (c.service.clone(), c.op.clone(), c.resource.clone());
        let ok = c.is_success();
        match seen.get_mut(&key) {
            None => {
                seen.insert(key, (i, 1, ok));
            }
            Some(entry) => {
                if entry.2 {
                    entry.1 += 1;
                }
                entry.2 = ok;
            }
        }
    }
    let mut out: Vec<(usize, String, Option<String>, usize)> = seen
        .into_iter()
        .filter(|(_, (_, n, _))| *n > 1)
        .map(|((_, op, res), (first, n, _))| (first, op, res, n))
        .collect();
    out.sort();
    out.into_iter()
        .map(|(_, op, res, n)| (op, res, n))
        .collect()
}

/// Aggregate numbers over a call log (see [`summarize`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub aws_reads: usize,
    pub aws_writes: usize,
    pub kube_reads: usize,
    pub kube_writes: usize,
    /// [`critical_path_depth`] over AWS calls only.
    pub depth_aws: usize,
    /// [`critical_path_depth`] over Kubernetes calls only.
    pub depth_kube: usize,
    /// [`critical_path_depth`] over all calls.
    pub depth_all: usize,
    /// Calls answered by an injected fault (incl. crash resets).
    pub injected: usize,
    /// Calls answered with status 0 (reset / client gone).
    pub resets: usize,
    /// Calls that did not succeed (non-2xx, injected or reset).
    pub failed: usize,
    /// Sum over [`duplicates`] of the extra calls (count - 1).
    pub duplicate_reads: usize,
    /// First start to last end, in milliseconds.
    pub wall_ms: f64,
    /// Sum of call durations of AWS calls, in milliseconds.
    pub aws_busy_ms: f64,
    /// Number of calls per `service:op`.
    pub by_op: BTreeMap<String, usize>,
}

pub fn summarize(calls: &[Call]) -> Summary {
    let aws: Vec<Call> = calls.iter().filter(|c| c.is_aws()).cloned().collect();
    let kube: Vec<Call> = calls.iter().filter(|c| !c.is_aws()).cloned().collect();
    let mut s = Summary {
        total: calls.len(),
        aws_reads: aws.iter().filter(|c| !c.is_write).count(),
        aws_writes: aws.iter().filter(|c| c.is_write).count(),
        kube_reads: kube.iter().filter(|c| !c.is_write).count(),
        kube_writes: kube.iter().filter(|c| c.is_write).count(),
        depth_aws: critical_path_depth(&aws),
        depth_kube: critical_path_depth(&kube),
        depth_all: critical_path_depth(calls),
        injected: calls.iter().filter(|c| c.injected.is_some()).count(),
        resets: calls.iter().filter(|c| c.status == 0).count(),
        failed: calls.iter().filter(|c| !c.is_success()).count(),
        duplicate_reads: duplicates(calls).iter().map(|(_, _, n)| n - 1).sum(),
        ..Summary::default()
    };
    if let (Some(first), Some(last)) = (
        calls.iter().map(|c| c.start).min(),
        calls.iter().map(|c| c.end).max(),
    ) {
        s.wall_ms = last.saturating_duration_since(first).as_secs_f64() * 1000.0;
    }
    s.aws_busy_ms = aws
        .iter()
        .map(|c| c.duration().as_secs_f64() * 1000.0)
        .sum();
    for c in calls {
        *s.by_op
            .entry(format!("{}:{}", c.service, c.op))
            .or_default() += 1;
    }
    s
}

// ---------------------------------------------------------------------------
// Command line (for `src/bin/fault-proxy.rs`)
// ---------------------------------------------------------------------------

/// Options of the `fault-proxy` command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CliOptions {
    pub upstream: String,
    pub port: u16,
    pub delay: Duration,
    pub log: Option<std::path::PathBuf>,
    pub rules: Vec<Rule>,
    pub crash_after_writes: Option<usize>,
    /// `CLUSTER=STATUS`: the Pod Identity agent add-on the stand-in reports for that cluster.
    pub pod_identity_agents: Vec<(String, String)>,
}

pub const CLI_USAGE: &str = "usage: fault-proxy --upstream URL [--port P] [--delay-ms N] \
[--log FILE.jsonl] [--fault OP=FAULT[*TIMES][@AFTER]]... [--crash-after-writes K] \
[--pod-identity-agent CLUSTER=STATUS]...";

impl CliOptions {
    /// Parse arguments (without the program name). `--opt value` and
    /// `--opt=value` are accepted.
    pub fn parse<I, S>(args: I) -> Result<CliOptions, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut opts = CliOptions::default();
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flag == "-h" || flag == "--help" {
                return Err(CLI_USAGE.to_string());
            }
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{flag} needs a value\n{CLI_USAGE}"))
            };
            match flag.as_str() {
                "--upstream" => opts.upstream = value()?,
                "--port" => opts.port = value()?.parse().map_err(|_| "bad --port".to_string())?,
                "--delay-ms" => {
                    let ms: u64 = value()?.parse().map_err(|_| "bad --delay-ms".to_string())?;
                    opts.delay = Duration::from_millis(ms);
                }
                "--log" => opts.log = Some(value()?.into()),
                "--fault" => opts.rules.push(Rule::parse(&value()?)?),
                "--crash-after-writes" => {
                    let k = value()?
                        .parse()
                        .map_err(|_| "bad --crash-after-writes".to_string())?;
                    opts.crash_after_writes = Some(k);
                }
                "--pod-identity-agent" => {
                    let v = value()?;
                    let (cluster, status) = v.split_once('=').ok_or_else(|| {
                        format!("--pod-identity-agent {v:?}: want CLUSTER=STATUS")
                    })?;
                    opts.pod_identity_agents
                        .push((cluster.to_string(), status.to_string()));
                }
                other => return Err(format!("unknown argument {other:?}\n{CLI_USAGE}")),
            }
        }
        if opts.upstream.is_empty() {
            return Err(format!("--upstream is required\n{CLI_USAGE}"));
        }
        Ok(opts)
    }
}

/// Entry point of the `fault-proxy` binary: parse `args` (without the
/// program name), start the proxy, print `listening on http://127.0.0.1:P`
/// and serve until the process is killed. With `--log`, one JSON line
/// ([`CallRecord`]) is appended per call as soon as it completes.
///
/// `tests/support/src/bin/fault-proxy.rs`:
/// ```no_run
/// #[tokio::main]
/// async fn main() {
///     if let Err(e) = testkit::proxy::cli_main(std::env::args().skip(1)).await {
///         eprintln!("fault-proxy: {e}");
///         std::process::exit(2);
///     }
/// }
/// ```
pub async fn cli_main<I, S>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let opts = CliOptions::parse(args)?;
    let proxy = Proxy::start_on(&opts.upstream, opts.port)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(path) = &opts.log {
        proxy
            .set_log_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    proxy.set_delay(opts.delay);
    for rule in opts.rules {
        proxy.add_rule(rule);
    }
    proxy.crash_after_writes(opts.crash_after_writes);
    for (cluster, status) in &opts.pod_identity_agents {
        proxy
            .pod_identity()
            .install_agent_on(cluster, status, "v1.3.4-eksbuild.1");
    }
    println!("listening on {}", proxy.url());
    let _ = io::stdout().flush();
    std::future::pending::<()>().await;
    Ok(())
}
