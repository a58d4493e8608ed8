//! A stateful stand-in for the Kubernetes API server, for tests and demos on
//! machines where no real apiserver (kind, k3s, envtest) can run.
//!
//! It serves plain HTTP/1.1 on loopback, in-process ([`KubeStandIn::start`])
//! or as the `kube-standin` binary, and is driven by real clients (kube-rs,
//! kubectl) through a kubeconfig it writes.
//!
//! # What it covers
//!
//! Namespaced resources under `/api/v1` and `/apis/{group}/{version}`
//! (ServiceAccount, ConfigMap, Secret, Pod, Event, Deployment, StatefulSet,
//! DaemonSet, Job, events.k8s.io Event, Role, RoleBinding) with get, list
//! (equality label selectors, `metadata.name`/`metadata.namespace` field
//! selectors, also across namespaces), create (incl. `generateName`), replace,
//! delete (uid/resourceVersion preconditions) and patch: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902), strategic merge patch and server-side
//! apply; `dryRun=All` on every write; discovery (`/api`, `/apis`, resource
//! lists) and `/version`, enough for `kubectl get` and
//! `kubectl apply --validate=false` (client- and server-side). Metadata
//! behaves like the real server's: `uid` and `creationTimestamp` on create,
//! one global `resourceVersion` that moves only when an object really changes
//! (an identical write is a no-op, answered 200 and logged as unchanged),
//! `generation` that moves only for changes outside `metadata` and `status`,
//! optimistic concurrency on a stale `resourceVersion`, and `status` left
//! alone by writes to kinds that have a status subresource. Server-side apply
//! tracks field ownership per manager and operation and exposes it as real
//! `metadata.managedFields` (FieldsV1): conflicts (409, worded like the
//! apiserver: `Apply failed with 1 conflict: conflict with "helm":
//! .metadata.annotations.x`, one `FieldManagerConflict` cause per field),
//! `force=true` takeover, shared ownership of equal values, removal of fields
//! a manager stops applying unless another manager still owns them, and
//! ownership transfer on Update operations (POST/PUT/PATCH; manager from
//! `fieldManager`, else the User-Agent's product name as in the real server,
//! else `unknown`). managedFields sent in a PUT or non-apply PATCH replace the
//! records, as in the real server (`[{}]` resets them); in an apply
//! configuration they are ignored. Errors are real `Status` bodies (NotFound,
//! AlreadyExists, Conflict, Invalid, BadRequest, UnsupportedMediaType,
//! MethodNotAllowed) and object metadata is validated with the apiserver's
//! rules and messages (DNS-1123 names, qualified label/annotation keys, label
//! values, total annotation size).
//!
//! # What it deliberately does not do
//!
//! No authentication, authorization, admission, TLS, HTTP/2, OpenAPI, or
//! non-JSON bodies: protobuf and YAML are refused with 415, so kubectl
//! commands that send protobuf (`create`, `run`, `scale`, ...) do not work,
//! while `get` and `apply` (JSON) do. No watch or deletecollection (405),
//! subresources (`/status`, `/scale`: 404), cluster-scoped kinds; Namespaces
//! are not stored: every namespace exists (`GET /api/v1/namespaces/{ns}`
//! answers a synthetic Active Namespace). No finalizers or graceful deletion
//! (delete is immediate), garbage collection, defaulting, `spec` validation,
//! `Secret.stringData` conversion, or `Table` output (kubectl falls back to
//! NAME/AGE columns). Schemas are unknown, so strategic merge patch merges
//! maps like a JSON merge patch and replaces lists whole (honouring only
//! `$patch: replace|delete` on maps and dropping other `$` directives), and
//! server-side apply treats every list as atomic (no merge keys, no
//! `listType=map`) and empty maps as leaves. `uid`s come from a counter, so
//! repeated runs give the same snapshot; timestamps are real.
//!
//! Two error codes follow this project's contract rather than the real
//! server: a body whose name differs from the URL, or an apply configuration
//! whose apiVersion/kind do not match the URL, is 422 Invalid (the real
//! server says 400 BadRequest), and an apply without `fieldManager` is 400
//! (the real server says 422 Invalid).

mod fields;
pub mod rbac;
mod resources;
mod status;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use validate::FieldError;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;

use resources::ResourceType;
use status::ApiError;
use store::{Outcome, PatchKind, Store, Write};

/// Decides, before the stand-in looks at a request, whether to answer it
/// with a canned `(status, body)` instead (fault injection). The request it
/// sees has `status: 0` and `changed: false`.
pub type Interceptor = Arc<dyn Fn(&RecordedRequest) -> Option<(u16, Value)> + Send + Sync>;

/// One API request as the stand-in saw and answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path only, percent-encoded as sent.
    pub path: String,
    /// Decoded query parameters (`fieldManager`, `force`, `dryRun`, ...).
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The body, if it was JSON.
    pub body: Option<Value>,
    pub status: u16,
    /// The request changed stored state (a no-op write or a dry run did not).
    pub changed: bool,
}

impl RecordedRequest {
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// A running stand-in. Clones share the server; it stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct KubeStandIn {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Never sent on: dropping it (with the last clone) ends the accept loop
    /// and with it the server's runtime and connections.
    _shutdown: oneshot::Sender<()>,
}

struct Shared {
    store: Mutex<Store>,
    log: Mutex<Vec<RecordedRequest>>,
    interceptor: Mutex<Option<Interceptor>>,
    /// Every token TokenRequest issued, for tests that check none leaks.
    tokens: Mutex<Vec<String>>,
    /// The service-account issuer TokenRequest writes into `iss`.
    issuer: Mutex<String>,
    /// Authentication and authorization, when enabled ([`KubeStandIn::enable_rbac`]).
    rbac: Mutex<Option<rbac::Rbac>>,
    /// `host:port`, for the discovery document that advertises it.
    server_address: String,
    /// Creation time of the (synthetic) namespaces.
    started: String,
}

/// A test that panicked while holding a lock must not turn every later
/// assertion into a poisoned-lock panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KubeStandIn {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> KubeStandIn {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("Kubernetes stand-in: cannot listen on 127.0.0.1")
    }

    /// Starts on `addr` (port 0 picks a free one).
    ///
    /// The server runs on a thread of its own, with its own runtime, rather
    /// than on the caller's: a test that blocks its runtime (for example with
    /// `std::process::Command::output` while the binary under test talks to
    /// the API) or pauses tokio time must not stall the API server.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<KubeStandIn> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            log: Mutex::new(Vec::new()),
            interceptor: Mutex::new(None),
            tokens: Mutex::new(Vec::new()),
            issuer: Mutex::new("https://kubernetes.default.svc.cluster.local".to_string()),
            rbac: Mutex::new(None),
            server_address: addr.to_string(),
            started: store::now(),
        });
        let (shutdown, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let server = shared.clone();
        std::thread::Builder::new()
            .name(format!("kube-standin-{}", addr.port()))
            .spawn(move || runtime.block_on(accept_loop(listener, server, stopped)))?;
        Ok(KubeStandIn {
            inner: Arc::new(Inner {
                shared,
                addr,
                _shutdown: shutdown,
            }),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Writes a kubeconfig for this server (plain HTTP, no credentials) whose
    /// current context uses `namespace`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig(namespace))
    }

    fn kubeconfig(&self, namespace: &str) -> String {
        let url = self.url();
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: {url}
users:
- name: standin
  user: {{}}
contexts:
- name: standin
  context:
    cluster: standin
    user: standin
    namespace: {namespace:?}
current-context: standin
preferences: {{}}
"
        )
    }

    /// Inserts or replaces an object directly, as if it had always been there:
    /// no request is logged, no manager owns its fields. `apiVersion`, `kind`,
    /// `metadata.namespace` and `metadata.name` are required (panics
    /// otherwise). Sets `resourceVersion` and `generation: 1`; keeps a given
    /// `uid`/`creationTimestamp`, else sets them.
    /// From now on, authenticate bearer tokens and authorize every request against the Roles
    /// and RoleBindings in `docs` (as `helm template` renders them). Returns a token for
    /// `user` (`system:serviceaccount:NS:NAME`).
    pub fn enable_rbac(&self, docs: &[Value], user: &str) -> String {
        let mut rbac = rbac::Rbac::default();
        rbac.load(docs);
        let token = format!("standin-token-{}", user.replace(':', "-"));
        rbac.add_token(&token, user);
        *lock(&self.inner.shared.rbac) = Some(rbac);
        token
    }

    /// Requests refused by RBAC so far.
    pub fn rbac_denied(&self) -> Vec<(String, rbac::Attributes)> {
        lock(&self.inner.shared.rbac)
            .as_ref()
            .map(|r| r.denied())
            .unwrap_or_default()
    }

    /// Each rule of `user` in `namespace` with what it allowed so far.
    pub fn rbac_used(
        &self,
        namespace: &str,
        user: &str,
    ) -> Vec<(rbac::Rule, std::collections::BTreeSet<rbac::Attributes>)> {
        lock(&self.inner.shared.rbac)
            .as_ref()
            .map(|r| r.used(namespace, user))
            .unwrap_or_default()
    }

    /// The service-account issuer tokens carry from now on (EKS: the cluster's OIDC issuer).
    pub fn set_issuer(&self, issuer: &str) {
        *lock(&self.inner.shared.issuer) = issuer.to_string();
    }

    /// The tokens TokenRequest issued so far.
    pub fn tokens(&self) -> Vec<String> {
        lock(&self.inner.shared.tokens).clone()
    }

    pub fn seed(&self, obj: Value) {
        lock(&self.inner.shared.store).seed(obj);
    }

    /// Deletes an object as another client (Helm) would, outside the API and its RBAC.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        lock(&self.inner.shared.store).remove_direct(api_version, kind, namespace, name);
    }

    /// The stored object, as the API would return it (with `managedFields`).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner.shared.store).get_direct(api_version, kind, namespace, name)
    }

    /// Objects of a kind in `namespace` (`""`: all namespaces), by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        lock(&self.inner.shared.store).list_direct(api_version, kind, namespace)
    }

    /// Every API request since start or [`Self::clear_requests`], in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.inner.shared.log).clear();
    }

    /// How many of [`Self::requests`] changed stored state.
    pub fn changes(&self) -> usize {
        lock(&self.inner.shared.log)
            .iter()
            .filter(|r| r.changed)
            .count()
    }

    /// Turns on the stand-in's Deployment controller ([`store::Store::enable_rollouts`]).
    pub fn enable_rollouts(&self, delay: std::time::Duration) {
        lock(&self.inner.shared.store).enable_rollouts(delay);
    }

    /// All stored objects (with `resourceVersion`, `managedFields`, ...),
    /// ordered by apiVersion, kind, namespace and name, for comparing states.
    pub fn snapshot(&self) -> Value {
        lock(&self.inner.shared.store).snapshot()
    }

    /// Installs (or with `None` removes) an [`Interceptor`].
    #[allow(clippy::type_complexity)] // the signature other test code is written against
    pub fn set_interceptor(
        &self,
        f: Option<Arc<dyn Fn(&RecordedRequest) -> Option<(u16, Value)> + Send + Sync>>,
    ) {
        *lock(&self.inner.shared.interceptor) = f;
    }
}

impl fmt::Debug for KubeStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeStandIn")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("Kubernetes stand-in: cannot serve: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(shared.clone(), req));
                        // A client hanging up mid-request is its business, not the test's.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

enum Reply {
    Json(Value),
    Text(&'static str),
}

struct Served {
    status: u16,
    reply: Reply,
    changed: bool,
}

impl From<Outcome> for Served {
    fn from(o: Outcome) -> Self {
        Served {
            status: o.status,
            reply: Reply::Json(o.body),
            changed: o.changed,
        }
    }
}

fn ok(body: Value) -> Served {
    Served {
        status: 200,
        reply: Reply::Json(body),
        changed: false,
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    // A body cut off mid-way is treated as empty; the request then fails to decode.
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut rec = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        content_type: header(CONTENT_TYPE),
        body: serde_json::from_slice(&bytes).ok(),
        status: 0,
        changed: false,
    };
    // Authentication and authorization come first, as in the apiserver.
    // A server-side apply that creates the object is authorized as `create` too (with the
    // object's name), as the apiserver's patch handler does.
    let creates = rec.method == "PATCH"
        && rec
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"))
        && shared.target_missing(&rec.path);
    let denied = lock(&shared.rbac).as_mut().and_then(|rbac| {
        let token = header(hyper::header::AUTHORIZATION);
        let token = token.as_deref().and_then(|t| t.strip_prefix("Bearer "));
        let target = rbac::attributes(&rec.method, &rec.path, &rec.query);
        let create = match &target {
            rbac::Target::Resource(a) if creates => {
                Some(rbac::Target::Resource(rbac::Attributes {
                    verb: "create".into(),
                    ..a.clone()
                }))
            }
            _ => None,
        };
        rbac.check(token, target)
            .and_then(|()| create.map_or(Ok(()), |c| rbac.check(token, c)))
            .err()
    });
    // Cloned out so the interceptor can call back into the stand-in.
    let interceptor = lock(&shared.interceptor).clone();
    let served = match denied.or_else(|| interceptor.and_then(|f| f(&rec))) {
        Some((status, body)) => Served {
            status,
            reply: Reply::Json(body),
            changed: false,
        },
        None => shared
            .route(&rec, &bytes, header(USER_AGENT).as_deref())
            .unwrap_or_else(|e| Served {
                status: e.code,
                reply: Reply::Json(e.body()),
                changed: false,
            }),
    };
    rec.status = served.status;
    rec.changed = served.changed;
    lock(&shared.log).push(rec);

    let (content_type, body) = match served.reply {
        Reply::Json(v) => ("application/json", Bytes::from(v.to_string())),
        Reply::Text(t) => (
            "text/plain; charset=utf-8",
            Bytes::from_static(t.as_bytes()),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(served.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

impl Shared {
    /// Whether the object a namespaced path names does not exist.
    fn target_missing(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, ns, plural, name) = match segs.as_slice() {
            ["api", v, "namespaces", ns, plural, name] => ("", *v, *ns, *plural, *name),
            ["apis", g, v, "namespaces", ns, plural, name] => (*g, *v, *ns, *plural, *name),
            _ => return false,
        };
        let Some(rt) = resources::by_plural(group, version, plural) else {
            return false;
        };
        lock(&self.store)
            .get_direct(&rt.api_version(), rt.kind, ns, name)
            .is_none()
    }

    fn route(
        &self,
        rec: &RecordedRequest,
        body: &[u8],
        user_agent: Option<&str>,
    ) -> Result<Served, ApiError> {
        let segments: Vec<String> = rec
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false))
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let read_only = |doc: Option<Value>| {
            if rec.method != "GET" {
                return Err(ApiError::method_not_allowed());
            }
            doc.map(ok).ok_or_else(ApiError::no_such_path)
        };
        match segments.as_slice() {
            ["version"] => read_only(Some(resources::version_info())),
            ["healthz" | "livez" | "readyz"] => Ok(Served {
                status: 200,
                reply: Reply::Text("ok"),
                changed: false,
            }),
            ["api"] => read_only(Some(resources::api_versions(&self.server_address))),
            ["api", version] => read_only(resources::api_resource_list("", version)),
            ["apis"] => read_only(Some(resources::api_group_list())),
            ["apis", group] => read_only(resources::api_group_doc(group)),
            ["apis", group, version] => read_only(resources::api_resource_list(group, version)),
            ["api", "v1", "namespaces"] => {
                let (names, revision) = {
                    let store = lock(&self.store);
                    (store.namespaces(), store.revision())
                };
                let mut names = names;
                names.insert("default".to_owned());
                let items: Vec<Value> = names
                    .iter()
                    .map(|ns| resources::namespace(ns, &self.started))
                    .collect();
                read_only(Some(serde_json::json!({
                    "kind": "NamespaceList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": revision.to_string()},
                    "items": items,
                })))
            }
            ["api", "v1", "namespaces", ns] => {
                read_only(Some(resources::namespace(ns, &self.started)))
            }
            ["api", version, rest @ ..] => self.resource(rec, body, user_agent, "", version, rest),
            ["apis", group, version, rest @ ..] => {
                self.resource(rec, body, user_agent, group, version, rest)
            }
            _ => Err(ApiError::no_such_path()),
        }
    }

    /// TokenRequest (`POST .../serviceaccounts/NAME/token`): a JWT-shaped token (unsigned:
    /// nothing here verifies signatures) whose `iss` is the cluster's issuer
    /// ([`KubeStandIn::set_issuer`]), `sub` is `system:serviceaccount:NS:NAME`, `aud` the
    /// requested audiences and `exp` now plus `expirationSeconds` (default 3600), as the
    /// kube-apiserver issues them; `status.expirationTimestamp` is that `exp`. 422 for
    /// `expirationSeconds` under 600 or over 2^32, 404 when the ServiceAccount does not exist.
    /// Creates no object.
    fn token_request(
        &self,
        rec: &RecordedRequest,
        ns: &str,
        name: &str,
    ) -> Result<Served, ApiError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let rt =
            resources::by_plural("", "v1", "serviceaccounts").ok_or_else(ApiError::no_such_path)?;
        if rec.method != "POST" {
            return Err(ApiError::method_not_allowed());
        }
        let sa = lock(&self.store).get_direct("v1", "ServiceAccount", ns, name);
        let Some(sa) = sa else {
            return Err(ApiError::not_found(rt, name));
        };
        let spec = rec
            .body
            .as_ref()
            .and_then(|b| b.get("spec"))
            .cloned()
            .unwrap_or_default();
        let audiences = spec
            .get("audiences")
            .cloned()
            .unwrap_or_else(|| serde_json::json!(["https://kubernetes.default.svc"]));
        // The apiserver's ValidateTokenRequest: at least 10 minutes, at most 2^32 seconds.
        let seconds = spec
            .get("expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let bound = match seconds {
            s if s < 600 => Some("may not specify a duration less than 10 minutes"),
            s if s > 1 << 32 => Some("may not specify a duration larger than 2^32 seconds"),
            _ => None,
        };
        if let Some(detail) = bound {
            let error = FieldError::invalid_number("spec.expirationSeconds", seconds, detail);
            return Err(ApiError::invalid_kind(
                "TokenRequest.authentication.k8s.io",
                "authentication.k8s.io",
                name,
                &[error],
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let exp = now + seconds.unsigned_abs();
        let claims = serde_json::json!({
            "iss": lock(&self.issuer).clone(),
            "sub": format!("system:serviceaccount:{ns}:{name}"),
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}},
        });
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.{}",
            part(&serde_json::json!({"alg": "RS256", "kid": "stand-in"})),
            part(&claims),
            URL_SAFE_NO_PAD.encode(b"stand-in-signature")
        );
        lock(&self.tokens).push(token.clone());
        Ok(Served {
            status: 201,
            reply: Reply::Json(serde_json::json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"audiences": claims["aud"], "expirationSeconds": seconds},
                "status": {"token": token, "expirationTimestamp": store::format_time(exp)},
            })),
            changed: false,
        })
    }

    fn resource(
        &self,
        rec: &RecordedRequest,
        body: &[u8],
        user_agent: Option<&str>,
        group: &str,
        version: &str,
        rest: &[&str],
    ) -> Result<Served, ApiError> {
        let (plural, namespace, name) = match rest {
            ["namespaces", ns, "serviceaccounts", name, "token"] if group.is_empty() => {
                return self.token_request(rec, ns, name);
            }
            ["namespaces", ns, plural] => (*plural, Some(*ns), None),
            ["namespaces", ns, plural, name] => (*plural, Some(*ns), Some(*name)),
            [plural] => (*plural, None, None),
            // Subresources, cluster-scoped kinds, Namespace objects.
            _ => return Err(ApiError::no_such_path()),
        };
        let rt = resources::by_plural(group, version, plural).ok_or_else(ApiError::no_such_path)?;
        let query = &rec.query;
        let param = |k: &str| query.get(k).map(String::as_str);
        let Some(namespace) = namespace else {
            return match rec.method.as_str() {
                "GET" => self.list(rec, rt, None),
                _ => Err(ApiError::method_not_allowed()),
            };
        };
        let media_type = rec
            .content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(rec.method.as_str(), "POST" | "PUT")
            && !matches!(media_type.as_str(), "" | "application/json" | "*/*")
        {
            return Err(ApiError::unsupported_body_type(&media_type));
        }
        let mut store = lock(&self.store);
        store.settle_rollouts();
        let served: Served = match (rec.method.as_str(), name) {
            ("GET", None) => {
                drop(store);
                return self.list(rec, rt, Some(namespace));
            }
            ("GET", Some(name)) => ok(store.get(rt, namespace, name)?),
            ("POST", None) => {
                let w = write_options(rec, rt, namespace, user_agent, "CreateOptions", false)?;
                store.create(&w, body)?.into()
            }
            ("PUT", Some(name)) => {
                let w = write_options(rec, rt, namespace, user_agent, "UpdateOptions", false)?;
                store.replace(&w, name, body)?.into()
            }
            ("PATCH", Some(name)) => {
                let kind = match media_type.as_str() {
                    "application/apply-patch+yaml" => None,
                    "application/merge-patch+json" => Some(PatchKind::Merge),
                    "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
                    "application/json-patch+json" => Some(PatchKind::Json),
                    other => return Err(ApiError::unsupported_media_type(other)),
                };
                let force = match param("force") {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "invalid value for force: {other:?} (want true or false)"
                        )))
                    }
                };
                let w = write_options(
                    rec,
                    rt,
                    namespace,
                    user_agent,
                    "PatchOptions",
                    kind.is_none(),
                )?;
                match kind {
                    None => store.apply(&w, name, body, force)?.into(),
                    Some(_) if force => {
                        return Err(ApiError::invalid_kind(
                            "PatchOptions.meta.k8s.io",
                            "meta.k8s.io",
                            "",
                            &[validate::FieldError::forbidden(
                                "force",
                                "may not be specified for non-apply patch",
                            )],
                        ))
                    }
                    Some(kind) => store.patch(&w, name, kind, body)?.into(),
                }
            }
            ("DELETE", Some(name)) => {
                let w = write_options(rec, rt, namespace, user_agent, "DeleteOptions", false)?;
                store.delete(&w, name, body)?.into()
            }
            ("DELETE", None) => {
                return Err(ApiError::not_served(
                    "deletecollection is not served by the Kubernetes stand-in",
                ))
            }
            _ => return Err(ApiError::method_not_allowed()),
        };
        Ok(served)
    }

    fn list(
        &self,
        rec: &RecordedRequest,
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<Served, ApiError> {
        let param = |k: &str| rec.query.get(k).map(String::as_str);
        if matches!(param("watch"), Some("true" | "1")) {
            return Err(ApiError::not_served(
                "watch is not served by the Kubernetes stand-in",
            ));
        }
        let list = lock(&self.store).list(
            rt,
            namespace,
            param("labelSelector"),
            param("fieldSelector"),
        )?;
        Ok(ok(list))
    }
}

/// Query options shared by all writes. `options_kind` names the options type
/// in errors, as the real server does (`PatchOptions.meta.k8s.io "" is invalid`).
fn write_options<'a>(
    rec: &RecordedRequest,
    rt: &'static ResourceType,
    namespace: &'a str,
    user_agent: Option<&str>,
    options_kind: &str,
    apply: bool,
) -> Result<Write<'a>, ApiError> {
    let qualified = format!("{options_kind}.meta.k8s.io");
    let invalid =
        |e: validate::FieldError| ApiError::invalid_kind(&qualified, "meta.k8s.io", "", &[e]);
    let dry_run = match rec.query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(invalid(validate::FieldError::invalid(
                "dryRun",
                other,
                "supported values: \"All\"",
            )))
        }
    };
    let manager = match rec.query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) if m.len() > 128 => {
            return Err(invalid(validate::FieldError::invalid(
                "fieldManager",
                m,
                "must be no more than 128 characters",
            )))
        }
        Some(m) => m.clone(),
        None if apply => {
            return Err(ApiError::bad_request(format!(
                "{qualified} \"\" is invalid: fieldManager: Required value: is required for apply patch"
            )))
        }
        // The real server names an anonymous writer after its User-Agent.
        None => user_agent
            .and_then(|ua| ua.split('/').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
    };
    Ok(Write {
        rt,
        namespace,
        manager,
        dry_run,
    })
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query(
            "labelSelector=app%3Depinio%2Ctier%3Dapi&fieldManager=epinio-irsa&pretty&x=a+b",
        );
        assert_eq!(q["labelSelector"], "app=epinio,tier=api");
        assert_eq!(q["fieldManager"], "epinio-irsa");
        assert_eq!(q["pretty"], "");
        assert_eq!(q["x"], "a b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
    }
}
