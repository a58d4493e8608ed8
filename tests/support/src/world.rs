//! A complete local world for one scenario: a private moto server with an EKS cluster, the
//! Kubernetes stand-in seeded with Epinio's objects, a fault/latency proxy in front of each,
//! and helpers to run the real `epinio-irsa` binary and read the resulting state the way a
//! user would (the AWS SDK for IAM, the stand-in for Kubernetes).
//!
//! Its parts: the [`World`] and its runs here, the IAM state as a user reads it
//! (`iam_state.rs`), concurrent runs and token kubeconfigs (`concurrent.rs`), and the chart's
//! RBAC enforced by the stand-in (`chart.rs`).

mod chart;
mod concurrent;
mod iam_state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_iam::config::Credentials;
use serde_json::Value;

use crate::kube::KubeStandIn;
use crate::moto::{self, Moto};
use crate::proxy::{Call, Proxy};

pub use chart::{helm, render_chart, HOOK_USER};
pub use concurrent::ConcurrentRun;

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

    /// Run `epinio-irsa <command>` (its words: `plan teardown` is two arguments) with the world's environment plus `extra` (later wins).
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
        cmd.args(command.split_whitespace())
            .env_clear()
            .envs(self.env());
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
