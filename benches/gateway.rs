//! Benchmark of the gateway (issue 17): what it costs against talking to the backend
//! directly. Reports numbers and asserts nothing about them; a failed request or a content
//! mismatch aborts the run, because its numbers would mean nothing.
//!
//! Not part of `cargo test`. Run it with `scripts/bench.sh --gateway` (see BENCHMARKS.md,
//! "Gateway"), or by hand on the release build:
//!
//! ```text
//! cargo bench --bench gateway -- [--quick] [--load-seconds 60] [--samples 300] [--big-mib 256]
//! ```
//!
//! Set-up, all on loopback in one run:
//! - backend: s3s-fs (`testkit::gateway_fs`), in this process; its files under the temp dir;
//! - gateway: `epinio-irsa gateway`, the binary built with this harness
//!   (`CARGO_BIN_EXE_epinio-irsa`; under `cargo bench`, the optimised build), as a child
//!   process, signing for s3s-fs with static keys; a fresh process for each RSS figure, since
//!   `VmHWM` only grows;
//! - client: aws-sdk-s3 configured as Epinio 1.14 configures aws-sdk-go-v2 (path style,
//!   static keys, `us-east-1`, default checksums, signed payloads), no retries; the same
//!   client configuration straight to s3s-fs and through the gateway, interleaved.
//!
//! Measured: throughput of 256 MiB PutObject and GetObject (median of the rounds), added
//! p50/p99 latency of HeadObject and of 4 KiB GetObject and PutObject, the gateway's peak RSS
//! idle, at one 16 MiB and one 256 MiB transfer, and at 32 concurrent 256 MiB transfers, the
//! time from spawn to `/readyz` 200, and 32 clients mixing 1 - 64 MiB PUT and GET for 60 s.

#![forbid(unsafe_code)]

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use testkit::gateway::{epinio_client, ACCESS_KEY, SECRET_KEY};
use testkit::gateway_fs::FsWorld;
use testkit::gateway_load::{self, Load};
use testkit::gateway_process::GatewayProcess;

use common::{get, loadavg, median, put, target_dir, MIB};

const BUCKET: &str = "epinio-bench";
const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

#[derive(Debug, Clone, Copy)]
struct Options {
    rounds: usize,
    samples: usize,
    startups: usize,
    load_seconds: u64,
    /// The large object size (256 MiB; smaller only to try the harness out).
    big: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Options {
        rounds: 3,
        samples: 300,
        startups: 20,
        load_seconds: 60,
        big: 256 * MIB,
    };
    if args.iter().any(|a| a == "--quick") {
        o = Options {
            rounds: 1,
            samples: 60,
            startups: 5,
            load_seconds: 10,
            big: 256 * MIB,
        };
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(n) = value("--load-seconds") {
        o.load_seconds = n;
    }
    if let Some(n) = value("--samples") {
        o.samples = n as usize;
    }
    if let Some(n) = value("--big-mib") {
        o.big = n as usize * MIB;
    }
    o
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(opts));
    println!("{report}");
    let out = target_dir().join("bench");
    let _ = std::fs::create_dir_all(&out);
    let file = out.join("gateway.md");
    std::fs::write(&file, &report).expect("write the report");
    eprintln!("written to {}", file.display());
}

async fn gateway(world: &FsWorld) -> GatewayProcess {
    let gw = GatewayProcess::spawn(Path::new(BIN), &world.gateway_env()).await;
    gw.wait_ready().await;
    gw.wait_credentials().await;
    gw
}

async fn run(opts: Options) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "gateway benchmark: {opts:?}; binary {BIN}; load average before: {}",
        loadavg()
    );
    let world = FsWorld::start(BUCKET).await;
    let gw = gateway(&world).await;
    let direct = world.backend.client();
    let through = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);

    throughput(&mut md, &direct, &through, opts.rounds, opts.big).await;
    latency(&mut md, &direct, &through, opts.samples).await;
    drop(gw);
    startup(&mut md, &world, opts.startups).await;
    rss(&mut md, &world, opts.big).await;
    load_run(&mut md, &world, opts.load_seconds).await;
    md
}

// ------------------------------------------------------------------ throughput

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

async fn throughput(
    md: &mut String,
    direct: &aws_sdk_s3::Client,
    through: &aws_sdk_s3::Client,
    rounds: usize,
    size: usize,
) {
    let data = gateway_load::pool(size, 42);
    let mut rates: [[Vec<f64>; 2]; 2] = Default::default();
    for round in 0..rounds {
        for (i, s3) in [direct, through].into_iter().enumerate() {
            let key = format!("big/{i}/{round}");
            let p = put(s3, BUCKET, &key, data.clone()).await;
            let g = get(s3, BUCKET, &key, &data, false).await;
            rates[i][0].push(mib_s(size, p));
            rates[i][1].push(mib_s(size, g));
        }
    }
    let _ = writeln!(
        md,
        "\n### Throughput, {} MiB, median of {rounds}\n\n| | direct | through the gateway | ratio (goal >= 90 %) |\n|---|---|---|---|",
        size / MIB
    );
    for (j, op) in ["PutObject", "GetObject"].into_iter().enumerate() {
        let d = median(rates[0][j].clone());
        let g = median(rates[1][j].clone());
        let _ = writeln!(
            md,
            "| {op} | {d:.0} MiB/s | {g:.0} MiB/s | {:.0} % {} |",
            100.0 * g / d,
            if g >= 0.9 * d { "met" } else { "NOT met" }
        );
    }
}

// --------------------------------------------------------------------- latency

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn one(s3: &aws_sdk_s3::Client, op: &str, n: usize, small: &Bytes) -> Duration {
    let t = Instant::now();
    match op {
        "HeadObject" => {
            s3.head_object()
                .bucket(BUCKET)
                .key("small")
                .send()
                .await
                .expect("HEAD");
        }
        "GetObject 4 KiB" => {
            let out = s3
                .get_object()
                .bucket(BUCKET)
                .key("small")
                .send()
                .await
                .expect("GET");
            let got = out.body.collect().await.expect("GET body").into_bytes();
            assert_eq!(got, *small, "GET 4 KiB differs");
        }
        _ => {
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("small-put/{}", n % 16))
                .body(ByteStream::from(small.clone()))
                .send()
                .await
                .expect("PUT");
        }
    }
    t.elapsed()
}

async fn latency(
    md: &mut String,
    direct: &aws_sdk_s3::Client,
    through: &aws_sdk_s3::Client,
    samples: usize,
) {
    let small = gateway_load::pool(4096, 7);
    put(direct, BUCKET, "small", small.clone()).await;
    let _ = writeln!(
        md,
        "\n### Latency, {samples} sequential requests each, interleaved\n\n| | direct p50 / p99 | through the gateway p50 / p99 | added p50 / p99 (goal: p50 <= 2 ms) |\n|---|---|---|---|"
    );
    for op in ["HeadObject", "GetObject 4 KiB", "PutObject 4 KiB"] {
        for n in 0..20 {
            one(direct, op, n, &small).await;
            one(through, op, n, &small).await;
        }
        let (mut d, mut g) = (Vec::new(), Vec::new());
        for n in 0..samples {
            d.push(one(direct, op, n, &small).await);
            g.push(one(through, op, n, &small).await);
        }
        d.sort();
        g.sort();
        let (d50, d99, g50, g99) = (
            ms(percentile(&d, 50)),
            ms(percentile(&d, 99)),
            ms(percentile(&g, 50)),
            ms(percentile(&g, 99)),
        );
        let _ = writeln!(
            md,
            "| {op} | {d50:.2} / {d99:.2} ms | {g50:.2} / {g99:.2} ms | {:.2} / {:.2} ms {} |",
            g50 - d50,
            g99 - d99,
            if g50 - d50 <= 2.0 { "met" } else { "NOT met" }
        );
    }
}

// --------------------------------------------------------------------- startup

async fn startup(md: &mut String, world: &FsWorld, runs: usize) {
    let mut times = Vec::new();
    for _ in 0..runs {
        let gw = GatewayProcess::spawn(Path::new(BIN), &world.gateway_env()).await;
        times.push(gw.wait_ready().await);
        assert!(gw.stop().await, "the gateway did not stop cleanly");
    }
    times.sort();
    let _ = writeln!(
        md,
        "\n### Start\n\nspawn to `/readyz` 200, {runs} runs: median {:.1} ms, max {:.1} ms",
        ms(percentile(&times, 50)),
        ms(*times.last().expect("a run"))
    );
}

// ------------------------------------------------------------------------- RSS

async fn rss(md: &mut String, world: &FsWorld, big: usize) {
    let _ = writeln!(
        md,
        "\n### Peak RSS of the gateway (VmHWM, a fresh process each; goal < 64 MiB, flat in object size)\n\n| transfers | peak RSS | |\n|---|---|---|"
    );
    let gw = gateway(world).await;
    let idle = gw.peak_rss_kib();
    let _ = writeln!(md, "| none (idle, ready) | {:.1} MiB | |", kib_mib(idle));
    drop(gw);
    for (count, size) in [(1, 16 * MIB), (1, big), (32, big)] {
        let gw = gateway(world).await;
        // 3 attempts, as Epinio's aws-sdk-go-v2 makes: 32 clients of 256 MiB on two cores
        // keep pooled connections idle past the gateway's header-read timeout, and a request
        // sent as the gateway closes one is retried by every real client.
        let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 3);
        let data = gateway_load::pool(size, 9);
        let t = Instant::now();
        let puts: Vec<_> = (0..count)
            .map(|i| {
                let (s3, data) = (s3.clone(), data.clone());
                tokio::spawn(async move { put(&s3, BUCKET, &format!("rss/{i}"), data).await })
            })
            .collect();
        for p in puts {
            p.await.expect("PUT task");
        }
        let gets: Vec<_> = (0..count)
            .map(|i| {
                let (s3, data) = (s3.clone(), data.clone());
                tokio::spawn(
                    async move { get(&s3, BUCKET, &format!("rss/{i}"), &data, false).await },
                )
            })
            .collect();
        for g in gets {
            g.await.expect("GET task");
        }
        let peak = gw.peak_rss_kib();
        let _ = writeln!(
            md,
            "| {count} x {} MiB PUT, then {count} x GET (concurrent) | {:.1} MiB | {} in {:.1} s |",
            size / MIB,
            kib_mib(peak),
            if peak < 64 * 1024 { "met" } else { "NOT met" },
            t.elapsed().as_secs_f64()
        );
        assert!(gw.stop().await, "the gateway did not stop cleanly");
    }
}

fn kib_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------------------ load

async fn load_run(md: &mut String, world: &FsWorld, seconds: u64) {
    let gw = gateway(world).await;
    let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    let load = Load {
        clients: 32,
        duration: Duration::from_secs(seconds),
        sizes: (MIB, 64 * MIB),
        unsigned_payload: false,
    };
    let report = gateway_load::run(s3, BUCKET, load).await;
    let peak = gw.peak_rss_kib();
    let log = gw.log();
    let _ = writeln!(
        md,
        "\n### Load: 32 clients, PUT and GET of 1 - 64 MiB, signed payloads, {seconds} s\n\n{}\n\ngateway peak RSS {:.1} MiB; {} requests logged, {} logged as failed or incomplete",
        gateway_load::summary(&report),
        kib_mib(peak),
        log.requests,
        log.failed_requests.len()
    );
    assert!(
        report.errors.is_empty() && report.mismatches == 0,
        "the load failed: {:#?}",
        report.errors
    );
    assert!(gw.stop().await, "the gateway did not stop cleanly");
}
