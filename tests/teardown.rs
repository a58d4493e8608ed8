//! `teardown` (the pre-delete hook): removes exactly what this installation made.

use serde_json::{json, Value};
use testkit::world::{World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const STAGING: (&str, &str) = ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging");

fn tags(pairs: &[(&str, &str)]) -> Vec<aws_sdk_iam::types::Tag> {
    pairs
        .iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap()
        })
        .collect()
}

/// Objects that belong to others and must survive every teardown.
async fn seed_neighbours(w: &World) {
    let trust = r#"{"Version":"2012-10-17","Statement":[]}"#;
    for (name, t) in [
        ("hand-made-role", vec![]),
        (
            "other-cluster-role",
            vec![
                ("epinio-irsa/owner", "prod/epinio/epinio"),
                ("app.kubernetes.io/managed-by", "epinio-irsa"),
            ],
        ),
    ] {
        w.iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .set_tags(Some(tags(&t)))
            .send()
            .await
            .unwrap();
    }
    w.iam
        .create_policy()
        .policy_name("hand-made-policy")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::x/*"}]}"#)
        .send()
        .await
        .unwrap();
    w.kube.seed(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "someone-elses", "namespace": NAMESPACE,
                     "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/hand-made-role"}}
    }));
}

fn without_ours(iam: &Value) -> Value {
    let mut iam = iam.clone();
    for section in ["roles", "policies", "providers"] {
        iam[section]
            .as_object_mut()
            .unwrap()
            .retain(|_, v| v["tags"]["epinio-irsa/owner"] != json!("demo/epinio/epinio"));
    }
    iam
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_removes_what_it_made_keeps_the_rest_and_can_run_twice() {
    let w = World::new(BIN).await;
    seed_neighbours(&w).await;
    let kube_before = w.kube_state();
    w.run("provision", &[STAGING]).await.assert_ok();
    let provisioned = w.iam_state().await;
    let provider = provisioned["providers"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();

    let out = w.run("teardown", &[STAGING]).await;
    out.assert_ok();
    let after = w.iam_state().await;
    // Our roles and policy are gone; everything else is as it was. The OIDC provider stays
    // (shared by every IRSA user of the cluster) unless asked.
    let mut expected = without_ours(&provisioned);
    expected["providers"][&provider] = provisioned["providers"][&provider].clone();
    assert_eq!(after, expected);
    assert!(after["roles"].get("hand-made-role").is_some());
    assert!(after["roles"].get("other-cluster-role").is_some());

    // Kubernetes: staging SA deleted, our annotations gone, Helm's metadata kept.
    assert!(w.service_account("epinio-staging").is_none());
    let server = w.service_account("epinio-server").unwrap();
    let annotations = server["metadata"]["annotations"].as_object().unwrap();
    assert!(
        !annotations.contains_key("eks.amazonaws.com/role-arn"),
        "{annotations:?}"
    );
    assert!(!annotations.contains_key("eks.amazonaws.com/sts-regional-endpoints"));
    assert_eq!(annotations["meta.helm.sh/release-name"], json!("epinio"));
    assert_eq!(
        server["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        json!("Helm")
    );
    assert_eq!(
        w.annotation("someone-elses", "eks.amazonaws.com/role-arn")
            .as_deref(),
        Some("arn:aws:iam::123456789012:role/hand-made-role")
    );
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);

    // A second teardown finds nothing of ours and succeeds without writing.
    let again = w.run("teardown", &[STAGING]).await;
    again.assert_ok();
    assert!(again.aws_writes().is_empty(), "{:?}", again.aws_writes());
    assert!(again.kube_writes().is_empty(), "{:?}", again.kube_writes());
    assert_eq!(w.iam_state().await, expected);

    // Kubernetes is back where it started, except for the restart Epinio's Deployment got.
    let mut kube_after = w.kube_state();
    let mut before = kube_before.clone();
    for snap in [&mut kube_after, &mut before] {
        scrub_workloads(snap);
    }
    assert_eq!(kube_after, before);
}

/// Drop Deployments and managedFields (restarts are not undone: undoing them would restart
/// Epinio once more during its uninstall).
fn scrub_workloads(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("managedFields");
            if map.get("kind") == Some(&json!("Deployment")) {
                map.remove("spec");
                if let Some(m) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("generation");
                }
            }
            map.values_mut().for_each(scrub_workloads);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_workloads),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_is_deleted_only_when_asked_and_only_if_ours() {
    // Ours, and asked: deleted.
    let w = World::new(BIN).await;
    w.run("provision", &[]).await.assert_ok();
    w.run("teardown", &[("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true")])
        .await
        .assert_ok();
    assert_eq!(w.iam_state().await["providers"], json!({}));

    // Made by someone else (eksctl), asked: kept.
    let w = World::new(BIN).await;
    let created = w
        .iam
        .create_open_id_connect_provider()
        .url(&w.issuer)
        .client_id_list("sts.amazonaws.com")
        .send()
        .await
        .unwrap();
    let arn = created.open_id_connect_provider_arn().unwrap().to_string();
    let out = w.run("provision", &[]).await;
    out.assert_ok();
    assert!(out
        .aws_writes()
        .iter()
        .all(|c| c.op != "CreateOpenIDConnectProvider"));
    let out = w
        .run("teardown", &[("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true")])
        .await;
    out.assert_ok();
    assert!(w.iam_state().await["providers"].get(&arn).is_some());
    assert!(
        out.stdout.contains("not created by this installation"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_of_another_release_touches_nothing() {
    let w = World::new(BIN).await;
    w.run("provision", &[STAGING]).await.assert_ok();
    let (iam, kube) = (w.iam_state().await, w.kube_state());
    // Same names (given explicitly), another release: none of it is theirs.
    let server = iam["roles"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("-server"))
        .unwrap()
        .clone();
    let staging = iam["roles"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("-staging"))
        .unwrap()
        .clone();
    let out = w
        .run(
            "teardown",
            &[
                STAGING,
                ("EPINIO_IRSA_RELEASE_NAME", "other"),
                ("EPINIO_IRSA_SERVER_ROLE_NAME", &server),
                ("EPINIO_IRSA_STAGING_ROLE_NAME", &staging),
            ],
        )
        .await;
    out.assert_ok();
    assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
    assert_eq!(w.iam_state().await, iam);
    assert!(
        out.stdout.contains("not owned by this installation"),
        "{}",
        out.stdout
    );
    // Kubernetes too: the annotations and the staging ServiceAccount are the first release's.
    assert!(out.kube_writes().is_empty(), "{:?}", out.kube_writes());
    assert_eq!(w.kube_state(), kube);
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_works_after_the_cluster_is_gone() {
    let w = World::new(BIN).await;
    w.run("provision", &[]).await.assert_ok();
    let client = reqwest_free_delete_cluster(&w).await;
    assert!(client, "cluster deleted in moto");
    let out = w.run("teardown", &[]).await;
    out.assert_ok();
    let state = w.iam_state().await;
    assert_eq!(state["roles"], json!({}));
    assert_eq!(state["policies"], json!({}));
}

/// Delete the EKS cluster through moto's REST API with a plain HTTP client.
async fn reqwest_free_delete_cluster(w: &World) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = w.moto.endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "DELETE /clusters/demo HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/eks/aws4_request, SignedHeaders=host, Signature=x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}
