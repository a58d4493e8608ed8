//! The deciding core: from the desired state (`plan`) and the actual state (`state`), what to do,
//! and every check that must pass before the first write. No I/O; `run` reads, calls these,
//! hands the results to the edges and reports.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{CredentialMode, Mechanism, OWNER_TAG};
use crate::error::Error;
use crate::plan::{
    same_document, AssociationSpec, Desired, ProviderSpec, RoleSpec, ServiceAccountSpec,
    AGENT_ADDON, STS_AUDIENCE,
};
use crate::report::Change;
use crate::state::{AddonState, AssociationState, ProviderState, RoleState, SaState, Workload};

/// Whose an IAM object is, judged by its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// No owner tag: made by hand or by another tool.
    Untagged,
    /// Owned by another cluster, namespace or release.
    Foreign(String),
}

pub fn ownership(tags: &BTreeMap<String, String>, owner: &str) -> Ownership {
    match tags.get(OWNER_TAG) {
        Some(o) if o == owner => Ownership::Ours,
        Some(o) => Ownership::Foreign(o.clone()),
        None => Ownership::Untagged,
    }
}

/// May this run write to an object with these tags? `Ok(true)` when it must adopt it first.
pub fn may_write(
    kind: &'static str,
    name: &str,
    tags: &BTreeMap<String, String>,
    owner: &str,
    adopt: bool,
) -> Result<bool, Error> {
    match ownership(tags, owner) {
        Ownership::Ours => Ok(false),
        Ownership::Untagged if adopt => Ok(true),
        Ownership::Untagged => Err(Error::Untagged {
            kind,
            name: name.to_string(),
        }),
        Ownership::Foreign(owner) => Err(Error::Foreign {
            kind,
            name: name.to_string(),
            owner,
        }),
    }
}

/// An existing provider must accept STS tokens; a missing one may only be created when allowed.
pub fn check_provider(
    spec: &ProviderSpec,
    known: Option<&ProviderState>,
    create: bool,
) -> Result<(), Error> {
    match known {
        Some(state) if !state.client_ids.iter().any(|c| c == STS_AUDIENCE) => {
            Err(Error::ProviderAudience {
                arn: spec.arn.clone(),
            })
        }
        Some(_) => Ok(()),
        None if !create => Err(Error::ProviderMissing {
            issuer: spec.url.clone(),
        }),
        None => Ok(()),
    }
}

/// Desired tags that are missing or different on the object.
pub fn missing_tags(
    desired: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What to do to a role: create it, or repair what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleStep {
    Create,
    Repair(RoleDiff),
}

impl RoleStep {
    /// Policies to attach and detach once the role and the policy exist.
    pub fn attachments<'a>(&'a self, spec: &'a RoleSpec) -> (&'a [String], &'a [String]) {
        match self {
            RoleStep::Create => (&spec.attachments, &[]),
            RoleStep::Repair(d) => (&d.attach, &d.detach),
        }
    }

    pub fn change(&self) -> Change {
        match self {
            RoleStep::Create => Change::Create,
            RoleStep::Repair(d) if d.is_empty() => Change::Unchanged,
            RoleStep::Repair(d) => Change::Update(d.describe()),
        }
    }
}

/// What differs between a role and its spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleDiff {
    pub adopt: bool,
    pub trust: bool,
    pub boundary: Option<Option<String>>,
    pub tags: BTreeMap<String, String>,
    pub attach: Vec<String>,
    pub detach: Vec<String>,
}

impl RoleDiff {
    pub fn between(spec: &RoleSpec, state: &RoleState, adopt: bool) -> RoleDiff {
        let attached: BTreeSet<&String> = state.attached.iter().collect();
        let wanted: BTreeSet<&String> = spec.attachments.iter().collect();
        RoleDiff {
            adopt,
            trust: !same_document(&spec.trust, &state.trust),
            boundary: (spec.boundary != state.boundary).then(|| spec.boundary.clone()),
            tags: missing_tags(&spec.tags, &state.tags),
            attach: spec
                .attachments
                .iter()
                .filter(|a| !attached.contains(a))
                .cloned()
                .collect(),
            detach: state
                .attached
                .iter()
                .filter(|a| !wanted.contains(a))
                .cloned()
                .collect(),
        }
    }

    /// What changes, for the summary and the plan.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.adopt {
            out.push("adopt (add owner tags)".to_string());
        }
        if self.trust {
            out.push("trust policy".to_string());
        }
        match &self.boundary {
            Some(Some(b)) => out.push(format!("permissions boundary -> {b}")),
            Some(None) => out.push("remove permissions boundary".to_string()),
            None => {}
        }
        if !self.tags.is_empty() && !self.adopt {
            out.push(format!(
                "tags ({})",
                self.tags.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        out.extend(self.attach.iter().map(|a| format!("attach {a}")));
        out.extend(self.detach.iter().map(|a| format!("detach {a}")));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.describe().is_empty()
    }
}

/// Every role's step, after checking it may be touched at all.
pub fn role_steps(
    specs: &[RoleSpec],
    states: &[Option<RoleState>],
    owner: &str,
    adopt: bool,
) -> Result<Vec<RoleStep>, Error> {
    specs
        .iter()
        .zip(states)
        .map(|(spec, state)| match state {
            None => Ok(RoleStep::Create),
            Some(s) => {
                let adopting = may_write("role", &spec.name, &s.tags, owner, adopt)?;
                Ok(RoleStep::Repair(RoleDiff::between(spec, s, adopting)))
            }
        })
        .collect()
}

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
            return Err(Error::ServiceAccountNotOwned {
                namespace: namespace.to_string(),
                name: spec.name.clone(),
                owner: other.clone(),
            })
        }
        _ => {}
    }
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

/// The mechanism a run converges to, and why (shown by `plan` and every summary). `agent` is
/// `DescribeAddon` of the Pod Identity agent (read unless the mode is `irsa`); `epinio` is
/// whether the discovered Epinio can use Pod Identity for every managed ServiceAccount.
/// `pod-identity` without the agent ACTIVE is refused here, before any write.
pub fn choose_mechanism(
    mode: CredentialMode,
    cluster: &str,
    agent: Option<&AddonState>,
    epinio: Result<(), String>,
) -> Result<(Mechanism, String), Error> {
    let agent_text = |a: Option<&AddonState>| match a {
        None => "not installed".to_string(),
        Some(a) => format!(
            "{}{}",
            a.status,
            a.version
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        ),
    };
    let active = agent.is_some_and(|a| a.status == "ACTIVE");
    match mode {
        CredentialMode::Irsa => Ok((Mechanism::Irsa, "irsa (EPINIO_IRSA_MODE=irsa)".into())),
        CredentialMode::PodIdentity if !active => Err(Error::AgentAddon {
            cluster: cluster.to_string(),
            addon: AGENT_ADDON,
            state: agent_text(agent),
        }),
        CredentialMode::PodIdentity => Ok((
            Mechanism::PodIdentity,
            format!(
                "pod-identity (EPINIO_IRSA_MODE=pod-identity; add-on {AGENT_ADDON} {})",
                agent_text(agent)
            ),
        )),
        CredentialMode::Auto if !active => Ok((
            Mechanism::Irsa,
            format!(
                "irsa (EPINIO_IRSA_MODE=auto: the add-on {AGENT_ADDON} is {})",
                agent_text(agent)
            ),
        )),
        CredentialMode::Auto => match epinio {
            Ok(()) => Ok((
                Mechanism::PodIdentity,
                format!(
                    "pod-identity (EPINIO_IRSA_MODE=auto: add-on {AGENT_ADDON} {}, and Epinio's server and staging can use it)",
                    agent_text(agent)
                ),
            )),
            Err(why) => Ok((
                Mechanism::Irsa,
                format!(
                    "irsa (EPINIO_IRSA_MODE=auto: add-on {AGENT_ADDON} {}, but {why})",
                    agent_text(agent)
                ),
            )),
        },
    }
}

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

/// Teardown of one IAM object: remove it only when this installation owns it.
pub fn removable(tags: &BTreeMap<String, String>, owner: &str) -> Result<(), Change> {
    match ownership(tags, owner) {
        Ownership::Ours => Ok(()),
        _ => Err(Change::Kept("not owned by this installation".into())),
    }
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
        return SaRemoval::Leave(Change::Absent);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(owner: Option<&str>) -> BTreeMap<String, String> {
        owner
            .map(|o| BTreeMap::from([(OWNER_TAG.to_string(), o.to_string())]))
            .unwrap_or_default()
    }

    #[test]
    fn ownership_decides_writes() {
        assert_eq!(
            may_write("role", "r", &tags(Some("me")), "me", false).ok(),
            Some(false)
        );
        assert_eq!(
            may_write("role", "r", &tags(None), "me", true).ok(),
            Some(true)
        );
        assert!(matches!(
            may_write("role", "r", &tags(None), "me", false),
            Err(Error::Untagged { .. })
        ));
        assert!(matches!(
            may_write("role", "r", &tags(Some("them")), "me", true),
            Err(Error::Foreign { owner, .. }) if owner == "them"
        ));
        assert!(removable(&tags(Some("them")), "me").is_err());
        assert!(removable(&tags(Some("me")), "me").is_ok());
    }

    fn sa(name: &str, arn: &str) -> ServiceAccountSpec {
        ServiceAccountSpec {
            name: name.into(),
            role_arn: arn.into(),
            annotations: BTreeMap::from([(
                crate::plan::ROLE_ARN_ANNOTATION.to_string(),
                arn.to_string(),
            )]),
            create_if_missing: false,
            restart_for: arn.into(),
            must_not_carry: Vec::new(),
        }
    }

    #[test]
    fn restart_only_what_runs_under_a_changed_or_unstarted_sa() {
        let specs = [sa("epinio-server", "arn:r")];
        let workloads = vec![
            Workload {
                kind: "Deployment",
                name: "epinio-server".into(),
                service_account: "epinio-server".into(),
                restarted_for: Some("arn:r".into()),
            },
            Workload {
                kind: "Deployment",
                name: "epinio-ui".into(),
                service_account: "default".into(),
                restarted_for: None,
            },
        ];
        let unchanged = SaStep {
            annotations: BTreeMap::new(),
            label: false,
            change: Change::Unchanged,
        };
        assert!(restarts(&specs, std::slice::from_ref(&unchanged), &workloads).is_empty());
        let changed = SaStep {
            change: Change::Update(vec!["annotation".into()]),
            ..unchanged
        };
        let r = restarts(&specs, &[changed], &workloads);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0.name, "epinio-server");
    }

    #[test]
    fn missing_server_sa_and_foreign_annotation_are_refused() {
        let spec = sa("epinio-server", "arn:r");
        assert!(matches!(
            sa_step("ns", &spec, None, "me"),
            Err(Error::ServiceAccountMissing { .. })
        ));
        let mut state = SaState::default();
        state
            .annotations
            .insert(crate::plan::ROLE_ARN_ANNOTATION.into(), "arn:other".into());
        assert!(matches!(
            sa_step("ns", &spec, Some(&state), "me"),
            Err(Error::AnnotationConflict { .. })
        ));
        // Under Pod Identity nobody else's role annotation may stay; our own is released.
        let pi = ServiceAccountSpec {
            annotations: BTreeMap::new(),
            must_not_carry: vec![crate::plan::ROLE_ARN_ANNOTATION.to_string()],
            ..spec
        };
        let err = sa_step("ns", &pi, Some(&state), "me")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Pod Identity") && err.contains("arn:other"),
            "{err}"
        );
        state
            .our_annotations
            .insert(crate::plan::ROLE_ARN_ANNOTATION.into());
        assert_eq!(
            sa_step("ns", &pi, Some(&state), "me").unwrap().change,
            Change::Update(vec![format!(
                "remove annotation {}",
                crate::plan::ROLE_ARN_ANNOTATION
            )])
        );
    }

    fn association(role: &str, owner: Option<&str>, addon: Option<&str>) -> AssociationState {
        AssociationState {
            id: "a-1".into(),
            arn: "arn:aws:eks:eu-west-1:1:podidentityassociation/c/a-1".into(),
            role_arn: role.into(),
            owner_arn: addon.map(str::to_string),
            tags: tags(owner),
        }
    }

    #[test]
    fn associations_are_created_repointed_or_refused_by_owner() {
        let spec = AssociationSpec {
            namespace: "ns".into(),
            service_account: "sa".into(),
            role_arn: "arn:r".into(),
            tags: tags(Some("me")),
        };
        let step = |s: Option<&AssociationState>| association_step("c", &spec, s, "me");
        assert_eq!(step(None).ok(), Some(AssociationStep::Create));
        assert_eq!(
            step(Some(&association("arn:r", Some("me"), None))).ok(),
            Some(AssociationStep::Keep)
        );
        assert_eq!(
            step(Some(&association("arn:old", Some("me"), None))).ok(),
            Some(AssociationStep::Repair {
                id: "a-1".into(),
                arn: "arn:aws:eks:eu-west-1:1:podidentityassociation/c/a-1".into(),
                role: true,
                tags: BTreeMap::new(),
            })
        );
        let mut with_team = spec.clone();
        with_team.tags.insert("team".into(), "platform".into());
        let repair = association_step(
            "c",
            &with_team,
            Some(&association("arn:r", Some("me"), None)),
            "me",
        );
        assert_eq!(
            repair.unwrap().change(),
            Change::Update(vec!["tags (team)".into()])
        );
        let foreign = association("arn:other", Some("them"), None);
        let err = step(Some(&foreign)).unwrap_err().to_string();
        assert!(
            err.contains("a-1") && err.contains("arn:other") && err.contains("them"),
            "{err}"
        );
        // Untagged is refused even when it points at our role: no silent adoption.
        assert!(matches!(
            step(Some(&association("arn:r", None, None))),
            Err(Error::AssociationNotOwned { .. })
        ));
        let addon = association("arn:r", Some("me"), Some("arn:aws:eks:::addon/x"));
        assert!(matches!(
            step(Some(&addon)),
            Err(Error::AssociationAddonOwned { .. })
        ));
        assert!(association_removable(&addon, "me").is_err());
        assert!(association_removable(&foreign, "me").is_err());
        assert!(association_removable(&association("arn:r", Some("me"), None), "me").is_ok());
    }

    #[test]
    fn mechanism_follows_the_mode_the_agent_and_epinio() {
        let active = AddonState {
            status: "ACTIVE".into(),
            version: Some("v1.3.4-eksbuild.1".into()),
        };
        let creating = AddonState {
            status: "CREATING".into(),
            version: None,
        };
        let ok = || Ok(());
        let old = || Err("staging's aws CLI image amazon/aws-cli:2.13.26 is older".to_string());
        let pick = |mode, agent, epinio| choose_mechanism(mode, "c", agent, epinio);
        assert_eq!(
            pick(CredentialMode::Irsa, Some(&active), ok()).unwrap().0,
            Mechanism::Irsa
        );
        assert_eq!(
            pick(CredentialMode::PodIdentity, Some(&active), old())
                .unwrap()
                .0,
            Mechanism::PodIdentity,
            "pod-identity mode leaves the Epinio check to discovery, which refuses with the reason"
        );
        for agent in [None, Some(&creating)] {
            let err = pick(CredentialMode::PodIdentity, agent, ok())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(AGENT_ADDON)
                    && err.contains("create-addon")
                    && err.contains("Nothing was changed"),
                "{err}"
            );
            let (m, why) = pick(CredentialMode::Auto, agent, ok()).unwrap();
            assert_eq!(m, Mechanism::Irsa);
            assert!(why.contains(AGENT_ADDON), "{why}");
        }
        let (m, why) = pick(CredentialMode::Auto, Some(&active), ok()).unwrap();
        assert_eq!(m, Mechanism::PodIdentity);
        assert!(why.contains("ACTIVE") && why.contains("v1.3.4"), "{why}");
        let (m, why) = pick(CredentialMode::Auto, Some(&active), old()).unwrap();
        assert_eq!(m, Mechanism::Irsa);
        assert!(why.contains("2.13.26"), "{why}");
    }
}
