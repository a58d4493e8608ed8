//! A stand-in for Argo CD's handling of an Application's hooks, applied to the objects
//! `helm template` renders (as Argo CD's repo-server renders a Helm source), driving the real
//! `epinio-irsa` binary against a [`World`](crate::world::World) (moto and the Kubernetes stand-in).
//!
//! Classification follows the sources of argoproj/argo-cd (gitops-engine is vendored there
//! under `gitops-engine/`; the same code as argoproj/gitops-engine before the move):
//! - `gitops-engine/pkg/sync/hook/hook.go`: [`is_hook`], [`skip`], [`hook_types`] (the values of
//!   `argocd.argoproj.io/hook` that are sync hook types win; only when there are none do the
//!   `helm.sh/hook` values count);
//! - `gitops-engine/pkg/sync/hook/helm/{hook,type,weight,delete_policy}.go`: a `helm.sh/hook`
//!   other than `crd-install` makes a hook; pre-install/pre-upgrade are PreSync,
//!   post-install/post-upgrade PostSync, every other value (test, pre-delete, post-delete,
//!   rollback) no phase;
//! - `gitops-engine/pkg/sync/sync_phase.go` ([`sync_phases`]), `syncwaves/waves.go` ([`wave`]),
//!   `hook/delete_policy.go` ([`delete_policies`]), `sync_tasks.go` (order: phase, wave, kind,
//!   name) and `sync_context.go` (a wave's Jobs must complete before the next wave; hooks with
//!   HookSucceeded are deleted once the whole sync succeeded, BeforeHookCreation ones just
//!   before they are created again);
//! - `controller/hook.go` ([`is_delete_hook`]): PreDelete and PostDelete hooks, by release
//!   ([`ArgoCd`]); `controller/state.go` ([`in_sync_targets`]): which delete hooks stay in syncs;
//! - `controller/appcontroller.go` `finalizeApplicationDeletion` ([`Application::delete`]):
//!   PreDelete hooks (all created at once, no waves), then cascade deletion of everything the
//!   Application tracks (its PreDelete hooks included), then PostDelete hooks, then the clean-up
//!   of both kinds by delete policy (`cleanupHooks`).
//!
//! Not modelled: Argo CD's caches and retries (a failed Job ends the operation with an error
//! instead of being retried), diffing (a live release object is left as it is), pruning, sync
//! options, SyncFail hooks, the Job controller's backoff (a Job runs once) and health checks
//! other than a Job's.

mod application;
mod job;

use std::collections::BTreeSet;

use serde_json::{json, Value};

pub use application::{Application, Deletion, Step};
pub use job::{run_job, JobRun};

/// The Argo CD releases whose hook handling differs, as their sources show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoCd {
    /// Before 2.10.0: no PreDelete or PostDelete hooks; a `pre-delete` or `post-delete` Helm
    /// hook is a hook of no phase, never applied.
    Before2_10,
    /// 2.10.0 to 3.2.x: PostDelete hooks (`controller/hook.go` since #16595), matched on the
    /// whole annotation value; no PreDelete; delete hooks are not kept out of syncs.
    V2_10,
    /// 3.3.0 to 3.3.2: PreDelete hooks too (#22288), matched on the whole value; every delete
    /// hook is left out of syncs (`controller/state.go`).
    V3_3_0,
    /// 3.3.3 and 3.3.4: comma-separated values match (#26420); still every delete hook left
    /// out of syncs.
    V3_3_3,
    /// 3.3.5+, 3.4.0+ and 3.5.x: a delete hook that gitops-engine gives a sync phase stays in
    /// syncs (#26996, `hasGitOpsEngineSyncPhaseHook`).
    V3_5,
}

impl ArgoCd {
    fn has_pre_delete(self) -> bool {
        !matches!(self, ArgoCd::Before2_10 | ArgoCd::V2_10)
    }
    fn comma_lists(self) -> bool {
        matches!(self, ArgoCd::V3_3_3 | ArgoCd::V3_5)
    }
}

/// Where an object takes part: the sync phases, the deletion phases, or none ([`Phase::Skip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    PreDelete,
    PostDelete,
    /// Applied in no phase: `argocd.argoproj.io/hook: Skip`, or a hook none of whose values
    /// maps to a phase (Helm's `test`, for one).
    Skip,
}

impl Phase {
    fn order(self) -> i32 {
        // sync_tasks.go syncPhaseOrder
        match self {
            Phase::PreSync => -1,
            Phase::Sync => 0,
            Phase::PostSync => 1,
            _ => 2,
        }
    }
}

const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
const HELM_HOOK: &str = "helm.sh/hook";

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// `resource.GetAnnotationCSVs`: the comma-separated values, trimmed, empty ones dropped,
/// deduplicated in order.
pub fn annotation_csvs(obj: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in annotation(obj, key).unwrap_or_default().split(',') {
        let v = v.trim();
        if !v.is_empty() && !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    out
}

/// `hook.Types`: the sync hook types of `argocd.argoproj.io/hook` (common.NewHookType: PreSync,
/// Sync, PostSync, SyncFail, Skip); only when none is valid, the `helm.sh/hook` values that
/// helm/type.go maps (pre-install, pre-upgrade: PreSync; post-install, post-upgrade: PostSync).
pub fn hook_types(obj: &Value) -> Vec<Phase> {
    let mut types: Vec<Phase> = annotation_csvs(obj, ARGO_HOOK)
        .iter()
        .filter_map(|t| match t.as_str() {
            "PreSync" => Some(Phase::PreSync),
            "Sync" => Some(Phase::Sync),
            "PostSync" => Some(Phase::PostSync),
            "SyncFail" => Some(Phase::SyncFail),
            "Skip" => Some(Phase::Skip),
            _ => None,
        })
        .collect();
    if types.is_empty() {
        types = annotation_csvs(obj, HELM_HOOK)
            .iter()
            .filter_map(|t| match t.as_str() {
                "pre-install" | "pre-upgrade" => Some(Phase::PreSync),
                "post-install" | "post-upgrade" => Some(Phase::PostSync),
                _ => None,
            })
            .collect();
    }
    types
}

/// `hook.Skip`: Skip is the only type.
pub fn skip(obj: &Value) -> bool {
    let types = hook_types(obj);
    types.contains(&Phase::Skip) && types.len() == 1
}

/// `hook.IsHook`: an `argocd.argoproj.io/hook` annotation (unless it only skips), else any
/// `helm.sh/hook` but `crd-install`.
pub fn is_hook(obj: &Value) -> bool {
    if annotation(obj, ARGO_HOOK).is_some() {
        return !skip(obj);
    }
    annotation(obj, HELM_HOOK).is_some_and(|v| v != "crd-install")
}

/// `sync_phase.go` syncPhases: none when skipped; a hook's phases from its types; a plain
/// resource is Sync.
pub fn sync_phases(obj: &Value) -> BTreeSet<Phase> {
    if skip(obj) {
        BTreeSet::new()
    } else if is_hook(obj) {
        hook_types(obj)
            .into_iter()
            .filter(|t| {
                matches!(
                    t,
                    Phase::PreSync | Phase::Sync | Phase::PostSync | Phase::SyncFail
                )
            })
            .collect()
    } else {
        BTreeSet::from([Phase::Sync])
    }
}

/// `syncwaves.Wave`: `argocd.argoproj.io/sync-wave`, else `helm.sh/hook-weight`, else 0 (a
/// value that is not an integer counts as absent, like strconv.Atoi's error).
pub fn wave(obj: &Value) -> i64 {
    ["argocd.argoproj.io/sync-wave", "helm.sh/hook-weight"]
        .iter()
        .find_map(|k| annotation(obj, k).and_then(|v| v.parse::<i64>().ok()))
        .unwrap_or(0)
}

/// `hook.DeletePolicies`: `argocd.argoproj.io/hook-delete-policy` and `helm.sh/hook-delete-policy`
/// together (hook-succeeded = HookSucceeded, hook-failed = HookFailed, before-hook-creation =
/// BeforeHookCreation); BeforeHookCreation when there is none.
pub fn delete_policies(obj: &Value) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for p in annotation_csvs(obj, "argocd.argoproj.io/hook-delete-policy") {
        match p.as_str() {
            "HookSucceeded" => out.insert("HookSucceeded"),
            "HookFailed" => out.insert("HookFailed"),
            "BeforeHookCreation" => out.insert("BeforeHookCreation"),
            _ => false,
        };
    }
    for p in annotation_csvs(obj, "helm.sh/hook-delete-policy") {
        match p.as_str() {
            "hook-succeeded" => out.insert("HookSucceeded"),
            "hook-failed" => out.insert("HookFailed"),
            "before-hook-creation" => out.insert("BeforeHookCreation"),
            _ => false,
        };
    }
    if out.is_empty() {
        out.insert("BeforeHookCreation");
    }
    out
}

/// `controller/hook.go` isHookOfType for [`Phase::PreDelete`] or [`Phase::PostDelete`]:
/// `argocd.argoproj.io/hook` PreDelete / PostDelete or `helm.sh/hook` pre-delete / post-delete,
/// the whole value before 3.3.3, one of its comma-separated values since; PreDelete from 3.3.0.
pub fn is_delete_hook(obj: &Value, phase: Phase, version: ArgoCd) -> bool {
    let (argo, helm) = match phase {
        Phase::PreDelete if version.has_pre_delete() => ("PreDelete", "pre-delete"),
        Phase::PostDelete if version != ArgoCd::Before2_10 => ("PostDelete", "post-delete"),
        _ => return false,
    };
    [(ARGO_HOOK, argo), (HELM_HOOK, helm)].iter().any(|(k, v)| {
        annotation(obj, k).is_some_and(|val| {
            if version.comma_lists() {
                val.split(',').any(|item| item.trim() == *v)
            } else {
                val == *v
            }
        })
    })
}

/// `controller/hook.go` hasGitOpsEngineSyncPhaseHook.
fn has_sync_phase_hook(obj: &Value) -> bool {
    hook_types(obj).iter().any(|t| {
        matches!(
            t,
            Phase::PreSync | Phase::Sync | Phase::PostSync | Phase::SyncFail
        )
    })
}

/// Whether `controller/state.go` passes the object on to gitops-engine's sync: before 3.3
/// every object; 3.3.0 to 3.3.4 leave out every PreDelete and PostDelete hook; since then only
/// those without a sync phase (partitionTargetObjsForSync).
pub fn in_sync_targets(obj: &Value, version: ArgoCd) -> bool {
    let delete_hook = is_delete_hook(obj, Phase::PreDelete, version)
        || is_delete_hook(obj, Phase::PostDelete, version);
    match version {
        ArgoCd::Before2_10 | ArgoCd::V2_10 => true,
        ArgoCd::V3_3_0 | ArgoCd::V3_3_3 => !delete_hook,
        ArgoCd::V3_5 => !delete_hook || has_sync_phase_hook(obj),
    }
}

/// Every phase the object takes part in under `version`; `{Skip}` when none.
pub fn classify(obj: &Value, version: ArgoCd) -> BTreeSet<Phase> {
    let mut phases = if in_sync_targets(obj, version) {
        sync_phases(obj)
    } else {
        BTreeSet::new()
    };
    for p in [Phase::PreDelete, Phase::PostDelete] {
        if is_delete_hook(obj, p, version) {
            phases.insert(p);
        }
    }
    if phases.is_empty() {
        phases.insert(Phase::Skip);
    }
    phases
}

/// gitops-engine's kind order (sync_tasks.go kindOrder, Helm's install order); other kinds last.
fn kind_order(kind: &str) -> i32 {
    const KINDS: &[&str] = &[
        "Namespace",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PodSecurityPolicy",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Secret",
        "SecretList",
        "ConfigMap",
        "StorageClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleList",
        "ClusterRoleBinding",
        "ClusterRoleBindingList",
        "Role",
        "RoleList",
        "RoleBinding",
        "RoleBindingList",
        "Service",
        "DaemonSet",
        "Pod",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "StatefulSet",
        "Job",
        "CronJob",
        "IngressClass",
        "Ingress",
        "APIService",
    ];
    KINDS
        .iter()
        .position(|k| *k == kind)
        .map(|i| i as i32 - KINDS.len() as i32)
        .unwrap_or(0)
}

/// An object's identity: apiVersion, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn of(obj: &Value) -> Key {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        Key {
            api_version: s("/apiVersion").to_string(),
            kind: s("/kind").to_string(),
            namespace: s("/metadata/namespace").to_string(),
            name: s("/metadata/name").to_string(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// The documents of a `helm template` output, as JSON (null documents dropped).
pub fn parse_manifests(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(text)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects `kubectl apply -l KEY=VALUE` would pick from `docs` (metadata.labels).
pub fn labelled<'a>(docs: &'a [Value], key: &str, value: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d.pointer("/metadata/labels").and_then(|l| l.get(key)) == Some(&json!(value)))
        .collect()
}
