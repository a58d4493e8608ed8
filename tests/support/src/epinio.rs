//! Epinio's objects in the shapes its chart renders and `helm install` leaves them, by chart
//! version. Written from epinio/helm-charts `chart/epinio` (tags epinio-1.12.0, epinio-1.13.9,
//! epinio-1.13.10): `templates/server.yaml` (Deployment `epinio-server`, its labels from
//! `_helpers.tpl` `epinio.labels`, the image `<registry><repository>:<tag>`, env
//! `STAGING_SERVICE_ACCOUNT_NAME` only when `server.stagingServiceAccountName` is set, chart
//! 1.7-1.12), `templates/stage-scripts*.yaml` (ConfigMaps `epinio-stage-scripts`, `-jammy`,
//! `-bionic` with `staging-values.json` = `toJson .Values.server.stagingWorkloads`, chart
//! 1.13+), plus what Helm itself adds at install (`app.kubernetes.io/managed-by: Helm`,
//! `meta.helm.sh/release-name`, `meta.helm.sh/release-namespace`). No file of Epinio's is
//! copied.

use serde_json::{json, Value};

use crate::world::NAMESPACE;

/// An aws CLI image that reads EKS Pod Identity credentials (2.15.0 or later), for
/// `Chart::aws_cli` where staging must be able to use Pod Identity.
pub const POD_IDENTITY_AWS_CLI: &str = "amazon/aws-cli:2.17.0";

/// How the Epinio chart was installed.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The chart version, e.g. `1.13.9` (Epinio's chart versions follow its releases).
    pub version: String,
    /// `image.epinio.tag`; empty: the chart's appVersion `v<version>`.
    pub image_tag: String,
    /// Rendered server ServiceAccount (`serviceAccount.name`, honoured from 1.13.5).
    pub server_service_account: String,
    /// `server.stagingServiceAccountName` (chart 1.7 - 1.12); empty: not rendered.
    pub legacy_staging: String,
    /// `server.stagingWorkloads.serviceAccountName` (chart 1.13+; default `epinio-server`).
    pub staging_workloads: String,
    /// `image.awscli.repository:tag` as `downloadImage` of the stage-scripts ConfigMaps
    /// (chart 1.13+; default `amazon/aws-cli:2.13.26`).
    pub download_image: String,
}

impl Chart {
    pub fn new(version: &str) -> Chart {
        Chart {
            version: version.to_string(),
            image_tag: String::new(),
            server_service_account: "epinio-server".into(),
            legacy_staging: String::new(),
            staging_workloads: "epinio-server".into(),
            download_image: "amazon/aws-cli:2.13.26".into(),
        }
    }

    /// The aws CLI image staging downloads with (Epinio values `image.awscli.*`).
    pub fn aws_cli(mut self, image: &str) -> Chart {
        self.download_image = image.into();
        self
    }

    pub fn image_tag(mut self, tag: &str) -> Chart {
        self.image_tag = tag.into();
        self
    }

    pub fn server_service_account(mut self, sa: &str) -> Chart {
        self.server_service_account = sa.into();
        self
    }

    pub fn legacy_staging(mut self, sa: &str) -> Chart {
        self.legacy_staging = sa.into();
        self
    }

    pub fn staging_workloads(mut self, sa: &str) -> Chart {
        self.staging_workloads = sa.into();
        self
    }

    fn minor_at_least(&self, minor: u64) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0));
        let (major, m) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        major > 1 || (major == 1 && m >= minor)
    }

    /// The objects of the release namespace the job cares about.
    pub fn objects(&self) -> Vec<Value> {
        let tag = if self.image_tag.is_empty() {
            format!("v{}", self.version)
        } else {
            self.image_tag.clone()
        };
        let helm_annotations = json!({
            "meta.helm.sh/release-name": "epinio",
            "meta.helm.sh/release-namespace": NAMESPACE,
        });
        let mut out = self.server_and_ui(&tag, &helm_annotations);
        if self.minor_at_least(13) {
            out.extend(self.stage_scripts(&tag, &helm_annotations));
        }
        out
    }

    /// The server's ServiceAccount and Deployment, and the UI's Deployment.
    fn server_and_ui(&self, tag: &str, helm_annotations: &Value) -> Vec<Value> {
        let labels = json!({
            "helm.sh/chart": format!("epinio-{}", self.version),
            "app.kubernetes.io/component": "epinio",
            "app.kubernetes.io/instance": "default",
            "app.kubernetes.io/name": "epinio-server",
            "app.kubernetes.io/part-of": "epinio",
            "app.kubernetes.io/version": tag,
            "app.kubernetes.io/managed-by": "Helm",
        });
        let mut env = vec![json!({"name": "NAMESPACE", "value": NAMESPACE})];
        if !self.minor_at_least(13) && !self.legacy_staging.is_empty() {
            env.push(json!({"name": "STAGING_SERVICE_ACCOUNT_NAME", "value": self.legacy_staging}));
        }
        vec![
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {
                    "name": self.server_service_account, "namespace": NAMESPACE,
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": helm_annotations,
                }
            }),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {
                    "name": "epinio-server", "namespace": NAMESPACE,
                    "labels": labels, "annotations": helm_annotations,
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {
                        "app.kubernetes.io/component": "epinio-server",
                        "app.kubernetes.io/instance": "default",
                        "app.kubernetes.io/name": "epinio-server",
                        "app.kubernetes.io/part-of": "epinio",
                    }},
                    "template": {
                        "metadata": {"labels": {
                            "app.kubernetes.io/component": "epinio-server",
                            "app.kubernetes.io/instance": "default",
                            "app.kubernetes.io/name": "epinio-server",
                            "app.kubernetes.io/part-of": "epinio",
                            "app.kubernetes.io/version": tag,
                        }},
                        "spec": {
                            "serviceAccountName": self.server_service_account,
                            "containers": [{
                                "name": "epinio-server",
                                "image": format!("ghcr.io/epinio/epinio-server:{tag}"),
                                "env": env,
                            }]
                        }
                    }
                }
            }),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {
                    "name": "epinio-ui", "namespace": NAMESPACE,
                    "labels": {"app.kubernetes.io/name": "epinio-ui", "app.kubernetes.io/managed-by": "Helm"},
                    "annotations": helm_annotations,
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "epinio-ui"}},
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": "epinio-ui"}},
                        "spec": {"containers": [{"name": "epinio-ui", "image": format!("ghcr.io/epinio/epinio-ui:{tag}")}]}
                    }
                }
            }),
        ]
    }

    /// Epinio 1.13+'s staging ConfigMaps (the job reads staging's ServiceAccount from them).
    fn stage_scripts(&self, tag: &str, helm_annotations: &Value) -> Vec<Value> {
        let staging_values = json!({
            "serviceAccountName": self.staging_workloads,
            "ttlSecondsAfterFinished": 300,
            "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}},
            "storage": {"cache": {"size": "1Gi"}, "sourceBlobs": {"size": "1Gi"}},
            "affinity": {},
            "nodeSelector": {},
        })
        .to_string();
        [
            "epinio-stage-scripts",
            "epinio-stage-scripts-jammy",
            "epinio-stage-scripts-bionic",
        ]
        .into_iter()
        .map(|name| {
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {
                    "name": name, "namespace": NAMESPACE,
                    "labels": {
                        "app.kubernetes.io/component": "epinio-staging",
                        "app.kubernetes.io/part-of": "epinio",
                        "app.kubernetes.io/version": tag,
                        "app.kubernetes.io/managed-by": "Helm",
                    },
                    "annotations": helm_annotations,
                },
                "data": {
                    "staging-values.json": staging_values,
                    "builder": "*",
                    "downloadImage": self.download_image,
                }
            })
        })
        .collect()
    }
}
