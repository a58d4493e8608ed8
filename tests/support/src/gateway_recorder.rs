//! A recording backend for the gateway's strict tests (issue 23): a loopback HTTP/1.1 reverse
//! proxy between the gateway and moto that keeps, for every request, exactly what it received
//! (method, path, raw query, every header, how many body bytes and whether the body came
//! whole) and relays it to moto, streaming both ways, so a 64 MiB upload is never held here.
//! The first 64 KiB of each answer are kept too (the credentials endpoint's JSON, when the
//! recorder is put in front of it).
//!
//! Beside it, in submodules, what the strict tests send that no SDK will: [`raw`] requests
//! written to a socket (held half-way, cut short, bodies larger than memory) and the memory
//! the gateway holds meanwhile, [`sign`] signatures of every kind (SigV2, presigned SigV4
//! with any expiry, another service's scope, aws-chunked bodies with valid, bogus or missing
//! chunk signatures); and [`world`], the gateway process in front of a recorder.

pub mod raw;
pub mod sign;
pub mod world;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How much of each answer's body is kept.
const KEEP_ANSWER: usize = 64 * 1024;

/// Headers that belong to one hop and are not relayed (`expect` is answered here, by hyper).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// One request as the recorder received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, as sent (`None` without a `?`).
    pub query: Option<String>,
    /// Every header, names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    /// Body bytes received so far.
    pub body_bytes: u64,
    /// The body ended as declared (not cut off by an error or a reset).
    pub body_complete: bool,
    /// The upstream's status; 0 while unanswered, 502 when moto could not be reached.
    pub status: u16,
    /// The first 64 KiB of the answer's body.
    pub answer: Bytes,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `METHOD /path?query` and the header names, for assertion messages.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        format!(
            "{} {}{} ({} B{}) -> {} headers {names:?}",
            self.method,
            self.path,
            self.query
                .as_ref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default(),
            self.body_bytes,
            if self.body_complete { "" } else { ", cut" },
            self.status
        )
    }
}

#[derive(Debug)]
struct Entry {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body_bytes: AtomicU64,
    body_complete: AtomicBool,
    status: AtomicU16,
    answer: Mutex<Vec<u8>>,
}

impl Entry {
    fn snapshot(&self) -> Recorded {
        Recorded {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            body_bytes: self.body_bytes.load(Ordering::SeqCst),
            body_complete: self.body_complete.load(Ordering::SeqCst),
            status: self.status.load(Ordering::SeqCst),
            answer: Bytes::from(lock(&self.answer).clone()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct State {
    upstream: String,
    client: Client<HttpConnector, Counted>,
    entries: Mutex<Vec<Arc<Entry>>>,
}

/// A running recorder (stops on drop).
pub struct Recorder {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Listens on `127.0.0.1:0` and relays to `upstream` (`http://host:port`, no path).
    pub async fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the recorder");
        let addr = listener.local_addr().expect("recorder address");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            entries: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| relay(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Recorder { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.entries)
            .iter()
            .map(|e| e.snapshot())
            .collect()
    }

    pub fn clear(&self) {
        lock(&self.state.entries).clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Either<Kept, Full<Bytes>>;

async fn relay(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Answer>, Infallible> {
    let (parts, body) = req.into_parts();
    let entry = Arc::new(Entry {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), v)
            })
            .collect(),
        body_bytes: AtomicU64::new(0),
        body_complete: AtomicBool::new(false),
        status: AtomicU16::new(0),
        answer: Mutex::new(Vec::new()),
    });
    lock(&state.entries).push(entry.clone());
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let target: Uri = match format!("{}{path_and_query}", state.upstream).parse() {
        Ok(u) => u,
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("recorder: {e}"))),
    };
    let mut out = Request::new(Counted {
        inner: body,
        entry: entry.clone(),
    });
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = target;
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    match state.client.request(out).await {
        Ok(res) => {
            entry.status.store(res.status().as_u16(), Ordering::SeqCst);
            let (mut head, body) = res.into_parts();
            for name in HOP_BY_HOP {
                head.headers.remove(*name);
            }
            Ok(Response::from_parts(
                head,
                Either::Left(Kept { inner: body, entry }),
            ))
        }
        Err(e) => {
            entry.status.store(502, Ordering::SeqCst);
            Ok(plain(
                StatusCode::BAD_GATEWAY,
                format!("recorder: upstream: {e:?}"),
            ))
        }
    }
}

fn plain(status: StatusCode, text: String) -> Response<Answer> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *r.status_mut() = status;
    r
}

/// The request body on its way to moto: counted, and marked whole when it ends.
struct Counted {
    inner: Incoming,
    entry: Arc<Entry>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    self.entry.body_bytes.fetch_add(n, Ordering::SeqCst);
                }
                if self.inner.is_end_stream() {
                    self.entry.body_complete.store(true, Ordering::SeqCst);
                }
            }
            Poll::Ready(None) => self.entry.body_complete.store(true, Ordering::SeqCst),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.entry.body_complete.store(true, Ordering::SeqCst);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The answer on its way back: its first [`KEEP_ANSWER`] bytes kept.
struct Kept {
    inner: Incoming,
    entry: Arc<Entry>,
}

impl Body for Kept {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let mut kept = lock(&self.entry.answer);
                let room = KEEP_ANSWER.saturating_sub(kept.len());
                kept.extend_from_slice(&data[..room.min(data.len())]);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
