//! EKS Pod Identity associations: create, repoint or retag ours, refuse others', and the plan
//! for each managed ServiceAccount in either mechanism.

use std::collections::BTreeMap;

use super::ownership::*;
use crate::config::Mechanism;
use crate::error::Error;
use crate::plan::{AssociationSpec, Desired};
use crate::state::AssociationState;
use crate::vocab::Change;

/// What to do with a managed ServiceAccount's Pod Identity association in Pod Identity mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssociationStep {
    Create,
    /// Ours, pointing at another role (renamed, or a path change) or missing tags: repoint it
    /// (`role`) and add the tags.
    Repair {
        id: String,
        arn: String,
        role: bool,
        tags: BTreeMap<String, String>,
    },
    Keep,
}

impl AssociationStep {
    pub fn change(&self) -> Change {
        match self {
            AssociationStep::Create => Change::Create,
            AssociationStep::Repair { role, tags, .. } => {
                let mut what = Vec::new();
                if *role {
                    what.push("role".to_string());
                }
                if !tags.is_empty() {
                    what.push(format!(
                        "tags ({})",
                        tags.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                Change::Update(what)
            }
            AssociationStep::Keep => Change::Unchanged,
        }
    }
}

/// Checks before any write: an association an add-on owns is never touched; one this
/// installation did not tag is refused, whatever role it points at.
pub fn association_step(
    cluster: &str,
    spec: &AssociationSpec,
    state: Option<&AssociationState>,
    owner: &str,
) -> Result<AssociationStep, Error> {
    let Some(state) = state else {
        return Ok(AssociationStep::Create);
    };
    let subject = format!("{}/{}", spec.namespace, spec.service_account);
    if let Some(owner_arn) = &state.owner_arn {
        return Err(Error::AssociationAddonOwned {
            subject,
            id: state.id.clone(),
            owner_arn: owner_arn.clone(),
        });
    }
    match ownership(&state.tags, owner) {
        Ownership::Ours => {
            let role = state.role_arn != spec.role_arn;
            let tags = missing_tags(&spec.tags, &state.tags);
            if !role && tags.is_empty() {
                return Ok(AssociationStep::Keep);
            }
            Ok(AssociationStep::Repair {
                id: state.id.clone(),
                arn: state.arn.clone(),
                role,
                tags,
            })
        }
        other => Err(Error::AssociationNotOwned {
            subject,
            cluster: cluster.to_string(),
            id: state.id.clone(),
            role_arn: state.role_arn.clone(),
            owner: match other {
                Ownership::Foreign(o) => format!("it belongs to {o}"),
                _ => "no epinio-irsa/owner tag".to_string(),
            },
        }),
    }
}

/// What the run does with one managed ServiceAccount's Pod Identity association.
#[derive(Debug, Clone)]
pub enum AssociationPlan {
    /// Pod Identity mode: create, repoint or keep ours.
    Ensure {
        spec: AssociationSpec,
        step: AssociationStep,
    },
    /// IRSA mode: ours, left from Pod Identity mode.
    Remove { subject: String, id: String },
    /// IRSA mode: not ours (or an add-on's); left alone, with the reason.
    Leave { subject: String, why: Change },
}

impl AssociationPlan {
    pub fn subject(&self) -> String {
        match self {
            AssociationPlan::Ensure { spec, .. } => {
                format!("{}/{}", spec.namespace, spec.service_account)
            }
            AssociationPlan::Remove { subject, .. } | AssociationPlan::Leave { subject, .. } => {
                subject.clone()
            }
        }
    }
}

/// Every managed ServiceAccount's association plan, from what round 2 described (`found`:
/// ServiceAccount and its association, if any). Pod Identity: the step of each desired
/// association, refusing foreign and add-on ones before any write. IRSA: ours are removed, others
/// left alone with a warning (returned beside the plans); nothing refuses.
pub fn association_plans(
    desired: &Desired,
    namespace: &str,
    cluster: &str,
    found: &[(&str, Option<&AssociationState>)],
    owner: &str,
) -> Result<(Vec<AssociationPlan>, Vec<String>), Error> {
    let state_of = |sa: &str| found.iter().find(|(s, _)| *s == sa).and_then(|(_, a)| *a);
    match desired.mechanism {
        Mechanism::PodIdentity => {
            let plans = desired
                .associations
                .iter()
                .map(|spec| {
                    let step =
                        association_step(cluster, spec, state_of(&spec.service_account), owner)?;
                    Ok(AssociationPlan::Ensure {
                        spec: spec.clone(),
                        step,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok((plans, Vec::new()))
        }
        Mechanism::Irsa => {
            let mut warnings = Vec::new();
            let plans = found
                .iter()
                .filter_map(|(sa, state)| {
                    let state = (*state)?;
                    let subject = format!("{namespace}/{sa}");
                    Some(match association_removable(state, owner) {
                        Ok(()) => AssociationPlan::Remove {
                            subject,
                            id: state.id.clone(),
                        },
                        Err(why) => {
                            warnings.push(format!("ServiceAccount {subject} also has EKS Pod Identity association {} (role {}), not made by this installation; left alone. Epinio's AWS SDKs use the role annotation (IRSA) before Pod Identity, so it does not take effect for Epinio; delete it if nothing else needs it", state.id, state.role_arn));
                            AssociationPlan::Leave { subject, why }
                        }
                    })
                })
                .collect();
            Ok((plans, warnings))
        }
    }
}

/// An association to remove (IRSA mode, teardown): only this installation's, never an
/// add-on's. `Err` is why it stays.
pub fn association_removable(state: &AssociationState, owner: &str) -> Result<(), Change> {
    if let Some(owner_arn) = &state.owner_arn {
        return Err(Change::Kept(format!("owned by the EKS add-on {owner_arn}")));
    }
    removable(&state.tags, owner)
}
