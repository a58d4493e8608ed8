//! A complete local world for one scenario: a private moto server with an EKS cluster, the
//! Kubernetes stand-in seeded with Epinio's objects, a fault/latency proxy in front of each,
//! and helpers to run the real `epinio-irsa` binary and read the resulting state the way a
//! user would (the AWS SDK for IAM, the stand-in for Kubernetes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_iam::config::Credentials;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::kube::KubeStandIn;
use crate::moto::{self, Moto};
use crate::proxy::{Call, Proxy};

pub const CLUSTER: &str = "demo";
pub const NAMESPACE: &str = "epinio";

/// Epinio's objects as its chart leaves them (fixture shared with the demo script).
pub fn epinio_objects() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/epinio-objects.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What one run of the binary did.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// AWS calls seen by the proxy during this run.
    pub aws_calls: Vec<Call>,
    /// Kubernetes calls seen by the proxy during this run.
    pub kube_calls: Vec<Call>,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn aws_writes(&self) -> Vec<&Call> {
        self.aws_calls.iter().filter(|c| c.is_write).collect()
    }
    pub fn kube_writes(&self) -> Vec<&Call> {
        self.kube_calls.iter().filter(|c| c.is_write).collect()
    }
    /// Panics naming the writes unless the run made none, in AWS or Kubernetes.
    #[track_caller]
    pub fn assert_no_writes(&self) -> &Self {
        assert!(
            self.aws_writes().is_empty(),
            "AWS writes: {:?}",
            self.aws_writes()
        );
        assert!(
            self.kube_writes().is_empty(),
            "Kubernetes writes: {:?}",
            self.kube_writes()
        );
        self
    }

    /// Panics with everything the run printed unless it succeeded.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.success(),
            "epinio-irsa failed (exit {:?})\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

pub struct World {
    pub moto: Moto,
    pub kube: KubeStandIn,
    pub aws_proxy: Proxy,
    pub kube_proxy: Proxy,
    pub cluster_arn: String,
    pub issuer: String,
    pub iam: aws_sdk_iam::Client,
    pub dir: PathBuf,
    kubeconfig: PathBuf,
    bin: PathBuf,
}

impl World {
    /// moto with cluster `demo`, the stand-in seeded with Epinio's objects, proxies in front.
    pub async fn new(bin: impl Into<PathBuf>) -> World {
        World::with_objects(bin, epinio_objects()).await
    }

    /// Like [`World::new`], with the stand-in seeded with `objects` instead of the default
    /// fixture (see `testkit::epinio` for Epinio's objects by chart version).
    pub async fn with_objects(bin: impl Into<PathBuf>, objects: Vec<Value>) -> World {
        let (moto, kube) = tokio::join!(Moto::start(), KubeStandIn::start());
        let (cluster_arn, issuer) = moto::create_eks_cluster(&moto, CLUSTER).await;
        for obj in objects {
            kube.seed(obj);
        }
        kube.set_issuer(&issuer);
        let (moto_url, kube_url) = (moto.endpoint(), kube.url());
        let (aws_proxy, kube_proxy) =
            tokio::join!(Proxy::start(&moto_url), Proxy::start(&kube_url));
        let dir = std::env::temp_dir().join(format!(
            "epinio-irsa-world-{}-{}",
            std::process::id(),
            crate::moto::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &kube_proxy.url());
        let sdk = moto::sdk_config(&moto, Credentials::for_tests()).await;
        World {
            iam: aws_sdk_iam::Client::new(&sdk),
            moto,
            kube,
            aws_proxy,
            kube_proxy,
            cluster_arn,
            issuer,
            dir,
            kubeconfig,
            bin: bin.into(),
        }
    }

    pub fn account(&self) -> &str {
        self.cluster_arn.split(':').nth(4).unwrap_or_default()
    }

    pub fn issuer_host_path(&self) -> &str {
        self.issuer.trim_start_matches("https://")
    }

    /// The environment of a run: AWS through the proxy, the stand-in through its proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = moto::test_env(&self.moto);
        for (k, v) in env.iter_mut() {
            if k == "AWS_ENDPOINT_URL" {
                *v = self.aws_proxy.url();
            }
        }
        env.extend([
            (
                "KUBECONFIG".to_string(),
                self.kubeconfig.display().to_string(),
            ),
            ("EPINIO_IRSA_CLUSTER_NAME".to_string(), CLUSTER.to_string()),
            ("EPINIO_IRSA_NAMESPACE".to_string(), NAMESPACE.to_string()),
            // Fast failure for injected timeouts; the defaults are for real AWS.
            (
                "EPINIO_IRSA_CALL_TIMEOUT_SECONDS".to_string(),
                "3".to_string(),
            ),
            ("HOME".to_string(), self.dir.display().to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            // Unwrapped summaries, so that scenarios can look for whole sentences;
            // tests/output.rs checks the wrapped default.
            ("EPINIO_IRSA_OUTPUT_WIDTH".to_string(), "0".to_string()),
        ]);
        env
    }

    /// Run `epinio-irsa <command>` with the world's environment plus `extra` (later wins).
    pub async fn run(&self, command: &str, extra: &[(&str, &str)]) -> RunOutput {
        self.run_with_timeout(command, extra, Duration::from_secs(120))
            .await
    }

    pub async fn run_with_timeout(
        &self,
        command: &str,
        extra: &[(&str, &str)],
        limit: Duration,
    ) -> RunOutput {
        self.aws_proxy.clear_calls();
        self.kube_proxy.clear_calls();
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg(command).env_clear().envs(self.env());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("epinio-irsa {command} did not finish within {limit:?}"))
            .expect("cannot run epinio-irsa");
        RunOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            aws_calls: self.aws_proxy.calls(),
            kube_calls: self.kube_proxy.calls(),
        }
    }

    // ----- Kubernetes state ------------------------------------------------------------

    pub fn service_account(&self, name: &str) -> Option<Value> {
        self.kube.get("v1", "ServiceAccount", NAMESPACE, name)
    }

    pub fn annotation(&self, sa: &str, key: &str) -> Option<String> {
        self.service_account(sa)?
            .pointer("/metadata/annotations")?
            .get(key)?
            .as_str()
            .map(str::to_string)
    }

    pub fn workload(&self, kind: &str, name: &str) -> Value {
        self.kube
            .get("apps/v1", kind, NAMESPACE, name)
            .unwrap_or_else(|| panic!("{kind} {name} missing"))
    }

    /// The stand-in's objects without the fields that differ between equivalent histories
    /// (uids, resource versions, timestamps).
    pub fn kube_state(&self) -> Value {
        let mut snap = self.kube.snapshot();
        strip(
            &mut snap,
            &["uid", "resourceVersion", "creationTimestamp", "time"],
        );
        snap
    }

    // ----- IAM state -------------------------------------------------------------------

    /// Every role, local policy and OIDC provider of the account, as a user would list them,
    /// without ids and dates.
    pub async fn iam_state(&self) -> Value {
        let iam = &self.iam;
        let mut roles = BTreeMap::new();
        let listed = iam
            .list_roles()
            .max_items(1000)
            .send()
            .await
            .expect("ListRoles");
        for r in listed.roles() {
            let name = r.role_name();
            let role = iam
                .get_role()
                .role_name(name)
                .send()
                .await
                .expect("GetRole");
            let role = role.role().expect("role");
            let attached = iam
                .list_attached_role_policies()
                .role_name(name)
                .send()
                .await
                .expect("ListAttachedRolePolicies");
            let mut attached: Vec<String> = attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect();
            attached.sort();
            let trust = role
                .assume_role_policy_document()
                .map(|d| parse_doc(&decode(d)))
                .unwrap_or(Value::Null);
            roles.insert(
                name.to_string(),
                json!({
                    "arn": role.arn(),
                    "path": role.path(),
                    "trust": trust,
                    "tags": role.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect::<BTreeMap<_,_>>(),
                    "boundary": role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
                    "attached": attached,
                }),
            );
        }
        let mut policies = BTreeMap::new();
        let listed = iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .max_items(1000)
            .send()
            .await
            .expect("ListPolicies");
        for p in listed.policies() {
            let arn = p.arn().unwrap_or_default();
            let got = iam
                .get_policy()
                .policy_arn(arn)
                .send()
                .await
                .expect("GetPolicy");
            let got = got.policy().expect("policy");
            let versions = iam
                .list_policy_versions()
                .policy_arn(arn)
                .send()
                .await
                .expect("ListPolicyVersions");
            let default = got.default_version_id().unwrap_or_default();
            let doc = iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(default)
                .send()
                .await
                .expect("GetPolicyVersion");
            let doc = doc
                .policy_version()
                .and_then(|v| v.document())
                .map(|d| parse_doc(&decode(d)))
                .unwrap_or(Value::Null);
            let mut tags: BTreeMap<String, String> = got
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            tags.remove("epinio-irsa/document-version");
            policies.insert(
                arn.to_string(),
                json!({
                    "document": doc,
                    "versions": versions.versions().len(),
                    "tags": tags,
                    "attachments": got.attachment_count(),
                }),
            );
        }
        let mut providers = BTreeMap::new();
        let listed = iam
            .list_open_id_connect_providers()
            .send()
            .await
            .expect("ListOpenIDConnectProviders");
        for p in listed.open_id_connect_provider_list() {
            let arn = p.arn().unwrap_or_default();
            let got = iam
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send()
                .await
                .expect("GetOpenIDConnectProvider");
            providers.insert(
                arn.to_string(),
                json!({
                    "client_ids": got.client_id_list(),
                    "tags": got.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect::<BTreeMap<_,_>>(),
                }),
            );
        }
        let mut associations: Vec<Value> = self
            .pod_identity()
            .associations()
            .into_iter()
            .map(|a| {
                json!({
                    "subject": format!("{}/{}", a.namespace, a.service_account),
                    "role": a.role_arn,
                    "tags": a.tags,
                    "owner": a.owner_arn,
                })
            })
            .collect();
        associations.sort_by_key(|a| a["subject"].as_str().unwrap_or_default().to_string());
        json!({
            "roles": roles,
            "policies": policies,
            "providers": providers,
            "pod_identity_associations": associations,
        })
    }

    /// The EKS Pod Identity stand-in behind the AWS proxy.
    pub fn pod_identity(&self) -> &crate::pod_identity::PodIdentity {
        self.aws_proxy.pod_identity()
    }

    /// Install the `eks-pod-identity-agent` add-on on the cluster with this status.
    pub fn install_agent(&self, status: &str) {
        self.pod_identity()
            .install_agent(&self.cluster_arn, status, "v1.3.4-eksbuild.1");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_kubeconfig(path: &Path, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {server}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: {NAMESPACE}\ncurrent-context: standin\nusers:\n- name: standin\n  user: {{}}\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(map) => {
            for k in keys {
                map.remove(*k);
            }
            for child in map.values_mut() {
                strip(child, keys);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| strip(i, keys)),
        _ => {}
    }
}

/// IAM returns documents URL-encoded.
pub fn decode(raw: &str) -> String {
    crate::proxy::percent_decode(raw)
}

fn parse_doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

// ----- helpers for the reliability and security tests ------------------------------------

/// One run of [`World::run_concurrently`]: a command, extra environment, and how long after
/// the others' start it begins.
#[derive(Debug, Clone)]
pub struct ConcurrentRun {
    pub command: String,
    pub extra: Vec<(String, String)>,
    pub start_after: Duration,
}

impl World {
    /// Start several runs of the binary at (nearly) the same time and wait for all of them.
    /// The proxies' call logs are cleared once, before the first start, so every returned
    /// [`RunOutput`] carries the calls of all runs together.
    pub async fn run_concurrently(&self, runs: &[ConcurrentRun]) -> Vec<RunOutput> {
        self.aws_proxy.clear_calls();
        self.kube_proxy.clear_calls();
        let env = self.env();
        let children = runs.iter().map(|run| {
            let mut cmd = tokio::process::Command::new(&self.bin);
            cmd.arg(&run.command)
                .env_clear()
                .envs(env.iter().cloned())
                .envs(run.extra.iter().cloned())
                .kill_on_drop(true);
            let delay = run.start_after;
            async move {
                tokio::time::sleep(delay).await;
                tokio::time::timeout(Duration::from_secs(120), cmd.output())
                    .await
                    .expect("epinio-irsa did not finish within 120 s")
                    .expect("cannot run epinio-irsa")
            }
        });
        let outputs = futures_join_all(children).await;
        let (aws_calls, kube_calls) = (self.aws_proxy.calls(), self.kube_proxy.calls());
        outputs
            .into_iter()
            .map(|out| RunOutput {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                aws_calls: aws_calls.clone(),
                kube_calls: kube_calls.clone(),
            })
            .collect()
    }

    /// The kubeconfig every run uses (under RBAC, it authenticates as the hook).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Write a kubeconfig like the world's, whose user authenticates with `token` (a bearer
    /// token, as a ServiceAccount token would be), and return its path; pass it as
    /// `KUBECONFIG` in a run's extra environment.
    pub fn kubeconfig_with_token(&self, token: &str) -> PathBuf {
        let path = self.dir.join("kubeconfig-token");
        let server = self.kube_proxy.url();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {server}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: {NAMESPACE}\ncurrent-context: standin\nusers:\n- name: standin\n  user:\n    token: {token}\n"
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
}

/// `futures::future::join_all` without the dependency: run every future to completion,
/// concurrently, and keep their order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("run task panicked"));
    }
    out
}

// ----- the chart's RBAC, enforced by the stand-in ------------------------------------------

/// The helm binary `scripts/setup.sh` installs.
pub fn helm() -> PathBuf {
    let helm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/helm");
    assert!(
        helm.exists(),
        "helm not found at {}: run scripts/setup.sh (it installs the pinned helm)",
        helm.display()
    );
    helm
}

/// `helm template` of `chart/` with Epinio's `values` (plus a cluster name and an image), as
/// JSON documents.
pub fn render_chart(values: &Value, dir: &Path) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chart");
    let file = dir.join("chart-values.yaml");
    std::fs::write(
        &file,
        serde_norway::to_string(values).expect("values to YAML"),
    )
    .expect("write values");
    let out = std::process::Command::new(helm())
        .args(["template", "epinio-irsa"])
        .arg(&chart)
        .args(["-n", NAMESPACE, "-f"])
        .arg(&file)
        .args(["--set", &format!("irsa.clusterName={CLUSTER}")])
        .args([
            "--set",
            "irsa.image.repository=registry.example.com/epinio-irsa",
        ])
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_norway::Deserializer::from_str(&text)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// The hook's identity: the chart's installer ServiceAccount (release `epinio-irsa`).
pub const HOOK_USER: &str = "system:serviceaccount:epinio:epinio-irsa";

impl World {
    /// Like [`World::with_objects`], but the stand-in authenticates and authorizes every
    /// request against the Role and RoleBinding `helm template` renders from `chart/` for
    /// `values`, and the job runs as the hook's ServiceAccount.
    pub async fn with_rbac(bin: impl Into<PathBuf>, objects: Vec<Value>, values: &Value) -> World {
        let w = World::with_objects(bin, objects).await;
        let docs = render_chart(values, &w.dir);
        assert!(
            docs.iter().any(|d| d["kind"] == "Role"),
            "the chart rendered no Role"
        );
        let token = w.kube.enable_rbac(&docs, HOOK_USER);
        let text = std::fs::read_to_string(&w.kubeconfig).expect("kubeconfig");
        let text = text.replace("  user: {}\n", &format!("  user:\n    token: {token}\n"));
        std::fs::write(&w.kubeconfig, text).expect("write kubeconfig");
        w
    }
}
