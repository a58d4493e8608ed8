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
//!
//! Its parts: the operations and arguments (`hook/args.rs`), one run and its sample
//! (`hook/sample.rs`), the sequences (`hook/sequences.rs`), statistics (`hook/stats.rs`), the
//! report (`hook/report.rs`) and the footprint (`hook/footprint.rs`); moto's warm-up and
//! `main` are here.

#![forbid(unsafe_code)]

#[path = "hook/args.rs"]
mod args;
#[path = "hook/footprint.rs"]
mod footprint;
#[path = "hook/report.rs"]
mod report;
#[path = "hook/sample.rs"]
mod sample;
#[path = "hook/sequences.rs"]
mod sequences;
#[path = "hook/stats.rs"]
mod stats;

use std::path::Path;
use std::time::Instant;

use testkit::world::World;

use args::{parse_args, Args};
use footprint::loadavg;
use report::{pod_identity_table, propagation_table, report, Results};
use sequences::{job_sequence, manual_sequence, pod_identity_sequence, propagation};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Separate staging ServiceAccount: two roles, as in the docs' procedure.
const STAGING_SA: &str = "epinio-staging-service-account";
const MOVED_BUCKET: &str = "epinio-bench-moved";
const BIN_ENV: &str = "EPINIO_IRSA_BENCH_BIN";

/// A fresh moto pays for a lot on first use: building its IAM backend (it loads the AWS managed
/// policies, about half a second), compiling the response template of each operation, the error
/// paths. Real IAM has no such cold start, so before timing anything the benchmark walks every
/// operation the job and the manual script use through a throwaway lifecycle (names
/// `bench-warmup*`, all deleted again), directly against moto, not through the proxies.
async fn warm_moto(w: &World) -> Result<(), String> {
    use aws_sdk_iam::types::Tag;
    let iam = &w.iam;
    let name = "bench-warmup";
    let tag = Tag::builder()
        .key("epinio-irsa/owner")
        .value("bench-warmup")
        .build()
        .map_err(warm_up_failed("tag"))?;
    let policy_arn = format!("arn:aws:iam::{}:policy/{name}", w.account());

    // Error paths: things that do not exist yet.
    let _ = iam.get_role().role_name(name).send().await;
    let _ = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await;
    let _ = iam.get_policy().policy_arn(&policy_arn).send().await;

    // Create, read, update, delete.
    let provider_arn = warm_provider(iam, &tag).await?;
    warm_role_and_policy(iam, name, &policy_arn, &tag).await?;
    iam.delete_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider_arn)
        .send()
        .await
        .map_err(warm_up_failed("DeleteOpenIDConnectProvider"))?;

    warm_sts_and_eks(w).await
}

/// The error of one warm-up call.
fn warm_up_failed<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("moto warm-up, {what}: {e:?}")
}

/// OIDC providers: list, create and read one; returns its ARN.
async fn warm_provider(
    iam: &aws_sdk_iam::Client,
    tag: &aws_sdk_iam::types::Tag,
) -> Result<String, String> {
    iam.list_open_id_connect_providers()
        .send()
        .await
        .map_err(warm_up_failed("ListOpenIDConnectProviders"))?;
    let provider = iam
        .create_open_id_connect_provider()
        .url("https://bench-warmup.invalid/id/WARMUP")
        .client_id_list("sts.amazonaws.com")
        .tags(tag.clone())
        .send()
        .await
        .map_err(warm_up_failed("CreateOpenIDConnectProvider"))?;
    let provider_arn = provider
        .open_id_connect_provider_arn()
        .unwrap_or_default()
        .to_string();
    let _ = iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider_arn)
        .send()
        .await;
    Ok(provider_arn)
}

/// A policy and a role: create, attach and read them, then [`warm_update_and_delete`].
async fn warm_role_and_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy_arn: &str,
    tag: &aws_sdk_iam::types::Tag,
) -> Result<(), String> {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let doc = |bucket: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        )
    };
    iam.create_policy()
        .policy_name(name)
        .policy_document(doc("one"))
        .tags(tag.clone())
        .send()
        .await
        .map_err(warm_up_failed("CreatePolicy"))?;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .tags(tag.clone())
        .send()
        .await
        .map_err(warm_up_failed("CreateRole"))?;
    iam.attach_role_policy()
        .role_name(name)
        .policy_arn(policy_arn)
        .send()
        .await
        .map_err(warm_up_failed("AttachRolePolicy"))?;
    let _ = iam.get_role().role_name(name).send().await;
    let _ = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await;
    let _ = iam.list_role_policies().role_name(name).send().await;
    let _ = iam.get_policy().policy_arn(policy_arn).send().await;
    let _ = iam
        .get_policy_version()
        .policy_arn(policy_arn)
        .version_id("v1")
        .send()
        .await;
    let _ = iam
        .list_policy_versions()
        .policy_arn(policy_arn)
        .send()
        .await;
    warm_update_and_delete(iam, name, policy_arn, tag, &doc("two")).await
}

/// Then: a new default version of the policy (`document`), a tag, and everything deleted
/// again.
async fn warm_update_and_delete(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy_arn: &str,
    tag: &aws_sdk_iam::types::Tag,
    document: &str,
) -> Result<(), String> {
    iam.create_policy_version()
        .policy_arn(policy_arn)
        .policy_document(document)
        .set_as_default(true)
        .send()
        .await
        .map_err(warm_up_failed("CreatePolicyVersion"))?;
    let _ = iam
        .tag_policy()
        .policy_arn(policy_arn)
        .tags(tag.clone())
        .send()
        .await;
    let _ = iam
        .detach_role_policy()
        .role_name(name)
        .policy_arn(policy_arn)
        .send()
        .await;
    let _ = iam.delete_role().role_name(name).send().await;
    let _ = iam
        .delete_policy_version()
        .policy_arn(policy_arn)
        .version_id("v1")
        .send()
        .await;
    iam.delete_policy()
        .policy_arn(policy_arn)
        .send()
        .await
        .map_err(warm_up_failed("DeletePolicy"))?;
    Ok(())
}

/// STS (the manual procedure's account lookup) and EKS.
async fn warm_sts_and_eks(w: &World) -> Result<(), String> {
    use aws_sdk_iam::config::{Credentials, Region};
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
        .map_err(warm_up_failed("GetCallerIdentity"))?;
    aws_sdk_eks::Client::new(&sdk)
        .describe_cluster()
        .name(testkit::world::CLUSTER)
        .send()
        .await
        .map_err(warm_up_failed("DescribeCluster"))?;
    Ok(())
}

/// Every sequence, in order: the job and the manual procedure at each delay, then at the
/// largest delay `verify` under propagation, EKS Pod Identity and the job under
/// `/usr/bin/time`.
async fn measure(args: &Args) -> Result<Results, String> {
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
            runs.push(job_sequence(args, delay, false).await?);
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
    results.propagation = Some((delay, propagation(args, delay).await?));
    let mut samples = Vec::new();
    for i in 0..args.runs {
        eprintln!(
            "[bench] EKS Pod Identity, {delay} ms, sample {}/{}",
            i + 1,
            args.runs
        );
        samples.push(pod_identity_sequence(args, delay).await?);
    }
    results.pod_identity = Some((delay, samples));
    if Path::new("/usr/bin/time").is_file() {
        eprintln!("[bench] job under /usr/bin/time, {delay} ms");
        results.rss = Some((delay, job_sequence(args, delay, true).await?));
    }
    Ok(results)
}

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
    let result = runtime.block_on(measure(&args));
    let results = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[bench] FAILED: {e}");
            std::process::exit(1);
        }
    };
    let (mut md, js) = report(&args, &results);
    if let Some((delay, rows)) = &results.propagation {
        md.push_str(&propagation_table(*delay, rows));
    }
    if let Some((delay, samples)) = &results.pod_identity {
        md.push_str(&pod_identity_table(*delay, samples));
    }
    println!("{md}");
    write_results(&args, &md, &js, started);
}

/// `hook.md` and `hook.json` into `--out`.
fn write_results(args: &Args, md: &str, js: &serde_json::Value, started: Instant) {
    let _ = std::fs::create_dir_all(&args.out);
    let md_path = args.out.join("hook.md");
    let js_path = args.out.join("hook.json");
    let written = std::fs::write(&md_path, md).and_then(|_| {
        std::fs::write(
            &js_path,
            serde_json::to_string_pretty(js).unwrap_or_default(),
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
