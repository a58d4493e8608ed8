//! The running proxy's shared state: its rules, call log and log file, the
//! `crash_after_writes` gate, and the upstream it forwards to.

use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio::sync::Notify;

use super::{Call, CallRecord, Fault, Rule};

pub(super) struct RuleState {
    pub(super) rule: Rule,
    pub(super) seen: usize,
    pub(super) fired: usize,
}

#[derive(Default)]
pub(super) struct CrashState {
    pub(super) limit: Option<usize>,
    pub(super) ok: usize,
    pub(super) inflight: usize,
}

pub(super) struct State {
    pub(super) upstream: Upstream,
    pub(super) client: Client<HttpConnector, Full<Bytes>>,
    pub(super) origin: Instant,
    pub(super) rules: Mutex<Vec<RuleState>>,
    pub(super) delay_us: AtomicU64,
    pub(super) calls: Mutex<Vec<Call>>,
    pub(super) log: Mutex<Option<File>>,
    pub(super) crash: Mutex<CrashState>,
    pub(super) crash_notify: Notify,
    pub(super) pod_identity: Arc<crate::pod_identity::PodIdentity>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub(super) fn pick_fault(&self, op: &str) -> Option<Fault> {
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

    pub(super) fn record(&self, call: Call) {
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
    pub(super) async fn admit_write(self: &Arc<Self>) -> Admit {
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

pub(super) enum Admit {
    Free,
    Crash,
    Slot(WriteSlot),
}

/// A reserved write under `crash_after_writes`; released on drop.
pub(super) struct WriteSlot {
    pub(super) state: Arc<State>,
    pub(super) success: bool,
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
pub(super) struct CallGuard {
    pub(super) state: Arc<State>,
    pub(super) call: Option<Call>,
}

impl CallGuard {
    pub(super) fn set_injected(&mut self, name: &str) {
        if let Some(c) = self.call.as_mut() {
            c.injected = Some(name.to_string());
        }
    }

    pub(super) fn finish(mut self, status: u16) {
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
pub(super) struct Upstream {
    scheme: String,
    authority: String,
    base: String,
}

impl Upstream {
    pub(super) fn parse(url: &str) -> Result<Upstream, String> {
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

    pub(super) fn target(&self, uri: &Uri) -> Result<Uri, hyper::http::Error> {
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Uri::builder()
            .scheme(self.scheme.as_str())
            .authority(self.authority.as_str())
            .path_and_query(format!("{}{}", self.base, pq))
            .build()
    }
}
