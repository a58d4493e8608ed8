//! ServiceAccounts and restarts: what to apply to each managed ServiceAccount, which workloads
//! restart into new credentials, and what teardown removes.

use std::collections::BTreeMap;

use super::ownership::*;
use crate::config::OWNER_TAG;
use crate::error::Error;
use crate::plan::ServiceAccountSpec;
use crate::state::{RoleState, SaState, Workload};
use crate::vocab::Change;

/// What to apply to a ServiceAccount: its annotations (and, when the job creates it, the
/// managed-by label), or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaStep {
    pub annotations: BTreeMap<String, String>,
    /// Apply the managed-by label: the job creates (or created) this ServiceAccount.
    pub label: bool,
    /// `None`: nothing to do.
    pub change: Change,
}

/// Checks before any write and the step for one ServiceAccount: the server's must exist
/// (Epinio's chart makes it); no annotation the job sets may hold another value set by someone
/// else; one that another epinio-irsa installation created is theirs (all installations share
/// the field manager, so only the owner annotation can tell).
pub fn sa_step(
    namespace: &str,
    spec: &ServiceAccountSpec,
    state: Option<&SaState>,
    owner: &str,
) -> Result<SaStep, Error> {
    let Some(state) = state else {
        if !spec.create_if_missing {
            return Err(Error::ServiceAccountMissing {
                namespace: namespace.to_string(),
                name: spec.name.clone(),
            });
        }
        let mut annotations = spec.annotations.clone();
        annotations.insert(OWNER_TAG.to_string(), owner.to_string());
        return Ok(SaStep {
            annotations,
            label: true,
            change: Change::Create,
        });
    };
    check_existing(namespace, spec, state, owner)?;
    let mut annotations = spec.annotations.clone();
    if state.ours_label {
        annotations.insert(OWNER_TAG.to_string(), owner.to_string());
    }
    let mut changes = Vec::new();
    for (k, v) in &annotations {
        if state.annotations.get(k) != Some(v) {
            changes.push(format!("annotation {k}"));
        } else if !state.our_annotations.contains(k) {
            changes.push(format!("take shared ownership of {k}"));
        }
    }
    for k in state
        .our_annotations
        .iter()
        .filter(|k| !annotations.contains_key(*k))
    {
        changes.push(format!("remove annotation {k}"));
    }
    Ok(SaStep {
        annotations,
        label: state.ours_label,
        change: if changes.is_empty() {
            Change::Unchanged
        } else {
            Change::Update(changes)
        },
    })
}

/// The refusals for an existing ServiceAccount: an annotation we set held with another value by
/// another manager, an annotation this mechanism must not see held by another manager, or a
/// ServiceAccount another installation created.
fn check_existing(
    namespace: &str,
    spec: &ServiceAccountSpec,
    state: &SaState,
    owner: &str,
) -> Result<(), Error> {
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
    for key in &spec.must_not_carry {
        match state.annotations.get(key) {
            Some(actual) if !state.our_annotations.contains(key) => {
                return Err(Error::AnnotationConflict {
                    namespace: namespace.to_string(),
                    name: spec.name.clone(),
                    detail: format!(
                        "annotation {key} is {actual:?}, set by another field manager; under EKS Pod Identity it would make the pods' AWS SDKs use that role through IRSA instead of the association"
                    ),
                });
            }
            _ => {}
        }
    }
    match state.annotations.get(OWNER_TAG) {
        Some(other) if state.labelled_by_us() && other != owner => {
            Err(Error::ServiceAccountNotOwned {
                namespace: namespace.to_string(),
                name: spec.name.clone(),
                owner: other.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// The restart rule: a workload running under a managed ServiceAccount restarts when that
/// ServiceAccount's annotations changed in this run, or when its pods were not yet started for
/// the role (recorded in the pod template, so a crash between annotate and restart is finished
/// by the next run). Nothing else restarts.
pub fn restarts<'a>(
    specs: &'a [ServiceAccountSpec],
    steps: &[SaStep],
    workloads: &'a [Workload],
) -> Vec<(&'a Workload, &'a str)> {
    let mut out = Vec::new();
    for (spec, step) in specs.iter().zip(steps) {
        for w in workloads.iter().filter(|w| w.service_account == spec.name) {
            if step.change.is_write()
                || w.restarted_for.as_deref() != Some(spec.restart_for.as_str())
            {
                out.push((w, spec.restart_for.as_str()));
            }
        }
    }
    out
}

/// Teardown of a ServiceAccount: what to do with what the job applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaRemoval {
    /// The job created it (this installation): delete it, precondition on its uid.
    Delete { uid: Option<String> },
    /// Give up the annotations it applied (Kubernetes drops them unless another manager
    /// holds them).
    Release(Vec<String>),
    /// Nothing of ours on it, or not ours to touch.
    Leave(Change),
}

impl SaRemoval {
    /// What the summary says of it (`plan` and `teardown` alike).
    pub fn change(&self) -> Change {
        match self {
            SaRemoval::Delete { .. } => Change::Remove,
            SaRemoval::Release(keys) => {
                Change::Update(vec![format!("release annotations {}", keys.join(", "))])
            }
            SaRemoval::Leave(change) => change.clone(),
        }
    }
}

/// `role` is the state of the role whose ARN the ServiceAccount carries: a role of that name
/// that another installation owns means the annotation is theirs too.
pub fn sa_removal(
    state: Option<&SaState>,
    role: Option<&RoleState>,
    role_name: &str,
    role_arn: &str,
    owner: &str,
) -> SaRemoval {
    if role.is_some_and(|r| ownership(&r.tags, owner) != Ownership::Ours) {
        return SaRemoval::Leave(Change::Kept(format!(
            "role {role_name} is not owned by this installation"
        )));
    }
    let Some(state) = state else {
        return SaRemoval::Leave(Change::Absent);
    };
    if state.created_by(owner) {
        return SaRemoval::Delete {
            uid: state.uid.clone(),
        };
    }
    if state.our_annotations.is_empty() {
        return SaRemoval::Leave(Change::NothingToRemove);
    }
    let ours = state
        .our_annotations
        .contains(crate::plan::ROLE_ARN_ANNOTATION);
    let holds = state
        .annotations
        .get(crate::plan::ROLE_ARN_ANNOTATION)
        .map(String::as_str)
        == Some(role_arn);
    if ours && !holds {
        // Cannot happen without a forced apply by someone else; leave it to them.
        return SaRemoval::Leave(Change::Kept(format!(
            "{} no longer holds {role_arn}",
            crate::plan::ROLE_ARN_ANNOTATION
        )));
    }
    SaRemoval::Release(state.our_annotations.iter().cloned().collect())
}
