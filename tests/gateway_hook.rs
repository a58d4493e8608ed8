//! The hook in gateway mode (`EPINIO_IRSA_GATEWAY=true`): the gateway's ServiceAccount gets the
//! role (IRSA annotation or Pod Identity association), Epinio's own ServiceAccounts get
//! nothing, Epinio 1.14.1 (whose server cannot use a role) provisions without the override,
//! the gateway's Deployment is restarted and Epinio's is not, `verify` proves Epinio's own path
//! (a request signed with Epinio's cluster-local key pair, through a real gateway, and one for
//! another bucket refused), switching into and out of gateway mode removes what the other
//! arrangement made, a re-run writes nothing and teardown leaves nothing.
//!
//! The gateway here is the real one (`epinio_irsa::gateway`, in-process) forwarding to the
//! world's moto with moto's static keys: the role the hook makes cannot be assumed by web
//! identity in moto (its access control crashes on it, see `tests/s3_policy.rs`); the
//! gateway's credential path through a role is proven in `tests/gateway_forward.rs`.

mod reliability;

use serde_json::{json, Value};
use testkit::epinio::Chart;
use testkit::world::{RunOutput, World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const GATEWAY_SA: &str = "epinio-irsa-gateway";
const KEY_ID: &str = "EPINIOCLUSTERLOCAL01";
const SECRET: &str = "cluster-local-secret-0123456789abcdefghij";
const BUCKET: &str = "epinio";
const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The stand-in's Deployment controller takes this long to report a rollout.
const ROLLOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn world(chart: Chart) -> World {
    let mut objects = chart.objects();
    objects.extend(testkit::gateway::helm_objects(NAMESPACE));
    let w = World::with_objects(BIN, objects).await;
    w.kube.enable_rollouts(ROLLOUT);
    w
}

/// A real gateway forwarding to the world's moto, holding Epinio's key pair.
async fn start_gateway(w: &World) -> epinio_irsa::gateway::Gateway {
    let env = testkit::gateway::env_beside(&w.moto, &w.dir, BUCKET, (KEY_ID, SECRET));
    epinio_irsa::gateway::start(env)
        .await
        .expect("gateway starts")
}

fn gateway_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EPINIO_IRSA_GATEWAY", "true".into()),
        ("EPINIO_IRSA_S3_ACCESS_KEY_ID", KEY_ID.into()),
        ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", SECRET.into()),
        ("EPINIO_IRSA_GATEWAY_ENDPOINT", endpoint.into()),
    ]
}

/// The environments of a switch with staging under its own ServiceAccount: outside gateway
/// mode, and in it.
type Env = Vec<(&'static str, String)>;
fn switch_envs(gateway: &epinio_irsa::gateway::Gateway) -> (Env, Env) {
    let staging = (
        "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
        "epinio-staging".to_string(),
    );
    let mut through = gateway_env(&format!("http://{}", gateway.s3_addr()));
    through.push(staging.clone());
    (vec![staging], through)
}

async fn run(w: &World, command: &str, env: &[(&'static str, String)]) -> RunOutput {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.run(command, &pairs).await
}

fn restarted_for(w: &World, name: &str) -> Option<String> {
    w.workload("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        ["epinio-irsa/role-arn"]
        .as_str()
        .map(str::to_string)
}

fn roles(iam: &Value) -> Vec<String> {
    iam["roles"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

async fn create_bucket(w: &World) {
    let sdk = testkit::moto::sdk_config(
        &w.moto,
        aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "t"),
    )
    .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn epinio_1_14_1_provisions_through_the_gateway_which_alone_gets_the_role() {
    let w = world(Chart::new("1.14.1")).await;
    create_bucket(&w).await;
    let gateway = start_gateway(&w).await;
    let env = gateway_env(&format!("http://{}", gateway.s3_addr()));

    let out = run(&w, "provision", &env).await;
    out.assert_ok();
    let role = w
        .annotation(GATEWAY_SA, ROLE_ANNOTATION)
        .expect("gateway SA annotated");
    assert!(role.ends_with("-gateway"), "{role}");
    assert_eq!(w.annotation("epinio-server", ROLE_ANNOTATION), None);
    let iam = w.iam_state().await;
    assert_eq!(roles(&iam).len(), 1, "{iam}");
    let trust = iam.to_string();
    assert!(
        trust.contains(&format!("system:serviceaccount:{NAMESPACE}:{GATEWAY_SA}")),
        "{iam}"
    );
    // The gateway restarts into its credentials; Epinio reads its S3 Secret per operation.
    assert_eq!(
        restarted_for(&w, "epinio-irsa-gateway").as_deref(),
        Some(role.as_str())
    );
    assert_eq!(restarted_for(&w, "epinio-server"), None);
    assert!(
        out.stdout.contains("S3 through the gateway: yes"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Epinio's path: s3.accessKeyID -> gateway http://"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "HeadBucket and ListObjectsV2 succeeded; a request for another bucket was refused"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("WARNING"), "{}", out.stdout);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));

    // A re-run writes nothing, and verify says the same.
    let again = run(&w, "provision", &env).await;
    again.assert_ok().assert_no_writes();
    let verify = run(&w, "verify", &env).await;
    verify.assert_ok();
    assert!(
        verify
            .stdout
            .contains("a request for another bucket was refused"),
        "{}",
        verify.stdout
    );

    // Teardown leaves nothing of ours.
    run(&w, "teardown", &env).await.assert_ok();
    assert!(roles(&w.iam_state().await).is_empty());
    assert_eq!(w.annotation(GATEWAY_SA, ROLE_ANNOTATION), None);
    assert!(
        w.service_account(GATEWAY_SA).is_some(),
        "Helm's ServiceAccount stays"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_gateway_mode_associates_the_gateway_only() {
    let w = world(Chart::new("1.14.1")).await;
    w.install_agent("ACTIVE");
    let gateway = start_gateway(&w).await;
    let mut env = gateway_env(&format!("http://{}", gateway.s3_addr()));
    env.push(("EPINIO_IRSA_MODE", "pod-identity".into()));
    let out = run(&w, "provision", &env).await;
    out.assert_ok();
    let associations = w.pod_identity().associations();
    let subjects: Vec<String> = associations
        .iter()
        .map(|a| a.service_account.clone())
        .collect();
    assert_eq!(subjects, vec![GATEWAY_SA.to_string()], "{associations:?}");
    assert_eq!(w.annotation(GATEWAY_SA, ROLE_ANNOTATION), None);
    assert_eq!(w.annotation("epinio-server", ROLE_ANNOTATION), None);
    assert!(out.stdout.contains("mode: pod-identity"), "{}", out.stdout);
    // The bucket does not exist yet: the path is proven signed and forwarded.
    assert!(
        out.stdout.contains("signed and forwarded"),
        "{}",
        out.stdout
    );
    run(&w, "provision", &env)
        .await
        .assert_ok()
        .assert_no_writes();
    run(&w, "teardown", &env).await.assert_ok();
    assert!(w.pod_identity().associations().is_empty());
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_into_and_out_of_gateway_mode_leaves_nothing_of_the_other() {
    let chart = Chart::new("1.13.9").staging_workloads("epinio-staging");
    let w = world(chart).await;
    let gateway = start_gateway(&w).await;
    let (plain, through) = switch_envs(&gateway);

    run(&w, "provision", &plain).await.assert_ok();
    let before = roles(&w.iam_state().await);
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(w.annotation("epinio-server", ROLE_ANNOTATION).is_some());

    let out = run(&w, "provision", &through).await;
    out.assert_ok();
    let now = roles(&w.iam_state().await);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].ends_with("-gateway"), "{now:?}");
    assert_eq!(w.annotation("epinio-server", ROLE_ANNOTATION), None);
    assert!(
        w.service_account("epinio-staging").is_none(),
        "the staging SA we created is gone"
    );
    assert!(w.annotation(GATEWAY_SA, ROLE_ANNOTATION).is_some());
    for old in &before {
        assert!(
            out.stdout.contains(&format!("role  {old}  deleted")) || out.stdout.contains(old),
            "{}",
            out.stdout
        );
    }
    run(&w, "provision", &through)
        .await
        .assert_ok()
        .assert_no_writes();

    // And back: the gateway's role goes, Epinio's come back.
    let out = run(&w, "provision", &plain).await;
    out.assert_ok();
    let back = roles(&w.iam_state().await);
    assert_eq!(back.len(), 2, "{back:?}");
    assert!(back.iter().all(|r| !r.ends_with("-gateway")), "{back:?}");
    assert_eq!(w.annotation(GATEWAY_SA, ROLE_ANNOTATION), None);
    assert!(w.annotation("epinio-server", ROLE_ANNOTATION).is_some());

    run(&w, "teardown", &plain).await.assert_ok();
    assert!(roles(&w.iam_state().await).is_empty());
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_a_wrong_key_pair_and_gateway_mode_needs_both_keys_before_any_write() {
    let w = world(Chart::new("1.14.1")).await;
    let gateway = start_gateway(&w).await;
    let mut env = gateway_env(&format!("http://{}", gateway.s3_addr()));
    env[2] = (
        "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
        "not-the-gateways-secret".into(),
    );
    let out = run(&w, "provision", &env).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains("verify through the gateway"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("not-the-gateways-secret"),
        "{}",
        out.stderr
    );

    let w = world(Chart::new("1.14.1")).await;
    let mut env = gateway_env("http://127.0.0.1:9");
    env.remove(2);
    let out = run(&w, "provision", &env).await;
    assert_eq!(out.code, Some(1));
    out.assert_no_writes();
    assert!(
        out.stderr.contains("EPINIO_IRSA_S3_SECRET_ACCESS_KEY"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("gateway mode"), "{}", out.stderr);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_waits_for_the_gateways_rollout_and_names_one_that_never_finishes() {
    let w = world(Chart::new("1.14.1")).await;
    let gateway = start_gateway(&w).await;
    let env = gateway_env(&format!("http://{}", gateway.s3_addr()));
    let started = std::time::Instant::now();
    run(&w, "provision", &env).await.assert_ok();
    assert!(
        started.elapsed() >= ROLLOUT,
        "returned before the rollout: {:?}",
        started.elapsed()
    );
    let status = &w.workload("Deployment", "epinio-irsa-gateway")["status"];
    assert_eq!(status["updatedReplicas"], 2, "{status}");

    // A rollout that does not finish within the bound fails the hook, naming the Deployment.
    let w = world(Chart::new("1.14.1")).await;
    w.kube.enable_rollouts(std::time::Duration::from_secs(3600));
    let mut env = env.clone();
    env.push(("EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS", "5".into()));
    let out = run(&w, "provision", &env).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("deployment epinio/epinio-irsa-gateway did not finish rolling out"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("0 of 2 replicas updated")
            || out.stderr.contains("not seen generation"),
        "{}",
        out.stderr
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_gateway_mode_epinio_1_14_is_refused_naming_gateway_mode() {
    let w = world(Chart::new("1.14.1")).await;
    let out = w.run("provision", &[]).await;
    assert_eq!(out.code, Some(1));
    out.assert_no_writes();
    assert!(
        out.stderr.contains("irsa.gateway.enabled=true"),
        "{}",
        out.stderr
    );
    let plan = w
        .run("plan", &[("EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO", "true")])
        .await;
    assert!(
        plan.stdout.contains("through the gateway: yes"),
        "{}",
        plan.stdout
    );
}

/// Epinio's values for both charts: outside gateway mode (keys empty) and in it.
fn values(gateway: bool) -> Value {
    let mut v = json!({
        "seaweedfs": {"enabled": false},
        "s3": {"bucket": BUCKET},
        "server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}},
    });
    if gateway {
        v["s3"] = json!({
            "bucket": BUCKET,
            "endpoint": format!("epinio-irsa-gateway.{NAMESPACE}.svc.cluster.local"),
            "useSSL": false,
            "accessKeyID": KEY_ID,
            "secretAccessKey": SECRET,
        });
        // Plain HTTP (the explicit opt-out): the Roles do not depend on TLS, and the gateway
        // here is reached over http:// (the TLS proof is `gateway_hook_tls.rs`).
        v["irsa"] = json!({"gateway": {"enabled": true, "tls": {"enabled": false}}});
    }
    v
}

/// Under the Roles `helm template` renders for each mode, enforced by the stand-in as the
/// apiserver would (403 otherwise): IRSA, the switch into gateway mode (Epinio's annotations
/// released, the staging ServiceAccount the job made deleted), verify through the gateway, the
/// switch back, and teardown are all allowed; and every rule gateway mode adds is used.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_mode_and_both_switches_run_under_the_charts_rbac() {
    let mut objects = Chart::new("1.13.9")
        .staging_workloads("epinio-staging")
        .objects();
    objects.extend(testkit::gateway::helm_objects(NAMESPACE));
    let w = World::with_rbac(BIN, objects, &values(false)).await;
    w.kube.enable_rollouts(ROLLOUT);
    let gateway = start_gateway(&w).await;
    let (plain, through) = switch_envs(&gateway);
    let allowed = |out: &RunOutput, what: &str| {
        assert!(
            out.success() && w.kube.rbac_denied().is_empty(),
            "{what} under the chart's RBAC\nstdout:\n{}\nstderr:\n{}\ndenied: {:?}",
            out.stdout,
            out.stderr,
            w.kube.rbac_denied()
        );
    };
    allowed(&run(&w, "provision", &plain).await, "provision (IRSA)");

    let docs = testkit::world::render_chart(&values(true), &w.dir);
    w.kube.enable_rbac(&docs, testkit::world::HOOK_USER);
    allowed(
        &run(&w, "provision", &through).await,
        "the switch into gateway mode",
    );
    allowed(&run(&w, "verify", &through).await, "verify in gateway mode");
    assert!(w.service_account("epinio-staging").is_none());
    let used: Vec<(String, String, String)> = w
        .kube
        .rbac_used(NAMESPACE, testkit::world::HOOK_USER)
        .into_iter()
        .flat_map(|(_, attrs)| attrs)
        .map(|a| (a.verb, format!("{}/{}", a.group, a.resource), a.name))
        .collect();
    for (verb, resource, name) in [
        ("get", "/serviceaccounts", GATEWAY_SA),
        ("patch", "/serviceaccounts", GATEWAY_SA),
        ("create", "/serviceaccounts/token", GATEWAY_SA),
        ("get", "apps/deployments", "epinio-irsa-gateway"),
        ("patch", "/serviceaccounts", "epinio-server"),
        ("delete", "/serviceaccounts", "epinio-staging"),
    ] {
        let key = (verb.to_string(), resource.to_string(), name.to_string());
        assert!(used.contains(&key), "{key:?} not exercised: {used:?}");
    }

    let docs = testkit::world::render_chart(&values(false), &w.dir);
    w.kube.enable_rbac(&docs, testkit::world::HOOK_USER);
    // Helm deletes the gateway's objects when gateway mode is switched off.
    w.kube.delete("v1", "ServiceAccount", NAMESPACE, GATEWAY_SA);
    w.kube
        .delete("apps/v1", "Deployment", NAMESPACE, "epinio-irsa-gateway");
    allowed(
        &run(&w, "provision", &plain).await,
        "the switch out of gateway mode",
    );
    allowed(&run(&w, "teardown", &plain).await, "teardown");
    assert!(roles(&w.iam_state().await).is_empty());
    gateway.shutdown().await;
}

/// Lost answers in gateway mode: every write of a gateway-mode provision and teardown, and of
/// both switches (into gateway mode: Epinio's roles, annotations and created ServiceAccount
/// removed; out of it: the gateway's role released), with its answer lost after it committed
/// (connection dropped or 500), converges to a clean run's state within the run or on the next
/// one (`reliability::every_write_loses_its_answer`).
#[tokio::test(flavor = "multi_thread")]
async fn gateway_mode_and_both_switches_converge_when_any_answer_is_lost() {
    let w = world(Chart::new("1.13.9").staging_workloads("epinio-staging")).await;
    // Every provision waits for the gateway's rollout; a short one keeps 80-odd runs quick.
    w.kube.enable_rollouts(std::time::Duration::from_millis(50));
    create_bucket(&w).await;
    let gateway = start_gateway(&w).await;
    let (plain, through) = switch_envs(&gateway);
    fn as_str(env: &Env) -> Vec<(&str, &str)> {
        env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
    let (p, t) = (as_str(&plain), as_str(&through));
    let fresh = async |w: &World| {
        run(w, "teardown", &through).await.assert_ok();
    };
    let in_gateway = async |w: &World| {
        run(w, "teardown", &through).await.assert_ok();
        run(w, "provision", &through).await.assert_ok();
    };
    let in_plain = async |w: &World| {
        run(w, "teardown", &through).await.assert_ok();
        run(w, "provision", &plain).await.assert_ok();
    };
    use reliability::every_write_loses_its_answer as lose;
    let mut points = 0;
    points += lose(&w, "gateway provision", fresh, "provision", &t)
        .await
        .0
        .points;
    points += lose(&w, "gateway teardown", in_gateway, "teardown", &t)
        .await
        .0
        .points;
    points += lose(&w, "switch into gateway mode", in_plain, "provision", &t)
        .await
        .0
        .points;
    points += lose(
        &w,
        "switch out of gateway mode",
        in_gateway,
        "provision",
        &p,
    )
    .await
    .0
    .points;
    assert!(points >= 2 * 20, "{points} lost answers");
    gateway.shutdown().await;
}
