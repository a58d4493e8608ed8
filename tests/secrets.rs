//! Secret hygiene: recognisable secrets in the S3 keys, the AWS credentials and the
//! kubeconfig's ServiceAccount token must never appear in any output channel: stdout and
//! stderr at `RUST_LOG=trace` in text and JSON, `plan` output, error messages, the
//! termination log, and what reaches the Kubernetes API (request bodies; the job creates no
//! Events).

mod reliability;

use std::path::Path;

use reliability::BIN;
use testkit::proxy::{Fault, Rule};
use testkit::world::{RunOutput, World};

const S3_ACCESS_KEY_ID: &str = "AKIAS3KEYIDEPINIOLEAK";
const S3_SECRET: &str = "S3SECRETepinioirsaLEAK/abcdef0123456789+xyz";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/AWSSECRETepinioirsaLEAK";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzSESSIONTOKENepinioirsaLEAK//////////wEaDA+xyz=";
const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJTQVRPS0VOIn0.SATOKENepinioirsaLEAKsig";

/// What must never be seen, with a distinctive core of each so that a partial, encoded or
/// truncated copy is caught too.
fn needles() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (what, secret, core) in [
        ("S3 access key id", S3_ACCESS_KEY_ID, "S3KEYIDEPINIOLEAK"),
        ("S3 secret key", S3_SECRET, "S3SECRETepinioirsaLEAK"),
        ("AWS secret key", AWS_SECRET, "AWSSECRETepinioirsaLEAK"),
        (
            "AWS session token",
            SESSION_TOKEN,
            "SESSIONTOKENepinioirsaLEAK",
        ),
        ("ServiceAccount token", SA_TOKEN, "SATOKENepinioirsaLEAK"),
    ] {
        out.push((what, secret.to_string()));
        out.push((what, core.to_string()));
    }
    out
}

#[track_caller]
fn assert_clean(channel: &str, text: &str) {
    for (what, needle) in needles() {
        assert!(
            !text.contains(&needle),
            "{what} leaked into {channel}:\n{}",
            text.lines()
                .filter(|l| l.contains(&needle))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn assert_run_clean(label: &str, out: &RunOutput) {
    assert_clean(&format!("{label} stdout"), &out.stdout);
    assert_clean(&format!("{label} stderr"), &out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_any_output_channel() {
    let w = World::new(BIN).await;
    let kubeconfig = w.kubeconfig_with_token(SA_TOKEN);
    let kubeconfig = kubeconfig.display().to_string();
    let termination = w.dir.join("termination-log");
    let termination_path = termination.display().to_string();
    let credentials = [
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("KUBECONFIG", kubeconfig.as_str()),
        ("EPINIO_IRSA_TERMINATION_LOG", termination_path.as_str()),
        ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
        ("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true"),
        ("RUST_LOG", "trace"),
    ];
    let mut runs = 0;
    let mut lines = 0;
    for format in ["text", "json"] {
        let mut env = credentials.to_vec();
        env.push(("EPINIO_IRSA_LOG_FORMAT", format));

        // IAM mode, the whole life cycle, every command.
        for command in [
            "plan",
            "provision",
            "provision",
            "installer-policy",
            "teardown",
        ] {
            let out = w.run(command, &env).await;
            out.assert_ok();
            assert!(
                out.stderr.lines().count() > 50,
                "{command} ({format}): trace logs are on"
            );
            lines += out.stderr.lines().count();
            if command != "installer-policy" {
                // The signed requests are logged, credentials in them redacted: the session
                // token was sent and the check below has something to look at.
                assert!(
                    out.stderr.contains("x-amz-security-token"),
                    "{command} ({format}): requests are traced"
                );
            }
            assert_run_clean(&format!("{command} ({format})"), &out);
            // The ServiceAccount tokens verify requested (and sent to STS) are secrets too.
            for token in w.kube.tokens() {
                let payload = token.split('.').nth(1).unwrap_or(&token);
                for text in [&out.stdout, &out.stderr] {
                    assert!(
                        !text.contains(payload),
                        "{command} ({format}): a ServiceAccount token is printed"
                    );
                }
            }
            runs += 1;
        }
        let out = w.run("plan", &env).await;
        assert!(
            out.stdout.contains("Trust policy of role"),
            "{}",
            out.stdout
        );
        assert_run_clean(&format!("plan ({format})"), &out);

        // A failing run: the error message and the termination log.
        w.aws_proxy
            .add_rule(Rule::always("CreateRole", Fault::InternalFailure));
        let mut failing = env.clone();
        failing.push(("EPINIO_IRSA_MAX_ATTEMPTS", "1"));
        let out = w.run("provision", &failing).await;
        w.aws_proxy.clear_rules();
        assert_eq!(out.code, Some(1));
        assert_run_clean(&format!("failed provision ({format})"), &out);
        let written = read(&termination);
        assert!(written.contains("iam:CreateRole"), "{written}");
        assert_clean("termination log", &written);
        // Kubernetes refuses: the error quotes the API's answer.
        w.kube_proxy.add_rule(Rule::always(
            "get serviceaccounts",
            Fault::ServiceUnavailable,
        ));
        let out = w.run("teardown", &failing).await;
        w.kube_proxy.clear_rules();
        assert_eq!(out.code, Some(1));
        assert_run_clean(&format!("failed teardown ({format})"), &out);
        assert_clean("termination log", &read(&termination));
        w.run("teardown", &env).await.assert_ok();

        // Static S3 keys (nothing to do) and half of them (a configuration error).
        let mut s3 = env.clone();
        s3.extend([
            ("EPINIO_IRSA_S3_ACCESS_KEY_ID", S3_ACCESS_KEY_ID),
            ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", S3_SECRET),
        ]);
        // (teardown still removes what an earlier IAM-mode install left.)
        for command in ["provision", "plan", "teardown"] {
            let out = w.run(command, &s3).await;
            out.assert_ok();
            assert!(
                command == "teardown" || out.stdout.contains("nothing to do"),
                "{}",
                out.stdout
            );
            assert_run_clean(&format!("{command} with static keys ({format})"), &out);
        }
        for (set, missing) in [
            (
                ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", S3_SECRET),
                "EPINIO_IRSA_S3_ACCESS_KEY_ID",
            ),
            (
                ("EPINIO_IRSA_S3_ACCESS_KEY_ID", S3_ACCESS_KEY_ID),
                "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
            ),
        ] {
            let mut half = env.clone();
            half.extend([set, ("EPINIO_IRSA_TAGS", "bad key=\"v\"")]);
            let out = w.run("provision", &half).await;
            assert_eq!(out.code, Some(1));
            assert!(out.stderr.contains(missing), "{}", out.stderr);
            assert_run_clean(&format!("half the S3 keys ({format})"), &out);
            assert_clean("termination log", &read(&termination));
        }
    }

    // What reached the Kubernetes API: no secret in any body, and no Event.
    let requests = w.kube.requests();
    assert!(requests.iter().any(|r| r.is_write()), "the job wrote");
    for r in &requests {
        assert_clean(
            &format!("a {} {} request", r.method, r.path),
            &format!("{} {:?} {:?}", r.path, r.query, r.body),
        );
        assert!(
            !r.path.contains("/events"),
            "an Event: {} {}",
            r.method,
            r.path
        );
    }
    for (api, kind) in [("v1", "Event"), ("events.k8s.io/v1", "Event")] {
        assert!(w.kube.list(api, kind, "").is_empty(), "{api} {kind}");
    }
    assert_clean("the Kubernetes state", &w.kube.snapshot().to_string());
    assert_clean("the IAM state", &w.iam_state().await.to_string());
    println!("secret hygiene: {runs} full runs at RUST_LOG=trace ({lines} log lines), plus failed runs, static keys and configuration errors, clean");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("termination log {}: {e}", path.display()))
}
