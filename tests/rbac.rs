//! The chart's Role is exact: every request the job makes (provision, re-run, verify,
//! teardown) is allowed by the Role and RoleBinding `helm template` renders for the same
//! values, run as the hook's ServiceAccount against a stand-in that authenticates and
//! authorizes like the apiserver (403 otherwise); and every verb on every resource (and
//! name) the Role grants is used by some scenario.

mod reliability;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use testkit::epinio::Chart;
use testkit::world::{World, HOOK_USER, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const STAGING: &[(&str, &str)] = &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")];
const POD_IDENTITY: &[(&str, &str)] = &[
    ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
    ("EPINIO_IRSA_MODE", "pod-identity"),
];

/// Epinio 1.13.9 with an aws CLI new enough for Pod Identity and staging under its own
/// ServiceAccount.
fn pod_identity_chart() -> Chart {
    Chart::new("1.13.9")
        .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging")
}

fn iam_values(extra: Value) -> Value {
    let mut v = json!({"seaweedfs": {"enabled": false}, "s3": {"bucket": "epinio"}});
    if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            base.insert(k.clone(), x.clone());
        }
    }
    v
}

/// A workload of the user's that runs under `sa` (the restart rule covers every kind).
fn workload(kind: &str, name: &str, sa: &str) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]}}
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
}

type Key = (String, String, String); // (verb, group/resource, name or *)

/// One run of the job: its command and extra environment.
type Step<'a> = (&'a str, &'a [(&'a str, &'a str)]);

/// Runs `steps` (with the Pod Identity agent installed when `agent`), asserts nothing was
/// denied, and returns what the Role granted and what the requests used.
async fn scenario(
    objects: Vec<Value>,
    values: Value,
    agent: bool,
    steps: &[Step<'_>],
) -> (BTreeSet<Key>, BTreeSet<Key>) {
    let w = World::with_rbac(BIN, objects, &values).await;
    if agent {
        w.install_agent("ACTIVE");
    }
    for (command, env) in steps {
        let out = w.run(command, env).await;
        assert!(
            out.success(),
            "{command} {env:?} failed under the chart's RBAC\nstdout:\n{}\nstderr:\n{}\ndenied: {:?}",
            out.stdout,
            out.stderr,
            w.kube.rbac_denied()
        );
    }
    assert!(
        w.kube.rbac_denied().is_empty(),
        "{:?}",
        w.kube.rbac_denied()
    );
    let mut granted = BTreeSet::new();
    let mut used = BTreeSet::new();
    for (rule, attrs) in w.kube.rbac_used(NAMESPACE, HOOK_USER) {
        for verb in &rule.verbs {
            for group in &rule.groups {
                for res in &rule.resources {
                    let what = format!("{group}/{res}");
                    if rule.names.is_empty() {
                        granted.insert((verb.clone(), what.clone(), "*".to_string()));
                    }
                    for name in &rule.names {
                        granted.insert((verb.clone(), what.clone(), name.clone()));
                    }
                }
            }
        }
        for a in attrs {
            let name = if rule.names.is_empty() {
                "*".to_string()
            } else {
                a.name.clone()
            };
            used.insert((a.verb.clone(), format!("{}/{}", a.group, a.resource), name));
        }
    }
    (granted, used)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_role_allows_every_request_and_grants_nothing_unused() {
    // Epinio 1.13.9, staging shares the server's ServiceAccount; a user's StatefulSet and
    // DaemonSet also run under it.
    let mut objects = Chart::new("1.13.9").objects();
    objects.push(workload("StatefulSet", "user-cache", "epinio-server"));
    objects.push(workload("DaemonSet", "user-agent", "epinio-server"));
    let a = scenario(
        objects,
        iam_values(json!({})),
        false,
        &[
            ("provision", &[]),
            ("provision", &[]),
            ("verify", &[]),
            ("teardown", &[]),
        ],
    )
    .await;

    // Staging under its own ServiceAccount, which the job creates and, on teardown, deletes.
    let b = scenario(
        Chart::new("1.13.9")
            .staging_workloads("epinio-staging")
            .objects(),
        iam_values(
            json!({"server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}}}),
        ),
        false,
        &[
            ("provision", STAGING),
            ("verify", STAGING),
            ("teardown", STAGING),
        ],
    )
    .await;

    // EKS Pod Identity, then both switches (to IRSA and back), verify in each mode, and
    // teardown; staging under its own ServiceAccount, which Pod Identity also needs.
    let d = scenario(
        pod_identity_chart().objects(),
        iam_values(json!({
            "server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}},
            "irsa": {"mode": "pod-identity"}
        })),
        true,
        &[
            ("provision", POD_IDENTITY),
            ("provision", POD_IDENTITY),
            ("verify", POD_IDENTITY),
            ("provision", STAGING),
            ("verify", STAGING),
            ("provision", POD_IDENTITY),
            ("verify", POD_IDENTITY),
            ("teardown", POD_IDENTITY),
        ],
    )
    .await;

    // Epinio 1.12 with the older staging key.
    let c = scenario(
        Chart::new("1.12.0").legacy_staging("x").objects(),
        iam_values(json!({"server": {"stagingServiceAccountName": "x"}})),
        false,
        &[
            (
                "provision",
                &[("EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT", "x")],
            ),
            (
                "teardown",
                &[("EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT", "x")],
            ),
        ],
    )
    .await;

    let granted: BTreeSet<Key> = [&a.0, &b.0, &c.0, &d.0]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let used: BTreeSet<Key> = [&a.1, &b.1, &c.1, &d.1]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    // Pod Identity on its own needs nothing the Role does not grant, and uses its reads.
    assert!(d.1.is_subset(&d.0));
    let unused: Vec<&Key> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the Role grants what no scenario uses: {unused:?}"
    );
    // The scenarios did exercise the discovery reads and the token requests.
    for key in [
        ("get", "apps/deployments", "epinio-server"),
        ("get", "/configmaps", "epinio-stage-scripts"),
        ("create", "/serviceaccounts/token", "epinio-server"),
        ("create", "/serviceaccounts", "epinio-staging"),
        ("delete", "/serviceaccounts", "epinio-staging"),
    ] {
        let key = (key.0.to_string(), key.1.to_string(), key.2.to_string());
        assert!(used.contains(&key), "{key:?} not exercised");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_role_does_not_allow_is_refused_like_the_apiserver() {
    // The Role rendered for other values does not name the ServiceAccount Epinio uses.
    let w = World::with_rbac(
        BIN,
        Chart::new("1.12.0").legacy_staging("x").objects(),
        &iam_values(json!({})),
    )
    .await;
    let out = w.run("provision", &[]).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("is forbidden: User \"system:serviceaccount:epinio:epinio-irsa\" cannot get resource \"serviceaccounts\""), "{}", out.stderr);
    assert!(
        out.aws_writes().is_empty(),
        "refused before any AWS write: {:?}",
        out.aws_writes()
    );
    assert!(!w.kube.rbac_denied().is_empty());
}

fn forbidden(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => s.message,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_grants_nothing_outside_its_namespace_but_discovery_stays_open() {
    use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
    use kube::api::{Api, ListParams};
    let w = World::with_rbac(BIN, Chart::new("1.13.9").objects(), &iam_values(json!({}))).await;
    let client = reliability::kube_client(&w).await;

    // Discovery, as `system:discovery` opens it to every authenticated user.
    client.apiserver_version().await.expect("/version is open");
    client.list_core_api_versions().await.expect("/api is open");
    client.list_api_groups().await.expect("/apis is open");

    // The namespace object is `namespaces "epinio"` in namespace epinio: the Role does not
    // grant it.
    let e = Api::<Namespace>::all(client.clone())
        .get("epinio")
        .await
        .unwrap_err();
    assert_eq!(
        forbidden(e),
        format!("namespaces \"epinio\" is forbidden: User \"{HOOK_USER}\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"epinio\"")
    );
    // Cluster-scoped and all-namespace requests: nothing binds the hook at the cluster scope.
    let e = Api::<ServiceAccount>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        forbidden(e),
        format!("serviceaccounts is forbidden: User \"{HOOK_USER}\" cannot list resource \"serviceaccounts\" in API group \"\" at the cluster scope")
    );
    let e = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(forbidden(e)
        .ends_with("cannot list resource \"nodes\" in API group \"\" at the cluster scope"));
    let e = Api::<Node>::all(client.clone())
        .get("node-1")
        .await
        .unwrap_err();
    assert!(forbidden(e).starts_with("nodes \"node-1\" is forbidden"));
    // A namespaced read the Role grants still works through the same client.
    Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .get("epinio-server")
        .await
        .expect("the Role grants get on epinio-server");
    assert_eq!(w.kube.rbac_denied().len(), 4, "{:?}", w.kube.rbac_denied());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_role_creates_only_the_staging_service_account_by_name() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, Patch, PatchParams};
    let values = iam_values(
        json!({"server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}}}),
    );
    let w = World::with_rbac(BIN, Chart::new("1.13.9").objects(), &values).await;
    let api = Api::<ServiceAccount>::namespaced(reliability::kube_client(&w).await, NAMESPACE);
    let apply = |name: &str| {
        let body =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}});
        let api = api.clone();
        let name = name.to_string();
        async move {
            api.patch(&name, &PatchParams::apply("test"), &Patch::Apply(&body))
                .await
        }
    };
    apply("epinio-staging")
        .await
        .expect("the staging ServiceAccount may be created");
    let e = apply("someone-else").await.unwrap_err();
    assert!(forbidden(e).contains("cannot patch resource \"serviceaccounts\""));
    // Epinio's server ServiceAccount may be patched but never created: an apply that would
    // create it (it is gone) is authorized as create with its name, and refused.
    w.kube
        .delete("v1", "ServiceAccount", NAMESPACE, "epinio-server");
    let e = apply("epinio-server").await.unwrap_err();
    assert_eq!(
        forbidden(e),
        format!("serviceaccounts \"epinio-server\" is forbidden: User \"{HOOK_USER}\" cannot create resource \"serviceaccounts\" in API group \"\" in the namespace \"epinio\"")
    );
    for name in ["someone-else", "epinio-server"] {
        assert!(w
            .kube
            .get("v1", "ServiceAccount", NAMESPACE, name)
            .is_none());
    }
}
