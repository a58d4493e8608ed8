//! What the user reads: each warning once, no colour escapes off a terminal, `plan` lines that
//! fit 120 columns with one line per column of the compatibility table, summary lines that
//! describe what happened (no provider "kept" that is not there; staging's Pod Identity column
//! from the aws CLI image actually configured), and a demo whose happy path does not warn.

use testkit::epinio::{Chart, POD_IDENTITY_AWS_CLI};
use testkit::world::{RunOutput, World};

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

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_with_no_oidc_provider_says_nothing_of_one() {
    let chart = Chart::new("1.13.9")
        .aws_cli(POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, chart.objects()).await;
    w.install_agent("ACTIVE");
    for command in ["plan", "provision"] {
        let out = w
            .run(command, &[STAGING, ("EPINIO_IRSA_MODE", "pod-identity")])
            .await;
        out.assert_ok();
        assert!(
            !out.stdout.contains("oidc-provider"),
            "{command}:\n{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("kept (not used"),
            "{command}:\n{}",
            out.stdout
        );
    }
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

/// The demo as a newcomer runs it (IRSA, Pod Identity, and gateway mode with Epinio 1.14.1),
/// output to a file: no warning, no escape byte, and no line of its `plan` or summaries over 120
/// columns (JSON documents and the aws CLI's tables excepted).
#[test]
fn the_demo_happy_path_does_not_warn() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (mode, gateway) in [
        ("irsa", "false"),
        ("pod-identity", "false"),
        ("irsa", "true"),
    ] {
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/demo.sh"))
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
        if gateway == "true" {
            assert!(
                stdout.contains("round trip through the gateway: identical"),
                "{stdout}"
            );
            assert!(
                stdout.contains("Epinio's path: s3.accessKeyID -> gateway"),
                "{stdout}"
            );
        }
    }
}
