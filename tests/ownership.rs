//! Ownership safety: pre-existing objects that provision and teardown must never modify or
//! delete, each asserted on the final state, with adoption off and on. Adoption only ever
//! takes over an untagged IAM role or policy with the very name the job was configured to
//! manage; objects of other installations, OIDC providers, and Kubernetes objects and fields of
//! others are never taken over.

mod reliability;

use aws_sdk_iam::types::Tag;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use reliability::BIN;
use serde_json::{json, Value};
use testkit::world::{World, CLUSTER, NAMESPACE};

const OURS: &str = "demo/epinio/epinio";
const FOREIGN_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const FOREIGN_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::someone-else/*"}]}"#;

fn tags(owner: Option<&str>) -> Option<Vec<Tag>> {
    let mut tags = vec![Tag::builder().key("team").value("data").build().unwrap()];
    if let Some(o) = owner {
        tags.push(
            Tag::builder()
                .key("epinio-irsa/owner")
                .value(o)
                .build()
                .unwrap(),
        );
        tags.push(
            Tag::builder()
                .key("app.kubernetes.io/managed-by")
                .value("epinio-irsa")
                .build()
                .unwrap(),
        );
    }
    Some(tags)
}

/// Whose the pre-existing object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Made by hand or another tool: no owner tag.
    Nobody,
    OtherCluster,
    OtherNamespace,
    OtherRelease,
}

impl Owner {
    fn tag(self) -> Option<&'static str> {
        match self {
            Owner::Nobody => None,
            Owner::OtherCluster => Some("prod/epinio/epinio"),
            Owner::OtherNamespace => Some("demo/other/epinio"),
            Owner::OtherRelease => Some("demo/epinio/other"),
        }
    }
}

const OWNERS: [Owner; 4] = [
    Owner::Nobody,
    Owner::OtherCluster,
    Owner::OtherNamespace,
    Owner::OtherRelease,
];

/// The ServiceAccounts of a Kubernetes state snapshot.
fn service_accounts(kube: &Value) -> Vec<Value> {
    kube.as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["kind"] == json!("ServiceAccount"))
        .cloned()
        .collect()
}

fn adopt_env(adopt: bool) -> (&'static str, &'static str) {
    (
        "EPINIO_IRSA_ADOPT_EXISTING",
        if adopt { "true" } else { "false" },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_policies_of_others_are_never_modified_or_deleted() {
    let w = World::new(BIN).await;
    // The OIDC provider exists (and is ours) so that no case needs to write it.
    w.run("provision", &[]).await.assert_ok();
    w.run("teardown", &[]).await.assert_ok();
    let account = w.account().to_string();
    let mut cases = 0;
    for kind in ["role", "policy"] {
        for owner in OWNERS {
            for adopt in [false, true] {
                let id = format!("{kind}-{owner:?}-{adopt}").to_lowercase();
                let role = format!("own-{id}");
                let policy = format!("own-{id}-s3");
                let policy_arn = format!("arn:aws:iam::{account}:policy/{policy}");
                let env = [
                    ("EPINIO_IRSA_SERVER_ROLE_NAME", role.as_str()),
                    ("EPINIO_IRSA_POLICY_NAME", policy.as_str()),
                    adopt_env(adopt),
                ];
                let pristine = (w.iam_state().await, w.kube_state());
                if kind == "role" {
                    w.iam
                        .create_role()
                        .role_name(&role)
                        .assume_role_policy_document(FOREIGN_TRUST)
                        .set_tags(tags(owner.tag()))
                        .send()
                        .await
                        .unwrap();
                } else {
                    w.iam
                        .create_policy()
                        .policy_name(&policy)
                        .policy_document(FOREIGN_DOCUMENT)
                        .set_tags(tags(owner.tag()))
                        .send()
                        .await
                        .unwrap();
                }
                let (iam_before, kube_before) = (w.iam_state().await, w.kube_state());
                let object = |iam: &Value| {
                    if kind == "role" {
                        iam["roles"][&role].clone()
                    } else {
                        iam["policies"][&policy_arn].clone()
                    }
                };
                let name = if kind == "role" { &role } else { &policy_arn };

                let out = w.run("provision", &env).await;
                if owner == Owner::Nobody && adopt {
                    // Adopted: tagged as ours and converged.
                    out.assert_ok();
                    let iam = w.iam_state().await;
                    let adopted = object(&iam);
                    assert_eq!(adopted["tags"]["epinio-irsa/owner"], json!(OURS), "{id}");
                    assert_eq!(
                        adopted["tags"]["team"],
                        json!("data"),
                        "{id}: other tags kept"
                    );
                    if kind == "role" {
                        assert_eq!(adopted["attached"], json!([policy_arn]), "{id}");
                        assert!(
                            adopted["trust"].to_string().contains(&format!(
                                "system:serviceaccount:{NAMESPACE}:epinio-server"
                            )),
                            "{id}: {}",
                            adopted["trust"]
                        );
                    } else {
                        assert_eq!(
                            adopted["document"]["Statement"][0]["Resource"],
                            json!("arn:aws:s3:::epinio"),
                            "{id}"
                        );
                    }
                    assert!(out.stdout.contains("adopt"), "{id}: {}", out.stdout);
                } else {
                    assert_eq!(out.code, Some(1), "{id}: {}", out.stdout);
                    assert!(out.stderr.contains(name.as_str()), "{id}: {}", out.stderr);
                    if owner == Owner::Nobody {
                        assert!(
                            out.stderr.contains("EPINIO_IRSA_ADOPT_EXISTING=true"),
                            "{id}: {}",
                            out.stderr
                        );
                    } else {
                        assert!(
                            out.stderr.contains(owner.tag().unwrap()),
                            "{id}: names the owner: {}",
                            out.stderr
                        );
                    }
                    assert!(out.aws_writes().is_empty(), "{id}: {:?}", out.aws_writes());
                    assert!(
                        out.kube_writes().is_empty(),
                        "{id}: {:?}",
                        out.kube_writes()
                    );
                    assert_eq!(w.iam_state().await, iam_before, "{id}: provision");
                    assert_eq!(w.kube_state(), kube_before, "{id}: provision");
                }

                let out = w.run("teardown", &env).await;
                out.assert_ok();
                let iam = w.iam_state().await;
                if owner == Owner::Nobody && adopt {
                    // Adopted objects are ours: teardown removes them with the rest.
                    assert_eq!(object(&iam), Value::Null, "{id}: adopted, then torn down");
                    assert_eq!(iam, pristine.0, "{id}: teardown");
                } else {
                    assert_eq!(object(&iam), object(&iam_before), "{id}: teardown");
                    assert_eq!(iam, iam_before, "{id}: teardown");
                    assert!(out.aws_writes().is_empty(), "{id}: {:?}", out.aws_writes());
                }
                // Our annotations are gone again (the restart a provision did stays).
                assert_eq!(
                    service_accounts(&w.kube_state()),
                    service_accounts(&pristine.1),
                    "{id}: ServiceAccounts after teardown"
                );
                cases += 1;
            }
        }
    }
    println!("IAM ownership: {cases} cases (role and policy x 4 owners x adoption off/on)");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oidc_provider_it_did_not_create_is_used_but_never_modified_or_deleted() {
    let w = World::new(BIN).await;
    let delete = ("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true");
    let eksctl = || {
        Some(vec![Tag::builder()
            .key("created-by")
            .value("eksctl")
            .build()
            .unwrap()])
    };
    let mut cases = 0;

    // One that does not accept STS tokens is refused before any write, and left as it is.
    let created = w
        .iam
        .create_open_id_connect_provider()
        .url(&w.issuer)
        .client_id_list("someone-else")
        .set_tags(eksctl())
        .send()
        .await
        .unwrap();
    let arn = created.open_id_connect_provider_arn().unwrap().to_string();
    let before = w.iam_state().await;
    for adopt in [false, true] {
        let out = w.run("provision", &[adopt_env(adopt)]).await;
        assert_eq!(out.code, Some(1));
        assert!(out.stderr.contains("sts.amazonaws.com"), "{}", out.stderr);
        assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
        assert!(out.kube_writes().is_empty());
        assert_eq!(w.iam_state().await, before);
        w.run("teardown", &[adopt_env(adopt), delete])
            .await
            .assert_ok();
        assert_eq!(w.iam_state().await, before);
        cases += 1;
    }
    w.iam
        .delete_open_id_connect_provider()
        .open_id_connect_provider_arn(&arn)
        .send()
        .await
        .unwrap();

    // A usable one made by eksctl: used as it is, never tagged, never deleted; then the same
    // once another installation of this cluster has tagged it as its own.
    w.iam
        .create_open_id_connect_provider()
        .url(&w.issuer)
        .client_id_list("sts.amazonaws.com")
        .set_tags(eksctl())
        .send()
        .await
        .unwrap();
    for owner in [None, Some("demo/other/epinio")] {
        if let Some(o) = owner {
            w.iam
                .tag_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .set_tags(tags(Some(o)))
                .send()
                .await
                .unwrap();
        }
        let before = w.iam_state().await["providers"][&arn].clone();
        assert_ne!(before, Value::Null);
        for adopt in [false, true] {
            let out = w.run("provision", &[adopt_env(adopt)]).await;
            out.assert_ok();
            assert!(
                out.aws_writes()
                    .iter()
                    .all(|c| !c.op.contains("OpenIDConnectProvider")),
                "{:?}",
                out.aws_writes()
            );
            assert_eq!(w.iam_state().await["providers"][&arn], before);
            let out = w.run("teardown", &[adopt_env(adopt), delete]).await;
            out.assert_ok();
            assert!(
                out.stdout.contains("not created by this installation"),
                "{}",
                out.stdout
            );
            assert_eq!(w.iam_state().await["providers"][&arn], before);
            cases += 1;
        }
    }
    println!("OIDC provider ownership: {cases} cases");
}

// ----- Kubernetes ----------------------------------------------------------------------

/// A client of the stand-in that is not the job: applies as another field manager, past the
/// proxy (so the job's call logs stay its own).
async fn someone_else(w: &World) -> Api<ServiceAccount> {
    let config = kube::Config::new(w.kube.url().parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    Api::namespaced(client, NAMESPACE)
}

async fn apply_as(api: &Api<ServiceAccount>, manager: &str, name: &str, metadata: Value) {
    let mut metadata = metadata;
    metadata["name"] = json!(name);
    let body = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata});
    api.patch(name, &PatchParams::apply(manager), &Patch::Apply(&body))
        .await
        .unwrap_or_else(|e| panic!("apply {name} as {manager}: {e}"));
}

/// Labels and annotations of a ServiceAccount (`Null` when it does not exist).
fn visible(w: &World, name: &str) -> Value {
    match w.service_account(name) {
        Some(sa) => json!({
            "labels": sa["metadata"]["labels"],
            "annotations": sa["metadata"]["annotations"],
        }),
        None => Value::Null,
    }
}

const ROLE_ARN: &str = "eks.amazonaws.com/role-arn";
const STS: &str = "eks.amazonaws.com/sts-regional-endpoints";
const STAGING: (&str, &str) = ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging");

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_objects_and_fields_of_others_are_never_taken() {
    let w = World::new(BIN).await;
    let api = someone_else(&w).await;
    let mut cases = 0;

    // The role ARNs the job uses, and a clean slate.
    let out = w.run("provision", &[STAGING]).await;
    out.assert_ok();
    let server_arn = w.annotation("epinio-server", ROLE_ARN).unwrap();
    w.run("teardown", &[STAGING]).await.assert_ok();

    // 1. Epinio's own ServiceAccount, with an annotation of someone else's: only our
    //    annotations come and go; it is never deleted, Helm's metadata stays.
    apply_as(
        &api,
        "kubectl-annotate",
        "epinio-server",
        json!({"annotations": {"example.com/note": "keep me"}}),
    )
    .await;
    let before = visible(&w, "epinio-server");
    for adopt in [false, true] {
        w.run("provision", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        assert_eq!(
            w.annotation("epinio-server", ROLE_ARN).as_deref(),
            Some(server_arn.as_str())
        );
        w.run("teardown", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        assert_eq!(visible(&w, "epinio-server"), before, "adopt={adopt}");
        cases += 1;
    }

    // 2. A staging ServiceAccount the job did not create: annotated while installed, then
    //    given back as it was, never deleted.
    apply_as(
        &api,
        "kubectl",
        "epinio-staging",
        json!({"labels": {"team": "data"}, "annotations": {"example.com/note": "mine"}}),
    )
    .await;
    let before = visible(&w, "epinio-staging");
    for adopt in [false, true] {
        w.run("provision", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        let sa = w.service_account("epinio-staging").unwrap();
        assert!(sa["metadata"]["annotations"][ROLE_ARN].is_string());
        assert_eq!(
            sa["metadata"]["labels"],
            json!({"team": "data"}),
            "not labelled as created by the job"
        );
        w.run("teardown", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        assert_eq!(visible(&w, "epinio-staging"), before, "adopt={adopt}");
        cases += 1;
    }
    api.delete("epinio-staging", &DeleteParams::default())
        .await
        .unwrap();

    // 3. Annotation values set by another field manager: refused before any write, kept.
    for (key, value) in [
        (ROLE_ARN, "arn:aws:iam::123456789012:role/theirs"),
        (STS, "false"),
    ] {
        apply_as(
            &api,
            "kubectl-annotate",
            "epinio-server",
            json!({"annotations": {"example.com/note": "keep me", key: value}}),
        )
        .await;
        let (iam_before, kube_before) = (w.iam_state().await, w.kube_state());
        for adopt in [false, true] {
            let out = w.run("provision", &[STAGING, adopt_env(adopt)]).await;
            assert_eq!(out.code, Some(1), "{key}: {}", out.stdout);
            assert!(
                out.stderr.contains(key) && out.stderr.contains(value),
                "{}",
                out.stderr
            );
            assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
            assert!(out.kube_writes().is_empty(), "{:?}", out.kube_writes());
            assert_eq!(w.kube_state(), kube_before);
            assert_eq!(w.iam_state().await, iam_before);
            let out = w.run("teardown", &[STAGING, adopt_env(adopt)]).await;
            out.assert_ok();
            assert_eq!(w.kube_state(), kube_before, "{key}: teardown");
            assert_eq!(w.annotation("epinio-server", key).as_deref(), Some(value));
            cases += 1;
        }
    }

    // 4. The same value as ours, set by someone else too: shared, so it stays after teardown.
    apply_as(
        &api,
        "kubectl-annotate",
        "epinio-server",
        json!({"annotations": {"example.com/note": "keep me", ROLE_ARN: server_arn}}),
    )
    .await;
    for adopt in [false, true] {
        w.run("provision", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        w.run("teardown", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        assert_eq!(
            w.annotation("epinio-server", ROLE_ARN).as_deref(),
            Some(server_arn.as_str()),
            "adopt={adopt}: still held by the other manager"
        );
        assert_eq!(w.annotation("epinio-server", STS), None, "ours alone: gone");
        cases += 1;
    }
    apply_as(
        &api,
        "kubectl-annotate",
        "epinio-server",
        json!({"annotations": {"example.com/note": "keep me"}}),
    )
    .await;

    // 5. A staging ServiceAccount another installation's job created (same field manager,
    //    another owner): neither taken over nor deleted.
    let theirs = json!({
        "labels": {"app.kubernetes.io/managed-by": "epinio-irsa"},
        "annotations": {
            ROLE_ARN: "arn:aws:iam::123456789012:role/other-staging",
            STS: "true",
            "epinio-irsa/owner": format!("{CLUSTER}/{NAMESPACE}/other"),
        }
    });
    apply_as(&api, "epinio-irsa", "epinio-staging", theirs).await;
    let before = visible(&w, "epinio-staging");
    for adopt in [false, true] {
        let out = w.run("provision", &[STAGING, adopt_env(adopt)]).await;
        assert_eq!(out.code, Some(1), "{}", out.stdout);
        assert!(
            out.stderr.contains("epinio-staging") && out.stderr.contains("demo/epinio/other"),
            "{}",
            out.stderr
        );
        assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
        assert!(out.kube_writes().is_empty(), "{:?}", out.kube_writes());
        assert_eq!(visible(&w, "epinio-staging"), before);
        w.run("teardown", &[STAGING, adopt_env(adopt)])
            .await
            .assert_ok();
        assert_eq!(visible(&w, "epinio-staging"), before, "adopt={adopt}");
        cases += 1;
    }
    println!("Kubernetes ownership: {cases} cases");
}
