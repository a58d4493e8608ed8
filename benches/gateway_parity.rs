//! GET and PUT through the gateway against direct and against a plain TCP relay (issue 26):
//! where the gateway's time goes. Reports numbers and asserts nothing about them; a failed
//! request or a content mismatch aborts the run.
//!
//! Not part of `cargo test`. Run it with `scripts/bench.sh --gateway-parity` (the release
//! build), or by hand:
//!
//! ```text
//! cargo bench --bench gateway-parity -- [--rounds 3] [--big-mib 256] [--perf] [--gateway-env K=V]
//!     [--backend-pieces-kib N]
//! ```
//!
//! In one run, on loopback, for PUT and GET of one object, with the client's checksums on
//! (aws-sdk-s3's 2025 defaults: a CRC32 sent on PUT, `x-amz-checksum-mode: ENABLED` and the
//! CRC32 validated on GET, as staging's aws CLI v2 does) and off (computed and validated only
//! where required), three paths from the same client configuration to the same s3s-fs
//! backend:
//! - direct;
//! - through the gateway (the release binary as a child process, its CPU time read from
//!   `/proc/<pid>/stat`, user + system);
//! - through a plain TCP relay (`tokio::io::copy_bidirectional` on a thread of its own in
//!   this process, its CPU time from `/proc/self/task/<tid>/stat`): the floor for a hop that
//!   only moves bytes.
//!
//! `--backend-pieces-kib N` has the backend write its bodies in pieces of at least N KiB
//! (`testkit::gateway_pieces`) instead of s3s-fs's 4 KiB reads, as S3 does (TLS records of up to
//! 16 KiB, large writes): the same for all three paths.
//!
//! Reported: throughput (median of the rounds) and each hop's CPU-seconds per GiB moved.
//! `--perf` records a call-graph profile of the gateway during the GET rounds with `perf
//! record` into `target/bench/gateway-get.perf` (`perf report -i ... --stdio`).

#![forbid(unsafe_code)]

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use bytes::Bytes;
use testkit::gateway::{epinio_config, ACCESS_KEY, SECRET_KEY};
use testkit::gateway_fs::{FsBackend, FsWorld};
use testkit::gateway_load;
use testkit::gateway_process::GatewayProcess;

use common::{get, loadavg, median, put, target_dir, MIB};

const BUCKET: &str = "epinio-parity";
const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let rounds = arg("--rounds").unwrap_or(3) as usize;
    let big = arg("--big-mib").unwrap_or(256) as usize * MIB;
    let perf = std::env::args().any(|a| a == "--perf");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(rounds, big, perf));
    println!("{report}");
    let out = target_dir().join("bench");
    let _ = std::fs::create_dir_all(&out);
    std::fs::write(out.join("gateway-parity.md"), &report).expect("write the report");
}

/// User + system clock ticks of a `/proc/.../stat` file (fields 14 and 15).
fn ticks(stat: &Path) -> u64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15.
    let get = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A plain TCP relay to `upstream` on a thread named `plain-relay`: its address and the
/// `/proc` stat file of that thread.
fn plain_relay(upstream: SocketAddr) -> (SocketAddr, PathBuf) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("relay address");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("plain-relay".into())
        .spawn(move || {
            let stat = std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == "plain-relay")
                })
                .expect("this thread in /proc")
                .join("stat");
            tx.send(stat).expect("send the stat path");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let Ok(mut backend) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = backend.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                    });
                }
            });
        })
        .expect("relay thread");
    (addr, rx.recv().expect("the relay's stat path"))
}

fn client(endpoint: &str, (id, secret): (&str, &str), checksums: bool) -> aws_sdk_s3::Client {
    let (req, res) = if checksums {
        (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        )
    } else {
        (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        )
    };
    let conf = epinio_config(endpoint, id, secret, 1)
        .request_checksum_calculation(req)
        .response_checksum_validation(res)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// One path: its client and the stat file whose CPU time is the hop's (none for direct).
struct Path3 {
    name: &'static str,
    s3: aws_sdk_s3::Client,
    hop: Option<PathBuf>,
}

/// Median MiB/s and CPU-seconds per GiB of the hop, for `op` over `rounds`.
async fn measure(p: &Path3, op: &str, rounds: usize, data: &Bytes, checksums: bool) -> (f64, f64) {
    let (mut rates, mut cpu) = (Vec::new(), 0u64);
    let key = format!("parity/{}/{checksums}", p.name);
    if op == "GET" {
        put(&p.s3, BUCKET, &key, data.clone()).await;
    }
    for _ in 0..rounds {
        let before = p.hop.as_deref().map(ticks).unwrap_or(0);
        let took = match op {
            "PUT" => put(&p.s3, BUCKET, &key, data.clone()).await,
            _ => get(&p.s3, BUCKET, &key, data, checksums).await,
        };
        cpu += p.hop.as_deref().map(ticks).unwrap_or(0) - before;
        rates.push(data.len() as f64 / MIB as f64 / took.as_secs_f64());
    }
    let gib = (data.len() * rounds) as f64 / (1024.0 * MIB as f64);
    (median(rates), cpu as f64 / clock_ticks_per_second() / gib)
}

async fn run(rounds: usize, big: usize, perf: bool) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "gateway parity: {rounds} rounds of {} MiB; load average before: {}",
        big / MIB,
        loadavg()
    );
    let pieces = arg("--backend-pieces-kib").map(|k| k as usize * 1024);
    let _ = writeln!(
        md,
        "backend bodies: {}",
        pieces.map_or("s3s-fs's 4 KiB reads".to_string(), |p| format!(
            "pieces of at least {} KiB",
            p / 1024
        ))
    );
    let world = FsWorld::start_with_pieces(BUCKET, pieces).await;
    let env = gateway_env(&world, &mut md);
    let gw = GatewayProcess::spawn(Path::new(BIN), &env).await;
    gw.wait_ready().await;
    gw.wait_credentials().await;
    let backend = world.backend.url();
    let upstream: SocketAddr = backend
        .trim_start_matches("http://")
        .parse()
        .expect("backend address");
    let (relay, relay_stat) = plain_relay(upstream);
    let fs_keys = FsBackend::credentials();
    let keys = (fs_keys.access_key_id(), fs_keys.secret_access_key());
    let data = gateway_load::pool(big, 7);
    let _ = writeln!(
        md,
        "\n| op | client checksums | direct MiB/s | gateway MiB/s (% of direct) | plain relay MiB/s (% of direct) | gateway CPU-s/GiB | plain relay CPU-s/GiB | gateway / relay CPU |\n|---|---|---|---|---|---|---|---|"
    );
    let mut perf_child = None;
    for op in ["PUT", "GET"] {
        for checksums in [true, false] {
            let paths = [
                Path3 {
                    name: "direct",
                    s3: client(&backend, keys, checksums),
                    hop: None,
                },
                Path3 {
                    name: "gateway",
                    s3: client(&gw.s3_url(), (ACCESS_KEY, SECRET_KEY), checksums),
                    hop: Some(PathBuf::from(format!("/proc/{}/stat", gw.pid))),
                },
                Path3 {
                    name: "relay",
                    s3: client(&format!("http://{relay}"), keys, checksums),
                    hop: Some(relay_stat.clone()),
                },
            ];
            if perf && op == "GET" && checksums && perf_child.is_none() {
                perf_child = start_perf(gw.pid);
            }
            let mut r = Vec::new();
            for p in &paths {
                r.push(measure(p, op, rounds, &data, checksums).await);
            }
            row(&mut md, op, checksums, r[0], r[1], r[2]);
        }
    }
    if let Some(child) = perf_child {
        stop_perf(&mut md, child);
    }
    md
}

/// The gateway's environment: the world's, and `--gateway-env K=V` (repeatable) for
/// experiments such as TOKIO_WORKER_THREADS=1, each named in the report.
fn gateway_env(world: &FsWorld, md: &mut String) -> Vec<(String, String)> {
    let mut env = world.gateway_env();
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2).filter(|w| w[0] == "--gateway-env") {
        if let Some((k, v)) = pair[1].split_once('=') {
            env.push((k.to_string(), v.to_string()));
            let _ = writeln!(md, "gateway environment: {k}={v}");
        }
    }
    env
}

/// One row of the table: direct `d`, gateway `g` and relay `x` as (MiB/s, CPU-s/GiB).
fn row(md: &mut String, op: &str, checksums: bool, d: (f64, f64), g: (f64, f64), x: (f64, f64)) {
    let _ = writeln!(
        md,
        "| {op} | {} | {:.0} | {:.0} ({:.0} %) | {:.0} ({:.0} %) | {:.2} | {:.2} | {:.1}x |",
        if checksums { "on" } else { "off" },
        d.0,
        g.0,
        100.0 * g.0 / d.0,
        x.0,
        100.0 * x.0 / d.0,
        g.1,
        x.1,
        if x.1 > 0.0 { g.1 / x.1 } else { f64::NAN }
    );
}

/// `perf record -g` on the gateway, when perf is on the machine.
fn start_perf(pid: u32) -> Option<std::process::Child> {
    let out = target_dir().join("bench").join("gateway-get.perf");
    let _ = std::fs::create_dir_all(out.parent()?);
    std::process::Command::new("perf")
        .args(["record", "-g", "-F", "499", "-p", &pid.to_string(), "-o"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// Stop `perf record` (SIGINT, so that it writes its file) and name the profile.
fn stop_perf(md: &mut String, mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = writeln!(
        md,
        "\nperf profile of the gateway during the GET rounds: target/bench/gateway-get.perf"
    );
}
