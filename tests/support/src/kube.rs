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
//!
//! Its parts: the [`KubeStandIn`] handle here; serving connections and routing paths
//! (`serve.rs`), the resource verbs (`verbs.rs`), TokenRequest (`token.rs`), query strings
//! (`query.rs`); the store and its verbs' semantics (`store.rs`), resource types
//! (`resources.rs`), field sets (`fields.rs`), metadata validation (`validate.rs`), `Status`
//! errors (`status.rs`) and RBAC (`rbac.rs`).

mod fields;
mod query;
pub mod rbac;
mod resources;
mod serve;
mod status;
mod store;
mod token;
mod validate;
mod verbs;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::oneshot;

use serve::accept_loop;
use store::Store;

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
