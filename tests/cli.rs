//! The command line: help, version, usage errors, installer-policy, termination log.

use std::process::Command;

use serde_json::Value;
use testkit::world::World;

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run epinio-irsa")
}

#[test]
fn help_version_and_usage_errors() {
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("epinio-irsa {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["provision", "teardown", "plan", "installer-policy"] {
        assert!(help.contains(command), "{help}");
    }
    for args in [&[][..], &["provison"][..], &["plan", "extra"][..]] {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
    }
}

#[test]
fn invalid_configuration_fails_before_any_call_with_the_variable_named() {
    // No AWS endpoint or kubeconfig is reachable here: the error must come first.
    let out = run(
        &["provision"],
        &[
            ("EPINIO_IRSA_CLUSTER_NAME", "demo"),
            ("EPINIO_IRSA_ADOPT_EXISTING", "yes"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("EPINIO_IRSA_ADOPT_EXISTING=\"yes\": must be true or false"),
        "{stderr}"
    );
    let out = run(&["provision"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("EPINIO_IRSA_CLUSTER_NAME"));
}

#[test]
fn installer_policy_with_a_given_account_needs_no_network() {
    let out = run(
        &["installer-policy"],
        &[
            ("EPINIO_IRSA_CLUSTER_NAME", "demo"),
            ("EPINIO_IRSA_ACCOUNT_ID", "210987654321"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON policy");
    let text = doc.to_string();
    assert!(
        text.contains("arn:aws:eks:eu-west-1:210987654321:cluster/demo"),
        "{text}"
    );
    assert!(text.contains("arn:aws:iam::210987654321:role/epinio-demo-epinio-"));
}

#[tokio::test(flavor = "multi_thread")]
async fn installer_policy_uses_the_callers_account() {
    let w = World::new(BIN).await;
    let out = w.run("installer-policy", &[]).await;
    out.assert_ok();
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON policy");
    assert!(doc.to_string().contains(&format!(":{}:role/", w.account())));
    assert_eq!(out.aws_calls.len(), 1, "{:?}", out.aws_calls);
    assert_eq!(out.aws_calls[0].op, "GetCallerIdentity");
}
