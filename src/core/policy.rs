//! The S3 policy's step: create it, or publish the desired document as a new version, add the
//! tags it misses, adopt an untagged one. Decided from what was read; the edge applies it.

use std::collections::BTreeMap;

use super::missing_tags;
use crate::plan::{PolicySpec, DOCUMENT_TAG, VERSION_TAG};
use crate::state::PolicyState;
use crate::vocab::Change;

/// What `provision` does to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStep {
    /// `CreatePolicy`, tagged as version `v1`.
    Create,
    /// The policy exists: publish a version when its document differs, then tag what the
    /// tags of the (new) default version miss.
    Converge {
        /// `CreatePolicyVersion` (and prune the version that leaves the kept window).
        publish: bool,
        /// What the summary says: `Unchanged` or `Update(what)`.
        change: Change,
    },
}

impl PolicyStep {
    pub fn change(&self) -> Change {
        match self {
            PolicyStep::Create => Change::Create,
            PolicyStep::Converge { change, .. } => change.clone(),
        }
    }
}

/// The tags the job keeps on its policy: the spec's, plus which document and version it holds.
pub fn policy_tags(spec: &PolicySpec, version: &str) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert(DOCUMENT_TAG.into(), spec.document_sha256.clone());
    tags.insert(VERSION_TAG.into(), version.into());
    tags
}

/// `differs`: the default version's document is not the desired one (from the tags when they
/// vouch for it, else read). `adopting`: the policy is untagged and adoption is allowed
/// (`may_write` said so).
pub fn policy_step(
    spec: &PolicySpec,
    actual: Option<&PolicyState>,
    differs: bool,
    adopting: bool,
) -> PolicyStep {
    let Some(state) = actual else {
        return PolicyStep::Create;
    };
    let mut changes = Vec::new();
    if adopting {
        changes.push("adopt (add owner tags)".to_string());
    }
    if differs {
        changes.push("document".to_string());
    } else if !adopting
        && !missing_tags(&policy_tags(spec, &state.default_version), &state.tags).is_empty()
    {
        changes.push("tags".to_string());
    }
    PolicyStep::Converge {
        publish: differs,
        change: if changes.is_empty() {
            Change::Unchanged
        } else {
            Change::Update(changes)
        },
    }
}
