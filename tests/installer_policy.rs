//! The policy `installer-policy` prints is the one a least-privilege user attaches to the hook's
//! role: every AWS call the job makes in the scenarios (provision, re-run, drift repair with a
//! stray policy, bucket changes, teardown) must be allowed by it, judged by an IAM evaluator
//! (`testkit::iam_eval`: resource patterns and condition operators as IAM evaluates them), and
//! every action it grants must be used by some scenario. moto cannot judge this: outside S3 its
//! access control evaluates every request against `Resource: "*"`.

use std::collections::BTreeSet;

use serde_json::Value;
use testkit::iam_eval::{allows, granted_actions, Request};
use testkit::moto::REGION;
use testkit::proxy::Call;
use testkit::world::{World, CLUSTER};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const PATH: &str = "/epinio/";

/// What IAM authorizes for one call: the action on its resource with its condition keys, plus
/// the tag action a create that carries tags needs too.
fn requests(w: &World, call: &Call) -> Vec<Request> {
    let account = w.account();
    let op = call.op.as_str();
    if call.service == "eks" {
        let eks = |resource: &str| format!("arn:aws:eks:{REGION}:{account}:{resource}");
        let association = |id: &str| eks(&format!("podidentityassociation/{CLUSTER}/{id}"));
        let pass = |role: &str| {
            Request::new("iam:PassRole", role.to_string())
                .with("iam:PassedToService", "pods.eks.amazonaws.com")
        };
        let id = call.param("associationId").unwrap_or_default();
        return match op {
            "DescribeCluster" | "ListPodIdentityAssociations" => {
                vec![Request::new(format!("eks:{op}"), w.cluster_arn.clone())]
            }
            "CreatePodIdentityAssociation" => {
                let mut out = vec![
                    Request::new("eks:CreatePodIdentityAssociation", w.cluster_arn.clone()),
                    pass(call.param("roleArn").expect("roleArn")),
                ];
                if call.param("tagged") == Some("true") {
                    // Tagging on create is authorized on the association being made.
                    out.push(Request::new(
                        "eks:TagResource",
                        association("a-0000000000000new"),
                    ));
                }
                out
            }
            "UpdatePodIdentityAssociation" => {
                let mut out = vec![Request::new(format!("eks:{op}"), association(id))];
                out.extend(call.param("roleArn").map(pass));
                out
            }
            "DescribePodIdentityAssociation" | "DeletePodIdentityAssociation" | "TagResource" => {
                vec![Request::new(format!("eks:{op}"), association(id))]
            }
            "DescribeAddon" => vec![Request::new(
                "eks:DescribeAddon",
                eks(&format!(
                    "addon/{CLUSTER}/eks-pod-identity-agent/c2c4a1b0-1111-2222-3333-444455556666"
                )),
            )],
            _ => panic!("an EKS call the test does not know: {call:?}"),
        };
    }
    if op == "GetCallerIdentity" {
        // Needs no permission: STS answers it for any valid credentials.
        return Vec::new();
    }
    if op == "AssumeRoleWithWebIdentity" || call.service == "s3" {
        // verify's live chain: authorized by the ServiceAccount token and the assumed role's
        // S3 policy, not by the installer's credentials.
        return Vec::new();
    }
    assert_eq!(call.service, "iam", "{call:?}");
    let p = |k: &str| call.param(k).map(str::to_string);
    let role = |name: String, path: Option<String>| {
        format!(
            "arn:aws:iam::{account}:role{}{name}",
            path.unwrap_or(PATH.into())
        )
    };
    // A role that does not exist has no path IAM could know: a read of it may be authorized
    // against the pathless ARN (`role/NAME`), so the replay judges it there.
    let missing_role = call.status == 404
        && matches!(
            op,
            "GetRole" | "ListAttachedRolePolicies" | "ListRolePolicies"
        );
    let resource = if let Some(name) = p("RoleName") {
        role(name, p("Path").or(missing_role.then(|| "/".to_string())))
    } else if let Some(arn) = p("PolicyArn") {
        arn
    } else if op == "CreatePolicy" {
        format!(
            "arn:aws:iam::{account}:policy{}{}",
            p("Path").unwrap_or("/".into()),
            p("PolicyName").expect("PolicyName")
        )
    } else if let Some(arn) = p("OpenIDConnectProviderArn") {
        arn
    } else if op == "CreateOpenIDConnectProvider" {
        let url = p("Url").expect("Url");
        format!(
            "arn:aws:iam::{account}:oidc-provider/{}",
            url.trim_start_matches("https://")
        )
    } else if op == "ListOpenIDConnectProviders" {
        "*".to_string()
    } else {
        panic!("an IAM call the test does not know: {call:?}")
    };
    let mut req = Request::new(format!("iam:{op}"), resource.clone());
    if matches!(op, "AttachRolePolicy" | "DetachRolePolicy") {
        // The role's own ARN is `resource`; the policy is a condition key.
        req = Request::new(format!("iam:{op}"), role(p("RoleName").unwrap(), None))
            .with("iam:PolicyARN", p("PolicyArn").expect("PolicyArn"));
    }
    if let Some(b) = p("PermissionsBoundary") {
        req = req.with("iam:PermissionsBoundary", b);
    }
    let mut out = vec![req];
    let tagged = call
        .params
        .iter()
        .any(|(k, _)| k.starts_with("Tags.member."));
    let tag_action = match op {
        "CreateRole" => Some("iam:TagRole"),
        "CreatePolicy" => Some("iam:TagPolicy"),
        "CreateOpenIDConnectProvider" => Some("iam:TagOpenIDConnectProvider"),
        _ => None,
    };
    if let (true, Some(action)) = (tagged, tag_action) {
        out.push(Request::new(action, resource));
    }
    out
}

async fn make_policy(w: &World, name: &str) -> String {
    let out = w
        .iam
        .create_policy()
        .policy_name(name)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    out.policy().unwrap().arn().unwrap().to_string()
}

/// Runs the scenarios with `env`, returning every AWS call made and the printed policy.
/// `drift` breaks a provisioned server role the way a person might.
async fn scenarios(w: &World, env: &[(&str, &str)], boundary: Option<&str>) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut run = |out: testkit::world::RunOutput| {
        out.assert_ok();
        calls.extend(out.aws_calls.clone());
    };
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = env.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let pod_identity = env.contains(&("EPINIO_IRSA_MODE", "pod-identity"));
    if pod_identity {
        // Left from an earlier IRSA run: teardown removes the job's OIDC provider.
        w.iam
            .create_open_id_connect_provider()
            .url(&w.issuer)
            .client_id_list("sts.amazonaws.com")
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("epinio-irsa/owner")
                    .value(format!("{CLUSTER}/epinio/epinio"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    } else {
        // Left from an earlier pod-identity run: IRSA removes its own association.
        let role = format!("arn:aws:iam::{}:role{PATH}old", w.account());
        w.pod_identity().seed(
            &w.cluster_arn,
            "epinio",
            "epinio-server",
            &role,
            [(
                "epinio-irsa/owner".to_string(),
                format!("{CLUSTER}/epinio/epinio"),
            )]
            .into(),
            None,
        );
    }
    run(w.run("provision", env).await);
    run(w.run("provision", env).await);
    let auto = env.contains(&("EPINIO_IRSA_MODE", "auto"));
    if auto {
        // The cluster gets the agent: auto switches from IRSA to Pod Identity.
        w.install_agent("ACTIVE");
        run(w.run("provision", env).await);
    }
    if pod_identity || auto {
        // Someone repoints the job's association: the job points it back.
        let a = w.pod_identity().associations();
        let ours = a
            .iter()
            .find(|a| a.service_account == "epinio-server")
            .unwrap();
        w.pod_identity().set_role(
            &ours.id,
            &format!("arn:aws:iam::{}:role/elsewhere", w.account()),
        );
        // And someone drops a tag from the other: the job adds it back.
        let staging = a
            .iter()
            .find(|a| a.service_account == "epinio-staging")
            .unwrap();
        let mut tags = staging.tags.clone();
        tags.remove("app.kubernetes.io/managed-by");
        w.pod_identity().set_tags(&staging.id, tags);
    }

    // Drift: a stray policy, a hand-edited trust, a lost tag, the boundary changed, and the
    // policy's bookkeeping tag removed (so the job must read the document itself).
    let state = w.iam_state().await;
    let server = state["roles"]
        .as_object()
        .unwrap()
        .keys()
        .find(|n| n.ends_with("-server"))
        .unwrap()
        .clone();
    let stray = make_policy(w, "stray").await;
    w.iam
        .attach_role_policy()
        .role_name(&server)
        .policy_arn(&stray)
        .send()
        .await
        .unwrap();
    w.iam
        .update_assume_role_policy()
        .role_name(&server)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    w.iam
        .untag_role()
        .role_name(&server)
        .tag_keys("app.kubernetes.io/managed-by")
        .send()
        .await
        .unwrap();
    match boundary {
        Some(_) => {
            w.iam
                .delete_role_permissions_boundary()
                .role_name(&server)
                .send()
                .await
                .unwrap();
        }
        None => {
            let b = make_policy(w, "someone-elses-boundary").await;
            w.iam
                .put_role_permissions_boundary()
                .role_name(&server)
                .permissions_boundary(b)
                .send()
                .await
                .unwrap();
        }
    }
    let policy_arn = state["policies"]
        .as_object()
        .unwrap()
        .keys()
        .find(|a| a.contains(":policy/epinio/"))
        .unwrap()
        .clone();
    w.iam
        .untag_policy()
        .policy_arn(&policy_arn)
        .tag_keys("epinio-irsa/document-sha256")
        .send()
        .await
        .unwrap();
    run(w.run("provision", env).await);

    // Bucket changes until the job prunes its own old versions.
    for i in 0..5 {
        let bucket = format!("bucket-{i}");
        let mut e = env.to_vec();
        e.push(("EPINIO_IRSA_S3_BUCKET", &bucket));
        run(w.run("provision", &e).await);
    }
    // An inline policy someone added: teardown must delete it to delete the role.
    w.iam
        .put_role_policy()
        .role_name(&server)
        .policy_name("hand-made")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    run(w
        .run(
            "teardown",
            &with(&[("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true")]),
        )
        .await);
    calls
}

async fn check(env: Vec<(&str, &str)>, boundary: Option<&str>) {
    let pod_identity = env.contains(&("EPINIO_IRSA_MODE", "pod-identity"));
    let auto = env.contains(&("EPINIO_IRSA_MODE", "auto"));
    let w = if pod_identity || auto {
        let chart = testkit::epinio::Chart::new("1.13.9")
            .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
            .staging_workloads("epinio-staging");
        let w = World::with_objects(BIN, chart.objects()).await;
        // auto starts without the agent (IRSA) and gets it later (see `scenarios`).
        if pod_identity {
            w.install_agent("ACTIVE");
        }
        w
    } else {
        World::new(BIN).await
    };
    let mut env = env;
    let boundary_arn;
    if boundary.is_some() {
        boundary_arn = make_policy(&w, "boundary").await;
        env.push(("EPINIO_IRSA_PERMISSIONS_BOUNDARY", &boundary_arn));
    }
    let extra = make_policy(&w, "extra-read").await;
    env.push(("EPINIO_IRSA_EXTRA_POLICY_ARNS", &extra));
    let mut printed_env = env.clone();
    printed_env.push(("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true"));
    let printed = w.run("installer-policy", &printed_env).await;
    printed.assert_ok();
    let policy: Value = serde_json::from_str(&printed.stdout).expect("JSON policy");

    let calls = scenarios(&w, &env, boundary).await;
    let mut used = BTreeSet::new();
    let mut denied = Vec::new();
    for call in calls.iter().filter(|c| c.is_aws()) {
        for req in requests(&w, call) {
            if !allows(&policy, &req) {
                denied.push(format!(
                    "{} on {} {:?}",
                    req.action, req.resource, req.context
                ));
            }
            used.insert(req.action);
        }
    }
    denied.sort();
    denied.dedup();
    assert!(
        denied.is_empty(),
        "the printed installer policy denies calls the job makes:\n{}\npolicy:\n{}",
        denied.join("\n"),
        printed.stdout
    );
    let unused: Vec<String> = granted_actions(&policy)
        .into_iter()
        .filter(|a| !used.contains(a))
        .collect();
    assert!(unused.is_empty(), "granted but never called: {unused:?}");
    // The test must have seen the calls it is about.
    let mut expected = vec![
        "iam:DetachRolePolicy",
        "iam:DeletePolicyVersion",
        "eks:ListPodIdentityAssociations",
        "eks:DescribePodIdentityAssociation",
        "eks:DeletePodIdentityAssociation",
    ];
    let pod_identity_actions = [
        "eks:DescribeAddon",
        "eks:CreatePodIdentityAssociation",
        "eks:UpdatePodIdentityAssociation",
        "eks:TagResource",
        "iam:PassRole",
    ];
    if pod_identity || auto {
        expected.extend(pod_identity_actions);
    }
    if !pod_identity {
        expected.extend([
            "iam:ListOpenIDConnectProviders",
            "iam:CreateOpenIDConnectProvider",
        ]);
    }
    for action in expected {
        assert!(used.contains(action), "no {action} in the scenarios");
    }
    let _ = (CLUSTER, REGION);
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_policy_allows_every_call_and_grants_nothing_unused_with_a_boundary() {
    check(
        vec![
            ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
            ("EPINIO_IRSA_ROLE_PATH", PATH),
        ],
        Some("boundary"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_policy_allows_every_call_and_grants_nothing_unused_without_a_boundary() {
    check(
        vec![
            ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
            ("EPINIO_IRSA_ROLE_PATH", PATH),
        ],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_policy_allows_every_call_and_grants_nothing_unused_in_pod_identity_mode() {
    check(
        vec![
            ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
            ("EPINIO_IRSA_ROLE_PATH", PATH),
            ("EPINIO_IRSA_MODE", "pod-identity"),
        ],
        None,
    )
    .await;
}

/// `auto` on a cluster that gets the agent add-on later: IRSA first, then Pod Identity, one
/// printed policy for both.
#[tokio::test(flavor = "multi_thread")]
async fn printed_policy_allows_every_call_and_grants_nothing_unused_in_auto_mode() {
    check(
        vec![
            ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
            ("EPINIO_IRSA_ROLE_PATH", PATH),
            ("EPINIO_IRSA_MODE", "auto"),
        ],
        None,
    )
    .await;
}

/// Gateway mode, in both directions, with one printed policy (the same for either mode: it
/// names the server's, staging's and the gateway's roles, since a switch reads and removes the
/// other arrangement's): IRSA provision, the switch into gateway mode (with verify through a
/// real gateway), a re-run, Pod Identity in gateway mode, the switch out, teardown. Every AWS
/// call is judged against the printed policy.
#[tokio::test(flavor = "multi_thread")]
async fn printed_policy_allows_every_call_in_gateway_mode_and_both_switches() {
    let mut objects = testkit::epinio::Chart::new("1.13.9")
        .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging")
        .objects();
    objects.extend(testkit::gateway::helm_objects("epinio"));
    let w = World::with_objects(BIN, objects).await;
    w.install_agent("ACTIVE");
    w.kube
        .enable_rollouts(std::time::Duration::from_millis(300));
    let keys = ("EPINIOCLUSTERLOCAL01", "cluster-local-secret-0123456789");
    let gateway_env = testkit::gateway::env_beside(&w.moto, &w.dir, "epinio", keys);
    let gateway = epinio_irsa::gateway::start(gateway_env)
        .await
        .expect("gateway");
    let endpoint = format!("http://{}", gateway.s3_addr());
    let plain: Vec<(&str, &str)> = vec![
        ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
        ("EPINIO_IRSA_ROLE_PATH", PATH),
    ];
    let mut through = plain.clone();
    through.extend([
        ("EPINIO_IRSA_GATEWAY", "true"),
        ("EPINIO_IRSA_S3_ACCESS_KEY_ID", "EPINIOCLUSTERLOCAL01"),
        (
            "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
            "cluster-local-secret-0123456789",
        ),
        ("EPINIO_IRSA_GATEWAY_ENDPOINT", endpoint.as_str()),
    ]);
    let mut printed_env = through.clone();
    printed_env.push(("EPINIO_IRSA_MODE", "auto"));
    let printed = w.run("installer-policy", &printed_env).await;
    printed.assert_ok();
    let policy: Value = serde_json::from_str(&printed.stdout).expect("JSON policy");
    let mut pod_identity = through.clone();
    pod_identity.push(("EPINIO_IRSA_MODE", "pod-identity"));

    let mut calls = Vec::new();
    for env in [&plain, &through, &through, &pod_identity, &plain] {
        let out = w.run("provision", env).await;
        out.assert_ok();
        calls.extend(out.aws_calls.clone());
    }
    let out = w.run("teardown", &plain).await;
    out.assert_ok();
    calls.extend(out.aws_calls.clone());

    let mut denied: Vec<String> = calls
        .iter()
        .filter(|c| c.is_aws())
        .flat_map(|c| requests(&w, c))
        .filter(|req| !allows(&policy, req))
        .map(|req| format!("{} on {} {:?}", req.action, req.resource, req.context))
        .collect();
    denied.sort();
    denied.dedup();
    assert!(
        denied.is_empty(),
        "the printed installer policy denies calls the job makes in gateway mode:\n{}\npolicy:\n{}",
        denied.join("\n"),
        printed.stdout
    );
    // The switches did delete the other arrangement's roles and associations.
    let ops: BTreeSet<&str> = calls.iter().map(|c| c.op.as_str()).collect();
    for op in [
        "DeleteRole",
        "DeletePodIdentityAssociation",
        "CreatePodIdentityAssociation",
    ] {
        assert!(
            ops.contains(op),
            "no {op} in the gateway scenarios: {ops:?}"
        );
    }
    gateway.shutdown().await;
}
