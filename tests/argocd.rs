//! The chart under Argo CD (issue 24): rendered by the real helm as Argo CD renders a Helm
//! source (`helm template` with the Application's values), its objects classified into Argo CD's
//! hook phases as Argo CD's sources do it (`testkit::argocd`), and the real job run in those
//! phases against moto, the Pod Identity stand-in and the Kubernetes stand-in, under the
//! chart's own RBAC as the hook's ServiceAccount:
//! - a sync runs provision as PostSync after its ServiceAccount, Role, RoleBinding and
//!   NetworkPolicy (wave -10 before 0), and a second sync's provision writes nothing;
//! - deleting the Application runs teardown as a PreDelete hook with everything it needs live,
//!   then deletes the Application's resources, then runs the PostDelete copy (a no-op by then),
//!   and leaves nothing of ours in IAM, EKS or Kubernetes; with the PreDelete race of argo-cd
//!   #29100, and with Argo CD 2.10 - 3.2 (PostDelete only), the PostDelete copy alone does it;
//!   in IRSA, Pod Identity, static-key and gateway mode;
//! - plain Helm sees the same helm.sh/* annotations as before and refuses the Argo CD value;
//! - the README's teardown by hand (older Argo CD) works with the real helm and kubectl.

use std::path::Path;

use serde_json::{json, Value};
use testkit::argocd::{self, Application, ArgoCd, Deletion, JobRun, Key, Phase};
use testkit::epinio::Chart;
use testkit::world::{render_chart, World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const SA: &str = "epinio-irsa";
const POST_DELETE_JOB: &str = "epinio-irsa-teardown-post-delete";
const KEY_ID: &str = "EPINIOCLUSTERLOCAL01";
const SECRET: &str = "cluster-local-secret-0123456789abcdefghij";

fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// Epinio's values in IAM mode plus the Application's `irsa.argocd.enabled`; teardown also
/// deletes the OIDC provider the job made, so that "nothing left" means an empty account.
fn values(extra: Value) -> Value {
    let mut v = json!({
        "seaweedfs": {"enabled": false},
        "s3": {"bucket": "epinio"},
        "irsa": {"argocd": {"enabled": true}, "oidcProvider": {"deleteOnTeardown": true}},
    });
    merge(&mut v, &extra);
    v
}

fn gateway_values() -> Value {
    values(json!({
        "s3": {"accessKeyID": KEY_ID, "secretAccessKey": SECRET,
               "endpoint": "epinio-irsa-gateway.epinio.svc.cluster.local", "useSSL": false},
        // No gateway runs here: provision's check through it is off (tests/gateway_hook.rs
        // proves that part), and plain HTTP spares the cert-manager Certificate.
        "irsa": {"gateway": {"enabled": true, "tls": {"enabled": false}}, "verify": false},
    }))
}

fn kind_name(obj: &Value) -> (&str, &str) {
    (
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind_name(d) == (kind, name))
        .unwrap_or_else(|| panic!("{kind} {name} not rendered"))
}

fn phases(list: &[Phase]) -> std::collections::BTreeSet<Phase> {
    list.iter().copied().collect()
}

// ----- the stand-in's classification ---------------------------------------------------------

fn annotated(pairs: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": ann}})
}

/// The cases of Argo CD's own unit tests (gitops-engine/pkg/sync/hook/hook_test.go,
/// sync_phase_test.go, controller/hook_test.go TestIsPreDeleteHook / TestIsPostDeleteHook /
/// TestPartitionTargetObjsForSync), answered by the stand-in as Argo CD answers them.
#[test]
fn the_stand_in_answers_argo_cds_own_hook_test_cases() {
    use Phase::*;
    let argo = |v: &str| annotated(&[("argocd.argoproj.io/hook", v)]);
    let helm = |v: &str| annotated(&[("helm.sh/hook", v)]);
    // (object, IsHook, Skip, Types)
    let cases: Vec<(Value, bool, bool, Vec<Phase>)> = vec![
        (annotated(&[]), false, false, vec![]),
        (argo("PreSync"), true, false, vec![PreSync]),
        (argo("SyncFail"), true, false, vec![SyncFail]),
        (argo("Skip"), false, true, vec![Skip]),
        (argo("Garbage"), true, false, vec![]),
        (
            argo("PreSync,PostSync"),
            true,
            false,
            vec![PreSync, PostSync],
        ),
        (argo("Sync,Sync"), true, false, vec![Sync]),
        (
            argo("Skip,PreSync,PostSync"),
            true,
            false,
            vec![Skip, PreSync, PostSync],
        ),
        (argo("Sync,Garbage"), true, false, vec![Sync]),
        (helm("pre-install"), true, false, vec![PreSync]),
        (helm("garbage"), true, false, vec![]),
        (
            annotated(&[
                ("argocd.argoproj.io/hook", "Sync"),
                ("helm.sh/hook", "pre-install"),
            ]),
            true,
            false,
            vec![Sync],
        ),
        // What this chart relies on: PreDelete/PostDelete are no sync hook types, so the Helm
        // values still count next to them.
        (
            annotated(&[
                ("argocd.argoproj.io/hook", "PostDelete"),
                ("helm.sh/hook", "post-install,post-upgrade,pre-delete,test"),
            ]),
            true,
            false,
            vec![PostSync, PostSync],
        ),
        (helm("test"), true, false, vec![]),
        (helm("crd-install"), false, false, vec![]),
    ];
    for (obj, hook, skip, types) in &cases {
        assert_eq!(argocd::is_hook(obj), *hook, "IsHook {obj}");
        assert_eq!(argocd::skip(obj), *skip, "Skip {obj}");
        assert_eq!(&argocd::hook_types(obj), types, "Types {obj}");
    }
    assert_eq!(argocd::sync_phases(&annotated(&[])), phases(&[Sync]));
    assert_eq!(argocd::sync_phases(&argo("Garbage")), phases(&[]));
    assert_eq!(
        argocd::sync_phases(&helm("pre-install,pre-upgrade")),
        phases(&[PreSync])
    );
    // controller/hook_test.go
    for (obj, pre, post) in [
        (argo("PreDelete"), true, false),
        (helm("pre-delete"), true, false),
        (argo("PostDelete"), false, true),
        (helm("post-delete"), false, true),
        (helm("pre-delete,post-delete"), true, true),
        (argo("PostDelete,PreDelete"), true, true),
    ] {
        assert_eq!(
            argocd::is_delete_hook(&obj, PreDelete, ArgoCd::V3_5),
            pre,
            "{obj}"
        );
        assert_eq!(
            argocd::is_delete_hook(&obj, PostDelete, ArgoCd::V3_5),
            post,
            "{obj}"
        );
    }
    // Before 3.3.3 the whole value had to match; before 3.3 there was no PreDelete.
    let list = helm("pre-delete,post-delete");
    assert!(!argocd::is_delete_hook(&list, PreDelete, ArgoCd::V3_3_0));
    assert!(!argocd::is_delete_hook(&list, PostDelete, ArgoCd::V2_10));
    assert!(!argocd::is_delete_hook(
        &helm("pre-delete"),
        PreDelete,
        ArgoCd::V2_10
    ));
    assert!(argocd::is_delete_hook(
        &argo("PostDelete"),
        PostDelete,
        ArgoCd::V2_10
    ));
    assert!(!argocd::is_delete_hook(
        &argo("PostDelete"),
        PostDelete,
        ArgoCd::Before2_10
    ));
    // TestPartitionTargetObjsForSync
    for (obj, kept) in [
        (argo("PostSync,PreDelete,PostDelete"), true),
        (argo("PreDelete"), false),
        (argo("PostDelete"), false),
        (helm("pre-delete"), false),
        (helm("pre-install,pre-delete"), true),
        (annotated(&[("app", "x")]), true),
    ] {
        assert_eq!(argocd::in_sync_targets(&obj, ArgoCd::V3_5), kept, "{obj}");
    }
    assert_eq!(argocd::wave(&helm("x")), 0);
    assert_eq!(
        argocd::wave(&annotated(&[
            ("helm.sh/hook-weight", "-10"),
            ("argocd.argoproj.io/sync-wave", "3")
        ])),
        3
    );
    assert_eq!(
        argocd::wave(&annotated(&[("helm.sh/hook-weight", "-10")])),
        -10
    );
    assert_eq!(
        argocd::delete_policies(&annotated(&[(
            "helm.sh/hook-delete-policy",
            "before-hook-creation,hook-succeeded"
        )])),
        ["BeforeHookCreation", "HookSucceeded"]
            .into_iter()
            .collect()
    );
    assert_eq!(
        argocd::delete_policies(&annotated(&[])),
        ["BeforeHookCreation"].into_iter().collect()
    );
}

/// The chart as Argo CD classifies it, per release: the hook's support objects are PostSync
/// (wave -10, before the Jobs' 0), PreDelete (3.3+) and PostDelete; teardown is PreDelete only,
/// its copy PostDelete only, verify (`helm.sh/hook: test`) in no phase. Without
/// `irsa.argocd.enabled` nothing tears down before 3.3. On 3.3.0 - 3.3.4 the support objects
/// fall out of syncs (so provision cannot start): the README says to skip those releases.
#[test]
fn the_chart_in_argo_cds_phases() {
    use Phase::*;
    let dir = tempdir("classify");
    for (label, extra) in [
        ("irsa", json!({})),
        (
            "static",
            json!({"s3": {"accessKeyID": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "x"}}),
        ),
        ("gateway", gateway_values()),
    ] {
        let docs = render_chart(&values(extra), &dir);
        let support: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d.pointer("/metadata/annotations/helm.sh~1hook")
                    == Some(&json!("post-install,post-upgrade,pre-delete,test"))
            })
            .collect();
        let mut kinds: Vec<(&str, &str)> = support.iter().map(|d| kind_name(d)).collect();
        kinds.sort();
        let mut want = vec![
            ("NetworkPolicy", SA),
            ("Role", SA),
            ("RoleBinding", SA),
            ("ServiceAccount", SA),
        ];
        match label {
            "static" => want.push(("Secret", "epinio-irsa-s3-keys")),
            "gateway" => {
                want.push(("Role", "epinio-irsa-gateway-hook"));
                want.push(("RoleBinding", "epinio-irsa-gateway-hook"));
            }
            _ => {}
        }
        want.sort();
        assert_eq!(kinds, want, "{label}");
        for d in &support {
            assert_eq!(
                argocd::classify(d, ArgoCd::V3_5),
                phases(&[PostSync, PreDelete, PostDelete]),
                "{label} {d}"
            );
            assert_eq!(
                argocd::classify(d, ArgoCd::V2_10),
                phases(&[PostSync, PostDelete])
            );
            assert_eq!(argocd::wave(d), -10);
            // Dropped from syncs by 3.3.0 - 3.3.4.
            assert!(!argocd::classify(d, ArgoCd::V3_3_0).contains(&PostSync));
            assert!(!argocd::classify(d, ArgoCd::V3_3_3).contains(&PostSync));
        }
        let job = |name: &str| find(&docs, "Job", name);
        for (version, teardown, copy) in [
            (ArgoCd::V3_5, phases(&[PreDelete]), phases(&[PostDelete])),
            (ArgoCd::V2_10, phases(&[Skip]), phases(&[PostDelete])),
            (ArgoCd::Before2_10, phases(&[Skip]), phases(&[Skip])),
        ] {
            assert_eq!(
                argocd::classify(job("epinio-irsa-provision"), version),
                phases(&[PostSync])
            );
            assert_eq!(
                argocd::classify(job("epinio-irsa-verify"), version),
                phases(&[Skip])
            );
            assert_eq!(
                argocd::classify(job("epinio-irsa-teardown"), version),
                teardown
            );
            assert_eq!(argocd::classify(job(POST_DELETE_JOB), version), copy);
        }
        assert_eq!(argocd::wave(job("epinio-irsa-provision")), 0);
        if label == "gateway" {
            let keys = find(&docs, "Secret", "epinio-irsa-teardown-keys");
            assert_eq!(argocd::classify(keys, ArgoCd::V3_5), phases(&[PostDelete]));
            // The gateway's own objects are plain resources: Sync phase, deleted with the
            // Application before PostDelete (hence the copy of its keys).
            let gw = find(&docs, "Secret", "epinio-irsa-gateway-keys");
            assert_eq!(argocd::classify(gw, ArgoCd::V3_5), phases(&[Sync]));
        }
    }
    // Without irsa.argocd.enabled: the same chart as for Helm, and no teardown at all before
    // Argo CD 3.3 (nothing is a PostDelete hook).
    let plain = render_chart(
        &values(json!({"irsa": {"argocd": {"enabled": false}}})),
        &dir,
    );
    for d in &plain {
        assert!(
            !argocd::classify(d, ArgoCd::V2_10).contains(&PostDelete),
            "{d}"
        );
    }
    assert_eq!(
        argocd::classify(find(&plain, "ServiceAccount", SA), ArgoCd::V3_5),
        phases(&[PostSync, PreDelete])
    );
}

// ----- plain Helm -----------------------------------------------------------------------------

fn helm_annotations(d: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(a) = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in a {
            if k.starts_with("helm.sh/") {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// With `irsa.argocd.enabled`, every object plain Helm would see is the same but for the
/// `argocd.argoproj.io/hook` annotation and the `epinio-irsa/post-delete` label: the same
/// helm.sh/* annotations, so the same Helm hooks, weights and delete policies. The only new
/// objects are the PostDelete copy (and its keys in gateway mode), which plain Helm never
/// installs: rendered against a cluster (as `helm install` and `helm upgrade` render, here with
/// `--dry-run=server` against the Kubernetes stand-in), the value is refused; off (the
/// default) the render is as before.
#[tokio::test(flavor = "multi_thread")]
async fn plain_helm_is_unchanged_and_refuses_the_argo_cd_objects() {
    let dir = tempdir("helm");
    for extra in [
        json!({}),
        json!({"s3": {"accessKeyID": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "x"}}),
        gateway_values(),
    ] {
        let on = render_chart(&values(extra.clone()), &dir);
        let mut off_values = values(extra);
        off_values["irsa"]["argocd"]["enabled"] = json!(false);
        let off = render_chart(&off_values, &dir);
        for d in &off {
            let text = d.to_string();
            assert!(
                !text.contains("argocd.argoproj.io") && !text.contains("epinio-irsa/post-delete"),
                "{text}"
            );
            let (kind, name) = kind_name(d);
            let mut twin = find(&on, kind, name).clone();
            assert_eq!(
                helm_annotations(&twin),
                helm_annotations(d),
                "{kind} {name}"
            );
            let meta = twin["metadata"].as_object_mut().unwrap();
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove("argocd.argoproj.io/hook");
            }
            if let Some(l) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                l.remove("epinio-irsa/post-delete");
            }
            assert_eq!(&twin, d, "{kind} {name}");
        }
        let added: Vec<&Value> = on
            .iter()
            .filter(|d| {
                let (kind, name) = kind_name(d);
                !off.iter().any(|o| kind_name(o) == (kind, name))
            })
            .collect();
        assert!(!added.is_empty());
        for d in added {
            assert!(
                kind_name(d) == ("Job", POST_DELETE_JOB)
                    || kind_name(d) == ("Secret", "epinio-irsa-teardown-keys"),
                "{d}"
            );
            assert_eq!(
                d["metadata"]["annotations"]["helm.sh/hook"],
                json!("post-delete")
            );
            assert_eq!(
                d["metadata"]["annotations"]["helm.sh/hook-delete-policy"],
                json!("before-hook-creation,hook-succeeded")
            );
        }
    }

    // Against a cluster, as helm install/upgrade render.
    let kube = testkit::kube::KubeStandIn::start().await;
    let kubeconfig = dir.join("kubeconfig-helm");
    kube.write_kubeconfig(&kubeconfig, NAMESPACE).unwrap();
    let file = dir.join("values-helm.yaml");
    let helm = |enabled: bool| {
        let mut v = values(json!({"irsa": {"clusterName": "demo",
            "image": {"repository": "registry.example.com/epinio-irsa"}}}));
        v["irsa"]["argocd"]["enabled"] = json!(enabled);
        std::fs::write(&file, serde_json::to_string(&v).unwrap()).unwrap();
        std::process::Command::new(testkit::world::helm())
            .args(["template", "epinio-irsa"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("chart"))
            .args(["-n", NAMESPACE, "--dry-run=server", "-f"])
            .arg(&file)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", &dir)
            .output()
            .expect("run helm")
    };
    let refused = helm(true);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("irsa.argocd.enabled is for Argo CD"),
        "{stderr}"
    );
    let plain = helm(false);
    let out = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        out.contains("helm.sh/hook: pre-delete") && !out.contains("post-delete"),
        "{out}"
    );
}

// ----- the stories ---------------------------------------------------------------------------

fn tempdir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "epinio-irsa-argocd-{label}-{}-{}",
        std::process::id(),
        testkit::moto::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Application's manifests: our chart rendered with `values`, plus Epinio's objects when
/// one Application installs both charts (README, "Argo CD").
fn manifests(w: &World, values: &Value, epinio: &[Value]) -> Vec<Value> {
    let mut docs = render_chart(values, &w.dir);
    docs.extend(epinio.iter().cloned());
    docs
}

fn teardown_runs(runs: &[JobRun]) -> Vec<&JobRun> {
    runs.iter().filter(|r| r.command == "teardown").collect()
}

/// The teardown run had its ServiceAccount, RBAC and NetworkPolicy (and `extra`), and was
/// refused nothing by that RBAC.
#[track_caller]
fn ran_with_everything(run: &JobRun, extra: &[(&str, &str)]) {
    let mut need = vec![
        ("ServiceAccount", SA),
        ("Role", SA),
        ("RoleBinding", SA),
        ("NetworkPolicy", SA),
    ];
    need.extend_from_slice(extra);
    for (kind, name) in need {
        assert!(
            run.had(kind, name),
            "{:?} {} ran without {kind} {name}: {:?}",
            run.phase,
            run.job,
            run.present
        );
    }
    assert!(run.denied.is_empty(), "403s: {:?}", run.denied);
    run.output.assert_ok();
}

/// Nothing of ours in IAM (roles, policies, the OIDC provider: the values ask teardown to
/// delete the one it made), in EKS (Pod Identity associations) or in Kubernetes (no object the
/// chart renders, no IRSA annotation on any ServiceAccount left, no staging ServiceAccount
/// the job made).
async fn nothing_of_ours_left(w: &World, app: &Application<'_>, rendered: &[Value]) {
    let iam = w.iam_state().await;
    assert_eq!(iam["roles"], json!({}), "{iam:#}");
    assert_eq!(iam["policies"], json!({}), "{iam:#}");
    assert_eq!(iam["providers"], json!({}), "{iam:#}");
    assert_eq!(iam["pod_identity_associations"], json!([]), "{iam:#}");
    for d in rendered {
        let k = Key::of(d);
        assert!(
            w.kube
                .get(&k.api_version, &k.kind, &k.namespace, &k.name)
                .is_none(),
            "{k} left"
        );
    }
    assert!(app.tracked().is_empty(), "{:?}", app.tracked());
    for sa in w.kube.list("v1", "ServiceAccount", NAMESPACE) {
        let ann = sa["metadata"]["annotations"].as_object();
        assert!(
            ann.is_none_or(|a| !a.keys().any(|k| k.starts_with("eks.amazonaws.com/"))),
            "{sa}"
        );
        assert_ne!(sa["metadata"]["name"], json!("epinio-staging"), "{sa}");
    }
}

/// Argo CD 3.5 (PreDelete and PostDelete), one Application with both charts: the first sync
/// provisions (support objects in wave -10, then provision in wave 0, then all deleted as
/// HookSucceeded); the second sync's provision writes nothing; deleting the Application runs
/// teardown as PreDelete with its ServiceAccount, Role, RoleBinding and NetworkPolicy live and
/// no 403, deletes every resource (Epinio's too), runs the PostDelete copy (nothing left to
/// do: no writes), and leaves nothing of ours anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn sync_resync_and_delete_under_argo_cd_3_5() {
    let epinio = Chart::new("1.13.9").objects();
    let w = World::with_objects(BIN, epinio.clone()).await;
    let values = values(json!({}));
    let docs = manifests(&w, &values, &epinio);
    let mut app = Application::new(&w, ArgoCd::V3_5, docs.clone());

    let first = app.sync().await.expect("first sync");
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].phase, first[0].command.as_str()),
        (Phase::PostSync, "provision")
    );
    ran_with_everything(&first[0], &[]);
    assert!(w
        .annotation("epinio-server", "eks.amazonaws.com/role-arn")
        .is_some());
    let created: Vec<String> = app
        .steps
        .iter()
        .filter_map(|s| match s {
            argocd::Step::Created(Phase::PostSync, k) => Some(k.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        [
            "NetworkPolicy/epinio-irsa",
            "ServiceAccount/epinio-irsa",
            "Role/epinio-irsa",
            "RoleBinding/epinio-irsa",
            "Job/epinio-irsa-provision"
        ]
    );
    // HookSucceeded: none of the hook objects outlives the sync.
    for k in ["ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"] {
        assert!(w
            .kube
            .list(api(k), k, NAMESPACE)
            .iter()
            .all(|o| o["metadata"]["name"] != SA));
    }

    let second = app.sync().await.expect("second sync");
    assert_eq!(second.len(), 1);
    second[0].output.assert_ok().assert_no_writes();

    let runs = app.delete(Deletion::default()).await.expect("deletion");
    let teardowns = teardown_runs(&runs);
    assert_eq!(teardowns.len(), 2, "{runs:?}");
    assert_eq!(
        (teardowns[0].phase, teardowns[0].job.as_str()),
        (Phase::PreDelete, "epinio-irsa-teardown")
    );
    ran_with_everything(teardowns[0], &[]);
    assert!(
        teardowns[0].had("Deployment", "epinio-server"),
        "PreDelete runs before the Application's resources are deleted"
    );
    assert_eq!(
        (teardowns[1].phase, teardowns[1].job.as_str()),
        (Phase::PostDelete, POST_DELETE_JOB)
    );
    ran_with_everything(teardowns[1], &[]);
    assert!(
        !teardowns[1].had("Deployment", "epinio-server"),
        "PostDelete runs after"
    );
    teardowns[1].output.assert_no_writes();
    nothing_of_ours_left(&w, &app, &docs).await;
}

fn api(kind: &str) -> &'static str {
    match kind {
        "Role" | "RoleBinding" => "rbac.authorization.k8s.io/v1",
        "NetworkPolicy" => "networking.k8s.io/v1",
        _ => "v1",
    }
}

/// argo-cd #29100 (open in 3.5.0): the PreDelete Job is deleted (with the Application's
/// resources) before it runs. The PostDelete copy, with its own ServiceAccount, Role,
/// RoleBinding and NetworkPolicy created again as PostDelete hooks, removes everything: Epinio
/// is a separate Application here, so its ServiceAccounts are still there and lose their IRSA
/// annotations, and the staging ServiceAccount the job made is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn the_pre_delete_race_leaves_it_to_post_delete() {
    let w = World::with_objects(
        BIN,
        Chart::new("1.13.9")
            .staging_workloads("epinio-staging")
            .objects(),
    )
    .await;
    let values =
        values(json!({"server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}}}));
    let docs = manifests(&w, &values, &[]);
    let mut app = Application::new(&w, ArgoCd::V3_5, docs.clone());
    app.sync().await.expect("sync");
    assert!(w.service_account("epinio-staging").is_some());
    assert!(w
        .annotation("epinio-staging", "eks.amazonaws.com/role-arn")
        .is_some());

    let runs = app
        .delete(Deletion {
            pre_delete_race: true,
        })
        .await
        .expect("deletion");
    let teardowns = teardown_runs(&runs);
    assert_eq!(teardowns.len(), 1, "{runs:?}");
    assert_eq!(teardowns[0].phase, Phase::PostDelete);
    ran_with_everything(teardowns[0], &[]);
    assert!(teardowns[0].output.stdout.contains("deleted"));
    // The PreDelete Job was created and deleted without running.
    let pre_job = app.steps.iter().any(|s| {
        matches!(s, argocd::Step::Created(Phase::PreDelete, k) if k.name == "epinio-irsa-teardown")
    });
    let killed = app.steps.iter().any(
        |s| matches!(s, argocd::Step::Deleted("cascade", k) if k.name == "epinio-irsa-teardown"),
    );
    assert!(pre_job && killed, "{:?}", app.steps);
    assert!(w.service_account("epinio-server").is_some());
    nothing_of_ours_left(&w, &app, &docs).await;
}

/// Argo CD 2.10 - 3.2 (PostDelete only): the PostDelete copy alone tears down, after Epinio's
/// own resources (same Application) are gone.
#[tokio::test(flavor = "multi_thread")]
async fn argo_cd_2_10_tears_down_in_post_delete() {
    let epinio = Chart::new("1.13.9").objects();
    let w = World::with_objects(BIN, epinio.clone()).await;
    let values = values(json!({}));
    let docs = manifests(&w, &values, &epinio);
    let mut app = Application::new(&w, ArgoCd::V2_10, docs.clone());
    app.sync().await.expect("sync");
    let runs = app.delete(Deletion::default()).await.expect("deletion");
    let teardowns = teardown_runs(&runs);
    assert_eq!(teardowns.len(), 1, "{runs:?}");
    assert_eq!(
        (teardowns[0].phase, teardowns[0].job.as_str()),
        (Phase::PostDelete, POST_DELETE_JOB)
    );
    ran_with_everything(teardowns[0], &[]);
    nothing_of_ours_left(&w, &app, &docs).await;
}

/// EKS Pod Identity: the associations go too (race, so the PostDelete copy does it).
#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_associations_go_with_the_application() {
    let epinio = Chart::new("1.13.9")
        .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging")
        .objects();
    let w = World::with_objects(BIN, epinio.clone()).await;
    w.install_agent("ACTIVE");
    let values = values(json!({
        "server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}},
        "irsa": {"mode": "pod-identity"},
    }));
    let docs = manifests(&w, &values, &epinio);
    let mut app = Application::new(&w, ArgoCd::V3_5, docs.clone());
    app.sync().await.expect("sync");
    assert_eq!(w.pod_identity().associations().len(), 2);
    let runs = app
        .delete(Deletion {
            pre_delete_race: true,
        })
        .await
        .expect("deletion");
    ran_with_everything(teardown_runs(&runs)[0], &[]);
    nothing_of_ours_left(&w, &app, &docs).await;
}

/// Static keys: the PostDelete copy reads them from the chart's Secret, a PostDelete hook too.
#[tokio::test(flavor = "multi_thread")]
async fn static_keys_the_post_delete_copy_has_its_secret() {
    let epinio = Chart::new("1.13.9").objects();
    let w = World::with_objects(BIN, epinio.clone()).await;
    let values =
        values(json!({"s3": {"accessKeyID": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "x"}}));
    let docs = manifests(&w, &values, &epinio);
    let mut app = Application::new(&w, ArgoCd::V3_5, docs.clone());
    let runs = app.sync().await.expect("sync");
    ran_with_everything(&runs[0], &[("Secret", "epinio-irsa-s3-keys")]);
    let runs = app
        .delete(Deletion {
            pre_delete_race: true,
        })
        .await
        .expect("deletion");
    ran_with_everything(
        teardown_runs(&runs)[0],
        &[("Secret", "epinio-irsa-s3-keys")],
    );
    nothing_of_ours_left(&w, &app, &docs).await;
}

/// Gateway mode: the gateway's role goes with the Application; the PostDelete copy runs after
/// the gateway's keys Secret (a release object) is deleted, with its own copy of the pair and
/// the gateway mode's extra Role and RoleBinding.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_mode_the_post_delete_copy_has_its_keys() {
    let epinio = Chart::new("1.14.1").objects();
    let w = World::with_objects(BIN, epinio.clone()).await;
    w.kube
        .enable_rollouts(std::time::Duration::from_millis(100));
    let values = gateway_values();
    let docs = manifests(&w, &values, &epinio);
    let mut app = Application::new(&w, ArgoCd::V3_5, docs.clone());
    let runs = app.sync().await.expect("sync");
    ran_with_everything(&runs[0], &[("Role", "epinio-irsa-gateway-hook")]);
    assert!(w
        .annotation("epinio-irsa-gateway", "eks.amazonaws.com/role-arn")
        .is_some());
    let runs = app
        .delete(Deletion {
            pre_delete_race: true,
        })
        .await
        .expect("deletion");
    let t = teardown_runs(&runs)[0];
    ran_with_everything(
        t,
        &[
            ("Role", "epinio-irsa-gateway-hook"),
            ("RoleBinding", "epinio-irsa-gateway-hook"),
            ("Secret", "epinio-irsa-teardown-keys"),
        ],
    );
    assert!(!t.had("Secret", "epinio-irsa-gateway-keys"));
    nothing_of_ours_left(&w, &app, &docs).await;
}

/// Before Argo CD 2.10 nothing runs on deletion; the README's teardown by hand does it. Its
/// first command, as written there, is run with the real helm (`helm template ... --set
/// irsa.argocd.enabled=true`); `kubectl apply -l epinio-irsa/post-delete=true` is applied as
/// kubectl selects (metadata.labels equal): the ServiceAccount, Role, RoleBinding, NetworkPolicy
/// and the PostDelete Job, nothing else; the stand-in runs the Job under that RBAC, and the
/// README's `kubectl delete -l` leaves nothing. (The real kubectl cannot be used here: the
/// stand-in's discovery serves no `batch/v1`, and kubectl sends no bearer token over plain
/// HTTP, which the stand-in's RBAC needs.)
#[tokio::test(flavor = "multi_thread")]
async fn before_argo_cd_2_10_the_readme_tears_down_by_hand() {
    let epinio = Chart::new("1.13.9").objects();
    let w = World::with_objects(BIN, epinio.clone()).await;
    let values = values(json!({}));
    let docs = manifests(&w, &values, &epinio);
    let mut app = Application::new(&w, ArgoCd::Before2_10, docs.clone());
    app.sync().await.expect("sync");
    assert!(app
        .delete(Deletion::default())
        .await
        .expect("deletion")
        .is_empty());
    assert!(!w.iam_state().await["roles"].as_object().unwrap().is_empty());

    // The values file as the README's command gets it: everything but irsa.argocd.enabled,
    // which the Application passes as a parameter and the command as --set.
    let mut file_values = values.clone();
    file_values["irsa"]
        .as_object_mut()
        .unwrap()
        .remove("argocd");
    file_values["irsa"]["clusterName"] = json!("demo");
    file_values["irsa"]["image"] = json!({"repository": "registry.example.com/epinio-irsa"});
    let file = w.dir.join("epinio-values.yaml");
    std::fs::write(&file, serde_json::to_string(&file_values).unwrap()).unwrap();
    let out = std::process::Command::new(testkit::world::helm())
        .args(["template", "epinio-irsa"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("chart"))
        .args(["-n", NAMESPACE, "-f"])
        .arg(&file)
        .args(["--set", "irsa.argocd.enabled=true"])
        .env("HOME", &w.dir)
        .output()
        .expect("helm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = argocd::parse_manifests(&String::from_utf8_lossy(&out.stdout));
    let picked = argocd::labelled(&rendered, "epinio-irsa/post-delete", "true");
    let mut names: Vec<String> = picked.iter().map(|d| Key::of(d).to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Job/epinio-irsa-teardown-post-delete",
            "NetworkPolicy/epinio-irsa",
            "Role/epinio-irsa",
            "RoleBinding/epinio-irsa",
            "ServiceAccount/epinio-irsa",
        ]
    );
    for d in &picked {
        w.kube.seed((*d).clone());
    }
    let job = find(&rendered, "Job", POST_DELETE_JOB);
    let run = argocd::run_job(&w, Phase::PostDelete, job, &docs)
        .await
        .expect("the Job starts");
    ran_with_everything(&run, &[]);

    // kubectl -n epinio delete sa,role,rolebinding,networkpolicy,secret,job -l epinio-irsa/post-delete=true
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "Secret",
        "Job",
    ] {
        let api_version = match kind {
            "Job" => "batch/v1",
            other => api(other),
        };
        let live = w.kube.list(api_version, kind, NAMESPACE);
        for d in argocd::labelled(&live, "epinio-irsa/post-delete", "true") {
            let k = Key::of(d);
            w.kube
                .delete(&k.api_version, &k.kind, &k.namespace, &k.name);
        }
    }
    nothing_of_ours_left(&w, &app, &docs).await;
}
