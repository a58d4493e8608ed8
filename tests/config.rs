//! Configuration parsing and every validation error: each names the variable, shows the value
//! (never a secret) and says what is allowed.

use std::time::Duration;

use epinio_irsa::config::{self, LogFormat, Mode};

fn parse(pairs: &[(&str, &str)]) -> Result<config::Config, config::ConfigErrors> {
    config::from_pairs(pairs.iter().copied())
}

#[test]
fn defaults_match_the_contract() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.cluster_name, None);
    assert_eq!(c.namespace, "epinio");
    assert_eq!(c.release_name, "epinio");
    assert_eq!(c.mode, Mode::Iam);
    assert_eq!(c.bucket, "epinio");
    assert_eq!(c.server_service_account, "epinio-server");
    assert_eq!(c.staging_service_account, "epinio-server");
    assert!(c.staging_is_shared());
    assert_eq!(c.role_path, "/");
    assert_eq!(c.permissions_boundary, None);
    assert!(c.extra_policy_arns.is_empty() && c.tags.is_empty());
    assert!(c.create_oidc_provider && !c.delete_oidc_provider);
    assert!(c.sts_regional_endpoints && c.restart_workloads && !c.adopt_existing);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.call_timeout, Duration::from_secs(15));
    assert_eq!(c.max_attempts, 5);
    assert_eq!(c.deadline, Duration::from_secs(240));
    // Required in IAM mode, checked by the commands that need it.
    let err = c.require_cluster().unwrap_err();
    assert_eq!(err.variables(), ["EPINIO_IRSA_CLUSTER_NAME"]);
}

#[test]
fn every_setting_is_read() {
    let c = parse(&[
        ("EPINIO_IRSA_CLUSTER_NAME", "prod_eu-1"),
        ("EPINIO_IRSA_NAMESPACE", "paas"),
        ("EPINIO_IRSA_RELEASE_NAME", "epinio-2"),
        ("EPINIO_IRSA_S3_BUCKET", "my.bucket-1"),
        ("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", "srv"),
        ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "stg"),
        ("EPINIO_IRSA_SERVER_ROLE_NAME", "r1"),
        ("EPINIO_IRSA_STAGING_ROLE_NAME", "r2"),
        ("EPINIO_IRSA_POLICY_NAME", "p"),
        ("EPINIO_IRSA_ROLE_PATH", "/a/b/"),
        (
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            "arn:aws:iam::123456789012:policy/b",
        ),
        (
            "EPINIO_IRSA_EXTRA_POLICY_ARNS",
            "arn:aws:iam::aws:policy/X, arn:aws:iam::123456789012:policy/path/Y",
        ),
        ("EPINIO_IRSA_TAGS", "team=platform, env = prod ,empty="),
        ("EPINIO_IRSA_CREATE_OIDC_PROVIDER", "False"),
        ("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "TRUE"),
        ("EPINIO_IRSA_STS_REGIONAL_ENDPOINTS", "false"),
        ("EPINIO_IRSA_RESTART_WORKLOADS", "false"),
        ("EPINIO_IRSA_ADOPT_EXISTING", "true"),
        ("EPINIO_IRSA_LOG_FORMAT", "JSON"),
        ("EPINIO_IRSA_ACCOUNT_ID", "123456789012"),
        ("EPINIO_IRSA_CALL_TIMEOUT_SECONDS", "7"),
        ("EPINIO_IRSA_MAX_ATTEMPTS", "3"),
        ("AWS_REGION", "eu-central-1"),
    ])
    .unwrap();
    assert_eq!(c.owner(), "prod_eu-1/paas/epinio-2");
    assert_eq!(c.extra_policy_arns.len(), 2);
    assert_eq!(c.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(c.tags.get("empty").map(String::as_str), Some(""));
    assert!(!c.create_oidc_provider && c.delete_oidc_provider && c.adopt_existing);
    assert!(!c.sts_regional_endpoints && !c.restart_workloads);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.region.as_deref(), Some("eu-central-1"));
    assert_eq!(
        (c.call_timeout, c.max_attempts),
        (Duration::from_secs(7), 3)
    );
}

#[test]
fn namespace_falls_back_to_pod_namespace_and_empty_means_unset() {
    assert_eq!(parse(&[("POD_NAMESPACE", "ns1")]).unwrap().namespace, "ns1");
    assert_eq!(
        parse(&[("POD_NAMESPACE", "ns1"), ("EPINIO_IRSA_NAMESPACE", "ns2")])
            .unwrap()
            .namespace,
        "ns2"
    );
    // Helm renders unset values as "": they mean the default.
    let c = parse(&[
        ("EPINIO_IRSA_S3_BUCKET", ""),
        ("EPINIO_IRSA_SERVER_ROLE_NAME", ""),
    ])
    .unwrap();
    assert_eq!((c.bucket.as_str(), c.server_role_name), ("epinio", None));
}

#[test]
fn modes() {
    let keys = [
        ("EPINIO_IRSA_S3_ACCESS_KEY_ID", "AKIA1"),
        ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "TOPSECRET"),
    ];
    assert_eq!(parse(&keys).unwrap().mode, Mode::StaticKeys);
    assert_eq!(
        parse(&[("EPINIO_IRSA_BUNDLED_S3", "true")]).unwrap().mode,
        Mode::BundledStore
    );
    assert!(Mode::Iam.skip_reason().is_none());
    assert!(Mode::StaticKeys
        .skip_reason()
        .unwrap()
        .contains("static S3 keys"));
    // The secret never shows in Debug output.
    assert!(!format!("{:?}", parse(&keys).unwrap()).contains("TOPSECRET"));
}

/// One invalid value per variable: the error names exactly that variable and says what is
/// allowed; the value is quoted unless secret.
#[test]
fn each_validation_error_names_its_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("EPINIO_IRSA_CLUSTER_NAME", "bad name", "EKS cluster name"),
        ("EPINIO_IRSA_CLUSTER_NAME", &"c".repeat(101), "1-100"),
        ("EPINIO_IRSA_NAMESPACE", "Epinio", "namespace"),
        (
            "EPINIO_IRSA_RELEASE_NAME",
            &"r".repeat(54),
            "Helm release name",
        ),
        ("EPINIO_IRSA_S3_BUCKET", "My_Bucket", "S3 bucket name"),
        ("EPINIO_IRSA_S3_BUCKET", "192.168.1.1", "S3 bucket name"),
        (
            "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT",
            "-srv",
            "ServiceAccount name",
        ),
        (
            "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
            "a..b",
            "ServiceAccount name",
        ),
        ("EPINIO_IRSA_SERVER_ROLE_NAME", &"r".repeat(65), "1-64"),
        ("EPINIO_IRSA_STAGING_ROLE_NAME", "a\"b", "IAM role name"),
        ("EPINIO_IRSA_POLICY_NAME", "p*", "IAM policy name"),
        ("EPINIO_IRSA_ROLE_PATH", "epinio", "IAM path"),
        (
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            "arn:aws:iam::123:policy/b",
            "managed policy ARN",
        ),
        (
            "EPINIO_IRSA_EXTRA_POLICY_ARNS",
            "arn:aws:s3:::bucket",
            "managed policy ARN",
        ),
        ("EPINIO_IRSA_TAGS", "novalue", "key=value"),
        ("EPINIO_IRSA_TAGS", "aws:x=1", "reserved by AWS"),
        (
            "EPINIO_IRSA_TAGS",
            "epinio-irsa/owner=x",
            "set by epinio-irsa",
        ),
        ("EPINIO_IRSA_TAGS", "k=a;b", "tag value"),
        ("EPINIO_IRSA_BUNDLED_S3", "yes", "true or false"),
        ("EPINIO_IRSA_CREATE_OIDC_PROVIDER", "1", "true or false"),
        ("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "no", "true or false"),
        ("EPINIO_IRSA_STS_REGIONAL_ENDPOINTS", "on", "true or false"),
        ("EPINIO_IRSA_RESTART_WORKLOADS", "t", "true or false"),
        ("EPINIO_IRSA_ADOPT_EXISTING", "enabled", "true or false"),
        ("EPINIO_IRSA_LOG_FORMAT", "yaml", "text or json"),
        ("EPINIO_IRSA_ACCOUNT_ID", "12345", "12-digit"),
        ("EPINIO_IRSA_CALL_TIMEOUT_SECONDS", "0", "1 to 300"),
        ("EPINIO_IRSA_MAX_ATTEMPTS", "11", "1 to 10"),
        ("EPINIO_IRSA_DEADLINE_SECONDS", "5", "10 to 3600"),
        ("AWS_REGION", "us-eats-1", "AWS region"),
    ];
    for (var, value, allowed) in cases {
        let err = parse(&[(var, value)]).unwrap_err();
        assert_eq!(err.variables(), [*var], "{var}={value:?}: {err}");
        let text = err.to_string();
        assert!(text.contains(allowed), "{var}={value:?}: {text}");
        // Tags name the offending key or value; everything else the whole value.
        let parts: Vec<&str> = if *var == "EPINIO_IRSA_TAGS" {
            value.split('=').collect()
        } else {
            vec![value]
        };
        let shown = parts.iter().any(|p| {
            let p: String = p.chars().take(80).flat_map(char::escape_debug).collect();
            text.contains(&format!("=\"{p}"))
        });
        assert!(shown, "{var}: value not shown in {text}");
    }
}

#[test]
fn one_s3_key_without_the_other_is_an_error_that_hides_the_key() {
    let err = parse(&[("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "TOPSECRET")]).unwrap_err();
    assert_eq!(err.variables(), ["EPINIO_IRSA_S3_ACCESS_KEY_ID"]);
    assert!(!err.to_string().contains("TOPSECRET"));
    let err = parse(&[("EPINIO_IRSA_S3_ACCESS_KEY_ID", "AKIATOPSECRET")]).unwrap_err();
    assert_eq!(err.variables(), ["EPINIO_IRSA_S3_SECRET_ACCESS_KEY"]);
    assert!(!err.to_string().contains("AKIATOPSECRET"));
}

#[test]
fn all_errors_are_reported_at_once() {
    let err = parse(&[
        ("EPINIO_IRSA_NAMESPACE", "BAD"),
        ("EPINIO_IRSA_S3_BUCKET", "x"),
        ("EPINIO_IRSA_ADOPT_EXISTING", "maybe"),
    ])
    .unwrap_err();
    assert_eq!(
        err.variables(),
        [
            "EPINIO_IRSA_NAMESPACE",
            "EPINIO_IRSA_S3_BUCKET",
            "EPINIO_IRSA_ADOPT_EXISTING"
        ]
    );
}

#[test]
fn cross_field_rules() {
    // Same explicit name for two roles that trust different ServiceAccounts.
    let err = parse(&[
        ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "stg"),
        ("EPINIO_IRSA_SERVER_ROLE_NAME", "same"),
        ("EPINIO_IRSA_STAGING_ROLE_NAME", "same"),
    ])
    .unwrap_err();
    assert_eq!(err.variables(), ["EPINIO_IRSA_STAGING_ROLE_NAME"]);
    // Duplicate extra ARN, too many extra ARNs, duplicate tag key.
    let dup = "arn:aws:iam::aws:policy/A,arn:aws:iam::aws:policy/A";
    assert_eq!(
        parse(&[("EPINIO_IRSA_EXTRA_POLICY_ARNS", dup)])
            .unwrap_err()
            .variables(),
        ["EPINIO_IRSA_EXTRA_POLICY_ARNS"]
    );
    let ten: Vec<String> = (0..10)
        .map(|i| format!("arn:aws:iam::aws:policy/P{i}"))
        .collect();
    assert_eq!(
        parse(&[("EPINIO_IRSA_EXTRA_POLICY_ARNS", &ten.join(","))])
            .unwrap_err()
            .variables(),
        ["EPINIO_IRSA_EXTRA_POLICY_ARNS"]
    );
    assert_eq!(
        parse(&[("EPINIO_IRSA_TAGS", "a=1,a=2")])
            .unwrap_err()
            .variables(),
        ["EPINIO_IRSA_TAGS"]
    );
}

#[test]
fn regions() {
    for ok in [
        "us-east-1",
        "eu-central-2",
        "ap-southeast-5",
        "us-gov-west-1",
        "cn-north-1",
        "il-central-1",
        "mx-central-1",
    ] {
        assert!(config::rules::region(ok).is_ok(), "{ok}");
    }
    for bad in [
        "useast-1",
        "us-east1",
        "us-east-",
        "US-EAST-1",
        "us-east-1 ",
        "xx-east-1",
        "us-middle-1",
        "",
    ] {
        assert!(config::rules::region(bad).is_err(), "{bad:?}");
    }
}
