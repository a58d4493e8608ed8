//! Benchmark of the epinio-irsa hook (issue 5): how long it holds `helm install`, how many AWS
//! and Kubernetes calls it spends, how close it gets to the limit set by dependent AWS round
//! trips, how it compares with the manual procedure from the Epinio docs, and what it costs to
//! run. Reports numbers; asserts nothing about time (a failed run of the job or of the manual
//! script is an error, because its numbers would mean nothing).
//!
//! Not part of `cargo test`. Run it with `scripts/bench.sh` (see BENCHMARKS.md), which builds
//! the release binary once and then runs this harness in the dev profile:
//!
//! ```text
//! EPINIO_IRSA_BENCH_BIN=target/release/epinio-irsa \
//!   cargo bench --profile dev --bench hook -- [--runs 5] [--manual-runs 5] [--delays 0,50,150]
//! ```
//!
//! Every sample gets a fresh world (`testkit::world::World`): its own moto with the EKS cluster
//! `demo`, the Kubernetes stand-in seeded with Epinio's objects, a latency proxy in front of
//! moto (the per-call delay under test) and a proxy without delay in front of the stand-in. In
//! that world (moto warmed up first, see [`warm_moto`]) the four operations run in order: fresh `provision`, the same `provision` again
//! (no-op), `provision` with another bucket, `teardown`. The manual procedure
//! (`scripts/manual-procedure.sh`) runs the same four steps in worlds of its own.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::proxy::{self, Call, CallRecord};
use testkit::world::World;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Separate staging ServiceAccount: two roles, as in the docs' procedure.
const STAGING_SA: &str = "epinio-staging-service-account";
const MOVED_BUCKET: &str = "epinio-bench-moved";
const BIN_ENV: &str = "EPINIO_IRSA_BENCH_BIN";

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Provision,
    Noop,
    BucketChange,
    Teardown,
}

impl Op {
    const ALL: [Op; 4] = [Op::Provision, Op::Noop, Op::BucketChange, Op::Teardown];

    fn label(self) -> &'static str {
        match self {
            Op::Provision => "fresh provision",
            Op::Noop => "no-op re-run",
            Op::BucketChange => "bucket change",
            Op::Teardown => "teardown",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Op::Provision => "provision",
            Op::Noop => "noop",
            Op::BucketChange => "bucket_change",
            Op::Teardown => "teardown",
        }
    }

    fn job_command(self) -> &'static str {
        match self {
            Op::Teardown => "teardown",
            _ => "provision",
        }
    }

    fn job_env(self) -> Vec<(&'static str, &'static str)> {
        let mut env = vec![("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", STAGING_SA)];
        if matches!(self, Op::BucketChange | Op::Teardown) {
            env.push(("EPINIO_IRSA_S3_BUCKET", MOVED_BUCKET));
        }
        env
    }

    fn manual_args(self) -> Vec<&'static str> {
        match self {
            Op::Provision => vec!["provision"],
            Op::Noop => vec!["check"],
            Op::BucketChange => vec!["bucket-change", MOVED_BUCKET],
            Op::Teardown => vec!["teardown"],
        }
    }

    /// Minimal number of dependent AWS round trips (see BENCHMARKS.md for the chains).
    fn limit(self) -> usize {
        match self {
            Op::Provision => 4,
            Op::Noop => 2,
            Op::BucketChange => 3,
            // After a bucket change the policy has a spare version, which must go before the
            // policy can: 4 (3 without spare versions).
            Op::Teardown => 4,
        }
    }

    /// The issue's target for the critical-path depth, if it sets one.
    fn target(self) -> Option<usize> {
        match self {
            Op::Provision | Op::Teardown => Some(4),
            Op::Noop => Some(2),
            Op::BucketChange => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

struct Args {
    runs: usize,
    manual_runs: usize,
    delays: Vec<u64>,
    bin: PathBuf,
    out: PathBuf,
}

const USAGE: &str =
    "usage: hook [--runs N] [--manual-runs N] [--delays MS,MS,...] [--bin PATH] [--out DIR]
  --runs N           samples of the job per delay (default 5)
  --manual-runs N    samples of the manual procedure per delay (default 5; 0 skips it)
  --delays LIST      per-call delay of the proxy in front of moto, in ms (default 0,50,150)
  --bin PATH         the epinio-irsa binary (default $EPINIO_IRSA_BENCH_BIN, else
                     target/release/epinio-irsa)
  --out DIR          where hook.md and hook.json go (default target/bench)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 5,
        manual_runs: 5,
        delays: vec![0, 50, 150],
        bin: std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(ROOT).join("target/release/epinio-irsa")),
        out: Path::new(ROOT).join("target/bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            // Added by `cargo bench` to every harness.
            "--bench" => {}
            "-h" | "--help" => return Err(USAGE.to_string()),
            "--runs" => args.runs = value()?.parse().map_err(|_| "bad --runs")?,
            "--manual-runs" => {
                args.manual_runs = value()?.parse().map_err(|_| "bad --manual-runs")?
            }
            "--delays" => {
                args.delays = value()?
                    .split(',')
                    .map(|d| d.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| "bad --delays")?
            }
            "--bin" => args.bin = value()?.into(),
            "--out" => args.out = value()?.into(),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.runs == 0 || args.delays.is_empty() {
        return Err(format!("need at least one run and one delay\n{USAGE}"));
    }
    let bin = args.bin.canonicalize().map_err(|e| {
        format!(
            "{}: {e} (build it with `cargo build --release -p epinio-irsa`)",
            args.bin.display()
        )
    })?;
    args.bin = bin;
    Ok(args)
}

// ---------------------------------------------------------------------------
// One run of a process in a world
// ---------------------------------------------------------------------------

/// What one run of the job (or of the manual script) did.
struct Sample {
    wall: Duration,
    /// First call seen by either proxy, after the spawn.
    first_request: Option<Duration>,
    /// Peak RSS in KiB (only for runs under /usr/bin/time).
    rss_kib: Option<u64>,
    /// User + system CPU seconds (only for runs under /usr/bin/time).
    cpu_s: Option<f64>,
    aws: Vec<Call>,
    kube: Vec<Call>,
    spawned: Instant,
}

impl Sample {
    fn aws_reads(&self) -> usize {
        self.aws.iter().filter(|c| !c.is_write).count()
    }
    fn aws_writes(&self) -> usize {
        self.aws.iter().filter(|c| c.is_write).count()
    }
    fn kube_reads(&self) -> usize {
        self.kube.iter().filter(|c| !c.is_write).count()
    }
    fn kube_writes(&self) -> usize {
        self.kube.iter().filter(|c| c.is_write).count()
    }
    fn depth(&self) -> usize {
        proxy::critical_path_depth(&self.aws)
    }
    /// Calls made more than once: reads per `testkit::proxy::duplicates` (retries after a
    /// failure excepted), plus successful writes repeated with the same operation and resource.
    fn duplicates(&self) -> Vec<String> {
        let mut out = Vec::new();
        for calls in [&self.aws, &self.kube] {
            for (op, res, n) in proxy::duplicates(calls) {
                out.push(format!("{op} {} x{n}", res.unwrap_or_default()));
            }
            let mut writes: Vec<(&str, &str)> = calls
                .iter()
                .filter(|c| c.is_write && c.is_success())
                .map(|c| (c.op.as_str(), c.resource.as_deref().unwrap_or("")))
                .collect();
            writes.sort();
            let mut i = 0;
            while i < writes.len() {
                let n = writes[i..].iter().take_while(|w| **w == writes[i]).count();
                if n > 1 {
                    out.push(format!("{} {} x{n} (write)", writes[i].0, writes[i].1));
                }
                i += n;
            }
        }
        out
    }
    fn to_json(&self) -> Value {
        let records = |calls: &[Call]| -> Vec<Value> {
            calls
                .iter()
                .map(|c| {
                    serde_json::to_value(CallRecord::from_call(c, self.spawned))
                        .unwrap_or(Value::Null)
                })
                .collect()
        };
        json!({
            "wall_ms": ms(self.wall),
            "first_request_ms": self.first_request.map(ms),
            "peak_rss_kib": self.rss_kib,
            "cpu_s": self.cpu_s,
            "aws_reads": self.aws_reads(),
            "aws_writes": self.aws_writes(),
            "kube_reads": self.kube_reads(),
            "kube_writes": self.kube_writes(),
            "aws_depth": self.depth(),
            "duplicates": self.duplicates(),
            "aws_calls": records(&self.aws),
            "kube_calls": records(&self.kube),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run `program args` with `env` (and nothing else) in world `w`; `rss` wraps it in
/// `/usr/bin/time` to read the peak RSS. Errors with the output when it fails.
async fn run(
    w: &World,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    rss: bool,
) -> Result<Sample, String> {
    w.aws_proxy.clear_calls();
    w.kube_proxy.clear_calls();
    let rss_file = w.dir.join("rss.txt");
    let mut cmd = if rss {
        let mut c = tokio::process::Command::new("/usr/bin/time");
        c.arg("-f")
            .arg("%M %U %S")
            .arg("-o")
            .arg(&rss_file)
            .arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    };
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .map_err(|_| format!("{} {args:?} did not finish in 300 s", program.display()))?
        .map_err(|e| e.to_string())?;
    let wall = spawned.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The proxies log a call when its response is complete; the client may exit a hair earlier.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (aws, kube) = (w.aws_proxy.calls(), w.kube_proxy.calls());
    let first_request = aws
        .iter()
        .chain(&kube)
        .map(|c| c.start)
        .min()
        .map(|t| t.saturating_duration_since(spawned));
    // `/usr/bin/time -f "%M %U %S"`: peak RSS in KiB, user and system CPU seconds.
    let timed: Vec<f64> = if rss {
        std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|t| t.lines().last().map(str::to_string))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let rss_kib = timed.first().map(|k| *k as u64);
    let cpu_s = (timed.len() == 3).then(|| timed[1] + timed[2]);
    Ok(Sample {
        wall,
        first_request,
        rss_kib,
        cpu_s,
        aws,
        kube,
        spawned,
    })
}

/// A fresh moto pays for a lot on first use: building its IAM backend (it loads the AWS managed
/// policies, about half a second), compiling the response template of each operation, the error
/// paths. Real IAM has no such cold start, so before timing anything the benchmark walks every
/// operation the job and the manual script use through a throwaway lifecycle (names
/// `bench-warmup*`, all deleted again), directly against moto, not through the proxies.
async fn warm_moto(w: &World) -> Result<(), String> {
    use aws_sdk_iam::config::{Credentials, Region};
    use aws_sdk_iam::types::Tag;
    let fail = |what: &'static str| move |e: String| format!("moto warm-up, {what}: {e}");
    let dbg = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let iam = &w.iam;
    let name = "bench-warmup";
    let account = w.account().to_string();
    let tag = Tag::builder()
        .key("epinio-irsa/owner")
        .value("bench-warmup")
        .build()
        .map_err(|e| dbg(&e))
        .map_err(fail("tag"))?;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let doc = |bucket: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        )
    };
    let policy_arn = format!("arn:aws:iam::{account}:policy/{name}");

    // Error paths: things that do not exist yet.
    let _ = iam.get_role().role_name(name).send().await;
    let _ = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await;
    let _ = iam.get_policy().policy_arn(&policy_arn).send().await;

    // Create, read, update, delete.
    iam.list_open_id_connect_providers()
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("ListOpenIDConnectProviders"))?;
    let provider = iam
        .create_open_id_connect_provider()
        .url("https://bench-warmup.invalid/id/WARMUP")
        .client_id_list("sts.amazonaws.com")
        .tags(tag.clone())
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("CreateOpenIDConnectProvider"))?;
    let provider_arn = provider
        .open_id_connect_provider_arn()
        .unwrap_or_default()
        .to_string();
    let _ = iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider_arn)
        .send()
        .await;
    iam.create_policy()
        .policy_name(name)
        .policy_document(doc("one"))
        .tags(tag.clone())
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("CreatePolicy"))?;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .tags(tag.clone())
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("CreateRole"))?;
    iam.attach_role_policy()
        .role_name(name)
        .policy_arn(&policy_arn)
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("AttachRolePolicy"))?;
    let _ = iam.get_role().role_name(name).send().await;
    let _ = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await;
    let _ = iam.list_role_policies().role_name(name).send().await;
    let _ = iam.get_policy().policy_arn(&policy_arn).send().await;
    let _ = iam
        .get_policy_version()
        .policy_arn(&policy_arn)
        .version_id("v1")
        .send()
        .await;
    let _ = iam
        .list_policy_versions()
        .policy_arn(&policy_arn)
        .send()
        .await;
    iam.create_policy_version()
        .policy_arn(&policy_arn)
        .policy_document(doc("two"))
        .set_as_default(true)
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("CreatePolicyVersion"))?;
    let _ = iam
        .tag_policy()
        .policy_arn(&policy_arn)
        .tags(tag.clone())
        .send()
        .await;
    let _ = iam
        .detach_role_policy()
        .role_name(name)
        .policy_arn(&policy_arn)
        .send()
        .await;
    let _ = iam.delete_role().role_name(name).send().await;
    let _ = iam
        .delete_policy_version()
        .policy_arn(&policy_arn)
        .version_id("v1")
        .send()
        .await;
    iam.delete_policy()
        .policy_arn(&policy_arn)
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("DeletePolicy"))?;
    iam.delete_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider_arn)
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("DeleteOpenIDConnectProvider"))?;

    // STS (the manual procedure's account lookup) and EKS.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(testkit::moto::REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
        .endpoint_url(w.moto.endpoint())
        .load()
        .await;
    aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("GetCallerIdentity"))?;
    aws_sdk_eks::Client::new(&sdk)
        .describe_cluster()
        .name(testkit::world::CLUSTER)
        .send()
        .await
        .map_err(|e| dbg(&e))
        .map_err(fail("DescribeCluster"))?;
    Ok(())
}

/// The four operations of the job in a fresh world.
async fn job_sequence(args: &Args, delay: u64, rss: bool) -> Result<Vec<Sample>, String> {
    let w = World::new(&args.bin).await;
    warm_moto(&w).await?;
    w.aws_proxy.set_delay(Duration::from_millis(delay));
    let mut out = Vec::new();
    for op in Op::ALL {
        let mut env = w.env();
        env.extend(
            op.job_env()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let sample = run(&w, &args.bin, &[op.job_command()], &env, rss)
            .await
            .map_err(|e| format!("job, {} at {delay} ms: {e}", op.label()))?;
        out.push(sample);
    }
    Ok(out)
}

/// label, AssumeRole calls denied, wall ms, "Epinio restarted" ms, AWS depth.
type PropagationRow = (String, usize, f64, f64, usize);

/// `verify` under IAM propagation: a fresh provision in a fresh world while STS refuses the
/// first `denied` AssumeRoleWithWebIdentity calls (as for a role created seconds ago), and one
/// with verification off. Returns rows: label, denied, wall, time to "Epinio restarted" (end of
/// the restart's apply), AWS depth.
async fn propagation(
    args: &Args,
    delay: u64,
) -> Result<Vec<(String, usize, f64, f64, usize)>, String> {
    use testkit::proxy::{critical_path_depth, Fault, Rule};
    let mut rows = Vec::new();
    for (label, denied, verify) in [
        ("verification off", 0usize, false),
        ("verify, role assumable at once", 0, true),
        ("verify, 3 AssumeRole denied", 3, true),
        ("verify, 6 AssumeRole denied", 6, true),
    ] {
        let w = World::new(&args.bin).await;
        warm_moto(&w).await?;
        w.aws_proxy.set_delay(Duration::from_millis(delay));
        if denied > 0 {
            w.aws_proxy.add_rule(Rule::new(
                "AssumeRoleWithWebIdentity",
                Fault::AccessDenied,
                denied,
            ));
        }
        let mut env = w.env();
        env.push(("EPINIO_IRSA_VERIFY".into(), verify.to_string()));
        let sample = run(&w, &args.bin, &["provision"], &env, false).await?;
        let restarted = sample
            .kube
            .iter()
            .filter(|c| c.op == "apply deployments")
            .map(|c| c.end.saturating_duration_since(sample.spawned))
            .max()
            .ok_or("no restart")?;
        let aws: Vec<Call> = sample.aws.iter().filter(|c| c.is_aws()).cloned().collect();
        rows.push((
            label.to_string(),
            denied,
            ms(sample.wall),
            ms(restarted),
            critical_path_depth(&aws),
        ));
    }
    Ok(rows)
}

/// One step of the EKS Pod Identity sequence: label, command, `EPINIO_IRSA_MODE`.
const POD_IDENTITY_STEPS: [(&str, &str, &str); 5] = [
    ("pod-identity: fresh provision", "provision", "pod-identity"),
    ("pod-identity: no-op re-run", "provision", "pod-identity"),
    ("switch to irsa", "provision", "irsa"),
    ("switch back to pod-identity", "provision", "pod-identity"),
    ("pod-identity: teardown", "teardown", "pod-identity"),
];

/// EKS Pod Identity (the stand-in behind the AWS proxy) in a fresh world per sample: an Epinio
/// 1.13.9 whose staging aws CLI can use it, the agent add-on ACTIVE, the steps of
/// [`POD_IDENTITY_STEPS`]. Returns, per sample, one [`Sample`] per step.
async fn pod_identity_sequence(args: &Args, delay: u64) -> Result<Vec<Sample>, String> {
    let chart = testkit::epinio::Chart::new("1.13.9")
        .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
        .staging_workloads(STAGING_SA);
    let w = World::with_objects(&args.bin, chart.objects()).await;
    w.install_agent("ACTIVE");
    warm_moto(&w).await?;
    w.aws_proxy.set_delay(Duration::from_millis(delay));
    let mut out = Vec::new();
    for (label, command, mode) in POD_IDENTITY_STEPS {
        let mut env = w.env();
        env.push((
            "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT".into(),
            STAGING_SA.into(),
        ));
        env.push(("EPINIO_IRSA_MODE".into(), mode.into()));
        let sample = run(&w, &args.bin, &[command], &env, false)
            .await
            .map_err(|e| format!("{label} at {delay} ms: {e}"))?;
        out.push(sample);
    }
    Ok(out)
}

fn pod_identity_table(delay: u64, samples: &[Vec<Sample>]) -> String {
    let mut md = format!("\n### EKS Pod Identity ({delay} ms per AWS call, {} sample(s))\n\n| step | wall ms | AWS reads | AWS writes | AWS depth | Kubernetes reads / writes | duplicate calls |\n|---|---|---|---|---|---|---|\n", samples.len());
    for (i, (label, _, _)) in POD_IDENTITY_STEPS.iter().enumerate() {
        let step: Vec<&Sample> = samples.iter().filter_map(|s| s.get(i)).collect();
        md.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} / {} | {} |\n",
            wall_cell(&step),
            spread(step.iter().map(|s| s.aws_reads())),
            spread(step.iter().map(|s| s.aws_writes())),
            spread(step.iter().map(|s| s.depth())),
            spread(step.iter().map(|s| s.kube_reads())),
            spread(step.iter().map(|s| s.kube_writes())),
            duplicates_cell(&step),
        ));
    }
    md
}

/// The four operations done by hand (scripts/manual-procedure.sh) in a fresh world.
async fn manual_sequence(delay: u64) -> Result<Vec<Sample>, String> {
    let w = World::new(Path::new("/bin/false")).await;
    warm_moto(&w).await?;
    w.aws_proxy.set_delay(Duration::from_millis(delay));
    let kubectl = which("kubectl").ok_or("kubectl not found on PATH")?;
    let aws = Path::new(ROOT).join(".tools/venv/bin/aws");
    if !aws.is_file() {
        return Err(format!(
            "{} missing: run scripts/setup.sh --minimal",
            aws.display()
        ));
    }
    let mut env = w.env();
    for (k, v) in env.iter_mut() {
        if k == "PATH" {
            *v = format!("{}/.tools/venv/bin:/usr/bin:/bin", ROOT);
        }
    }
    env.extend([
        ("AWS".to_string(), aws.display().to_string()),
        ("KUBECTL".to_string(), kubectl.display().to_string()),
        ("STAGING_SA".to_string(), STAGING_SA.to_string()),
        ("CLUSTER".to_string(), testkit::world::CLUSTER.to_string()),
        (
            "NAMESPACE".to_string(),
            testkit::world::NAMESPACE.to_string(),
        ),
    ]);
    // An operator's kubectl has its discovery cache warm: fill it before timing.
    run(&w, &kubectl, &["api-resources"], &env, false)
        .await
        .map_err(|e| format!("kubectl warm-up: {e}"))?;
    let script = Path::new(ROOT).join("scripts/manual-procedure.sh");
    let script = script.display().to_string();
    let mut out = Vec::new();
    for op in Op::ALL {
        let mut argv = vec![script.as_str()];
        argv.extend(op.manual_args());
        let sample = run(&w, Path::new("/bin/bash"), &argv, &env, false)
            .await
            .map_err(|e| format!("manual, {} at {delay} ms: {e}", op.label()))?;
        out.push(sample);
    }
    Ok(out)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// Statistics and report
// ---------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `x` when every sample agrees, else `min–max`.
fn spread(v: impl IntoIterator<Item = usize>) -> String {
    let v: Vec<usize> = v.into_iter().collect();
    match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "–".into(),
    }
}

/// The calls repeated within a run, over all samples; the same repeat in several samples is
/// listed once.
fn duplicates_cell(samples: &[&Sample]) -> String {
    let mut dups: Vec<String> = samples.iter().flat_map(|x| x.duplicates()).collect();
    dups.sort();
    dups.dedup();
    if dups.is_empty() {
        "none".to_string()
    } else {
        dups.join("; ")
    }
}

fn wall_cell(samples: &[&Sample]) -> String {
    let walls: Vec<f64> = samples.iter().map(|s| ms(s.wall)).collect();
    let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = walls.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ({:.0}–{:.0})", median(walls), lo, hi)
}

fn wall_median(samples: &[&Sample]) -> f64 {
    median(samples.iter().map(|s| ms(s.wall)).collect())
}

/// Round (1-based) of each AWS call: the longest chain of calls that ended before it started.
fn rounds(calls: &[Call]) -> Vec<(usize, &Call)> {
    let mut order: Vec<&Call> = calls.iter().collect();
    order.sort_by_key(|c| (c.start, c.end));
    let mut level = vec![1usize; order.len()];
    for i in 0..order.len() {
        for j in 0..i {
            if order[j].end <= order[i].start {
                level[i] = level[i].max(level[j] + 1);
            }
        }
    }
    level.into_iter().zip(order).collect()
}

/// The chain of calls behind the critical-path depth, one name per round.
fn chain(s: &Sample) -> String {
    let r = rounds(&s.aws);
    let max = r.iter().map(|(l, _)| *l).max().unwrap_or(0);
    (1..=max)
        .map(|l| {
            let mut ops: Vec<&str> = r
                .iter()
                .filter(|(x, _)| *x == l)
                .map(|(_, c)| c.op.as_str())
                .collect();
            ops.sort();
            ops.dedup();
            ops.join(" + ")
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Where the wall time of a run goes, in ms: (before the first AWS call, injected delay
/// `depth × delay`, the rest of the time inside the AWS rounds (moto and proxy processing,
/// including moto serialising concurrent calls), between rounds (the job's own work), after the
/// last AWS call (Kubernetes writes, report, exit)).
fn breakdown(s: &Sample, delay: u64) -> (f64, f64, f64, f64, f64) {
    let r = rounds(&s.aws);
    let depth = r.iter().map(|(l, _)| *l).max().unwrap_or(0);
    let at = |t: Instant| ms(t.saturating_duration_since(s.spawned));
    let spans: Vec<(f64, f64)> = (1..=depth)
        .map(|l| {
            let calls: Vec<&Call> = r.iter().filter(|(x, _)| *x == l).map(|(_, c)| *c).collect();
            let start = calls
                .iter()
                .map(|c| at(c.start))
                .fold(f64::INFINITY, f64::min);
            let end = calls.iter().map(|c| at(c.end)).fold(0.0, f64::max);
            (start, end)
        })
        .collect();
    let Some((&(first, _), &(_, last))) = spans.first().zip(spans.last()) else {
        return (ms(s.wall), 0.0, 0.0, 0.0, 0.0);
    };
    let inside: f64 = spans.iter().map(|(a, b)| b - a).sum();
    let injected = (depth as u64 * delay) as f64;
    let between: f64 = spans.windows(2).map(|w| (w[1].0 - w[0].1).max(0.0)).sum();
    (
        first,
        injected,
        inside - injected,
        between,
        ms(s.wall) - last,
    )
}

fn timeline(s: &Sample) -> String {
    let mut t = String::new();
    for (level, c) in rounds(&s.aws) {
        let _ = writeln!(
            t,
            "  round {level}  {:>7.1} – {:>7.1} ms  {:<4} {:<30} {} ({})",
            ms(c.start.saturating_duration_since(s.spawned)),
            ms(c.end.saturating_duration_since(s.spawned)),
            c.service,
            c.op,
            c.resource.as_deref().unwrap_or(""),
            c.status
        );
    }
    for c in &s.kube {
        let _ = writeln!(
            t,
            "  kube     {:>7.1} – {:>7.1} ms  {} {} ({})",
            ms(c.start.saturating_duration_since(s.spawned)),
            ms(c.end.saturating_duration_since(s.spawned)),
            c.op,
            c.resource.as_deref().unwrap_or(""),
            c.status
        );
    }
    let _ = writeln!(t, "  exit at {:.1} ms", ms(s.wall));
    t
}

struct Results {
    load_before: String,
    /// [delay][sample][op]
    job: Vec<(u64, Vec<Vec<Sample>>)>,
    manual: Vec<(u64, Vec<Vec<Sample>>)>,
    rss: Option<(u64, Vec<Sample>)>,
    /// verify under IAM propagation: (delay, rows)
    propagation: Option<(u64, Vec<PropagationRow>)>,
    /// EKS Pod Identity: (delay, samples of the steps)
    pod_identity: Option<(u64, Vec<Vec<Sample>>)>,
}

fn pick(runs: &[Vec<Sample>], op: Op) -> Vec<&Sample> {
    let i = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
    runs.iter().filter_map(|r| r.get(i)).collect()
}

fn footprint(args: &Args, results: &Results) -> (String, Value) {
    let mut md = String::new();
    let size = std::fs::metadata(&args.bin).map(|m| m.len()).unwrap_or(0);
    let stripped = strip_size(&args.bin);
    let images = image_sizes();
    let startup: Vec<f64> = results
        .job
        .iter()
        .flat_map(|(_, runs)| runs.iter().flatten())
        .filter_map(|s| s.first_request.map(ms))
        .collect();
    let startup_first: Vec<f64> = results
        .job
        .iter()
        .flat_map(|(_, runs)| pick(runs, Op::Provision))
        .filter_map(|s| s.first_request.map(ms))
        .collect();
    let rss: Vec<(Op, u64, Option<f64>)> = results
        .rss
        .as_ref()
        .map(|(_, samples)| {
            Op::ALL
                .iter()
                .zip(samples)
                .filter_map(|(op, s)| Some((*op, s.rss_kib?, s.cpu_s)))
                .collect()
        })
        .unwrap_or_default();
    let rss_provision = rss
        .iter()
        .find(|(o, _, _)| *o == Op::Provision)
        .map(|r| (r.1, r.2));
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let _ = writeln!(md, "| measure | value | target |");
    let _ = writeln!(md, "|---|---|---|");
    let _ = writeln!(
        md,
        "| release binary as built (`strip = true`) | {} bytes ({:.2} MiB, {:.1} MB) | < 20 MB |",
        size,
        mib(size),
        size as f64 / 1e6
    );
    if let Some(s) = stripped {
        let _ = writeln!(
            md,
            "| after `strip --strip-all` | {s} bytes ({:.2} MiB) | |",
            mib(s)
        );
    }
    for (name, human) in &images {
        let _ = writeln!(
            md,
            "| container image `{name}` (`podman images`) | {human} | |"
        );
    }
    if images.is_empty() {
        let _ = writeln!(md, "| container image | not measured (no `localhost/epinio-irsa` image in `podman images`) | |");
    }
    let cpu = |c: &Option<f64>| match c {
        Some(c) => format!(", CPU {:.0} ms user+sys", c * 1000.0),
        None => String::new(),
    };
    match &rss_provision {
        Some((k, c)) => {
            let _ = writeln!(
                md,
                "| peak RSS, fresh provision (at {} ms) | {k} KiB ({:.1} MiB){} | < 32 MiB |",
                results.rss.as_ref().map(|r| r.0).unwrap_or(0),
                *k as f64 / 1024.0,
                cpu(c)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| peak RSS, fresh provision | not measured (/usr/bin/time missing) | < 32 MiB |"
            );
        }
    }
    for (op, k, c) in rss.iter().filter(|(o, _, _)| *o != Op::Provision) {
        let _ = writeln!(
            md,
            "| peak RSS, {} | {k} KiB ({:.1} MiB){} | |",
            op.label(),
            *k as f64 / 1024.0,
            cpu(c)
        );
    }
    let _ = writeln!(
        md,
        "| start-up to first request, median over {} job runs (fresh provision only: {}) | {:.1} ms (min {:.1}, max {:.1}) | < 50 ms |",
        startup.len(),
        startup_first.len(),
        median(startup.clone()),
        startup.iter().copied().fold(f64::INFINITY, f64::min),
        startup.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let _ = writeln!(
        md,
        "| start-up to first request, fresh provision only | {:.1} ms median | |",
        median(startup_first.clone())
    );
    let value = json!({
        "binary_bytes": size,
        "binary_stripped_bytes": stripped,
        "images": images.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
        "peak_rss_kib": rss.iter().map(|(o, k, _)| (o.key().to_string(), json!(k))).collect::<serde_json::Map<_, _>>(),
        "cpu_s": rss.iter().map(|(o, _, c)| (o.key().to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "startup_to_first_request_ms": {"median": median(startup), "median_fresh_provision": median(startup_first)},
    });
    (md, value)
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// stdout of a command, empty when it cannot run.
fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `git` commit of the work tree, and whether the sources of the binary differ from it.
fn tree_state() -> String {
    let head = command_line("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = command_line(
        "git",
        &[
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ],
    );
    match (head.is_empty(), dirty.is_empty()) {
        (true, _) => "unknown".into(),
        (false, true) => format!("`{head}`"),
        (false, false) => format!("`{head}` + uncommitted changes to src/ or Cargo.*"),
    }
}

fn strip_size(bin: &Path) -> Option<u64> {
    let tmp = std::env::temp_dir().join(format!("epinio-irsa-bench-strip-{}", std::process::id()));
    let ok = std::process::Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&tmp)
        .arg(bin)
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    let size = if ok {
        std::fs::metadata(&tmp).ok().map(|m| m.len())
    } else {
        None
    };
    let _ = std::fs::remove_file(&tmp);
    size
}

/// Every `localhost/epinio-irsa:TAG` image and its size as podman prints it
/// (tests/image/build.sh tags the project's Dockerfile build `localhost/epinio-irsa:test`).
fn image_sizes() -> Vec<(String, String)> {
    let Ok(out) = std::process::Command::new("podman")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}\t{{.Size}}"])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, size) = l.split_once('\t')?;
            name.starts_with("localhost/epinio-irsa:")
                .then(|| (name.to_string(), size.to_string()))
        })
        .collect()
}

fn report(args: &Args, results: &Results) -> (String, Value) {
    let mut md = String::new();
    let mut js = serde_json::Map::new();
    let _ = writeln!(
        md,
        "Binary: `{}` (sha256 {}), tree {}. {} job sample(s) and {} manual sample(s) per delay; wall = median (min–max) in ms, spawn to exit. Load average before / after: {} / {} ({} CPUs).\n",
        args.bin.display(),
        command_line("sha256sum", &[&args.bin.display().to_string()])
            .split_whitespace()
            .next()
            .map(|h| &h[..h.len().min(12)])
            .unwrap_or("?"),
        tree_state(),
        args.runs,
        args.manual_runs,
        results.load_before,
        loadavg(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    for (delay, runs) in &results.job {
        let manual = results
            .manual
            .iter()
            .find(|(d, _)| d == delay)
            .map(|(_, r)| r);
        let _ = writeln!(md, "### {delay} ms per AWS call\n");
        let _ = writeln!(md, "| operation | wall ms | AWS reads | AWS writes | Kubernetes reads / writes | AWS depth | limit | wall / (depth × delay) | wall / (limit × delay) | duplicate calls |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for op in Op::ALL {
            let s = pick(runs, op);
            let wall = wall_median(&s);
            let depth = median(s.iter().map(|x| x.depth() as f64).collect());
            let ratio = |n: f64| {
                if *delay == 0 {
                    "–".to_string()
                } else {
                    format!("{:.2}", wall / (n * *delay as f64))
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                op.label(),
                wall_cell(&s),
                spread(s.iter().map(|x| x.aws_reads())),
                spread(s.iter().map(|x| x.aws_writes())),
                spread(s.iter().map(|x| x.kube_reads())),
                spread(s.iter().map(|x| x.kube_writes())),
                spread(s.iter().map(|x| x.depth())),
                op.limit(),
                ratio(depth),
                ratio(op.limit() as f64),
                duplicates_cell(&s),
            );
            js.insert(
                format!("job/{delay}/{}", op.key()),
                Value::Array(s.iter().map(|x| x.to_json()).collect()),
            );
        }
        if let Some(manual) = manual {
            let _ = writeln!(
                md,
                "\nManual procedure (`scripts/manual-procedure.sh`), same delay:\n"
            );
            let _ = writeln!(md, "| operation | manual wall ms | manual AWS calls (reads / writes) | manual kubectl calls | manual AWS depth | epinio-irsa wall ms | manual / epinio-irsa | ceiling: manual / (limit × delay) |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
            for op in Op::ALL {
                let m = pick(manual, op);
                let j = pick(runs, op);
                let _ = writeln!(
                    md,
                    "| {} (`{}`) | {} | {} / {} | {} | {} | {:.0} | **{:.1}x** | {} |",
                    op.label(),
                    op.manual_args()[0],
                    wall_cell(&m),
                    spread(m.iter().map(|x| x.aws_reads())),
                    spread(m.iter().map(|x| x.aws_writes())),
                    spread(m.iter().map(|x| x.kube.len())),
                    spread(m.iter().map(|x| x.depth())),
                    wall_median(&j),
                    wall_median(&m) / wall_median(&j),
                    if *delay == 0 {
                        "–".to_string()
                    } else {
                        format!(
                            "{:.1}x",
                            wall_median(&m) / (op.limit() as f64 * *delay as f64)
                        )
                    },
                );
                js.insert(
                    format!("manual/{delay}/{}", op.key()),
                    Value::Array(m.iter().map(|x| x.to_json()).collect()),
                );
            }
        }
        let _ = writeln!(md);
    }

    // Targets, at the largest delay.
    if let Some((delay, runs)) = results.job.iter().max_by_key(|(d, _)| *d) {
        let _ = writeln!(md, "### Critical path at {delay} ms (first sample)\n");
        let _ = writeln!(md, "| operation | depth | chain of dependent AWS rounds |");
        let _ = writeln!(md, "|---|---|---|");
        for op in Op::ALL {
            if let Some(s) = pick(runs, op).first() {
                let _ = writeln!(md, "| {} | {} | {} |", op.label(), s.depth(), chain(s));
            }
        }
        let _ = writeln!(md, "\n### Targets\n");
        let _ = writeln!(md, "| target | measured | met |");
        let _ = writeln!(md, "|---|---|---|");
        for op in Op::ALL {
            let s = pick(runs, op);
            let depth = s.iter().map(|x| x.depth()).max().unwrap_or(0);
            let writes = s.iter().map(|x| x.aws_writes()).max().unwrap_or(0);
            if let Some(t) = op.target() {
                let reads_only = if op == Op::Noop {
                    format!(", {writes} AWS writes")
                } else {
                    String::new()
                };
                let met = depth <= t && (op != Op::Noop || writes == 0);
                let _ = writeln!(
                    md,
                    "| {}: AWS depth ≤ {t}{} | {depth}{reads_only} (at {delay} ms, worst sample) | {} |",
                    op.label(),
                    if op == Op::Noop { ", reads only" } else { "" },
                    if met { "yes" } else { "**no**" }
                );
            } else {
                let _ = writeln!(
                    md,
                    "| {}: no target; limit {} | {depth} (at {delay} ms, worst sample) | {} |",
                    op.label(),
                    op.limit(),
                    if depth <= op.limit() {
                        "at the limit"
                    } else {
                        "above the limit"
                    }
                );
            }
        }
        if let Some((_, manual)) = results.manual.iter().find(|(d, _)| d == delay) {
            for op in Op::ALL {
                let ratio = wall_median(&pick(manual, op)) / wall_median(&pick(runs, op));
                let _ = writeln!(
                    md,
                    "| {}: ≥ 10x faster than manual at {delay} ms | {ratio:.1}x | {} |",
                    op.label(),
                    if ratio >= 10.0 { "yes" } else { "**no**" }
                );
            }
        }
        let dups: Vec<String> = results
            .job
            .iter()
            .flat_map(|(_, r)| r.iter().flatten())
            .flat_map(|s| s.duplicates())
            .collect();
        let _ = writeln!(
            md,
            "| no call made twice (all delays, all operations) | {} | {} |",
            if dups.is_empty() {
                "none".to_string()
            } else {
                dups.join("; ")
            },
            if dups.is_empty() { "yes" } else { "**no**" }
        );

        let _ = writeln!(
            md,
            "\n### Where the time goes at {delay} ms (medians, ms)\n"
        );
        let _ = writeln!(md, "| operation | wall | spawn to first AWS call | injected delay (depth × {delay}) | rest of the AWS rounds (moto, proxy) | between rounds (the job) | after the last AWS call (Kubernetes writes, exit) |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for op in Op::ALL {
            let s = pick(runs, op);
            let b: Vec<(f64, f64, f64, f64, f64)> =
                s.iter().map(|x| breakdown(x, *delay)).collect();
            let col = |f: fn(&(f64, f64, f64, f64, f64)) -> f64| median(b.iter().map(f).collect());
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
                op.label(),
                wall_median(&s),
                col(|x| x.0),
                col(|x| x.1),
                col(|x| x.2),
                col(|x| x.3),
                col(|x| x.4),
            );
        }
        let _ = writeln!(md, "\n### Call timelines at {delay} ms (first sample)\n");
        for op in Op::ALL {
            if let Some(s) = pick(runs, op).first() {
                let _ = writeln!(
                    md,
                    "{} (`epinio-irsa {}`):\n```text\n{}```",
                    op.label(),
                    op.job_command(),
                    timeline(s)
                );
            }
        }
    }

    let (fp_md, fp_js) = footprint(args, results);
    let _ = writeln!(md, "\n### Footprint\n\n{fp_md}");
    js.insert("footprint".into(), fp_js);
    if let Some((delay, samples)) = &results.rss {
        js.insert(
            format!("rss/{delay}"),
            Value::Array(samples.iter().map(|x| x.to_json()).collect()),
        );
    }
    (md, Value::Object(js))
}

// ---------------------------------------------------------------------------

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let result = runtime.block_on(async {
        let mut results = Results {
            load_before: loadavg(),
            job: Vec::new(),
            manual: Vec::new(),
            rss: None,
            propagation: None,
            pod_identity: None,
        };
        for &delay in &args.delays {
            let mut runs = Vec::new();
            for i in 0..args.runs {
                eprintln!("[bench] job, {delay} ms, sample {}/{}", i + 1, args.runs);
                runs.push(job_sequence(&args, delay, false).await?);
            }
            results.job.push((delay, runs));
            let mut runs = Vec::new();
            for i in 0..args.manual_runs {
                eprintln!(
                    "[bench] manual, {delay} ms, sample {}/{}",
                    i + 1,
                    args.manual_runs
                );
                runs.push(manual_sequence(delay).await?);
            }
            if !runs.is_empty() {
                results.manual.push((delay, runs));
            }
        }
        let delay = args.delays.iter().copied().max().unwrap_or(0);
        eprintln!("[bench] verify under IAM propagation, {delay} ms");
        results.propagation = Some((delay, propagation(&args, delay).await?));
        let mut samples = Vec::new();
        for i in 0..args.runs {
            eprintln!(
                "[bench] EKS Pod Identity, {delay} ms, sample {}/{}",
                i + 1,
                args.runs
            );
            samples.push(pod_identity_sequence(&args, delay).await?);
        }
        results.pod_identity = Some((delay, samples));
        if Path::new("/usr/bin/time").is_file() {
            eprintln!("[bench] job under /usr/bin/time, {delay} ms");
            results.rss = Some((delay, job_sequence(&args, delay, true).await?));
        }
        Ok::<_, String>(results)
    });
    let results = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[bench] FAILED: {e}");
            std::process::exit(1);
        }
    };
    let (mut md, js) = report(&args, &results);
    if let Some((delay, rows)) = &results.propagation {
        md.push_str(&format!("\n### verify under IAM propagation ({delay} ms per AWS call, fresh provision)\n\n| run | AssumeRole denied | wall ms | Epinio restarted at ms | AWS depth |\n|---|---|---|---|---|\n"));
        for (label, denied, wall, restarted, depth) in rows {
            md.push_str(&format!(
                "| {label} | {denied} | {wall:.0} | {restarted:.0} | {depth} |\n"
            ));
        }
    }
    if let Some((delay, samples)) = &results.pod_identity {
        md.push_str(&pod_identity_table(*delay, samples));
    }
    println!("{md}");
    let _ = std::fs::create_dir_all(&args.out);
    let md_path = args.out.join("hook.md");
    let js_path = args.out.join("hook.json");
    let written = std::fs::write(&md_path, &md).and_then(|_| {
        std::fs::write(
            &js_path,
            serde_json::to_string_pretty(&js).unwrap_or_default(),
        )
    });
    match written {
        Ok(()) => eprintln!(
            "[bench] done in {:.0} s; wrote {} and {}",
            started.elapsed().as_secs_f64(),
            md_path.display(),
            js_path.display()
        ),
        Err(e) => eprintln!(
            "[bench] cannot write results to {}: {e}",
            args.out.display()
        ),
    }
}
