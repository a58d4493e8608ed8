//! The gateway as a real process (`epinio-irsa gateway`), for what cannot be measured
//! in-process: its own peak RSS (`VmHWM` of `/proc/<pid>/status`) and the time from spawn to
//! `/readyz` 200. The environment is exactly the one given (nothing inherited); the log must
//! be JSON (`EPINIO_IRSA_GATEWAY_LOG_FORMAT=json`), read to learn the addresses it bound.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::gateway_wire::get;

/// What the process logged: lines counted, warnings and errors kept.
#[derive(Debug, Default, Clone)]
pub struct LogSummary {
    pub lines: u64,
    pub requests: u64,
    /// Requests logged with `complete: false` or an `error` other than `-`.
    pub failed_requests: Vec<String>,
    pub warnings: Vec<String>,
    /// Every line after the start, for tests that look for what must never be logged.
    pub all: Vec<String>,
}

pub struct GatewayProcess {
    child: Child,
    pub pid: u32,
    pub s3: SocketAddr,
    pub health: SocketAddr,
    pub spawned: Instant,
    log: Arc<Mutex<LogSummary>>,
}

impl GatewayProcess {
    /// Spawns `bin gateway` with `env` and waits (up to 30 s) for its "gateway listening" line.
    pub async fn spawn(bin: &Path, env: &[(String, String)]) -> GatewayProcess {
        let spawned = Instant::now();
        let mut child = Command::new(bin)
            .arg("gateway")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let pid = child.id().expect("a pid");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = Vec::new();
        let listening = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["fields"]["message"] == "gateway listening" {
                    return Some(v["fields"].clone());
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the gateway did not start: {}", seen.join("\n")));
        let addr = |k: &str| -> SocketAddr {
            listening[k]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no {k} address in {listening}"))
        };
        let (s3, health) = (addr("s3"), addr("health"));
        let log = Arc::new(Mutex::new(LogSummary::default()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.lines += 1;
                s.all.push(line.clone());
                if v["fields"]["message"] == "request" {
                    s.requests += 1;
                    let f = &v["fields"];
                    if f["complete"] == false || f["error"] != "-" {
                        s.failed_requests.push(line.clone());
                    }
                } else if v["level"] != "INFO" {
                    s.warnings.push(line.clone());
                }
            }
        });
        GatewayProcess {
            child,
            pid,
            s3,
            health,
            spawned,
            log,
        }
    }

    pub fn s3_url(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// Polls `/readyz` every millisecond until 200; the time from spawn.
    pub async fn wait_ready(&self) -> Duration {
        let url = format!("http://{}/readyz", self.health);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(&url).await {
                return self.spawned.elapsed();
            }
            assert!(Instant::now() < deadline, "/readyz not 200 after 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits (up to 20 s) until `/credentials` says `ready`.
    pub async fn wait_credentials(&self) {
        crate::gateway::wait_for_credentials(self.health).await;
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`: peak RSS; `VmRSS`: now).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM").expect("VmHWM of the gateway")
    }

    pub fn log(&self) -> LogSummary {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGTERM, then waits (up to 40 s) for the exit; true when it exited with 0.
    pub async fn stop(mut self) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(40), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.start_kill();
                false
            }
        }
    }
}
