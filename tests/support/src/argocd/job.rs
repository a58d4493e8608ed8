//! The stand-in's Job controller and kubelet, for one hook Job.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{json, Value};

use super::{name, Key, Phase};
use crate::world::{RunOutput, World};

/// One run of a hook Job by the stand-in's Job controller.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub phase: Phase,
    pub job: String,
    /// The container's first argument: `provision`, `teardown`, ...
    pub command: String,
    /// Which of the Application's rendered objects were live when the pod started.
    pub present: BTreeSet<Key>,
    /// Requests the stand-in's RBAC refused during the run (403s).
    pub denied: Vec<String>,
    pub output: RunOutput,
}

impl JobRun {
    /// Whether the object `kind`/`name` of the rendered chart was live when the Job started.
    pub fn had(&self, kind: &str, name: &str) -> bool {
        self.present
            .iter()
            .any(|k| k.kind == kind && k.name == name)
    }
}

/// The Job controller and kubelet, for one hook Job: the pod is made only when its
/// ServiceAccount exists, its container starts only when every Secret it reads exists; it
/// then runs the real binary with the container's environment (values, secretKeyRef from
/// the stand-in's Secrets, the namespace by fieldRef) as the pod's ServiceAccount, under
/// the Roles and RoleBindings live in the stand-in at that moment.
pub async fn run_job(
    world: &World,
    phase: Phase,
    job: &Value,
    manifests: &[Value],
) -> Result<JobRun, String> {
    let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
    let pod = &job["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"].as_str().unwrap_or("default");
    if world.kube.get("v1", "ServiceAccount", ns, sa).is_none() {
        return Err(format!(
            "no pod: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
        ));
    }
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        if let Some(s) = vol.pointer("/secret/secretName").and_then(Value::as_str) {
            if world.kube.get("v1", "Secret", ns, s).is_none() {
                return Err(format!(
                    "pod stays ContainerCreating: secret \"{s}\" not found"
                ));
            }
        }
    }
    let container = &pod["containers"][0];
    let command = container["args"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut env = container_env(world, ns, container)?;
    let rbac: Vec<Value> = ["Role", "RoleBinding"]
        .iter()
        .flat_map(|k| world.kube.list("rbac.authorization.k8s.io/v1", k, ns))
        .collect();
    let token = world
        .kube
        .enable_rbac(&rbac, &format!("system:serviceaccount:{ns}:{sa}"));
    let kubeconfig = world.kubeconfig_with_token(&token);
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let present = manifests
        .iter()
        .map(Key::of)
        .filter(|k| {
            world
                .kube
                .get(&k.api_version, &k.kind, &k.namespace, &k.name)
                .is_some()
        })
        .collect();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = world.run(&command, &pairs).await;
    let denied = world
        .kube
        .rbac_denied()
        .into_iter()
        .map(|(user, a)| format!("{user} {} {}/{} {:?}", a.verb, a.group, a.resource, a.name))
        .collect();
    Ok(JobRun {
        phase,
        job: name(job).to_string(),
        command,
        present,
        denied,
        output,
    })
}

/// The container's environment as the kubelet gives it: values, secretKeyRef (an error, the
/// kubelet's CreateContainerConfigError, when the Secret or key is missing) and the namespace
/// by fieldRef; anything else panics.
fn container_env(
    world: &World,
    ns: &str,
    container: &Value,
) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let var = e["name"].as_str().unwrap_or_default().to_string();
        if let Some(v) = e.get("value") {
            env.push((var, v.as_str().unwrap_or_default().to_string()));
        } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            let (s, k) = (
                r["name"].as_str().unwrap_or_default(),
                r["key"].as_str().unwrap_or_default(),
            );
            let data = world
                .kube
                .get("v1", "Secret", ns, s)
                .and_then(|o| o["data"][k].as_str().map(str::to_string))
                .ok_or_else(|| {
                    format!("CreateContainerConfigError: secret \"{s}\" (key {k}) not found")
                })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("secret {s} key {k}: {e}"))?;
            env.push((var, String::from_utf8_lossy(&bytes).into_owned()));
        } else if e.pointer("/valueFrom/fieldRef/fieldPath") == Some(&json!("metadata.namespace")) {
            env.push((var, ns.to_string()));
        } else {
            panic!("env var the stand-in cannot resolve: {e}");
        }
    }
    Ok(env)
}
