//! The sequences the benchmark times, each in a fresh world: the job's four operations, the
//! manual procedure's, `verify` under IAM propagation, and EKS Pod Identity.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::proxy::Call;
use testkit::world::World;

use crate::args::{Args, Op};
use crate::sample::{ms, run, Sample};
use crate::{warm_moto, ROOT, STAGING_SA};

/// The four operations of the job in a fresh world.
pub(crate) async fn job_sequence(
    args: &Args,
    delay: u64,
    rss: bool,
) -> Result<Vec<Sample>, String> {
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
pub(crate) type PropagationRow = (String, usize, f64, f64, usize);

/// `verify` under IAM propagation: a fresh provision in a fresh world while STS refuses the
/// first `denied` AssumeRoleWithWebIdentity calls (as for a role created seconds ago), and one
/// with verification off. Returns rows: label, denied, wall, time to "Epinio restarted" (end of
/// the restart's apply), AWS depth.
pub(crate) async fn propagation(
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
pub(crate) const POD_IDENTITY_STEPS: [(&str, &str, &str); 5] = [
    ("pod-identity: fresh provision", "provision", "pod-identity"),
    ("pod-identity: no-op re-run", "provision", "pod-identity"),
    ("switch to irsa", "provision", "irsa"),
    ("switch back to pod-identity", "provision", "pod-identity"),
    ("pod-identity: teardown", "teardown", "pod-identity"),
];

/// EKS Pod Identity (the stand-in behind the AWS proxy) in a fresh world per sample: an Epinio
/// 1.13.9 whose staging aws CLI can use it, the agent add-on ACTIVE, the steps of
/// [`POD_IDENTITY_STEPS`]. Returns, per sample, one [`Sample`] per step.
pub(crate) async fn pod_identity_sequence(args: &Args, delay: u64) -> Result<Vec<Sample>, String> {
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

/// The four operations done by hand (scripts/manual-procedure.sh) in a fresh world.
pub(crate) async fn manual_sequence(delay: u64) -> Result<Vec<Sample>, String> {
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

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
