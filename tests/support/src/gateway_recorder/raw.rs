//! Requests written straight to a socket, for what no HTTP client sends: bodies streamed from
//! pieces (256 MiB without holding it), uploads cut short with the write side shut, and
//! answers read while the body is still being written (a gateway that refuses at a chunk
//! header answers and closes mid-upload). Also the memory a process holds while that happens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use crate::gateway_wire::Answer;

/// What the client does with its write side after the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Keeps it open until the answer is read (a client waiting for its answer).
    Wait,
    /// Shuts it down (`shutdown(SHUT_WR)`): the client has nothing more to send.
    HalfClose,
}

/// `METHOD path HTTP/1.1`, the headers, and the blank line.
pub fn head(method: &str, path: &str, headers: &[(String, String)]) -> String {
    let mut s = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// Writes `head` and `body` to `addr` while reading the answer (up to `within`). Write errors
/// end the writing only (the server may answer and close before the body's end). An answer
/// with status 0 means the connection closed without one; its body is what came.
pub async fn exchange(
    addr: SocketAddr,
    head: &str,
    body: Vec<Bytes>,
    after: After,
    within: Duration,
) -> Answer {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    let head = Bytes::from(head.to_string());
    let writer = tokio::spawn(async move {
        for piece in std::iter::once(head).chain(body) {
            if wr.write_all(&piece).await.is_err() {
                return Some(wr);
            }
        }
        if after == After::HalfClose {
            let _ = wr.shutdown().await;
        }
        Some(wr)
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut piece = vec![0u8; 64 * 1024];
        loop {
            if let Some(answer) = parse(&buf, false) {
                return answer;
            }
            match rd.read(&mut piece).await {
                Ok(0) | Err(_) => return parse(&buf, true).unwrap_or_else(|| closed(&buf)),
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
        }
    })
    .await;
    writer.abort();
    read.unwrap_or_else(|_| {
        panic!(
            "no answer within {within:?}; got {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

fn closed(buf: &[u8]) -> Answer {
    Answer {
        status: 0,
        headers: HeaderMap::new(),
        body: Bytes::copy_from_slice(buf),
    }
}

/// The first final answer in `buf` (1xx answers skipped), once it is whole; at `eof`, a body
/// without a length is whatever came.
fn parse(buf: &[u8], eof: bool) -> Option<Answer> {
    let mut at = 0;
    loop {
        let end = find(&buf[at..], b"\r\n\r\n")? + at;
        let text = String::from_utf8_lossy(&buf[at..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = HeaderMap::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.trim().as_bytes()),
                    HeaderValue::from_str(v.trim()),
                ) {
                    headers.append(k, v);
                }
            }
        }
        let start = end + 4;
        if (100..200).contains(&status) {
            at = start;
            continue;
        }
        let rest = &buf[start..];
        let length = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let chunked = headers
            .get("transfer-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
        let body = match (length, chunked) {
            (Some(n), _) if rest.len() >= n => Bytes::copy_from_slice(&rest[..n]),
            (_, true) => dechunk(rest)?,
            _ if eof => Bytes::copy_from_slice(rest),
            _ => return None,
        };
        return Some(Answer {
            status,
            headers,
            body,
        });
    }
}

/// A whole `Transfer-Encoding: chunked` body, or `None` while it is not.
fn dechunk(mut rest: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    loop {
        let line = find(rest, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&rest[..line]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let data = line + 2;
        if size == 0 {
            return Some(Bytes::from(out));
        }
        if rest.len() < data + size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[data..data + size]);
        rest = &rest[data + size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `<Message>` of an S3 error body ("" without one).
pub fn message(a: &Answer) -> String {
    let text = String::from_utf8_lossy(&a.body);
    let start = text.find("<Message>").map(|i| i + "<Message>".len());
    let end = text.find("</Message>");
    match (start, end) {
        (Some(s), Some(e)) if s <= e => text[s..e].to_string(),
        _ => String::new(),
    }
}

/// Makes sure this process (and so the gateway it spawns next, which inherits the limit) may
/// open `n` files: raises the soft `RLIMIT_NOFILE` to the hard one with util-linux's
/// `prlimit` when it is lower (many systems start at 1024; no unsafe code here for
/// `setrlimit`). Panics, naming the limit, when that is not enough.
pub fn ensure_open_files(n: u64) {
    let limits = || -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut values = line["Max open files".len()..].split_whitespace();
        let parse = |v: Option<&str>| v.and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        Some((parse(values.next()), parse(values.next())))
    };
    let (soft, hard) = limits().expect("/proc/self/limits");
    if soft >= n {
        return;
    }
    let most = if hard == u64::MAX {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={most}:{most}"))
        .status();
    let (soft, _) = limits().expect("/proc/self/limits");
    assert!(
        soft >= n,
        "this test needs {n} open files; the limit is {soft} (hard {hard}): raise it (ulimit -n)"
    );
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The resident memory of a process while something happens: `VmHWM` reset at the start
/// (`/proc/<pid>/clear_refs`, Linux 4.0+), and `VmRSS` sampled every 5 ms besides, so the
/// peak is known even where the reset is not allowed.
pub struct Rss {
    pid: u32,
    pub before_kib: u64,
    peak_seen: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reset: bool,
}

impl Rss {
    pub fn watch(pid: u32) -> Rss {
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let before_kib = status_kib(pid, "VmRSS").expect("VmRSS of the gateway");
        let peak_seen = Arc::new(AtomicU64::new(before_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, stopped) = (peak_seen.clone(), stop.clone());
        tokio::spawn(async move {
            while !stopped.load(Ordering::SeqCst) {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    peak.fetch_max(kib, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Rss {
            pid,
            before_kib,
            peak_seen,
            stop,
            reset,
        }
    }

    /// The highest RSS since [`Rss::watch`] (KiB): `VmHWM` when it was reset, else the
    /// highest sample.
    pub fn peak_kib(&self) -> u64 {
        let seen = self.peak_seen.load(Ordering::SeqCst);
        match (self.reset, status_kib(self.pid, "VmHWM")) {
            (true, Some(hwm)) => hwm.max(seen),
            _ => seen.max(status_kib(self.pid, "VmRSS").unwrap_or(0)),
        }
    }

    /// How much the peak rose above the RSS at the start (KiB).
    pub fn growth_kib(&self) -> u64 {
        self.peak_kib().saturating_sub(self.before_kib)
    }
}

impl Drop for Rss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
