//! What the user reads: each warning once, no colour escapes off a terminal, `plan` lines that
//! fit 120 columns with one line per column of the compatibility table, summary lines that
//! describe what happened in the mode they run in (no provider "kept" that is not there, no
//! "verified" where no live exchange was made, "nothing to remove" for a ServiceAccount that is
//! there; staging's Pod Identity column from the aws CLI image actually configured), progress
//! while the hook waits on stderr in the summary's own format, and a demo whose happy path
//! does not warn and whose every line is true for its mode, run with the pinned tools only.

use testkit::epinio::{Chart, POD_IDENTITY_AWS_CLI};
use testkit::proxy::{Fault, Rule};
use testkit::world::{RunOutput, World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const ESC: char = '\u{1b}';
const STAGING: (&str, &str) = ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging");
/// The summary's default width (EPINIO_IRSA_OUTPUT_WIDTH unset).
const DEFAULT_WIDTH: (&str, &str) = ("EPINIO_IRSA_OUTPUT_WIDTH", "");

/// The lines before the first JSON document (`plan` prints the documents last, after a blank
/// line and their title).
fn summary_lines(stdout: &str) -> Vec<&str> {
    stdout
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .collect()
}

#[track_caller]
fn assert_no_escape(out: &RunOutput) {
    assert!(
        !out.stdout.contains(ESC),
        "escape byte on stdout:\n{}",
        out.stdout
    );
    assert!(
        !out.stderr.contains(ESC),
        "escape byte on stderr:\n{:?}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warning_is_printed_once_in_the_summary_and_logged_as_an_event_in_json() {
    let w = World::with_objects(BIN, Chart::new("1.13.9").image_tag("my-fork-2").objects()).await;
    let warning =
        "the Epinio server image ghcr.io/epinio/epinio-server:my-fork-2 is not a release tag";

    let out = w.run("plan", &[]).await;
    out.assert_ok();
    let both = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        both.matches(warning).count(),
        1,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains(&format!("WARNING: {warning}")),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("WARN"), "{}", out.stderr);

    // JSON logs: the summary still says it once, and the structured stream carries it as one
    // warning event.
    let out = w.run("plan", &[("EPINIO_IRSA_LOG_FORMAT", "json")]).await;
    out.assert_ok();
    assert_eq!(out.stdout.matches(warning).count(), 1, "{}", out.stdout);
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["level"] == "WARN")
        .collect();
    assert_eq!(events.len(), 1, "{}", out.stderr);
    assert!(
        events[0]["fields"]["warning"]
            .as_str()
            .unwrap_or_default()
            .contains(warning),
        "{}",
        events[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_is_printed_once_in_text_logs() {
    let w = World::with_objects(BIN, Chart::new("1.14.1").objects()).await;
    let out = w.run("provision", &[]).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert_eq!(out.stderr.matches("error: ").count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_escape_byte_reaches_a_pipe_even_with_debug_logs() {
    let w = World::with_objects(BIN, Chart::new("1.13.9").image_tag("my-fork-2").objects()).await;
    let debug = ("RUST_LOG", "debug");
    let out = w.run("provision", &[debug]).await;
    out.assert_ok();
    assert!(
        out.stderr.lines().count() > 5,
        "debug logs expected: {}",
        out.stderr
    );
    assert_no_escape(&out);
    // A failing run too.
    let out = w
        .run("provision", &[debug, ("EPINIO_IRSA_MODE", "pod-identity")])
        .await;
    assert_eq!(out.code, Some(1));
    assert_no_escape(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_lines_fit_120_columns_with_one_line_per_compatibility_column() {
    let w = World::with_objects(
        BIN,
        Chart::new("1.13.9")
            .staging_workloads("epinio-staging")
            .objects(),
    )
    .await;
    let out = w.run("plan", &[STAGING, DEFAULT_WIDTH]).await;
    out.assert_ok();
    let lines = summary_lines(&out.stdout);
    for line in &lines {
        assert!(
            line.chars().count() <= 120,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert_eq!(
        lines[1],
        "  Epinio v1.13.9 (from the image tag), compatibility row 1.13.0 - 1.13.9"
    );
    for (i, column) in [
        "server with IRSA: yes",
        "server with Pod Identity: yes",
        "staging with IRSA: yes",
        "staging with Pod Identity: no",
        "staging ServiceAccount from server.stagingWorkloads.serviceAccountName",
    ]
    .iter()
    .enumerate()
    {
        let line = lines
            .iter()
            .position(|l| l.starts_with(&format!("    {column}")))
            .unwrap_or_else(|| panic!("no line for {column:?}:\n{}", out.stdout));
        assert!(line > i + 1, "{column:?} out of order:\n{}", out.stdout);
    }
    // The JSON documents follow, whole, after the summary.
    assert!(
        out.stdout.contains("\nTrust policy of role "),
        "{}",
        out.stdout
    );

    // Wrapping moves words, never changes them: unwrapped, the same text.
    let wide = w.run("plan", &[STAGING]).await;
    let rejoin = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(rejoin(&out.stdout), rejoin(&wide.stdout));
    assert!(summary_lines(&wide.stdout).iter().any(|l| l.len() > 120));
}

/// The summary's lines that name a resource: `(kind, name, what happened)`.
fn items(stdout: &str) -> Vec<(String, String, String)> {
    summary_lines(stdout)
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| {
            let mut parts = l.trim().splitn(2, "  ");
            let kind = parts.next()?.trim().to_string();
            let (name, change) = parts.next()?.trim().split_once("  ")?;
            Some((kind, name.trim().to_string(), change.trim().to_string()))
        })
        .filter(|(kind, _, _)| !kind.contains(' ') && !kind.ends_with(':'))
        .collect()
}

/// Every line of a summary is true for the mechanism the run used: IRSA names its provider
/// and proves the chain live (`verified:`); EKS Pod Identity has no provider to speak of and
/// only checks links (`checked:`, never `verified:`); a ServiceAccount said to be absent is.
#[track_caller]
fn assert_true_for(mechanism: &str, w: &World, out: &RunOutput) {
    let stdout = &out.stdout;
    let lines = summary_lines(stdout);
    match mechanism {
        "pod-identity" => {
            assert!(!stdout.contains("oidc-provider"), "{stdout}");
            assert!(!stdout.contains("OIDC provider"), "{stdout}");
            assert!(
                !lines.iter().any(|l| l.starts_with("verified:")),
                "{stdout}"
            );
            for l in lines.iter().filter(|l| l.starts_with("checked:")) {
                assert!(l.contains("Pod Identity association"), "{l}");
            }
        }
        _ => {
            assert!(!lines.iter().any(|l| l.starts_with("checked:")), "{stdout}");
            assert!(!stdout.contains("pod-identity-association"), "{stdout}");
            for l in lines
                .iter()
                .filter(|l| l.starts_with("verified: ServiceAccount"))
            {
                assert!(l.contains("-> token ->"), "{l}");
            }
        }
    }
    for (kind, name, change) in items(stdout) {
        if kind == "serviceaccount" && change == "absent" {
            let sa = name.trim_start_matches(&format!("{NAMESPACE}/"));
            assert!(
                w.service_account(sa).is_none(),
                "{name} is there:\n{stdout}"
            );
        }
    }
}

fn item<'a>(items: &'a [(String, String, String)], kind: &str, name: &str) -> Option<&'a str> {
    items
        .iter()
        .find(|(k, n, _)| k == kind && n == name)
        .map(|(_, _, c)| c.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_summaries_say_only_what_is_true() {
    let chart = Chart::new("1.13.9")
        .aws_cli(POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, chart.objects()).await;
    w.install_agent("ACTIVE");
    let env = [STAGING, ("EPINIO_IRSA_MODE", "pod-identity")];
    for command in ["plan", "provision", "verify"] {
        let out = w.run(command, &env).await;
        out.assert_ok();
        assert_true_for("pod-identity", &w, &out);
        assert!(
            !out.stdout.contains("kept (not used"),
            "{command}:\n{}",
            out.stdout
        );
        if command != "plan" {
            // What was checked, said without the word verified: no live exchange was made.
            let checked: Vec<&str> = summary_lines(&out.stdout)
                .into_iter()
                .filter(|l| l.starts_with("checked: ServiceAccount "))
                .collect();
            assert_eq!(checked.len(), 2, "{command}:\n{}", out.stdout);
            assert!(
                checked
                    .iter()
                    .all(|l| l.contains("S3 access is not proven live")),
                "{command}:\n{}",
                out.stdout
            );
        }
    }
    // Teardown: no provider line (none was made, none read), and the server's ServiceAccount,
    // which is there and never carried anything of ours, had nothing to remove.
    let out = w.run("teardown", &env).await;
    out.assert_ok();
    assert_true_for("pod-identity", &w, &out);
    let items = items(&out.stdout);
    assert_eq!(
        item(&items, "serviceaccount", "epinio/epinio-server"),
        Some("nothing to remove"),
        "{}",
        out.stdout
    );
    assert!(w.service_account("epinio-server").is_some());
    assert_eq!(
        item(&items, "serviceaccount", "epinio/epinio-staging"),
        Some("deleted"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_summaries_name_the_provider_kept_and_the_live_proof() {
    let w = World::with_objects(
        BIN,
        Chart::new("1.13.9")
            .staging_workloads("epinio-staging")
            .objects(),
    )
    .await;
    let provision = w.run("provision", &[STAGING]).await;
    provision.assert_ok();
    assert_true_for("irsa", &w, &provision);
    assert_eq!(
        summary_lines(&provision.stdout)
            .iter()
            .filter(|l| l.starts_with("verified: ServiceAccount"))
            .count(),
        2,
        "{}",
        provision.stdout
    );
    let out = w.run("teardown", &[STAGING]).await;
    out.assert_ok();
    assert_true_for("irsa", &w, &out);
    let items = items(&out.stdout);
    let provider = format!(
        "arn:aws:iam::{}:oidc-provider/{}",
        w.account(),
        w.issuer_host_path()
    );
    assert_eq!(
        item(&items, "oidc-provider", &provider),
        Some("kept (shared; EPINIO_IRSA_DELETE_OIDC_PROVIDER=false)"),
        "{}",
        out.stdout
    );
    assert!(
        item(&items, "serviceaccount", "epinio/epinio-server")
            .is_some_and(|c| c.starts_with("updated: release annotations")),
        "{}",
        out.stdout
    );
}

/// `auto` settles on Pod Identity here, so no provider exists: teardown reads it (the installer
/// policy allows that in `auto`) and, finding none, names none.
#[tokio::test(flavor = "multi_thread")]
async fn auto_mode_teardown_names_no_provider_that_is_not_there() {
    let chart = Chart::new("1.13.9")
        .aws_cli(POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, chart.objects()).await;
    w.install_agent("ACTIVE");
    let env = [STAGING, ("EPINIO_IRSA_MODE", "auto")];
    let out = w.run("provision", &env).await;
    out.assert_ok();
    assert!(out.stdout.contains("mode: pod-identity"), "{}", out.stdout);
    assert_true_for("pod-identity", &w, &out);
    let out = w.run("teardown", &env).await;
    out.assert_ok();
    assert_true_for("pod-identity", &w, &out);
}

/// What a line of the log format looks like: a timestamp and a level.
fn is_log_line(line: &str) -> bool {
    let t = line.trim_start();
    (t.len() > 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T')
        || [" INFO ", " WARN ", " DEBUG ", " ERROR "]
            .iter()
            .any(|l| line.contains(l))
}

/// Progress while the hook waits (the gateway's rollout; IRSA propagating) goes to stderr as
/// the summary writes, `epinio-irsa: ...`, once per state, never as a log line between the
/// summary's lines; with JSON logs it is one JSON event like every other line there.
#[tokio::test(flavor = "multi_thread")]
async fn progress_while_waiting_is_on_stderr_in_the_summarys_format() {
    let gateway_world = || async {
        let mut objects = Chart::new("1.14.1").objects();
        objects.extend(testkit::gateway::helm_objects(NAMESPACE));
        let w = World::with_objects(BIN, objects).await;
        w.kube.enable_rollouts(std::time::Duration::from_secs(2));
        w
    };
    // The rollout wait needs no gateway: verify (which would go through it) is off.
    let gateway_env = [
        ("EPINIO_IRSA_GATEWAY", "true"),
        ("EPINIO_IRSA_S3_ACCESS_KEY_ID", "EPINIOCLUSTERLOCAL01"),
        (
            "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
            "cluster-local-secret-0123456789abcdefghij",
        ),
        ("EPINIO_IRSA_VERIFY", "false"),
    ];
    let w = gateway_world().await;
    let out = w.run("provision", &gateway_env).await;
    out.assert_ok();
    let waiting = "epinio-irsa: waiting for deployment epinio/epinio-irsa-gateway to roll out: ";
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(waiting)),
        "{}",
        out.stderr
    );
    for line in &lines {
        assert!(line.starts_with("epinio-irsa: "), "{line}\n{}", out.stderr);
        assert!(!is_log_line(line), "{line}");
    }
    // Once per state, not once per poll.
    let mut said = lines.clone();
    said.dedup();
    assert_eq!(said, lines, "{}", out.stderr);

    // IRSA: STS denies the first exchange as while a fresh trust propagates.
    let w = World::new(BIN).await;
    w.aws_proxy.add_rule(Rule::new(
        "AssumeRoleWithWebIdentity",
        Fault::AccessDenied,
        2,
    ));
    let out = w.run("provision", &[]).await;
    out.assert_ok();
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("epinio-irsa: ServiceAccount epinio/epinio-server: AssumeRoleWithWebIdentity not effective yet while IAM propagates")),
        "{}",
        out.stderr
    );
    for line in &lines {
        assert!(line.starts_with("epinio-irsa: "), "{line}\n{}", out.stderr);
    }
    assert_eq!(lines.len(), 1, "said once for two denials:\n{}", out.stderr);

    // JSON logs: every line of stderr is a JSON event, the progress among them.
    let w = gateway_world().await;
    let mut env = gateway_env.to_vec();
    env.push(("EPINIO_IRSA_LOG_FORMAT", "json"));
    let out = w.run("provision", &env).await;
    out.assert_ok();
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events.iter().any(|e| e["fields"]["progress"] == true
            && e["fields"]["message"].as_str().is_some_and(
                |m| m.starts_with("waiting for deployment epinio/epinio-irsa-gateway")
            )),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_pod_identity_column_describes_the_aws_cli_image_configured() {
    let new = Chart::new("1.13.9")
        .aws_cli(POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, new.objects()).await;
    let out = w.run("plan", &[STAGING]).await;
    out.assert_ok();
    let expected = format!(
        "    staging with Pod Identity: yes (staging's aws CLI image {POD_IDENTITY_AWS_CLI} reads Pod Identity credentials)"
    );
    assert!(out.stdout.lines().any(|l| l == expected), "{}", out.stdout);
    assert!(!out.stdout.contains("2.13.26"), "{}", out.stdout);

    let old = Chart::new("1.13.9").staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, old.objects()).await;
    let out = w.run("plan", &[STAGING]).await;
    out.assert_ok();
    assert!(
        out.stdout.contains("    staging with Pod Identity: no (staging's aws CLI image amazon/aws-cli:2.13.26 is older than 2.15.0"),
        "{}",
        out.stdout
    );
}

/// A PATH like the test's own, less every tool the demo pins in .tools/ or must not need:
/// kubectl, helm, the aws CLI, moto, curl and wget. The demo has to use its pinned tools by path.
fn path_without_unpinned_tools(dir: &std::path::Path) -> std::ffi::OsString {
    const HIDDEN: [&str; 6] = ["kubectl", "helm", "aws", "moto_server", "curl", "wget"];
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let path = std::env::var_os("PATH").unwrap_or_default();
    for entry in std::env::split_paths(&path).filter_map(|d| std::fs::read_dir(d).ok()) {
        for file in entry.flatten() {
            let name = file.file_name();
            let link = bin.join(&name);
            if HIDDEN.iter().any(|h| name == *h) || link.symlink_metadata().is_ok() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(file.path(), link);
        }
    }
    for hidden in HIDDEN {
        assert!(!bin.join(hidden).exists(), "{hidden} still on the PATH");
    }
    bin.into_os_string()
}

/// The demo's summaries (`epinio-irsa ... summary:` to the next blank or `==` line), their
/// wrapped lines joined back.
fn demo_summaries(stdout: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in stdout.lines() {
        if line.starts_with("epinio-irsa ") && line.ends_with("summary:") {
            block = Some(vec![line.to_string()]);
        } else if line.is_empty() || line.starts_with("==") {
            blocks.extend(block.take());
        } else if let Some(b) = block.as_mut() {
            let last = b.last_mut().expect("header");
            let indent = |l: &str| l.len() - l.trim_start().len();
            if indent(line) > indent(last) + 2 && !last.ends_with(':') {
                last.push(' ');
                last.push_str(line.trim_start());
            } else {
                b.push(line.to_string());
            }
        }
    }
    blocks.extend(block);
    blocks
}

/// The demo as a newcomer runs it (IRSA, Pod Identity, and gateway mode with Epinio 1.14.1),
/// output to a file, with no kubectl, curl or aws CLI on the PATH: it succeeds with the tools it
/// pinned, does not warn, prints no escape byte and no line of its `plan` or summaries over 120
/// columns (JSON documents and the aws CLI's tables excepted), and every line it prints is true
/// for its mode: the issuer labelled, no Pod Identity section under IRSA, no OIDC provider
/// under Pod Identity, "checked" not "verified" where no live exchange was made, "nothing to
/// remove" for a ServiceAccount that is there; in gateway mode, credentials from the Pod
/// Identity agent's stand-in (never the demo's keys), what stands in for what, progress on
/// stderr in the summary's format, plain file names from `s3 cp` and no blank line before the
/// refusal.
#[test]
fn the_demo_happy_path_does_not_warn() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch =
        std::env::temp_dir().join(format!("epinio-irsa-demo-path-{}", std::process::id()));
    let path = path_without_unpinned_tools(&scratch);
    for (mode, gateway) in [
        ("irsa", "false"),
        ("pod-identity", "false"),
        ("irsa", "true"),
    ] {
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/demo.sh"))
            .env("PATH", &path)
            .env("EPINIO_IRSA_MODE", mode)
            .env("EPINIO_IRSA_GATEWAY", gateway)
            .env_remove("EPINIO_IRSA_OUTPUT_WIDTH")
            .output()
            .expect("cannot run scripts/demo.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{mode}: demo failed:\n{stdout}\n{stderr}"
        );
        let all = format!("{stdout}{stderr}");
        assert!(!all.contains("WARN"), "{mode}:\n{all}");
        assert!(!all.contains(ESC), "{mode}: escape byte:\n{all:?}");
        let mut ours = false;
        for line in stdout.lines() {
            if line.starts_with("epinio-irsa ") {
                ours = true;
            } else if line.is_empty() || line.starts_with("==") {
                ours = false;
            }
            assert!(!ours || line.chars().count() <= 120, "{mode}: {line}");
        }
        assert!(
            stdout.contains("epinio-irsa provision summary:"),
            "{stdout}"
        );
        assert_demo_true(mode, gateway == "true", &stdout, &stderr);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// What the demo says is true for the mode it ran in (see the test above).
#[track_caller]
fn assert_demo_true(mode: &str, gateway: bool, stdout: &str, stderr: &str) {
    let label = format!("{mode}, gateway {gateway}");
    // stderr after cargo's build: the hook's progress, in the summary's format only.
    let after_build = stderr
        .split_once("Finished `dev` profile")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{label}: no cargo build on stderr:\n{stderr}"));
    for line in after_build.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("epinio-irsa: "),
            "{label}: {line}\n{stderr}"
        );
        assert!(!is_log_line(line), "{label}: {line}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("   its OIDC issuer: https://oidc.eks.")),
        "{label}: issuer unlabelled:\n{stdout}"
    );
    let summaries = demo_summaries(stdout);
    assert!(summaries.len() >= 3, "{label}:\n{stdout}");
    for summary in &summaries {
        let text = summary.join("\n");
        if mode == "pod-identity" {
            assert!(!text.contains("oidc-provider"), "{label}:\n{text}");
            assert!(
                !summary.iter().any(|l| l.starts_with("verified:")),
                "{label}:\n{text}"
            );
        } else {
            assert!(
                !summary.iter().any(|l| l.starts_with("checked:")),
                "{label}:\n{text}"
            );
            assert!(
                !text.contains("pod-identity-association"),
                "{label}:\n{text}"
            );
        }
        // A ServiceAccount there and untouched had nothing to remove; "absent" is for none.
        assert!(
            !text.contains("epinio/epinio-server  absent"),
            "{label}:\n{text}"
        );
    }
    let teardown = summaries
        .iter()
        .find(|s| s[0] == "epinio-irsa teardown summary:")
        .unwrap_or_else(|| panic!("{label}: no teardown summary:\n{stdout}"))
        .join("\n");
    if mode == "pod-identity" {
        assert!(!stdout.contains("OIDC provider"), "{label}:\n{stdout}");
        assert!(
            summaries
                .iter()
                .flatten()
                .any(|l| l.starts_with("checked: ServiceAccount")),
            "{label}:\n{stdout}"
        );
        assert!(
            teardown.contains("serviceaccount            epinio/epinio-server  nothing to remove"),
            "{label}:\n{teardown}"
        );
        assert!(
            stdout
                .contains("Pod Identity associations (namespace, ServiceAccount, id):\n  epinio\t"),
            "{label}:\n{stdout}"
        );
    } else {
        assert!(
            !stdout.contains("Pod Identity association"),
            "{label}:\n{stdout}"
        );
        assert!(
            teardown.contains("kept (shared; EPINIO_IRSA_DELETE_OIDC_PROVIDER=false)"),
            "{label}:\n{teardown}"
        );
        assert!(
            stdout.contains("OIDC providers:\n  arn:aws:iam::"),
            "{label}:\n{stdout}"
        );
    }
    if !gateway {
        return;
    }
    assert!(
        stdout.contains("round trip through the gateway: identical"),
        "{stdout}"
    );
    // Over TLS, as the chart runs it by default, trusting only the demo's stand-in for
    // epinio-ca, as Epinio trusts s3.certificateSecret.
    assert!(
        stdout.contains("Epinio's path: s3.accessKeyID -> gateway https://127.0.0.1:")
            && stdout.contains("(over TLS, trusting only"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TLS: a CA made here stands in for Epinio's epinio-ca"),
        "{stdout}"
    );
    // The gateway holds the role's session from the Pod Identity agent's stand-in, never the
    // demo's keys, and the demo says what stands in for what.
    assert!(
        stdout.contains(
            "its credentials (/credentials): ready, from the container endpoint (EKS Pod Identity)"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("environment variables"), "{stdout}");
    assert!(
        stdout.contains("stand-ins: moto for AWS")
            && stdout.contains("for the EKS Pod Identity agent"),
        "{stdout}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "epinio-irsa: waiting for deployment epinio/epinio-irsa-gateway to roll out: "
        )),
        "{stderr}"
    );
    // s3 cp names the files plainly; the refusal follows its heading with no blank line.
    assert!(
        stdout.contains("   upload: ./blob to s3://epinio/demo-blob\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("../"), "{stdout}");
    let refusal = stdout
        .split("another bucket through the gateway (refused before AWS):\n")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_default();
    assert!(
        refusal.starts_with("   An error occurred (AccessDenied)"),
        "{refusal:?}\n{stdout}"
    );
}

/// The project's files refer only to what the project contains: nothing points a newcomer at
/// documents in a folder beside the repository, which a clone does not have.
#[test]
fn no_project_file_points_outside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = std::process::Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut offenders = Vec::new();
    let pattern = ["..", "/shared/"].concat();
    for name in names.split('\0').filter(|n| !n.is_empty()) {
        let Ok(text) = std::fs::read_to_string(root.join(name)) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if line.contains(&pattern) || line.contains(&["shared", "/docs/"].concat()) {
                offenders.push(format!("{name}:{}: {line}", i + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
