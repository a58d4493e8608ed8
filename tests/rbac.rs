//! The chart's Role is exact: every request the job makes (provision, re-run, verify,
//! teardown) is allowed by the Role and RoleBinding `helm template` renders for the same
//! values, run as the hook's ServiceAccount against a stand-in that authenticates and
//! authorizes like the apiserver (403 otherwise); and every verb on every resource (and
//! name) the Role grants is used by some scenario.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use testkit::epinio::Chart;
use testkit::world::{World, HOOK_USER, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

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

/// Runs `commands` with `env`, asserts nothing was denied, and returns what the Role granted
/// and what the requests used.
async fn scenario(
    objects: Vec<Value>,
    values: Value,
    env: &[(&str, &str)],
    commands: &[&str],
) -> (BTreeSet<Key>, BTreeSet<Key>) {
    let w = World::with_rbac(BIN, objects, &values).await;
    for command in commands {
        let out = w.run(command, env).await;
        assert!(
            out.success(),
            "{command} failed under the chart's RBAC\nstdout:\n{}\nstderr:\n{}\ndenied: {:?}",
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
        &[],
        &["provision", "provision", "verify", "teardown"],
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
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
        &["provision", "verify", "teardown"],
    )
    .await;

    // Epinio 1.12 with the older staging key.
    let c = scenario(
        Chart::new("1.12.0").legacy_staging("x").objects(),
        iam_values(json!({"server": {"stagingServiceAccountName": "x"}})),
        &[("EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT", "x")],
        &["provision", "teardown"],
    )
    .await;

    let granted: BTreeSet<Key> = a.0.iter().chain(&b.0).chain(&c.0).cloned().collect();
    let used: BTreeSet<Key> = a.1.iter().chain(&b.1).chain(&c.1).cloned().collect();
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
        ("create", "/serviceaccounts", "*"),
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
