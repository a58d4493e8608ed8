//! Kubernetes edges: ServiceAccount annotations by server-side apply (field manager
//! `epinio-irsa`), the staging ServiceAccount it may create, and workload restarts.
//!
//! Ownership is Kubernetes' own: the job only ever applies the fields it manages, so whatever
//! Helm or a person set stays theirs, and a field another manager holds with a different value
//! is a conflict the job reports instead of forcing.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{
    Api, ApiResource, DeleteParams, GroupVersionKind, Patch, PatchParams, Preconditions,
};
use serde_json::{json, Value};

use crate::config::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::core::{SaRemoval, SaStep};
pub use crate::state::{EpinioObjects, SaState, Workload};
use crate::{Change, Error};

mod workloads;

pub const FIELD_MANAGER: &str = "epinio-irsa";

/// Epinio's server Deployment (name hard-coded in Epinio's chart) and the ConfigMap its
/// server reads staging's settings from.
pub const EPINIO_SERVER: &str = "epinio-server";
pub const STAGE_SCRIPTS: &str = "epinio-stage-scripts";

/// The workload kinds whose pods may run under a ServiceAccount and that a pod-template
/// change restarts.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

#[derive(Clone)]
pub struct K8s {
    pub client: kube::Client,
    pub namespace: String,
    pub attempts: u32,
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind))
}

/// Keys under `f:metadata` / `f:<section>` that `manager` owns by Apply.
fn owned_keys(fields: &Value, section: &str) -> BTreeSet<String> {
    fields
        .get("f:metadata")
        .and_then(|m| m.get(format!("f:{section}")))
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("f:"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => {
            matches!(status.code, 409 | 429 | 500 | 502 | 503 | 504) && !is_apply_conflict(e)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A server-side apply conflict: another field manager holds a field we apply, with another
/// value. Unlike an optimistic-concurrency 409 ("the object has been modified"), retrying does
/// not help, and it is the one 409 that means someone else's annotation.
fn is_apply_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409 && status.message.starts_with("Apply failed with"))
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl K8s {
    /// One Kubernetes call with the shared bounded retries for 409/429/5xx and transport
    /// errors.
    pub(super) async fn call<T, F, Fut>(
        &self,
        verb: &'static str,
        what: &str,
        f: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        tracing::debug!(verb, resource = what, "kubernetes call");
        crate::retry::retry(self.attempts, is_retryable, f)
            .await
            .map_err(|e| Error::Kube {
                verb,
                resource: what.to_string(),
                source: Box::new(e),
            })
    }

    fn service_accounts(&self) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn sa_label(&self, name: &str) -> String {
        format!("serviceaccount {}/{name}", self.namespace)
    }

    pub async fn read_service_account(&self, name: &str) -> Result<Option<SaState>, Error> {
        let api = self.service_accounts();
        let Some(sa) = self
            .call("get", &self.sa_label(name), || api.get_opt(name))
            .await?
        else {
            return Ok(None);
        };
        let ours = sa
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|m| {
                m.manager.as_deref() == Some(FIELD_MANAGER)
                    && m.operation.as_deref() == Some("Apply")
            })
            .filter_map(|m| m.fields_v1.as_ref().map(|f| f.0.clone()))
            .next()
            .unwrap_or(Value::Null);
        Ok(Some(SaState {
            uid: sa.metadata.uid.clone(),
            annotations: sa.metadata.annotations.clone().unwrap_or_default(),
            labels: sa.metadata.labels.clone().unwrap_or_default(),
            our_annotations: owned_keys(&ours, "annotations"),
            ours_label: owned_keys(&ours, "labels").contains(MANAGED_BY_KEY),
        }))
    }

    /// Apply what `core::sa_step` decided. No call at all when nothing changes.
    pub async fn ensure_service_account(&self, name: &str, step: &SaStep) -> Result<Change, Error> {
        if !step.change.is_write() {
            return Ok(step.change.clone());
        }
        // No annotation to hold (Pod Identity on a ServiceAccount Epinio's chart owns): apply
        // without the map, which gives up the ones held before, as teardown's release does.
        let mut metadata = json!({ "name": name });
        if !step.annotations.is_empty() {
            metadata["annotations"] = json!(step.annotations);
        }
        if step.label {
            metadata["labels"] = json!({ MANAGED_BY_KEY: MANAGED_BY_VALUE });
        }
        let body = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata });
        let api = self.service_accounts();
        let params = PatchParams::apply(FIELD_MANAGER);
        let patch = Patch::Apply(&body);
        self.call("apply", &self.sa_label(name), || {
            api.patch(name, &params, &patch)
        })
        .await
        .map_err(|e| self.explain_conflict(e, name))?;
        Ok(step.change.clone())
    }

    fn explain_conflict(&self, e: Error, name: &str) -> Error {
        match &e {
            Error::Kube { source, .. } if is_apply_conflict(source) => Error::AnnotationConflict {
                namespace: self.namespace.clone(),
                name: name.to_string(),
                detail: source.to_string(),
            },
            _ => e,
        }
    }

    /// Teardown: apply what `core::sa_removal` decided.
    pub async fn remove_service_account(
        &self,
        name: &str,
        removal: &SaRemoval,
    ) -> Result<Change, Error> {
        let label = self.sa_label(name);
        let api = self.service_accounts();
        match removal {
            SaRemoval::Leave(change) => Ok(change.clone()),
            SaRemoval::Delete { uid } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match self
                    .call("delete", &label, || api.delete(name, &params))
                    .await
                {
                    Ok(_) => Ok(Change::Remove),
                    Err(Error::Kube { source, .. }) if status_code(&source) == Some(404) => {
                        Ok(Change::Absent)
                    }
                    Err(e) => Err(e),
                }
            }
            SaRemoval::Release(_) => {
                let body = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name } });
                let params = PatchParams::apply(FIELD_MANAGER);
                let patch = Patch::Apply(&body);
                self.call("apply", &label, || api.patch(name, &params, &patch))
                    .await?;
                Ok(removal.change())
            }
        }
    }

    /// A short-lived token for `name` with `audience` (TokenRequest); creates no object.
    pub async fn request_token(
        &self,
        name: &str,
        audience: &str,
        seconds: i64,
    ) -> Result<crate::config::Secret, Error> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let api = self.service_accounts();
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience.to_string()],
                expiration_seconds: Some(seconds),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let params = kube::api::PostParams::default();
        let what = format!("serviceaccounts/token {}/{name}", self.namespace);
        let out = self
            .call("create", &what, || {
                api.create_token_request(name, &params, &request)
            })
            .await?;
        Ok(crate::config::Secret::new(
            out.status.map(|s| s.token).unwrap_or_default(),
        ))
    }

    /// Epinio's own objects: Deployment `epinio-server` and ConfigMap `epinio-stage-scripts`,
    /// read concurrently, by name. `None` when the Deployment does not exist (yet).
    pub async fn read_epinio(&self) -> Result<Option<EpinioObjects>, Error> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = |kind: &str, name: &str| format!("{kind} {}/{name}", self.namespace);
        let (d_name, c_name) = (
            what("deployment", EPINIO_SERVER),
            what("configmap", STAGE_SCRIPTS),
        );
        let (deployment, config_map) = tokio::join!(
            self.call("get", &d_name, || deployments.get_opt(EPINIO_SERVER)),
            self.call("get", &c_name, || config_maps.get_opt(STAGE_SCRIPTS)),
        );
        let (Some(deployment), config_map) = (deployment?, config_map?) else {
            return Ok(None);
        };
        let pod = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        let container = pod.and_then(|p| {
            p.containers
                .iter()
                .find(|c| c.name == EPINIO_SERVER)
                .or(p.containers.first())
        });
        let mut data = config_map.and_then(|cm| cm.data).unwrap_or_default();
        let download_image = data.remove("downloadImage");
        let stage_config = data
            .remove("staging-values.json")
            .and_then(|json| serde_json::from_str::<Value>(&json).ok())
            .and_then(|v| v.get("serviceAccountName")?.as_str().map(str::to_string));
        Ok(Some(EpinioObjects {
            image: container.and_then(|c| c.image.clone()),
            labels: deployment.metadata.labels.clone().unwrap_or_default(),
            service_account: pod.and_then(|p| {
                p.service_account_name
                    .clone()
                    .or_else(|| p.service_account.clone())
            }),
            staging_env: container
                .and_then(|c| c.env.as_ref())
                .and_then(|env| {
                    env.iter()
                        .find(|e| e.name == "STAGING_SERVICE_ACCOUNT_NAME")
                })
                .map(|e| e.value.clone().unwrap_or_default()),
            stage_config,
            download_image,
        }))
    }
}

/// Build the client from `KUBECONFIG` or the in-cluster configuration.
pub async fn client(timeout: Duration) -> Result<kube::Client, Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| Error::KubeConfig(e.to_string()))?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // kube-rs would otherwise retry 429/503/504 up to 15 times with backoff up to 1000 s;
    // retries are ours, bounded by EPINIO_IRSA_MAX_ATTEMPTS.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| Error::KubeConfig(e.to_string()))
}
