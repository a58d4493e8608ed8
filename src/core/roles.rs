//! IAM roles: create a role, or repair what differs from its spec.

use std::collections::{BTreeMap, BTreeSet};

use super::ownership::*;
use crate::error::Error;
use crate::plan::{same_document, RoleSpec};
use crate::state::RoleState;
use crate::vocab::Change;

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
