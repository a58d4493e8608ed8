//! Workloads: which run under which ServiceAccount, restarting them into new credentials, and
//! waiting (bounded) for a Deployment's rollout.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use super::{resource, K8s, FIELD_MANAGER, WORKLOAD_KINDS};
use crate::plan::RESTARTED_FOR_ANNOTATION;
use crate::state::Workload;
use crate::Error;

impl K8s {
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

    /// Wait until the Deployment has rolled out, as `kubectl rollout status` judges it: the
    /// controller has seen the newest generation, and every wanted replica is updated and
    /// available with no old one left. Polls every second until `until`; `waiting` hears what
    /// is still missing after each poll that found the rollout unfinished.
    pub async fn wait_rolled_out(
        &self,
        name: &str,
        until: Instant,
        waiting: impl Fn(&str, &str),
    ) -> Result<(), Error> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!("deployment {}/{name}", self.namespace);
        loop {
            let deployment = self.call("get", &what, || api.get(name)).await?;
            let Some(state) = rollout_pending(&deployment) else {
                return Ok(());
            };
            if Instant::now() >= until {
                return Err(Error::Rollout {
                    deployment: what,
                    state,
                });
            }
            tracing::debug!(deployment = %what, %state, "waiting for the rollout");
            waiting(&what, &state);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// `None` when the Deployment has rolled out, else what is still missing.
fn rollout_pending(d: &Deployment) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Some(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let old = status.replicas.unwrap_or(0) - updated;
    (updated < wanted || available < wanted || old > 0).then(|| {
        format!("{updated} of {wanted} replicas updated, {available} available, {old} old")
    })
}
