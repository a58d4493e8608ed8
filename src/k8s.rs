//! Kubernetes edges: ServiceAccount annotations by server-side apply (field manager
//! `epinio-irsa`), the staging ServiceAccount it may create, and workload restarts.
//!
//! Ownership is Kubernetes' own: the job only ever applies the fields it manages, so whatever
//! Helm or a person set stays theirs, and a field another manager holds with a different value
//! is a conflict the job reports instead of forcing.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, Preconditions,
};
use serde_json::{json, Value};

use crate::config::{MANAGED_BY_KEY, MANAGED_BY_VALUE, OWNER_TAG};
use crate::plan::{ServiceAccountSpec, RESTARTED_FOR_ANNOTATION, ROLE_ARN_ANNOTATION};
use crate::{Change, Error};

pub const FIELD_MANAGER: &str = "epinio-irsa";

/// The workload kinds whose pods may run under a ServiceAccount and that a pod-template
/// change restarts.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

#[derive(Clone)]
pub struct K8s {
    pub client: kube::Client,
    pub namespace: String,
    pub attempts: u32,
    /// This installation (`<cluster>/<namespace>/<release>`): recorded on the ServiceAccount
    /// the job creates, so another installation's teardown never deletes it.
    pub owner: String,
}

/// What the job needs to know of a ServiceAccount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaState {
    pub uid: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Annotation keys `epinio-irsa` holds by server-side apply.
    pub our_annotations: BTreeSet<String>,
    /// Whether `epinio-irsa` holds the managed-by label: then it created this ServiceAccount.
    pub ours_label: bool,
}

impl SaState {
    /// Created by this installation: our label, held by our field manager, and our owner.
    pub fn created_by(&self, owner: &str) -> bool {
        self.ours_label
            && self.labels.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && self.annotations.get(OWNER_TAG).map(String::as_str) == Some(owner)
    }
}

/// A workload running pods under some ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    pub name: String,
    pub service_account: String,
    /// The role its pods were last started for, by this job.
    pub restarted_for: Option<String>,
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
    /// One Kubernetes call with bounded retries for 409/429/5xx and transport errors.
    async fn call<T, F, Fut>(&self, verb: &'static str, what: &str, f: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            tracing::debug!(verb, resource = what, attempt, "kubernetes call");
            match f().await {
                Err(e) if is_retryable(&e) && attempt < self.attempts => {
                    tracing::info!(verb, resource = what, attempt, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Kube {
                        verb,
                        resource: what.to_string(),
                        source: Box::new(e),
                    })
                }
                Ok(v) => return Ok(v),
            }
        }
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

    /// Converge one ServiceAccount's annotations. `state` is what `read_service_account`
    /// found. No call at all when it is already as wanted.
    pub async fn ensure_service_account(
        &self,
        spec: &ServiceAccountSpec,
        state: Option<&SaState>,
        dry_run: bool,
    ) -> Result<Change, Error> {
        let label = match state {
            None if spec.create_if_missing => true,
            None => {
                return Err(Error::ServiceAccountMissing {
                    namespace: self.namespace.clone(),
                    name: spec.name.clone(),
                })
            }
            Some(s) => s.ours_label,
        };
        let mut annotations = spec.annotations.clone();
        if label {
            annotations.insert(OWNER_TAG.to_string(), self.owner.clone());
        }
        let mut changes = Vec::new();
        if let Some(s) = state {
            for (k, v) in &annotations {
                if s.annotations.get(k) != Some(v) {
                    changes.push(format!("annotation {k}"));
                } else if !s.our_annotations.contains(k) {
                    changes.push(format!("take shared ownership of {k}"));
                }
            }
            for k in s
                .our_annotations
                .iter()
                .filter(|k| !annotations.contains_key(*k))
            {
                changes.push(format!("remove annotation {k}"));
            }
            if changes.is_empty() {
                return Ok(Change::Unchanged);
            }
        }
        if !dry_run {
            let mut metadata = json!({ "name": spec.name, "annotations": annotations });
            if label {
                metadata["labels"] = json!({ MANAGED_BY_KEY: MANAGED_BY_VALUE });
            }
            let body =
                json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata });
            let api = self.service_accounts();
            let params = PatchParams::apply(FIELD_MANAGER);
            let patch = Patch::Apply(&body);
            self.call("apply", &self.sa_label(&spec.name), || {
                api.patch(&spec.name, &params, &patch)
            })
            .await
            .map_err(|e| self.explain_conflict(e, &spec.name))?;
        }
        Ok(match state {
            None => Change::Create,
            Some(_) => Change::Update(changes),
        })
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

    /// Teardown: delete the ServiceAccount if this job created it, otherwise give up the
    /// annotations it applied (Kubernetes removes them unless another manager holds them).
    pub async fn remove_service_account(
        &self,
        name: &str,
        role_arn: &str,
    ) -> Result<Change, Error> {
        let Some(state) = self.read_service_account(name).await? else {
            return Ok(Change::Absent);
        };
        let label = self.sa_label(name);
        let api = self.service_accounts();
        if state.created_by(&self.owner) {
            {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: state.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match self
                    .call("delete", &label, || api.delete(name, &params))
                    .await
                {
                    Ok(_) => {}
                    Err(Error::Kube { source, .. }) if status_code(&source) == Some(404) => {
                        return Ok(Change::Absent)
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(Change::Remove);
        }
        if state.our_annotations.is_empty() {
            return Ok(Change::Absent);
        }
        if state
            .annotations
            .get(ROLE_ARN_ANNOTATION)
            .map(String::as_str)
            != Some(role_arn)
            && state.our_annotations.contains(ROLE_ARN_ANNOTATION)
        {
            // Cannot happen without a forced apply by someone else; leave it to them.
            return Ok(Change::Kept(format!(
                "{ROLE_ARN_ANNOTATION} no longer holds {role_arn}"
            )));
        }
        {
            let body = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name } });
            let params = PatchParams::apply(FIELD_MANAGER);
            let patch = Patch::Apply(&body);
            self.call("apply", &label, || api.patch(name, &params, &patch))
                .await?;
        }
        Ok(Change::Update(vec![format!(
            "release annotations {}",
            state
                .our_annotations
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )]))
    }

    /// Every Deployment, StatefulSet and DaemonSet of the namespace, listed concurrently.
    pub async fn list_workloads(&self) -> Result<Vec<Workload>, Error> {
        let lists = futures::future::try_join_all(WORKLOAD_KINDS.iter().map(|kind| async move {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource(kind));
            let what = format!("{}s in {}", kind.to_lowercase(), self.namespace);
            let params = ListParams::default();
            let list = self.call("list", &what, || api.list(&params)).await?;
            Ok::<_, Error>(
                list.items
                    .into_iter()
                    .filter_map(|o| {
                        let template = o.data.get("spec")?.get("template")?;
                        let pod = template.get("spec");
                        let sa = pod
                            .and_then(|p| {
                                p.get("serviceAccountName")
                                    .or_else(|| p.get("serviceAccount"))
                            })
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .unwrap_or("default");
                        Some(Workload {
                            kind,
                            name: o.metadata.name.clone()?,
                            service_account: sa.to_string(),
                            restarted_for: template
                                .get("metadata")
                                .and_then(|m| m.get("annotations"))
                                .and_then(|a| a.get(RESTARTED_FOR_ANNOTATION))
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        }))
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    /// Roll a workload by applying the pod-template annotation naming the role its pods
    /// must be started for.
    pub async fn restart(&self, w: &Workload, role_arn: &str) -> Result<(), Error> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource(w.kind));
        let body = json!({
            "apiVersion": "apps/v1",
            "kind": w.kind,
            "metadata": { "name": w.name },
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_FOR_ANNOTATION: role_arn } } } }
        });
        let params = PatchParams::apply(FIELD_MANAGER);
        let what = format!("{} {}/{}", w.kind.to_lowercase(), self.namespace, w.name);
        let patch = Patch::Apply(&body);
        self.call("apply", &what, || api.patch(&w.name, &params, &patch))
            .await?;
        Ok(())
    }
}

/// Before any write: the server's ServiceAccount must exist (Epinio's chart makes it), and no
/// annotation the job sets may hold another value set by someone else.
pub fn precheck(
    namespace: &str,
    spec: &ServiceAccountSpec,
    state: Option<&SaState>,
) -> Result<(), Error> {
    let Some(state) = state else {
        if spec.create_if_missing {
            return Ok(());
        }
        return Err(Error::ServiceAccountMissing {
            namespace: namespace.to_string(),
            name: spec.name.clone(),
        });
    };
    for (key, value) in &spec.annotations {
        match state.annotations.get(key) {
            Some(actual) if actual != value && !state.our_annotations.contains(key) => {
                return Err(Error::AnnotationConflict {
                    namespace: namespace.to_string(),
                    name: spec.name.clone(),
                    detail: format!(
                        "annotation {key} is {actual:?}, set by another field manager, not {value:?}"
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Before any write: a ServiceAccount that another epinio-irsa installation created (our
/// label, held by our field manager, with that installation's owner annotation) is theirs.
/// All installations share the field manager, so the managed fields alone cannot tell; the
/// owner annotation can.
pub fn precheck_creator(
    namespace: &str,
    name: &str,
    state: Option<&SaState>,
    owner: &str,
) -> Result<(), Error> {
    let Some(state) = state else {
        return Ok(());
    };
    let labelled = state.ours_label
        && state.labels.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE);
    match state.annotations.get(OWNER_TAG) {
        Some(other) if labelled && other != owner => Err(Error::ServiceAccountNotOwned {
            namespace: namespace.to_string(),
            name: name.to_string(),
            owner: other.clone(),
        }),
        _ => Ok(()),
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
