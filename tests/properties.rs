//! Property-based tests (proptest) of the configuration parser and the policy builders: for
//! any input the parser either accepts values that are safe to put in a JSON policy, an ARN
//! and a Kubernetes label, or names the variable; the documents it leads to are always valid
//! JSON, within IAM's size limits, and trust exactly the configured ServiceAccount.

use std::collections::BTreeSet;

use epinio_irsa::arn::Partition;
use epinio_irsa::config::{self, rules, Config};
use epinio_irsa::plan::{
    self, Facts, Names, PlanError, MAX_POLICY_CHARS, MAX_POLICY_NAME, MAX_ROLE_NAME,
    MAX_TRUST_POLICY_CHARS, STS_AUDIENCE,
};
use proptest::prelude::*;
use serde_json::Value;

/// Every variable the parser reads.
const VARIABLES: &[&str] = &[
    "EPINIO_IRSA_CLUSTER_NAME",
    "EPINIO_IRSA_NAMESPACE",
    "POD_NAMESPACE",
    "EPINIO_IRSA_RELEASE_NAME",
    "EPINIO_IRSA_S3_ACCESS_KEY_ID",
    "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
    "EPINIO_IRSA_BUNDLED_S3",
    "EPINIO_IRSA_S3_BUCKET",
    "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT",
    "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
    "EPINIO_IRSA_SERVER_ROLE_NAME",
    "EPINIO_IRSA_STAGING_ROLE_NAME",
    "EPINIO_IRSA_POLICY_NAME",
    "EPINIO_IRSA_ROLE_PATH",
    "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
    "EPINIO_IRSA_EXTRA_POLICY_ARNS",
    "EPINIO_IRSA_TAGS",
    "EPINIO_IRSA_CREATE_OIDC_PROVIDER",
    "EPINIO_IRSA_DELETE_OIDC_PROVIDER",
    "EPINIO_IRSA_STS_REGIONAL_ENDPOINTS",
    "EPINIO_IRSA_RESTART_WORKLOADS",
    "EPINIO_IRSA_ADOPT_EXISTING",
    "EPINIO_IRSA_LOG_FORMAT",
    "EPINIO_IRSA_ACCOUNT_ID",
    "EPINIO_IRSA_CALL_TIMEOUT_SECONDS",
    "EPINIO_IRSA_MAX_ATTEMPTS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// Characters that could end a JSON string, open a structure, widen an ARN into a pattern
/// or start a new log line.
const BREAKOUT: &[char] = &['"', '\\', '{', '}', '[', ']', '*', '?', '\n', '\r', '\0'];

fn safe(value: &str) -> bool {
    value.is_ascii()
        && !value
            .chars()
            .any(|c| BREAKOUT.contains(&c) || c.is_control())
}

/// Values that are sometimes valid, often not: arbitrary Unicode, near-misses of valid
/// names, and separators.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9.-]{0,70}",
        "[A-Za-z0-9+=,.@_/:*\"{} -]{0,80}",
        Just(String::new()),
        Just("true".to_string()),
        Just("arn:aws:iam::123456789012:policy/p".to_string()),
    ]
}

fn environment() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((proptest::sample::select(VARIABLES), value()), 0..8)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn dns_label(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9]([a-z0-9-]{{0,{}}}[a-z0-9])?", max - 2))
        .unwrap()
}

fn service_account() -> impl Strategy<Value = String> {
    proptest::collection::vec(dns_label(63), 1..5)
        .prop_map(|parts| parts.join("."))
        .prop_filter("at most 253 characters", |s| s.len() <= 253)
}

fn bucket() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
        .prop_filter("an S3 bucket name", |b| rules::bucket(b).is_ok())
}

fn role_path() -> impl Strategy<Value = String> {
    proptest::collection::vec("[A-Za-z0-9+=,.@_-]{1,20}", 0..5).prop_map(|segs| {
        if segs.is_empty() {
            "/".to_string()
        } else {
            format!("/{}/", segs.join("/"))
        }
    })
}

/// A valid configuration with generated names.
fn valid_config() -> impl Strategy<Value = Config> {
    (
        "[a-zA-Z0-9][a-zA-Z0-9_-]{0,99}",
        dns_label(63),
        dns_label(53),
        bucket(),
        service_account(),
        proptest::option::of(service_account()),
        role_path(),
        any::<bool>(),
    )
        .prop_map(|(cluster, ns, release, bucket, sa, staging, path, sts)| {
            let mut env = vec![
                ("EPINIO_IRSA_CLUSTER_NAME", cluster),
                ("EPINIO_IRSA_NAMESPACE", ns),
                ("EPINIO_IRSA_RELEASE_NAME", release),
                ("EPINIO_IRSA_S3_BUCKET", bucket),
                ("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", sa),
                ("EPINIO_IRSA_ROLE_PATH", path),
                ("EPINIO_IRSA_STS_REGIONAL_ENDPOINTS", sts.to_string()),
            ];
            if let Some(s) = staging {
                env.push(("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", s));
            }
            config::from_pairs(env.clone())
                .unwrap_or_else(|e| panic!("a valid configuration was refused: {e}\n{env:?}"))
        })
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        proptest::sample::select(Partition::ALL.to_vec()),
        "[0-9]{12}",
        "(us|eu|ap|sa|ca|me|af|cn)-(east|west|north|south|central|southeast|northeast)-[1-9]",
        "[A-F0-9]{32}",
    )
        .prop_map(|(partition, account, region, id)| Facts {
            partition,
            account_id: account.clone(),
            issuer_url: format!("https://oidc.eks.{region}.amazonaws.com/id/{id}"),
            cluster_arn: format!("arn:{partition}:eks:{region}:{account}:cluster/demo"),
            mechanism: epinio_irsa::config::Mechanism::Irsa,
        })
}

/// IAM returns documents URL-encoded; encode like it does.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the environment, the parser answers (never panics); when it refuses, every
    /// error names a variable it reads, prints no raw control character and no secret.
    #[test]
    fn the_parser_accepts_only_safe_values_or_names_the_variable(
        env in environment(),
        secret in "SECRET-[A-Za-z0-9+/]{20}",
    ) {
        let mut env = env;
        env.push(("EPINIO_IRSA_S3_SECRET_ACCESS_KEY".to_string(), secret.clone()));
        match config::from_pairs(env.clone()) {
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    prop_assert!(
                        VARIABLES.contains(&e.variable),
                        "unknown variable {} for {env:?}", e.variable
                    );
                }
                let text = errors.to_string();
                prop_assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
                prop_assert!(!text.contains(&secret), "the secret is printed: {text}");
            }
            Ok(c) => {
                // Everything that goes into a document, an ARN, a tag or a label is safe.
                let mut values: Vec<String> = vec![
                    c.namespace.to_string(),
                    c.release_name.to_string(),
                    c.bucket.to_string(),
                    c.server_service_account.to_string(),
                    c.staging_service_account.to_string(),
                    c.role_path.to_string(),
                ];
                values.extend(c.cluster_name.iter().map(ToString::to_string));
                values.extend(c.server_role_name.iter().map(ToString::to_string));
                values.extend(c.staging_role_name.iter().map(ToString::to_string));
                values.extend(c.policy_name.iter().map(ToString::to_string));
                values.extend(c.permissions_boundary.iter().map(ToString::to_string));
                values.extend(c.extra_policy_arns.iter().map(ToString::to_string));
                values.extend(c.region.iter().map(ToString::to_string));
                for v in &values {
                    prop_assert!(safe(v), "unsafe value accepted: {v:?} from {env:?}");
                }
                prop_assert!(rules::dns_label(&c.namespace).is_ok());
                prop_assert!(rules::bucket(&c.bucket).is_ok());
                prop_assert!(rules::dns_subdomain(&c.server_service_account).is_ok());
                prop_assert!(rules::iam_path(&c.role_path).is_ok());
                for (k, v) in &c.tags {
                    prop_assert!(rules::tag_key(k).is_ok() && rules::tag_value(v).is_ok());
                    prop_assert!(!k.contains(['"', '\\', '\n']) && !v.contains(['"', '\\', '\n']));
                }
                prop_assert!(format!("{c:?}").find(&secret).is_none(), "Debug prints the secret");
            }
        }
    }

    /// Valid names are never refused, and the plan they lead to is always valid JSON within
    /// IAM's limits, trusting exactly `system:serviceaccount:<namespace>:<service account>`
    /// with the STS audience, through this cluster's provider only.
    #[test]
    fn documents_are_valid_json_within_limits_with_the_exact_subject(
        c in valid_config(),
        f in facts(),
    ) {
        let cluster = c.cluster_name.clone().unwrap();
        let names = Names::new(&c, &cluster);
        prop_assert!(names.server_role.len() <= MAX_ROLE_NAME);
        prop_assert!(names.staging_role.as_ref().is_none_or(|r| r.len() <= MAX_ROLE_NAME));
        prop_assert!(names.policy.len() <= MAX_POLICY_NAME);
        for n in names.roles().chain([names.policy.as_str()]) {
            prop_assert!(rules::role_name(n).is_ok() || rules::policy_name(n).is_ok(), "{n}");
        }
        let d = plan::desired(&c, &names, &f).expect("valid names always fit");

        let policy: Value = serde_json::from_str(&d.policy.document).expect("valid JSON");
        prop_assert!(d.policy.document.len() <= MAX_POLICY_CHARS);
        let resources: Vec<&str> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Resource"].as_str().unwrap())
            .collect();
        let bucket_arn = format!("arn:{}:s3:::{}", f.partition, c.bucket);
        let objects = format!("{bucket_arn}/*");
        prop_assert_eq!(resources, vec![bucket_arn.as_str(), objects.as_str()]);

        let host = f.issuer_host_path().to_string();
        let provider = format!("arn:{}:iam::{}:oidc-provider/{host}", f.partition, f.account_id);
        let mut subjects = BTreeSet::new();
        for role in &d.roles {
            prop_assert!(role.trust.len() <= MAX_TRUST_POLICY_CHARS);
            let trust: Value = serde_json::from_str(&role.trust).expect("valid JSON");
            prop_assert!(plan::same_document(&role.trust, &role.trust));
            let statements = trust["Statement"].as_array().unwrap();
            prop_assert_eq!(statements.len(), 1);
            let s = &statements[0];
            prop_assert_eq!(&s["Principal"]["Federated"], &Value::from(provider.clone()));
            prop_assert_eq!(&s["Action"], "sts:AssumeRoleWithWebIdentity");
            let conditions = s["Condition"].as_object().unwrap();
            prop_assert_eq!(conditions.keys().collect::<Vec<_>>(), vec!["StringEquals"]);
            let equals = conditions["StringEquals"].as_object().unwrap();
            prop_assert_eq!(equals.len(), 2);
            let subject = format!("system:serviceaccount:{}:{}", c.namespace, role.service_account);
            prop_assert_eq!(&equals[&format!("{host}:sub")], &Value::from(subject.clone()));
            prop_assert_eq!(&equals[&format!("{host}:aud")], STS_AUDIENCE);
            prop_assert!(!role.trust.contains('*'), "no wildcard in a trust policy");
            subjects.insert(subject);
            // IAM hands the document back URL-encoded: it reads back the same.
            prop_assert_eq!(plan::decode_document(&url_encode(&role.trust)), Ok(role.trust.clone()));
        }
        let expected: BTreeSet<String> = [&c.server_service_account, &c.staging_service_account]
            .into_iter()
            .map(|sa| format!("system:serviceaccount:{}:{sa}", c.namespace))
            .collect();
        prop_assert_eq!(subjects, expected);

        let installer = plan::installer_policy(&c, &names, &f.account(), None, &cluster);
        let text = serde_json::to_string(&installer).unwrap();
        prop_assert!(serde_json::from_str::<Value>(&text).is_ok());
        for role in names.roles() {
            let arn = format!("arn:{}:iam::{}:role{}{role}", f.partition, f.account_id, c.role_path);
            prop_assert!(text.contains(&arn));
        }
    }

    /// However long the issuer, the plan never hands IAM an oversized trust policy: it is
    /// within 2048 characters or refused, naming the role.
    #[test]
    fn an_oversized_trust_policy_is_refused_never_sent(
        c in valid_config(),
        f in facts(),
        extra in 0usize..2500,
    ) {
        let cluster = c.cluster_name.clone().unwrap();
        let names = Names::new(&c, &cluster);
        let f = Facts { issuer_url: format!("{}{}", f.issuer_url, "A".repeat(extra)), ..f };
        match plan::desired(&c, &names, &f) {
            Ok(d) => {
                for r in &d.roles {
                    prop_assert!(r.trust.len() <= MAX_TRUST_POLICY_CHARS);
                }
            }
            Err(PlanError::TrustPolicyTooLarge { role, len, .. }) => {
                prop_assert!(len > MAX_TRUST_POLICY_CHARS);
                prop_assert!(names.roles().any(|r| r == role));
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// Generated names: bounded, deterministic, and distinct for distinct installations.
    #[test]
    fn bounded_names_are_short_stable_and_distinct(
        a in ("[a-zA-Z0-9_-]{1,100}", dns_label(63)),
        b in ("[a-zA-Z0-9_-]{1,100}", dns_label(63)),
        max in 20usize..130,
    ) {
        let name = |(cluster, ns): &(String, String)| {
            plan::bounded_name(&format!("epinio-{cluster}-{ns}"), &format!("{cluster}\n{ns}"), "server", max)
        };
        let (na, nb) = (name(&a), name(&b));
        prop_assert!(na.len() <= max, "{na}");
        prop_assert_eq!(&na, &name(&a));
        prop_assert!(na.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)), "{}", na);
        if a != b {
            prop_assert_ne!(na, nb);
        }
    }
}
