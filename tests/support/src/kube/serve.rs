//! Serving the stand-in's connections: each request is authorized (RBAC), offered to the
//! interceptor, routed by path (discovery, version, namespaces, resources), logged and
//! answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

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

use super::query::{parse_query, percent_decode};
use super::status::ApiError;
use super::store::Outcome;
use super::{lock, rbac, resources, RecordedRequest, Shared};

pub(super) async fn accept_loop(
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

pub(super) enum Reply {
    Json(Value),
    Text(&'static str),
}

pub(super) struct Served {
    pub(super) status: u16,
    pub(super) reply: Reply,
    pub(super) changed: bool,
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

pub(super) fn ok(body: Value) -> Served {
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
    let denied = shared.denied(&rec, header(hyper::header::AUTHORIZATION));
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

    Ok(response(served))
}

/// The HTTP response of what was served.
fn response(served: Served) -> Response<Full<Bytes>> {
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
    response
}

impl Shared {
    /// The answer to a request RBAC refuses (`authorization`: its `Authorization` header), or
    /// `None` when RBAC is off or allows it.
    fn denied(&self, rec: &RecordedRequest, authorization: Option<String>) -> Option<(u16, Value)> {
        // A server-side apply that creates the object is authorized as `create` too (with the
        // object's name), as the apiserver's patch handler does.
        let creates = rec.method == "PATCH"
            && rec
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/apply-patch"))
            && self.target_missing(&rec.path);
        lock(&self.rbac).as_mut().and_then(|rbac| {
            let token = authorization
                .as_deref()
                .and_then(|t| t.strip_prefix("Bearer "));
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
        })
    }

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
}
