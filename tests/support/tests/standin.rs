//! The Kubernetes stand-in, driven by the clients the project really uses:
//! kube-rs (through a kubeconfig the stand-in writes) and kubectl.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};
use testkit::kube::{KubeStandIn, RecordedRequest};

const NS: &str = "epinio";
const ROLE_ARN: &str = "eks.amazonaws.com/role-arn";

/// A kube-rs client configured the way the job is: from a kubeconfig file.
async fn client(standin: &KubeStandIn) -> Client {
    let path = scratch_file(standin, "kubeconfig");
    standin
        .write_kubeconfig(&path, NS)
        .expect("write kubeconfig");
    let kubeconfig = Kubeconfig::read_from(&path).expect("read kubeconfig");
    std::fs::remove_file(&path).ok();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    assert_eq!(config.default_namespace, NS);
    Client::try_from(config).expect("client")
}

fn scratch_file(standin: &KubeStandIn, what: &str) -> PathBuf {
    let port = standin.url().rsplit(':').next().unwrap().to_owned();
    std::env::temp_dir().join(format!("testkit-{}-{port}-{what}", std::process::id()))
}

async fn setup() -> (KubeStandIn, Api<ServiceAccount>) {
    let standin = KubeStandIn::start().await;
    let api = Api::default_namespaced(client(&standin).await);
    (standin, api)
}

fn sa(name: &str, annotations: &[(&str, &str)]) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn annotations(sa: &ServiceAccount) -> BTreeMap<String, String> {
    sa.metadata.annotations.clone().unwrap_or_default()
}

/// `(manager, operation, fieldsV1)` of each managedFields entry.
fn managers(sa: &ServiceAccount) -> Vec<(String, String, Value)> {
    sa.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                e.fields_v1
                    .as_ref()
                    .map(|f| f.0.clone())
                    .unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn owns_annotation(entry: &(String, String, Value), key: &str) -> bool {
    entry
        .2
        .pointer(&format!(
            "/f:metadata/f:annotations/f:{}",
            key.replace('/', "~1")
        ))
        .is_some()
}

fn rv(sa: &ServiceAccount) -> String {
    sa.metadata.resource_version.clone().unwrap()
}

fn writes(standin: &KubeStandIn) -> Vec<RecordedRequest> {
    standin
        .requests()
        .into_iter()
        .filter(RecordedRequest::is_write)
        .collect()
}

#[tokio::test]
async fn create_get_list_delete_and_not_found() {
    let (standin, api) = setup().await;
    let mut labelled = sa("epinio-server", &[]);
    labelled.metadata.labels = Some([("app".to_owned(), "epinio".to_owned())].into());
    let created = api.create(&PostParams::default(), &labelled).await.unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let other = api
        .create(&PostParams::default(), &sa("other", &[]))
        .await
        .unwrap();

    let got = api.get("epinio-server").await.unwrap();
    assert_eq!(got.metadata.uid, meta.uid);
    let names = |list: kube::core::ObjectList<ServiceAccount>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect()
    };
    assert_eq!(
        names(api.list(&ListParams::default()).await.unwrap()),
        ["epinio-server", "other"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=epinio"))
                .await
                .unwrap()
        ),
        ["epinio-server"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=other"))
                .await
                .unwrap()
        ),
        ["other"]
    );
    let elsewhere: Api<ServiceAccount> = Api::namespaced(client(&standin).await, "kube-system");
    assert!(elsewhere
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let everywhere: Api<ServiceAccount> = Api::all(client(&standin).await);
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    let again = api_error(api.create(&PostParams::default(), &sa("other", &[])).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(again.message, r#"serviceaccounts "other" already exists"#);

    let deleted = api.delete("other", &DeleteParams::default()).await.unwrap();
    let status = deleted.right().expect("a Status, not the object");
    assert!(status.is_success());
    assert_eq!(Some(status.details.unwrap().uid), other.metadata.uid);

    let missing = api_error(api.get("other").await);
    assert!(missing.is_not_found());
    assert_eq!(missing.message, r#"serviceaccounts "other" not found"#);
    let details = missing.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("other", "serviceaccounts")
    );
    assert!(api.get_opt("other").await.unwrap().is_none());
    assert!(api_error(api.delete("other", &DeleteParams::default()).await).is_not_found());
    assert_eq!(standin.list("v1", "ServiceAccount", NS).len(), 1);
}

#[tokio::test]
async fn server_side_apply_creates_and_records_the_manager() {
    let (standin, api) = setup().await;
    let applied = api
        .patch(
            "epinio-server",
            &apply("epinio-irsa"),
            &Patch::Apply(sa("epinio-server", &[(ROLE_ARN, "arn:1")])),
        )
        .await
        .unwrap();
    assert_eq!(annotations(&applied)[ROLE_ARN], "arn:1");
    assert_eq!(applied.metadata.generation, Some(1));
    assert_eq!(
        managers(&applied),
        [(
            "epinio-irsa".to_owned(),
            "Apply".to_owned(),
            json!({"f:metadata": {"f:annotations": {"f:eks.amazonaws.com/role-arn": {}}}})
        )]
    );
    let entry = &applied.metadata.managed_fields.as_ref().unwrap()[0];
    assert_eq!(entry.api_version.as_deref(), Some("v1"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert!(entry.time.is_some());

    let log = standin.requests();
    assert_eq!(log.len(), 1);
    let req = &log[0];
    assert_eq!(req.method, "PATCH");
    assert_eq!(
        req.path,
        "/api/v1/namespaces/epinio/serviceaccounts/epinio-server"
    );
    assert_eq!(
        req.query.get("fieldManager").map(String::as_str),
        Some("epinio-irsa")
    );
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        req.body.as_ref().unwrap()["metadata"]["annotations"][ROLE_ARN],
        "arn:1"
    );
    assert_eq!((req.status, req.changed), (201, true));
    // What the API returned is what is stored.
    let stored = standin
        .get("v1", "ServiceAccount", NS, "epinio-server")
        .unwrap();
    assert_eq!(serde_json::to_value(&applied).unwrap(), stored);
}

#[tokio::test]
async fn two_managers_applying_the_same_value_share_it() {
    let (_standin, api) = setup().await;
    let name = "epinio-server";
    api.patch(
        name,
        &apply("helm"),
        &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1"), ("helm", "yes")])),
    )
    .await
    .unwrap();
    let shared = api
        .patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1")])),
        )
        .await
        .expect("equal values do not conflict");
    let owners = managers(&shared);
    assert_eq!(owners.len(), 2);
    assert!(owners.iter().all(|e| owns_annotation(e, ROLE_ARN)));

    // epinio-irsa lets go: helm still owns the field, so it stays.
    let released = api
        .patch(name, &apply("epinio-irsa"), &Patch::Apply(sa(name, &[])))
        .await
        .unwrap();
    assert_eq!(annotations(&released)[ROLE_ARN], "arn:1");
    assert_eq!(
        managers(&released).len(),
        1,
        "epinio-irsa owns nothing and is gone: {:?}",
        managers(&released)
    );
    assert_eq!(managers(&released)[0].0, "helm");

    // helm lets go too: now nobody owns it and it is removed.
    let gone = api
        .patch(
            name,
            &apply("helm"),
            &Patch::Apply(sa(name, &[("helm", "yes")])),
        )
        .await
        .unwrap();
    assert_eq!(
        annotations(&gone),
        BTreeMap::from([("helm".to_owned(), "yes".to_owned())])
    );
}

#[tokio::test]
async fn conflicts_name_the_other_manager_and_force_takes_over() {
    let (standin, api) = setup().await;
    let name = "epinio-server";
    let by_helm = api
        .patch(
            name,
            &apply("helm"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:helm")])),
        )
        .await
        .unwrap();
    let conflict = api_error(
        api.patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:irsa")])),
        )
        .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        r#"Apply failed with 1 conflict: conflict with "helm": .metadata.annotations.eks.amazonaws.com/role-arn"#
    );
    let cause = &conflict.details.unwrap().causes[0];
    assert_eq!(cause.reason, "FieldManagerConflict");
    assert_eq!(
        cause.field,
        ".metadata.annotations.eks.amazonaws.com/role-arn"
    );
    let unchanged = api.get(name).await.unwrap();
    assert_eq!(rv(&unchanged), rv(&by_helm));
    assert!(!standin.requests().last().unwrap().changed);

    let forced = api
        .patch(
            name,
            &apply("epinio-irsa").force(),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:irsa")])),
        )
        .await
        .unwrap();
    assert_eq!(annotations(&forced)[ROLE_ARN], "arn:irsa");
    let owners = managers(&forced);
    assert_eq!(
        owners.len(),
        1,
        "helm owned nothing else and is gone: {owners:?}"
    );
    assert_eq!(owners[0].0, "epinio-irsa");
    assert_eq!(
        standin
            .requests()
            .last()
            .unwrap()
            .query
            .get("force")
            .map(String::as_str),
        Some("true")
    );
}

#[tokio::test]
async fn removing_a_field_from_an_apply_deletes_it() {
    let (_standin, api) = setup().await;
    let name = "epinio-server";
    let both = api
        .patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1"), ("keep", "1")])),
        )
        .await
        .unwrap();
    let one = api
        .patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[("keep", "1")])),
        )
        .await
        .unwrap();
    assert_eq!(
        annotations(&one),
        BTreeMap::from([("keep".to_owned(), "1".to_owned())])
    );
    let number = |sa: &ServiceAccount| rv(sa).parse::<u64>().expect("numeric resourceVersion");
    assert!(number(&one) > number(&both));
    let none = api
        .patch(name, &apply("epinio-irsa"), &Patch::Apply(sa(name, &[])))
        .await
        .unwrap();
    assert_eq!(
        none.metadata.annotations, None,
        "an emptied annotation map disappears"
    );
    assert!(none.metadata.managed_fields.is_none());
}

#[tokio::test]
async fn an_update_takes_ownership_from_the_applier() {
    let (_standin, api) = setup().await;
    let name = "epinio-server";
    api.patch(
        name,
        &apply("epinio-irsa"),
        &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1")])),
    )
    .await
    .unwrap();
    let edited = api
        .patch(
            name,
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"annotations": {ROLE_ARN: "arn:edited"}}})),
        )
        .await
        .unwrap();
    let owners = managers(&edited);
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (owners[0].0.as_str(), owners[0].1.as_str()),
        ("kubectl-edit", "Update")
    );
    assert!(owns_annotation(&owners[0], ROLE_ARN));

    // Re-applying the old value now conflicts with the editor.
    let conflict = api_error(
        api.patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1")])),
        )
        .await,
    );
    assert_eq!(
        conflict.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .metadata.annotations.eks.amazonaws.com/role-arn"#
    );

    // A writer without fieldManager is named after nothing: "unknown" (kube-rs sends no User-Agent).
    let anonymous = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert!(managers(&anonymous)
        .iter()
        .any(|(m, op, _)| m == "unknown" && op == "Update"));
}

#[tokio::test]
async fn resource_version_and_generation_move_only_on_real_changes() {
    let (standin, api) = setup().await;
    let name = "epinio-server";
    let first = api
        .patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1")])),
        )
        .await
        .unwrap();
    let same = api
        .patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:1")])),
        )
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&first));
    assert_eq!(
        same.metadata.managed_fields, first.metadata.managed_fields,
        "no time bump either"
    );
    let merged = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROLE_ARN: "arn:1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(rv(&merged), rv(&first));
    let replaced = api
        .replace(name, &PostParams::default(), &same)
        .await
        .unwrap();
    assert_eq!(rv(&replaced), rv(&first));
    assert_eq!(standin.changes(), 1);
    assert_eq!(
        standin
            .requests()
            .iter()
            .map(|r| (r.status, r.changed))
            .collect::<Vec<_>>(),
        [(201, true), (200, false), (200, false), (200, false)]
    );

    let changed = api
        .patch(
            name,
            &apply("epinio-irsa"),
            &Patch::Apply(sa(name, &[(ROLE_ARN, "arn:2")])),
        )
        .await
        .unwrap();
    assert_ne!(rv(&changed), rv(&first));
    assert_eq!(
        changed.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    assert_eq!(standin.changes(), 2);

    // A stale resourceVersion is refused.
    let stale = api_error(api.replace(name, &PostParams::default(), &first).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        stale.message,
        r#"Operation cannot be fulfilled on serviceaccounts "epinio-server": the object has been modified; please apply your changes to the latest version and try again"#
    );

    // Generation follows spec changes only.
    let deployments: Api<Deployment> = Api::default_namespaced(client(&standin).await);
    let deployment = |replicas: i32, label: &str| -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"v": label}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        }))
        .unwrap()
    };
    let web = deployments
        .patch("web", &apply("helm"), &Patch::Apply(deployment(1, "a")))
        .await
        .unwrap();
    assert_eq!(web.metadata.generation, Some(1));
    let relabelled = deployments
        .patch("web", &apply("helm"), &Patch::Apply(deployment(1, "b")))
        .await
        .unwrap();
    assert_eq!(relabelled.metadata.generation, Some(1));
    let scaled = deployments
        .patch("web", &apply("helm"), &Patch::Apply(deployment(3, "b")))
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
}

/// kube's `Patch::Json` needs a feature the project does not enable, so the
/// JSON patch goes out as a raw request.
async fn json_patch(client: &Client, name: &str, ops: Value) -> Result<Value, kube::Error> {
    let request = hyper::Request::patch(format!(
        "/api/v1/namespaces/{NS}/serviceaccounts/{name}?fieldManager=ops"
    ))
    .header("content-type", "application/json-patch+json")
    .body(serde_json::to_vec(&ops).unwrap())
    .unwrap();
    client.request::<Value>(request).await
}

#[tokio::test]
async fn json_patch_applies_rfc6902_operations() {
    let standin = KubeStandIn::start().await;
    let client = client(&standin).await;
    let api: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &sa("epinio-server", &[("a", "1")]))
        .await
        .unwrap();
    let patched = json_patch(
        &client,
        "epinio-server",
        json!([
            {"op": "test", "path": "/metadata/annotations/a", "value": "1"},
            {"op": "add", "path": "/metadata/annotations/eks.amazonaws.com~1role-arn", "value": "arn:1"},
            {"op": "remove", "path": "/metadata/annotations/a"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({ROLE_ARN: "arn:1"})
    );
    let failed = api_error(
        json_patch(
            &client,
            "epinio-server",
            json!([{"op": "test", "path": "/metadata/annotations/a", "value": "1"}]),
        )
        .await,
    );
    assert_eq!((failed.code, failed.reason.as_str()), (422, "Invalid"));
    let garbage = api_error(json_patch(&client, "epinio-server", json!({"op": "add"})).await);
    assert_eq!((garbage.code, garbage.reason.as_str()), (400, "BadRequest"));
}

#[tokio::test]
async fn delete_honours_preconditions() {
    let (standin, api) = setup().await;
    let created = api
        .create(&PostParams::default(), &sa("epinio-server", &[]))
        .await
        .unwrap();
    let with = |uid: Option<&str>, rv: Option<&str>| DeleteParams {
        preconditions: Some(Preconditions {
            uid: uid.map(str::to_owned),
            resource_version: rv.map(str::to_owned),
        }),
        ..Default::default()
    };
    let wrong_uid = api_error(
        api.delete("epinio-server", &with(Some("not-the-uid"), None))
            .await,
    );
    assert_eq!(
        (wrong_uid.code, wrong_uid.reason.as_str()),
        (409, "Conflict")
    );
    assert_eq!(
        wrong_uid.message,
        format!(
            r#"Operation cannot be fulfilled on serviceaccounts "epinio-server": Precondition failed: UID in precondition: not-the-uid, UID in object meta: {}"#,
            created.metadata.uid.as_deref().unwrap()
        )
    );
    let wrong_rv = api_error(api.delete("epinio-server", &with(None, Some("999"))).await);
    assert_eq!(wrong_rv.code, 409);
    assert!(standin
        .get("v1", "ServiceAccount", NS, "epinio-server")
        .is_some());
    api.delete(
        "epinio-server",
        &with(created.metadata.uid.as_deref(), Some(&rv(&created))),
    )
    .await
    .unwrap();
    assert!(standin
        .get("v1", "ServiceAccount", NS, "epinio-server")
        .is_none());
}

#[tokio::test]
async fn dry_run_answers_without_storing() {
    let (standin, api) = setup().await;
    let would = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &sa("epinio-server", &[]),
        )
        .await
        .unwrap();
    assert_eq!(would.metadata.name.as_deref(), Some("epinio-server"));
    assert!(standin
        .get("v1", "ServiceAccount", NS, "epinio-server")
        .is_none());

    let real = api
        .create(&PostParams::default(), &sa("epinio-server", &[]))
        .await
        .unwrap();
    let would = api
        .patch(
            "epinio-server",
            &apply("epinio-irsa").dry_run(),
            &Patch::Apply(sa("epinio-server", &[(ROLE_ARN, "arn:1")])),
        )
        .await
        .unwrap();
    assert_eq!(annotations(&would)[ROLE_ARN], "arn:1");
    assert_eq!(rv(&would), rv(&real));
    assert_eq!(
        api.get("epinio-server").await.unwrap().metadata.annotations,
        None
    );

    api.delete(
        "epinio-server",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(standin
        .get("v1", "ServiceAccount", NS, "epinio-server")
        .is_some());
    assert_eq!(standin.changes(), 1);
    assert_eq!(
        writes(&standin)
            .iter()
            .filter(|r| r.query.contains_key("dryRun"))
            .count(),
        2
    );
}

#[tokio::test]
async fn invalid_objects_are_422_with_the_apiserver_wording() {
    let (standin, api) = setup().await;
    let bad_key = api_error(
        api.patch(
            "epinio-server",
            &apply("epinio-irsa"),
            &Patch::Apply(sa("epinio-server", &[("bad key!", "x")])),
        )
        .await,
    );
    assert_eq!((bad_key.code, bad_key.reason.as_str()), (422, "Invalid"));
    assert!(
        bad_key.message.starts_with(
            r#"ServiceAccount "epinio-server" is invalid: metadata.annotations: Invalid value: "bad key!": name part must consist of alphanumeric characters"#
        ),
        "{}",
        bad_key.message
    );
    let details = bad_key.details.unwrap();
    assert_eq!(details.kind, "ServiceAccount");
    assert_eq!(details.causes[0].field, "metadata.annotations");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");

    let bad_name = api_error(
        api.create(&PostParams::default(), &sa("Epinio_Server", &[]))
            .await,
    );
    assert_eq!(bad_name.code, 422);
    assert!(
        bad_name.message.contains("a lowercase RFC 1123 subdomain"),
        "{}",
        bad_name.message
    );

    let mut long_label = sa("epinio-server", &[]);
    long_label.metadata.labels = Some([("app".to_owned(), "x".repeat(64))].into());
    let too_long = api_error(api.create(&PostParams::default(), &long_label).await);
    assert!(
        too_long
            .message
            .ends_with("must be no more than 63 characters"),
        "{}",
        too_long.message
    );

    let mismatch = api_error(
        api.patch(
            "epinio-server",
            &apply("epinio-irsa"),
            &Patch::Apply(sa("other", &[])),
        )
        .await,
    );
    assert_eq!(mismatch.code, 422);
    let wrong_kind = api_error(
        api.patch(
            "epinio-server",
            &apply("epinio-irsa"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "epinio-server"}})),
        )
        .await,
    );
    assert_eq!(wrong_kind.code, 422);
    assert!(standin.snapshot().as_array().unwrap().is_empty());
    assert_eq!(standin.changes(), 0);
}

#[tokio::test]
async fn malformed_requests_are_refused_like_the_apiserver_does() {
    let standin = KubeStandIn::start().await;
    let client = client(&standin).await;
    let raw = |method: &str, path: &str, content_type: &str, body: &str| {
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let path = "/api/v1/namespaces/epinio/serviceaccounts/x";
    let body = r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"x"}}"#;
    let no_manager = api_error(
        client
            .request::<Value>(raw("PATCH", path, "application/apply-patch+yaml", body))
            .await,
    );
    assert_eq!(
        (no_manager.code, no_manager.reason.as_str()),
        (400, "BadRequest")
    );
    assert!(
        no_manager.message.contains("fieldManager: Required value"),
        "{}",
        no_manager.message
    );
    let odd_type = api_error(
        client
            .request::<Value>(raw("PATCH", path, "text/plain", body))
            .await,
    );
    assert_eq!(
        (odd_type.code, odd_type.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    let protobuf = api_error(
        client
            .request::<Value>(raw(
                "POST",
                "/api/v1/namespaces/epinio/serviceaccounts",
                "application/vnd.kubernetes.protobuf",
                "k8s\0",
            ))
            .await,
    );
    assert_eq!(protobuf.code, 415);
    let unknown = api_error(
        client
            .request::<Value>(raw(
                "GET",
                "/api/v1/namespaces/epinio/widgets",
                "application/json",
                "",
            ))
            .await,
    );
    assert_eq!(unknown.code, 404);
    let watch = api_error(
        client
            .request::<Value>(raw(
                "GET",
                "/api/v1/namespaces/epinio/serviceaccounts?watch=true",
                "application/json",
                "",
            ))
            .await,
    );
    assert_eq!(watch.code, 405);
    assert!(standin.requests().iter().all(|r| !r.changed));
}

#[tokio::test]
async fn request_log_and_changes_describe_what_happened() {
    let (standin, api) = setup().await;
    api.create(&PostParams::default(), &sa("a", &[]))
        .await
        .unwrap();
    api.get("a").await.unwrap();
    api.patch(
        "a",
        &apply("epinio-irsa"),
        &Patch::Apply(sa("a", &[(ROLE_ARN, "arn:1")])),
    )
    .await
    .unwrap();
    api.patch(
        "a",
        &apply("epinio-irsa"),
        &Patch::Apply(sa("a", &[(ROLE_ARN, "arn:1")])),
    )
    .await
    .unwrap();
    let _ = api.get("missing").await;
    let log: Vec<(String, String, u16, bool, bool)> = standin
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.rsplit('/').next().unwrap().to_owned(),
                r.status,
                r.changed,
                r.is_write(),
            )
        })
        .collect();
    let row = |m: &str, p: &str, s: u16, c: bool, w: bool| (m.to_owned(), p.to_owned(), s, c, w);
    assert_eq!(
        log,
        [
            row("POST", "serviceaccounts", 201, true, true),
            row("GET", "a", 200, false, false),
            row("PATCH", "a", 200, true, true),
            row("PATCH", "a", 200, false, true),
            row("GET", "missing", 404, false, false),
        ]
    );
    assert_eq!(standin.changes(), 2);
    assert_eq!(writes(&standin).len(), 3);
    standin.clear_requests();
    assert!(standin.requests().is_empty());
    assert_eq!(standin.changes(), 0);
}

#[tokio::test]
async fn an_interceptor_answers_instead_of_the_stand_in() {
    let (standin, api) = setup().await;
    api.create(&PostParams::default(), &sa("a", &[]))
        .await
        .unwrap();
    let before = standin.snapshot();
    standin.set_interceptor(Some(Arc::new(|req: &RecordedRequest| {
        assert_eq!(
            req.status, 0,
            "the interceptor sees the request before it is answered"
        );
        // 500, not 503: kube-rs retries 429/503/504 by default (15 times,
        // with backoff), which would make this test slow rather than useful.
        (req.method == "PATCH").then(|| {
            (
                500,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": "injected", "reason": "InternalError", "code": 500}),
            )
        })
    })));
    let injected = api_error(
        api.patch(
            "a",
            &apply("epinio-irsa"),
            &Patch::Apply(sa("a", &[(ROLE_ARN, "x")])),
        )
        .await,
    );
    assert_eq!(
        (injected.code, injected.message.as_str()),
        (500, "injected")
    );
    assert_eq!(
        standin.snapshot(),
        before,
        "an intercepted request does not touch state"
    );
    api.get("a")
        .await
        .expect("requests the interceptor passes on are served");
    let last_two: Vec<(String, u16)> = standin
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        last_two,
        [("GET".to_owned(), 200), ("PATCH".to_owned(), 500)]
    );
    standin.set_interceptor(None);
    api.patch(
        "a",
        &apply("epinio-irsa"),
        &Patch::Apply(sa("a", &[(ROLE_ARN, "x")])),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn seeded_objects_are_served_and_snapshots_are_ordered() {
    let (standin, api) = setup().await;
    standin.seed(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "z", "namespace": NS}}));
    standin.seed(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "b", "namespace": NS, "uid": "fixed"}}));
    standin.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": NS}, "data": {"k": "v"}}));
    assert!(standin.requests().is_empty());
    let b = api.get("b").await.unwrap();
    assert_eq!(b.metadata.uid.as_deref(), Some("fixed"));
    assert_eq!(b.metadata.generation, Some(1));
    assert!(
        b.metadata.managed_fields.is_none(),
        "nobody owns seeded fields"
    );
    let order: Vec<(String, String)> = standin
        .snapshot()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_owned(),
                o["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pair = |k: &str, n: &str| (k.to_owned(), n.to_owned());
    assert_eq!(
        order,
        [
            pair("ConfigMap", "c"),
            pair("ServiceAccount", "b"),
            pair("ServiceAccount", "z")
        ]
    );
    // Nobody owns seeded fields, so an apply over them does not conflict.
    api.patch(
        "z",
        &apply("epinio-irsa"),
        &Patch::Apply(sa("z", &[(ROLE_ARN, "x")])),
    )
    .await
    .unwrap();
}

/// The standalone binary, killed when the test ends.
struct StandInProcess {
    child: Child,
    url: String,
}

impl Drop for StandInProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_binary(args: &[&str]) -> StandInProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-standin"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run kube-standin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read kube-standin stdout");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from kube-standin: {line:?}"))
        .to_owned();
    StandInProcess { child, url }
}

fn kubectl(args: &[&str]) -> String {
    const KUBECTL: &str = "/usr/bin/kubectl";
    assert!(
        Path::new(KUBECTL).is_file(),
        "{KUBECTL} not found: this test needs kubectl 1.32, preinstalled on the project's machine image (see docs/tooling.md)"
    );
    let out = Command::new(KUBECTL)
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kubectl_gets_and_applies_against_the_standalone_binary() {
    let dir = std::env::temp_dir().join(format!("testkit-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.json");
    std::fs::write(
        &seed,
        json!({"kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "epinio-server", "namespace": NS}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "elsewhere", "namespace": "other"}},
        ]})
        .to_string(),
    )
    .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let process = spawn_binary(&[
        "--seed",
        seed.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--namespace",
        NS,
    ]);

    let by_server = kubectl(&["--server", &process.url, "get", "serviceaccounts", "-n", NS]);
    assert!(by_server.contains("epinio-server"), "{by_server}");
    assert!(!by_server.contains("elsewhere"), "{by_server}");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let names = kubectl(&[
        "--kubeconfig",
        kubeconfig,
        "get",
        "serviceaccounts",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "serviceaccount/epinio-server");

    let manifest = dir.join("sa.json");
    std::fs::write(
        &manifest,
        serde_json::to_string(&sa(
            "applied",
            &[(ROLE_ARN, "arn:aws:iam::123456789012:role/x")],
        ))
        .unwrap(),
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    kubectl(&[
        "--kubeconfig",
        kubeconfig,
        "apply",
        "--validate=false",
        "-f",
        manifest,
    ]);
    kubectl(&[
        "--kubeconfig",
        kubeconfig,
        "apply",
        "--server-side",
        "--validate=false",
        "--field-manager=demo",
        "-f",
        manifest,
    ]);
    let applied: Value = serde_json::from_str(&kubectl(&[
        "--kubeconfig",
        kubeconfig,
        "get",
        "sa",
        "applied",
        "--show-managed-fields",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        applied["metadata"]["annotations"][ROLE_ARN],
        "arn:aws:iam::123456789012:role/x"
    );
    assert!(applied["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["manager"] == "demo"));
    drop(process);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn serves_from_its_own_thread_and_stops_when_dropped() {
    use std::io::{Read, Write};
    let standin = KubeStandIn::start().await;
    let addr = standin.url().trim_start_matches("http://").to_owned();
    // A blocking request from inside this single-threaded runtime: it would
    // deadlock if the server ran on the test's runtime.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""minor":"33""#), "{response}");

    let clone = standin.clone();
    drop(standin);
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "a clone keeps it alive"
    );
    drop(clone);
    // The accept loop ends asynchronously; give it a moment.
    let mut refused = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(&addr).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "still listening on {addr} after the last handle was dropped"
    );
}

#[tokio::test]
async fn namespaces_exist_and_force_is_only_for_apply() {
    let (standin, api) = setup().await;
    let client = client(&standin).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = namespaces.get("anything").await.unwrap();
    assert_eq!(
        ns.status.unwrap().phase.as_deref(),
        Some("Active"),
        "any namespace exists"
    );
    api.create(&PostParams::default(), &sa("a", &[]))
        .await
        .unwrap();
    let listed: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(listed, ["default", NS]);

    // kube-rs refuses this client-side, so it goes out raw.
    let request = hyper::Request::patch(format!(
        "/api/v1/namespaces/{NS}/serviceaccounts/a?fieldManager=x&force=true"
    ))
    .header("content-type", "application/merge-patch+json")
    .body(br#"{"metadata":{"labels":{"a":"b"}}}"#.to_vec())
    .unwrap();
    let forced_merge = api_error(client.request::<Value>(request).await);
    assert_eq!(
        (forced_merge.code, forced_merge.reason.as_str()),
        (422, "Invalid")
    );
    assert!(
        forced_merge
            .message
            .contains("force: Forbidden: may not be specified for non-apply patch"),
        "{}",
        forced_merge.message
    );
}
