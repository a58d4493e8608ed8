//! Serving connections: each request is classified, logged, delayed, faulted or answered by
//! the stand-in, else forwarded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::forward::{already_attached, attached_already, forward};
use super::inject::fault_response;
use super::parse::percent_decode;
use super::standin::serve_pod_identity;
use super::state::{Admit, CallGuard, State};
use super::stream::{ResetRequested, ResettableStream};
use super::{classify, Call, Classification, Fault, Protocol};

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
    let mut guard = open_call(&state, &class, start);

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

    let resp = answer(&state, &parts, body, &class).await;
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

/// The call's log entry, recorded when the guard finishes or is dropped.
fn open_call(state: &Arc<State>, class: &Classification, start: Instant) -> CallGuard {
    CallGuard {
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
    }
}

/// The answer to a call that gets one: the Pod Identity stand-in's, IAM's to an
/// `AttachRolePolicy` of a policy already attached, else upstream's.
async fn answer(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    class: &Classification,
) -> Response<Full<Bytes>> {
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
    match route {
        Some(route) => serve_pod_identity(state, parts, &body, &route).await,
        None if class.op == "AttachRolePolicy" && already_attached(state, parts, class).await => {
            attached_already()
        }
        None => forward(state, parts, body).await,
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) {
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
