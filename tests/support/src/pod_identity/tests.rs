//! Unit tests of the Pod Identity stand-in: role and trust checks, ids, creates while a
//! delete settles.

use super::checks::valid_id;
use super::*;

const ARN: &str = "arn:aws:eks:eu-west-1:123456789012:cluster/demo";
const ROLE: &str = "arn:aws:iam::123456789012:role/epinio/r";

fn world() -> World {
    World {
        cluster_arn: Some(ARN.into()),
        role: Some(IamRole::Found {
            arn: ROLE.into(),
            trust: json!({"Statement": [{"Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
        }),
    }
}

#[test]
fn the_role_must_be_the_whole_arn_of_a_role_whose_trust_admits_pod_identity() {
    let p = PodIdentity::default();
    let attempt = |role: &str, iam: Option<IamRole>| {
        let body = json!({"namespace": "ns", "serviceAccount": "sa", "roleArn": role});
        let w = World {
            cluster_arn: Some(ARN.into()),
            role: iam,
        };
        p.serve(
            &Route::Create {
                cluster: "demo".into(),
            },
            &[],
            body.to_string().as_bytes(),
            &w,
        )
    };
    let found = |arn: &str, trust: Value| {
        Some(IamRole::Found {
            arn: arn.into(),
            trust,
        })
    };
    let good = json!({"Statement": {"Effect": "Allow",
        "Principal": {"Service": ["pods.eks.amazonaws.com"]},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}});
    // Same name, other path or other account: not that role.
    for asked in [
        "arn:aws:iam::123456789012:role/r",
        "arn:aws:iam::210987654321:role/epinio/r",
    ] {
        let a = attempt(asked, found(ROLE, good.clone()));
        assert_eq!(a.error_type, Some("InvalidParameterException"), "{asked}");
        assert!(a.body["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"));
    }
    assert_eq!(attempt(ROLE, Some(IamRole::Missing)).status, 400);
    // A trust for IRSA only, or without sts:TagSession: refused.
    for trust in [
        json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
            "Action": "sts:AssumeRoleWithWebIdentity"}]}),
        json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        json!({"Statement": [{"Effect": "Deny",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
    ] {
        let a = attempt(ROLE, found(ROLE, trust.clone()));
        assert_eq!(
            a.body["message"], "Trust policy of the role provided is invalid",
            "{trust}"
        );
    }
    assert_eq!(attempt(ROLE, found(ROLE, good)).status, 200);
}

fn create(p: &PodIdentity, sa: &str) -> Answer {
    let body =
        json!({"namespace": "ns", "serviceAccount": sa, "roleArn": ROLE, "tags": {"k": "v"}});
    p.serve(
        &Route::Create {
            cluster: "demo".into(),
        },
        &[],
        body.to_string().as_bytes(),
        &world(),
    )
}

#[test]
fn ids_are_well_formed_and_unique() {
    let p = PodIdentity::default();
    let a = create(&p, "a").body["association"]["associationId"].clone();
    let b = create(&p, "b").body["association"]["associationId"].clone();
    assert!(valid_id(a.as_str().unwrap()), "{a}");
    assert_ne!(a, b);
    assert_eq!(role_name(ROLE), Some("r"));
    assert_eq!(role_name("arn:aws:iam::1:role/r"), None);
}

#[test]
fn second_create_and_create_while_a_delete_settles_are_in_use() {
    let p = PodIdentity::default();
    p.set_delete_settle(Duration::from_secs(60));
    let first = create(&p, "sa");
    assert_eq!(first.status, 200);
    assert_eq!(create(&p, "sa").error_type, Some("ResourceInUseException"));
    let id = first.body["association"]["associationId"]
        .as_str()
        .unwrap()
        .to_string();
    let del = p.serve(
        &Route::Delete {
            cluster: "demo".into(),
            id,
        },
        &[],
        b"",
        &world(),
    );
    assert_eq!(del.status, 200);
    assert_eq!(create(&p, "sa").status, 409);
}
