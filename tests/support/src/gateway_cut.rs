//! A TCP relay between the gateway and its backend that can drop a connection in the middle
//! of a transfer, and reads what passes in clear text.
//!
//! - [`CutRelay::arm`]: after that many more bytes in one direction (request: gateway to
//!   backend; response: backend to gateway), the connection carrying them is closed on both
//!   sides, once. HTTP itself is not parsed, so the cut lands wherever the count ends: in
//!   a body when the count is past the head.
//! - [`CutRelay::access_keys`]: the access key ids in SigV4 `Credential=` of the requests
//!   (which credentials the gateway signed with); [`CutRelay::issued_keys`]: the
//!   `<AccessKeyId>` values in responses (what STS handed out).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Gateway to backend.
    Request,
    /// Backend to gateway.
    Response,
}

#[derive(Debug, Default)]
struct State {
    armed: Option<(Direction, usize)>,
    cuts: usize,
    access_keys: Vec<String>,
    issued_keys: Vec<String>,
}

pub struct CutRelay {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CutRelay {
    /// Relays `127.0.0.1:<any port>` to `upstream` (`http://host:port` or `host:port`).
    pub async fn start(upstream: &str) -> CutRelay {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(up) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let cut = Arc::new(Notify::new());
                tokio::spawn(pump(
                    dr,
                    uw,
                    Direction::Request,
                    shared.clone(),
                    cut.clone(),
                ));
                tokio::spawn(pump(ur, dw, Direction::Response, shared.clone(), cut));
            }
        });
        CutRelay { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the connection carrying the `after`-th next byte in `direction` (once).
    pub fn arm(&self, direction: Direction, after: usize) {
        lock(&self.state).armed = Some((direction, after));
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        lock(&self.state).cuts
    }

    pub fn access_keys(&self) -> Vec<String> {
        lock(&self.state).access_keys.clone()
    }

    pub fn issued_keys(&self) -> Vec<String> {
        lock(&self.state).issued_keys.clone()
    }
}

impl Drop for CutRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, scanning and counting; on a cut (here or on the other half), both
/// halves of both connections are dropped.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    state: Arc<Mutex<State>>,
    cut: Arc<Notify>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            _ = cut.notified() => return,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
        };
        let (send, stop) = {
            let mut s = lock(&state);
            scan(&buf[..n], direction, &mut s);
            match s.armed {
                Some((d, left)) if d == direction && left <= n => {
                    s.armed = None;
                    s.cuts += 1;
                    (left, true)
                }
                Some((d, left)) if d == direction => {
                    s.armed = Some((d, left - n));
                    (n, false)
                }
                _ => (n, false),
            }
        };
        if to.write_all(&buf[..send]).await.is_err() {
            return;
        }
        if stop {
            let _ = to.flush().await;
            // Wakes the other half, which drops its ends; this one drops its own here.
            cut.notify_waiters();
            cut.notify_one();
            return;
        }
    }
}

fn scan(bytes: &[u8], direction: Direction, s: &mut State) {
    let text = String::from_utf8_lossy(bytes);
    let (marker, end, into) = match direction {
        Direction::Request => ("Credential=", '/', &mut s.access_keys),
        Direction::Response => ("<AccessKeyId>", '<', &mut s.issued_keys),
    };
    for (i, _) in text.match_indices(marker) {
        let rest = &text[i + marker.len()..];
        if let Some(j) = rest.find(end) {
            let key = rest[..j].to_string();
            if !into.contains(&key) {
                into.push(key);
            }
        }
    }
}
