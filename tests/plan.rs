//! The desired state (`plan`): names, ARNs, trust and permission documents, the desired state.

use std::collections::BTreeSet;

use epinio_irsa::arn::{Account, Partition};
use epinio_irsa::config::{self, Config};
use epinio_irsa::plan::{self, Facts, Names, RoleKind};
use serde_json::{json, Value};

fn config(extra: &[(&str, &str)]) -> Config {
    let mut env = vec![("EPINIO_IRSA_CLUSTER_NAME", "demo")];
    env.extend_from_slice(extra);
    config::from_pairs(env).expect("valid config")
}

fn facts() -> Facts {
    Facts {
        partition: Partition::Aws,
        account_id: "123456789012".into(),
        issuer_url: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789".into(),
        cluster_arn: "arn:aws:eks:eu-west-1:123456789012:cluster/demo".into(),
        mechanism: epinio_irsa::config::Mechanism::Irsa,
    }
}

#[test]
fn trust_policy_is_exact() {
    let doc = plan::trust_policy(&facts(), "epinio", "epinio-server");
    assert_eq!(
        doc,
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789:sub": "system:serviceaccount:epinio:epinio-server",
                    "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789:aud": "sts.amazonaws.com"
                }}
            }]
        })
    );
    // Key order as written (readable in IAM's console and in `plan`).
    assert!(doc
        .to_string()
        .starts_with(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow""#));
}

#[test]
fn s3_policy_is_exact_and_scoped_to_the_bucket() {
    let doc = plan::s3_policy(Partition::Aws, "my-bucket");
    assert_eq!(
        doc,
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "EpinioBucket", "Effect": "Allow",
                 "Action": ["s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                 "Resource": "arn:aws:s3:::my-bucket"},
                {"Sid": "EpinioObjects", "Effect": "Allow",
                 "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
                 "Resource": "arn:aws:s3:::my-bucket/*"}
            ]
        })
    );
    let text = doc.to_string();
    assert!(!text.contains("\"*\"") && !text.contains("sts:"), "{text}");
    // Other partitions keep their ARN prefix.
    assert_eq!(
        plan::s3_policy(Partition::AwsCn, "b1b")["Statement"][1]["Resource"],
        json!("arn:aws-cn:s3:::b1b/*")
    );
}

#[test]
fn default_names_are_stable_bounded_and_unique() {
    let names = Names::new(&config(&[]), "demo");
    assert_eq!(names, Names::new(&config(&[]), "demo"), "stable");
    assert!(names.server_role.starts_with("epinio-demo-epinio-"));
    assert!(names.server_role.ends_with("-server"));
    assert!(names.policy.ends_with("-s3"));
    assert_eq!(
        names.staging_role, None,
        "staging SA defaults to the server's: one role"
    );

    // Two installations never share a name, even when their readable parts run together.
    let a = Names::new(&config(&[("EPINIO_IRSA_NAMESPACE", "c")]), "a-b");
    let b = Names::new(&config(&[("EPINIO_IRSA_NAMESPACE", "b-c")]), "a");
    assert_ne!(a.server_role, b.server_role);
    assert_ne!(a.policy, b.policy);

    // A 100-character cluster name and a 63-character namespace still fit IAM's limits.
    let long_cluster = "c".repeat(100);
    let long_ns = "n".repeat(63);
    let long = Names::new(
        &config(&[
            ("EPINIO_IRSA_CLUSTER_NAME", &long_cluster),
            ("EPINIO_IRSA_NAMESPACE", &long_ns),
            ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "staging"),
        ]),
        &long_cluster,
    );
    assert!(long.server_role.len() <= 64, "{}", long.server_role);
    assert!(long.staging_role.as_ref().unwrap().len() <= 64);
    assert!(long.policy.len() <= 128);
    assert!(long.server_role.ends_with("-server"));
    for n in long.roles() {
        assert!(config::rules::role_name(n).is_ok(), "{n}");
    }
    // Truncated names of clusters sharing a long prefix still differ.
    let other = format!("{}x", "c".repeat(99));
    let other = Names::new(
        &config(&[
            ("EPINIO_IRSA_CLUSTER_NAME", &other),
            ("EPINIO_IRSA_NAMESPACE", &long_ns),
        ]),
        &other,
    );
    assert_ne!(other.server_role, long.server_role);

    // Many clusters x namespaces: all distinct.
    let mut seen = BTreeSet::new();
    for c in 0..40 {
        for n in 0..25 {
            let ns = format!("ns{n}");
            let cfg = config(&[("EPINIO_IRSA_NAMESPACE", &ns)]);
            assert!(seen.insert(Names::new(&cfg, &format!("cluster{c}")).server_role));
        }
    }
}

#[test]
fn explicit_names_win() {
    let names = Names::new(
        &config(&[
            ("EPINIO_IRSA_SERVER_ROLE_NAME", "srv"),
            ("EPINIO_IRSA_STAGING_ROLE_NAME", "stg"),
            ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "staging"),
            ("EPINIO_IRSA_POLICY_NAME", "pol"),
        ]),
        "demo",
    );
    assert_eq!(
        (
            names.server_role.as_str(),
            names.staging_role.as_deref(),
            names.policy.as_str()
        ),
        ("srv", Some("stg"), "pol")
    );
}

#[test]
fn desired_state_for_two_roles() {
    let cfg = config(&[
        ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
        ("EPINIO_IRSA_ROLE_PATH", "/epinio/"),
        (
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            "arn:aws:iam::123456789012:policy/boundary",
        ),
        (
            "EPINIO_IRSA_EXTRA_POLICY_ARNS",
            "arn:aws:iam::aws:policy/AmazonECRReadOnly",
        ),
        ("EPINIO_IRSA_TAGS", "team=platform,cost-center=42"),
        ("EPINIO_IRSA_STS_REGIONAL_ENDPOINTS", "false"),
    ]);
    let names = Names::new(&cfg, "demo");
    let d = plan::desired(&cfg, &names, &facts()).unwrap();
    assert_eq!(d.roles.len(), 2);
    let server = &d.roles[0];
    assert_eq!(server.kind, RoleKind::Server);
    assert_eq!(
        server.arn,
        format!(
            "arn:aws:iam::123456789012:role/epinio/{}",
            names.server_role
        )
    );
    assert_eq!(
        d.policy.arn,
        format!("arn:aws:iam::123456789012:policy/epinio/{}", names.policy)
    );
    assert_eq!(
        server.attachments,
        vec![
            d.policy.arn.clone(),
            "arn:aws:iam::aws:policy/AmazonECRReadOnly".to_string()
        ]
    );
    assert_eq!(
        server.boundary.as_deref(),
        Some("arn:aws:iam::123456789012:policy/boundary")
    );
    assert_eq!(server.tags["team"], "platform");
    assert_eq!(server.tags["epinio-irsa/owner"], "demo/epinio/epinio");
    assert_eq!(server.tags["app.kubernetes.io/managed-by"], "epinio-irsa");
    let staging: Value = serde_json::from_str(&d.roles[1].trust).unwrap();
    assert_eq!(
        staging["Statement"][0]["Condition"]["StringEquals"]
            ["oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789:sub"],
        json!("system:serviceaccount:epinio:epinio-staging")
    );
    // Annotations: the role ARN only (regional STS endpoints turned off).
    assert_eq!(d.service_accounts.len(), 2);
    assert_eq!(d.service_accounts[0].annotations.len(), 1);
    assert_eq!(
        d.service_accounts[0].annotations["eks.amazonaws.com/role-arn"],
        server.arn
    );
    assert!(
        !d.service_accounts[0].create_if_missing,
        "Epinio's chart owns the server SA"
    );
    assert!(d.service_accounts[1].create_if_missing);
    assert_eq!(d.provider.arn, "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789");
}

#[test]
fn trust_policy_over_2048_characters_is_refused_before_iam() {
    let cfg = config(&[]);
    let names = Names::new(&cfg, "demo");
    let mut f = facts();
    f.issuer_url = format!("https://oidc.example.com/{}", "x".repeat(900));
    let err = plan::desired(&cfg, &names, &f).unwrap_err();
    assert!(err.to_string().contains("2048"), "{err}");
    assert!(err.to_string().contains(&names.server_role), "{err}");
}

#[test]
fn documents_compare_by_meaning() {
    assert!(plan::same_document(
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow"}],"Version":"2012-10-17"}"#,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject"}}"#
    ));
    assert!(!plan::same_document(r#"{"a":1}"#, r#"{"a":2}"#));
    assert!(!plan::same_document("not json", "not json"));
    assert_eq!(
        plan::decode_document("%7B%22a%22%3A1%7D").as_deref(),
        Ok(r#"{"a":1}"#)
    );
}

#[test]
fn installer_policy_is_scoped_to_what_the_job_manages() {
    let cfg = config(&[
        ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
        (
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            "arn:aws:iam::123456789012:policy/boundary",
        ),
    ]);
    let names = Names::new(&cfg, "demo");
    let doc = plan::installer_policy(
        &cfg,
        &names,
        &Account::new(Partition::Aws, "123456789012"),
        Some("eu-west-1"),
        "demo",
    );
    let statements = doc["Statement"].as_array().unwrap();
    let mut resources = Vec::new();
    // iam:ListOpenIDConnectProviders has no resource-level permission: IAM only accepts "*"
    // for it, and it is the one action in that statement.
    let list = statements
        .iter()
        .find(|s| s["Resource"] == "*")
        .expect("a statement for ListOpenIDConnectProviders");
    assert_eq!(list["Action"], json!("iam:ListOpenIDConnectProviders"));
    for s in statements.iter().filter(|s| s["Resource"] != "*") {
        match &s["Resource"] {
            Value::String(r) => resources.push(r.clone()),
            Value::Array(rs) => {
                resources.extend(rs.iter().map(|r| r.as_str().unwrap().to_string()))
            }
            other => panic!("{other}"),
        }
    }
    assert!(resources.contains(&"arn:aws:eks:eu-west-1:123456789012:cluster/demo".to_string()));
    assert!(resources.contains(&format!(
        "arn:aws:iam::123456789012:role/{}",
        names.server_role
    )));
    assert!(resources.contains(&format!(
        "arn:aws:iam::123456789012:role/{}",
        names.staging_role.clone().unwrap()
    )));
    assert!(resources.contains(&format!(
        "arn:aws:iam::123456789012:policy/{}",
        names.policy
    )));
    assert!(resources.iter().all(|r| r != "*"), "{resources:?}");
    // Attachments only of our policy; boundary only ours.
    let attach = statements
        .iter()
        .find(|s| s["Sid"] == "AttachOnlyTheseFewPolicies")
        .unwrap();
    assert_eq!(
        attach["Condition"]["ArnEquals"]["iam:PolicyARN"],
        json!([format!("arn:aws:iam::123456789012:policy/{}", names.policy)])
    );
    let boundary = statements
        .iter()
        .find(|s| s["Sid"] == "CreateRolesOnlyWithThisBoundary")
        .unwrap();
    assert_eq!(
        boundary["Action"],
        json!(["iam:CreateRole", "iam:PutRolePermissionsBoundary"])
    );
    assert_eq!(
        boundary["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
        json!("arn:aws:iam::123456789012:policy/boundary")
    );
}

#[test]
fn decode_document_refuses_malformed_and_non_ascii_escapes_without_panicking() {
    for bad in ["%aé", "%", "%4", "%zz", "abc%", "%é%", "%FF", "%C3%28"] {
        assert!(plan::decode_document(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        plan::decode_document("caf%C3%A9 é").as_deref(),
        Ok("café é")
    );
    assert_eq!(plan::decode_document("").as_deref(), Ok(""));
}

#[test]
fn iso_regions_get_their_own_partition_everywhere() {
    let cfg = config(&[
        ("AWS_REGION", "us-iso-east-1"),
        (
            "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
            "arn:aws-iso:iam::123456789012:policy/boundary",
        ),
    ]);
    assert_eq!(cfg.partition(), Partition::AwsIso);
    let names = Names::new(&cfg, "demo");
    let account = Account::new(cfg.partition(), "123456789012");
    let doc = plan::installer_policy(&cfg, &names, &account, cfg.region.as_deref(), "demo");
    let text = doc.to_string();
    assert!(
        text.contains("arn:aws-iso:iam::123456789012:role/"),
        "{text}"
    );
    assert!(
        text.contains("arn:aws-iso:eks:us-iso-east-1:123456789012:cluster/demo"),
        "{text}"
    );
    assert!(
        text.contains("oidc.eks.us-iso-east-1.c2s.ic.gov/id/*"),
        "{text}"
    );
    assert!(!text.contains("arn:aws:"), "{text}");
}

fn association(
    sa: &str,
    role: &str,
    owner: Option<&str>,
    addon: Option<&str>,
) -> epinio_irsa::state::AssociationState {
    epinio_irsa::state::AssociationState {
        id: format!("a-{sa}"),
        arn: format!("arn:aws:eks:eu-west-1:123456789012:podidentityassociation/demo/a-{sa}"),
        role_arn: role.into(),
        owner_arn: addon.map(str::to_string),
        tags: owner
            .map(|o| [("epinio-irsa/owner".to_string(), o.to_string())].into())
            .unwrap_or_default(),
    }
}

#[test]
fn association_plans_per_mechanism() {
    use epinio_irsa::config::Mechanism;
    use epinio_irsa::core::{association_plans, AssociationPlan, AssociationStep};
    let c = config(&[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")]);
    let names = Names::new(&c, "demo");
    let owner = c.owner();
    let pi = plan::desired(
        &c,
        &names,
        &Facts {
            mechanism: Mechanism::PodIdentity,
            ..facts()
        },
    )
    .unwrap();
    let server_role = pi.roles[0].arn.clone();
    // Pod Identity: keep ours, create the missing one.
    let mut ours = association("epinio-server", &server_role, Some(&owner), None);
    ours.tags = pi.associations[0].tags.clone();
    let found = [("epinio-server", Some(&ours)), ("epinio-staging", None)];
    let (plans, warnings) = association_plans(&pi, "epinio", "demo", &found, &owner).unwrap();
    let steps: Vec<&AssociationStep> = plans
        .iter()
        .map(|p| match p {
            AssociationPlan::Ensure { step, .. } => step,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(steps, [&AssociationStep::Keep, &AssociationStep::Create]);
    assert!(warnings.is_empty());
    // ... and refuse a foreign one.
    let theirs = association(
        "epinio-staging",
        &server_role,
        Some("other/epinio/epinio"),
        None,
    );
    let found = [
        ("epinio-server", Some(&ours)),
        ("epinio-staging", Some(&theirs)),
    ];
    assert!(association_plans(&pi, "epinio", "demo", &found, &owner).is_err());

    // IRSA: ours removed, the add-on's and a foreign one left with a warning, none refused.
    let irsa = plan::desired(&c, &names, &facts()).unwrap();
    let addon = association(
        "epinio-staging",
        "arn:x",
        Some(&owner),
        Some("arn:aws:eks:::addon/x"),
    );
    let found = [
        ("epinio-server", Some(&ours)),
        ("epinio-staging", Some(&addon)),
    ];
    let (plans, warnings) = association_plans(&irsa, "epinio", "demo", &found, &owner).unwrap();
    assert!(matches!(&plans[0], AssociationPlan::Remove { id, .. } if id == "a-epinio-server"));
    assert!(matches!(&plans[1], AssociationPlan::Leave { .. }));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("a-epinio-staging"), "{warnings:?}");
}
