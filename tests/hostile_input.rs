//! Hostile input: malformed and adversarial configurations, each rejected before any AWS or
//! Kubernetes call with an error that names the variable. Every case goes through the parser
//! (`config::from_pairs`) and through the real binary in front of the fault proxies, which
//! must see no call at all.

mod reliability;

use epinio_irsa::config::{self, ConfigErrors};
use epinio_irsa::plan::{self, Facts, Names, PlanError, MAX_TRUST_POLICY_CHARS};
use reliability::BIN;
use testkit::world::World;

const SECRET: &str = "hostileS3cr3tKeyValue+/never-printed";

/// `(variable expected in the error, environment of the case)`. The base environment is a
/// valid one (cluster `demo`, region us-east-1); a case adds or overrides variables.
fn cases() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let s = |v: &str| v.to_string();
    let one = |var: &'static str, value: String| (var, vec![(var, value)]);
    let long = |n: usize| "a".repeat(n);
    let arns = |n: usize| {
        (0..n)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let many_tags = (0..47)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        // Empty, blank and overlong names.
        one("EPINIO_IRSA_CLUSTER_NAME", s("")),
        one("EPINIO_IRSA_CLUSTER_NAME", s(" ")),
        one("EPINIO_IRSA_CLUSTER_NAME", long(101)),
        one("EPINIO_IRSA_NAMESPACE", long(64)),
        one("EPINIO_IRSA_NAMESPACE", s("\t")),
        one("EPINIO_IRSA_RELEASE_NAME", long(54)),
        one("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", long(254)),
        one("EPINIO_IRSA_SERVER_ROLE_NAME", long(65)),
        one("EPINIO_IRSA_STAGING_ROLE_NAME", long(65)),
        one("EPINIO_IRSA_POLICY_NAME", long(129)),
        one("EPINIO_IRSA_ROLE_PATH", format!("/{}/", long(511))),
        // Characters that would break out of a JSON policy, an ARN or a label.
        one("EPINIO_IRSA_CLUSTER_NAME", s("demo\"}")),
        one("EPINIO_IRSA_CLUSTER_NAME", s("demo/prod")),
        one("EPINIO_IRSA_NAMESPACE", s("epinio\"},{\"Effect\":\"Allow")),
        one("EPINIO_IRSA_NAMESPACE", s("epinio\nkube-system")),
        one("EPINIO_IRSA_NAMESPACE", s("épinio")),
        one("EPINIO_IRSA_NAMESPACE", s("*")),
        one("EPINIO_IRSA_RELEASE_NAME", s("epinio}")),
        one("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", s("epinio-server\"}]")),
        one("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", s("*")),
        one("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", s("epinio/server")),
        one(
            "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
            s("staging\u{202e}gnigats"),
        ),
        one("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", s("ＥＰＩＮＩＯ")),
        one("EPINIO_IRSA_SERVER_ROLE_NAME", s("role/../admin")),
        one("EPINIO_IRSA_SERVER_ROLE_NAME", s("role\"name")),
        one("EPINIO_IRSA_SERVER_ROLE_NAME", s("rôle")),
        one("EPINIO_IRSA_SERVER_ROLE_NAME", s("role*")),
        one("EPINIO_IRSA_POLICY_NAME", s("policy\n")),
        one("EPINIO_IRSA_POLICY_NAME", s("pol}icy")),
        one("EPINIO_IRSA_ROLE_PATH", s("no-slash")),
        one("EPINIO_IRSA_ROLE_PATH", s("/a*/")),
        one("EPINIO_IRSA_ROLE_PATH", s("/a//b/")),
        one("EPINIO_IRSA_ROLE_PATH", s("/a\"/")),
        (
            "EPINIO_IRSA_STAGING_ROLE_NAME",
            vec![
                ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", s("epinio-staging")),
                ("EPINIO_IRSA_SERVER_ROLE_NAME", s("same")),
                ("EPINIO_IRSA_STAGING_ROLE_NAME", s("same")),
            ],
        ),
        // Bad ARNs.
        one("EPINIO_IRSA_PERMISSIONS_BOUNDARY", s("not-an-arn")),
        one(
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            s("arn:aws:iam::123:policy/boundary"),
        ),
        one(
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            s("arn:aws:iam::123456789012:role/boundary"),
        ),
        one(
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            s("arn:aws:iam::123456789012:policy/*"),
        ),
        one("EPINIO_IRSA_PERMISSIONS_BOUNDARY", s("arn:aws:s3:::epinio")),
        one(
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            s("arn:aws-mars:iam::123456789012:policy/b"),
        ),
        one(
            "EPINIO_IRSA_EXTRA_POLICY_ARNS",
            s("arn:aws:iam::aws:policy/ReadOnlyAccess,*"),
        ),
        one(
            "EPINIO_IRSA_EXTRA_POLICY_ARNS",
            s("arn:aws:iam::aws:policy/X,arn:aws:iam::aws:policy/X"),
        ),
        one("EPINIO_IRSA_EXTRA_POLICY_ARNS", arns(10)),
        // Tags over AWS limits or with forbidden characters.
        one("EPINIO_IRSA_TAGS", format!("{}=v", long(129))),
        one("EPINIO_IRSA_TAGS", format!("k={}", long(257))),
        one("EPINIO_IRSA_TAGS", s("aws:createdBy=me")),
        one(
            "EPINIO_IRSA_TAGS",
            s("epinio-irsa/owner=prod/epinio/epinio"),
        ),
        one("EPINIO_IRSA_TAGS", s("app.kubernetes.io/managed-by=me")),
        one("EPINIO_IRSA_TAGS", s("k=v\u{0}")),
        one("EPINIO_IRSA_TAGS", s("k=\"v\"")),
        one("EPINIO_IRSA_TAGS", s("k{=v")),
        one("EPINIO_IRSA_TAGS", s("k=v;rm -rf")),
        one("EPINIO_IRSA_TAGS", s("no-equals-sign")),
        one("EPINIO_IRSA_TAGS", s("k=v,k=w")),
        one("EPINIO_IRSA_TAGS", many_tags),
        // Not valid S3 bucket names.
        one("EPINIO_IRSA_S3_BUCKET", s("ab")),
        one("EPINIO_IRSA_S3_BUCKET", long(64)),
        one("EPINIO_IRSA_S3_BUCKET", s("Epinio")),
        one("EPINIO_IRSA_S3_BUCKET", s("epinio_bucket")),
        one("EPINIO_IRSA_S3_BUCKET", s("192.168.1.1")),
        one("EPINIO_IRSA_S3_BUCKET", s("epinio..bucket")),
        one("EPINIO_IRSA_S3_BUCKET", s("xn--epinio")),
        one("EPINIO_IRSA_S3_BUCKET", s("epinio-s3alias")),
        one("EPINIO_IRSA_S3_BUCKET", s("epinio/*")),
        one("EPINIO_IRSA_S3_BUCKET", s("*")),
        one("EPINIO_IRSA_S3_BUCKET", s("epinio\"],\"Resource\":\"*")),
        // Region typos.
        one("AWS_REGION", s("us-eats-1")),
        one("AWS_REGION", s("useast-1")),
        one("AWS_REGION", s("us-east-1a")),
        one("AWS_REGION", s("US-EAST-1")),
        one("AWS_REGION", s("mars-north-1")),
        one("AWS_REGION", s(" us-east-1")),
        (
            "AWS_DEFAULT_REGION",
            vec![
                ("AWS_REGION", s("")),
                ("AWS_DEFAULT_REGION", s("eu-wset-1")),
            ],
        ),
        // Malformed booleans, formats and numbers.
        one("EPINIO_IRSA_CREATE_OIDC_PROVIDER", s("yes")),
        one("EPINIO_IRSA_DELETE_OIDC_PROVIDER", s("1")),
        one("EPINIO_IRSA_STS_REGIONAL_ENDPOINTS", s("ture")),
        one("EPINIO_IRSA_RESTART_WORKLOADS", s("on")),
        one("EPINIO_IRSA_ADOPT_EXISTING", s("true ")),
        one("EPINIO_IRSA_BUNDLED_S3", s("y")),
        one("EPINIO_IRSA_LOG_FORMAT", s("xml")),
        one("EPINIO_IRSA_MODE", s("podidentity")),
        one("EPINIO_IRSA_MODE", s("pod identity")),
        one("EPINIO_IRSA_ACCOUNT_ID", s("12345678901")),
        one("EPINIO_IRSA_ACCOUNT_ID", s("12345678901a")),
        one("EPINIO_IRSA_CALL_TIMEOUT_SECONDS", s("0")),
        one("EPINIO_IRSA_CALL_TIMEOUT_SECONDS", s("1.5")),
        one("EPINIO_IRSA_MAX_ATTEMPTS", s("11")),
        one("EPINIO_IRSA_MAX_ATTEMPTS", s("-1")),
        // Gateway mode: a malformed switch, a bad ServiceAccount or endpoint, a missing key,
        // a bundled store beside it.
        one("EPINIO_IRSA_GATEWAY", s("enabled")),
        one("EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT", s("gateway/sa")),
        one("EPINIO_IRSA_GATEWAY_ENDPOINT", s("ftp://gateway")),
        one("EPINIO_IRSA_GATEWAY_ENDPOINT", s("http://gateway/path")),
        one("EPINIO_IRSA_GATEWAY_ENDPOINT", s("http://user@gateway")),
        (
            "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
            vec![
                ("EPINIO_IRSA_GATEWAY", s("true")),
                ("EPINIO_IRSA_S3_ACCESS_KEY_ID", s(SECRET)),
            ],
        ),
        (
            "EPINIO_IRSA_BUNDLED_S3",
            vec![
                ("EPINIO_IRSA_GATEWAY", s("true")),
                ("EPINIO_IRSA_BUNDLED_S3", s("true")),
                ("EPINIO_IRSA_S3_ACCESS_KEY_ID", s("id")),
                ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", s(SECRET)),
            ],
        ),
        // Half of the static S3 keys: named, the secret itself never printed.
        (
            "EPINIO_IRSA_S3_ACCESS_KEY_ID",
            vec![("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", s(SECRET))],
        ),
        (
            "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
            vec![("EPINIO_IRSA_S3_ACCESS_KEY_ID", s(SECRET))],
        ),
    ]
}

/// Base environment of the parser cases (the binary gets the world's).
fn base() -> Vec<(&'static str, String)> {
    vec![
        ("EPINIO_IRSA_CLUSTER_NAME", "demo".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

/// Parse and check what `provision` checks before its first call.
fn validate(pairs: &[(&str, String)]) -> Result<(), ConfigErrors> {
    let c = config::from_pairs(pairs.iter().map(|(k, v)| (*k, v.clone())))?;
    c.require_cluster()?;
    Ok(())
}

fn check_message(message: &str, variable: &str, label: &str) {
    assert!(message.contains(variable), "{label}: {message}");
    assert!(
        !message.chars().any(|c| c.is_control() && c != '\t'),
        "{label}: raw control characters in the message: {message:?}"
    );
    assert!(!message.contains(SECRET), "{label}: the secret is printed");
}

#[test]
fn every_hostile_configuration_is_rejected_naming_the_variable() {
    let cases = cases();
    assert!(cases.len() >= 40, "{}", cases.len());
    for (variable, env) in &cases {
        let mut pairs = base();
        pairs.extend(env.iter().cloned());
        let label = format!("{env:?}");
        let err = validate(&pairs).expect_err(&label);
        assert!(
            err.variables().contains(variable),
            "{label}: names {:?}",
            err.variables()
        );
        check_message(&err.to_string(), variable, &label);
    }
    println!(
        "hostile configurations rejected by the parser: {}",
        cases.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_rejects_them_before_any_aws_or_kubernetes_call() {
    let w = World::new(BIN).await;
    let cases = cases();
    let mut rejected = 0;
    for (variable, env) in &cases {
        if env.iter().any(|(_, v)| v.contains('\0')) {
            // A process environment cannot carry a NUL byte: parser only.
            continue;
        }
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for command in ["provision", "teardown", "plan"] {
            let out = w.run(command, &extra).await;
            let label = format!("{command} {env:?}");
            assert_eq!(out.code, Some(1), "{label}: {}", out.stdout);
            assert!(out.aws_calls.is_empty(), "{label}: {:?}", out.aws_calls);
            assert!(out.kube_calls.is_empty(), "{label}: {:?}", out.kube_calls);
            let error = out
                .stderr
                .lines()
                .rfind(|l| l.starts_with("error: "))
                .unwrap_or_default();
            assert!(
                error.starts_with("error: invalid configuration"),
                "{label}: {}",
                out.stderr
            );
            check_message(error, variable, &label);
            assert!(
                !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
                "{label}"
            );
        }
        rejected += 1;
    }
    assert_eq!(w.kube.requests(), vec![], "the stand-in saw nothing");
    println!(
        "hostile configurations rejected by the binary (provision, teardown, plan): {rejected}"
    );
}

/// The trust policy's size depends on the namespace, the ServiceAccount and the cluster's
/// issuer. Valid names alone cannot exceed IAM's 2048 characters; an issuer can, and it is
/// refused when the plan is computed, before anything is written.
#[test]
fn a_trust_policy_over_2048_characters_is_refused_before_any_write() {
    let longest = config::from_pairs([
        ("EPINIO_IRSA_CLUSTER_NAME", "demo".to_string()),
        ("EPINIO_IRSA_NAMESPACE", "n".repeat(63)),
        (
            "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT",
            format!(
                "{}.{}.{}.{}",
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(61)
            ),
        ),
    ])
    .unwrap();
    let names = Names::new(&longest, "demo");
    let facts = |issuer: String| Facts {
        partition: epinio_irsa::arn::Partition::Aws,
        account_id: "123456789012".into(),
        issuer_url: issuer,
        cluster_arn: "arn:aws:eks:ap-southeast-2:123456789012:cluster/demo".into(),
        mechanism: epinio_irsa::config::Mechanism::Irsa,
    };
    let real = facts(
        "https://oidc.eks.ap-southeast-2.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF".into(),
    );
    let d = plan::desired(&longest, &names, &real).expect("the longest valid names fit");
    assert!(d.roles[0].trust.len() <= MAX_TRUST_POLICY_CHARS);

    let hostile = facts(format!(
        "https://oidc.eks.us-east-1.amazonaws.com/id/{}",
        "X".repeat(600)
    ));
    match plan::desired(&longest, &names, &hostile) {
        Err(PlanError::TrustPolicyTooLarge { role, len, .. }) => {
            assert_eq!(role, names.server_role);
            assert!(len > MAX_TRUST_POLICY_CHARS);
        }
        other => panic!("expected TrustPolicyTooLarge, got {other:?}"),
    }
    let message = plan::desired(&longest, &names, &hostile)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&names.server_role) && message.contains("2048"),
        "{message}"
    );
}
