//! Ownership: whose an IAM object or association is, judged by its tags, and whether this run
//! may write to it or remove it.

use std::collections::BTreeMap;

use crate::config::OWNER_TAG;
use crate::error::Error;
use crate::plan::{ProviderSpec, STS_AUDIENCE};
use crate::state::ProviderState;
use crate::vocab::Change;

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

/// Teardown of one IAM object: remove it only when this installation owns it.
pub fn removable(tags: &BTreeMap<String, String>, owner: &str) -> Result<(), Change> {
    match ownership(tags, owner) {
        Ownership::Ours => Ok(()),
        _ => Err(Change::Kept("not owned by this installation".into())),
    }
}
