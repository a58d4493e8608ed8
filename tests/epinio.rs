//! Knowing the Epinio it serves: the job reads Epinio's Deployment and staging ConfigMap (in
//! the shapes Epinio's charts 1.6 - 1.14 render, `testkit::epinio`), refuses before any write
//! what cannot work, and manages the ServiceAccounts Epinio really uses.

use serde_json::{json, Value};
use testkit::epinio::Chart;
use testkit::world::{RunOutput, World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

fn default_sa() -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": NAMESPACE}})
}

async fn world(chart: Chart) -> World {
    let mut objects = chart.objects();
    objects.push(default_sa());
    World::with_objects(BIN, objects).await
}

async fn run(w: &World, command: &str, extra: &[(&str, &str)]) -> (RunOutput, String) {
    let log = w.dir.join("termination-log");
    let _ = std::fs::remove_file(&log);
    let log_path = log.display().to_string();
    let mut env = vec![("EPINIO_IRSA_TERMINATION_LOG", log_path.as_str())];
    env.extend_from_slice(extra);
    let out = w.run(command, &env).await;
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    (out, written)
}

/// Exit 1, zero AWS writes, zero Kubernetes writes, and the termination log says why.
#[track_caller]
fn assert_refused(out: &RunOutput, log: &str, needles: &[&str]) {
    assert_eq!(
        out.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    out.assert_no_writes();
    for n in needles {
        assert!(log.contains(n), "termination log lacks {n:?}: {log}");
        assert!(out.stderr.contains(n), "stderr lacks {n:?}: {}", out.stderr);
    }
}

fn role_annotation(w: &World, sa: &str) -> Option<String> {
    w.annotation(sa, "eks.amazonaws.com/role-arn")
}

#[track_caller]
fn assert_default_untouched(w: &World) {
    let sa = w
        .service_account("default")
        .expect("default ServiceAccount");
    assert_eq!(sa["metadata"].get("annotations"), None, "{sa}");
    let managers: Vec<&str> = sa["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|f| f["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(!managers.contains(&"epinio-irsa"), "{sa}");
}

async fn role_names(w: &World) -> Vec<String> {
    let state = w.iam_state().await;
    state["roles"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn server_versions_that_send_unsigned_requests_are_refused_then_provisioned_with_the_override(
) {
    for tag in ["v1.14.1", "v1.13.10"] {
        let w = world(Chart::new("1.13.10").image_tag(tag)).await;
        let (out, log) = run(&w, "provision", &[]).await;
        assert_refused(
            &out,
            &log,
            &[
                &format!("Epinio {tag} cannot work with IAM roles"),
                "unsigned",
                "static S3 keys",
                "EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO=true",
            ],
        );
        assert!(role_names(&w).await.is_empty());

        let (out, _) = run(
            &w,
            "provision",
            &[("EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO", "true")],
        )
        .await;
        out.assert_ok();
        assert!(out.stdout.contains("WARNING: Epinio"), "{}", out.stdout);
        assert!(out.stdout.contains("unsigned"), "{}", out.stdout);
        assert!(role_annotation(&w, "epinio-server").is_some());
        // plan shows the row that applies.
        let (plan, _) = run(
            &w,
            "plan",
            &[("EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO", "true")],
        )
        .await;
        plan.assert_ok();
        assert!(
            plan.stdout
                .contains("compatibility row >= 1.13.10 (all of 1.14.x)\n    server with IRSA: no"),
            "{}",
            plan.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_13_9_works_as_before_and_staging_follows_its_configmap() {
    // Staging shares the server's ServiceAccount (the chart's default): one role.
    let w = world(Chart::new("1.13.9")).await;
    let (out, _) = run(&w, "provision", &[]).await;
    out.assert_ok();
    assert!(
        out.stdout.contains("Epinio v1.13.9 (from the image tag)"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("WARNING: Epinio") && !out.stdout.contains("WARNING: the Epinio"),
        "{}",
        out.stdout
    );
    assert_eq!(role_names(&w).await.len(), 1);
    let arn = role_annotation(&w, "epinio-server").expect("annotated");
    assert!(arn.ends_with("-server"), "{arn}");
    let restarted = &w.workload("Deployment", "epinio-server")["spec"]["template"]["metadata"]
        ["annotations"]["epinio-irsa/role-arn"];
    assert_eq!(restarted, &json!(arn));

    // A staging ServiceAccount of its own, given in the values both charts read.
    let w = world(Chart::new("1.13.9").staging_workloads("epinio-staging")).await;
    let (out, _) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
    )
    .await;
    out.assert_ok();
    assert_eq!(role_names(&w).await.len(), 2);
    assert!(role_annotation(&w, "epinio-staging")
        .unwrap()
        .ends_with("-staging"));
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_12_stages_as_its_env_names_whatever_the_newer_key_says() {
    let w = world(Chart::new("1.12.0").legacy_staging("x")).await;
    // The 1.13+ key says something else: Epinio 1.12 does not read it.
    let (out, _) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-server")],
    )
    .await;
    out.assert_ok();
    let arn = role_annotation(&w, "x").expect("x annotated (created by the job)");
    assert!(arn.ends_with("-staging"), "{arn}");
    assert!(role_annotation(&w, "epinio-server")
        .unwrap()
        .ends_with("-server"));
    assert_default_untouched(&w);

    // The older key given and disagreeing with the cluster: refused, naming both.
    let (out, log) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT", "y")],
    )
    .await;
    assert_refused(
        &out,
        &log,
        &["\"y\"", "\"x\"", "server.stagingServiceAccountName"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_12_without_a_staging_service_account_is_refused_and_default_is_untouched() {
    let w = world(Chart::new("1.12.0")).await;
    let (out, log) = run(&w, "provision", &[]).await;
    assert_refused(
        &out,
        &log,
        &[
            "never annotates `default`",
            "server.stagingServiceAccountName",
            "Epinio v1.12.0",
        ],
    );
    assert_default_untouched(&w);
    assert!(role_names(&w).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_6_per_the_table_staging_cannot_get_a_role() {
    let w = world(Chart::new("1.6.0")).await;
    let (out, log) = run(&w, "provision", &[]).await;
    assert_refused(
        &out,
        &log,
        &[
            "Epinio v1.6.0 cannot work with IAM roles",
            "default ServiceAccount",
        ],
    );
    let (out, _) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO", "true")],
    )
    .await;
    out.assert_ok();
    assert!(
        out.stdout.contains("staging gets no role"),
        "{}",
        out.stdout
    );
    assert_eq!(role_names(&w).await.len(), 1, "the server's role only");
    assert!(role_annotation(&w, "epinio-server").is_some());
    assert_default_untouched(&w);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_server_service_account_is_discovered() {
    let chart = Chart::new("1.13.9")
        .server_service_account("my-epinio")
        .staging_workloads("my-epinio");
    let w = world(chart).await;
    // The values file of this chart does not repeat serviceAccount.name: discovery tells.
    let (out, _) = run(&w, "provision", &[]).await;
    out.assert_ok();
    assert!(role_annotation(&w, "my-epinio").is_some(), "{}", out.stdout);
    assert!(
        w.service_account("epinio-server").is_none(),
        "nothing made for the default name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_that_disagrees_with_the_cluster_is_refused_naming_both() {
    let w = world(Chart::new("1.13.9")).await;
    let (out, log) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", "other")],
    )
    .await;
    assert_refused(
        &out,
        &log,
        &["\"other\"", "\"epinio-server\"", "serviceAccount.name"],
    );
    let (out, log) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
    )
    .await;
    assert_refused(
        &out,
        &log,
        &[
            "\"epinio-staging\"",
            "\"epinio-server\"",
            "server.stagingWorkloads.serviceAccountName",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tag_proceeds_with_a_warning() {
    let w = world(Chart::new("1.13.9").image_tag("my-fork-2")).await;
    let (out, _) = run(&w, "provision", &[]).await;
    out.assert_ok();
    assert!(out.stdout.contains("WARNING: the Epinio server image ghcr.io/epinio/epinio-server:my-fork-2 is not a release tag"), "{}", out.stdout);
    assert!(role_annotation(&w, "epinio-server").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_epinio_deployment_the_configuration_is_used_and_said_so() {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "epinio-server", "namespace": NAMESPACE}});
    let w = World::with_objects(BIN, vec![sa, default_sa()]).await;
    let (out, _) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
    )
    .await;
    out.assert_ok();
    assert!(
        out.stdout
            .contains("no epinio-server Deployment found: used the configuration"),
        "{}",
        out.stdout
    );
    assert!(role_annotation(&w, "epinio-staging").is_some());
    // The default ServiceAccount is refused from the configuration too.
    let (out, log) = run(
        &w,
        "provision",
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "default")],
    )
    .await;
    assert_refused(&out, &log, &["never annotates `default`"]);
    assert_default_untouched(&w);
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_follows_what_provision_discovered() {
    let w = world(Chart::new("1.12.0").legacy_staging("x")).await;
    run(&w, "provision", &[]).await.0.assert_ok();
    assert_eq!(role_names(&w).await.len(), 2);
    let (out, _) = run(&w, "teardown", &[]).await;
    out.assert_ok();
    assert!(role_names(&w).await.is_empty(), "{}", out.stdout);
    assert!(
        w.service_account("x").is_none(),
        "the staging ServiceAccount the job made is gone"
    );
    assert!(role_annotation(&w, "epinio-server").is_none());
}
