//! [`Proxy`], the running proxy's handle: start it, set rules, delay and crash, read its
//! calls.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::serve::accept_loop;
use super::state::{lock, CrashState, RuleState, State, Upstream};
use super::{Call, Rule};

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

    /// When the proxy started (origin of [`CallRecord`](super::CallRecord) times).
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

    /// Append one JSON line ([`CallRecord`](super::CallRecord)) per finished call to `path`
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
