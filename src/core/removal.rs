//! Removal: what `teardown`, and a switch into or out of gateway mode, do with each
//! ServiceAccount the job managed, its role and its Pod Identity association. Only what this
//! installation made goes; everything else stays, with the reason.

use super::{association_removable, removable, sa_removal, SaRemoval};
use crate::state::{AssociationState, RoleState, SaState};
use crate::vocab::Change;

/// A ServiceAccount the job manages (or managed) and its role's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub service_account: String,
    pub role: String,
}

/// One pair as read.
#[derive(Debug, Clone, Default)]
pub struct PairState {
    pub role: Option<RoleState>,
    pub service_account: Option<SaState>,
    pub association: Option<AssociationState>,
    /// Why the association could not be read (an installer policy from before Pod Identity).
    pub association_warning: Option<String>,
}

impl PairState {
    /// Nothing of the pair's IAM or EKS side exists. (ServiceAccounts are released before roles
    /// are deleted, so a role gone means its annotation went first.)
    pub fn is_gone(&self) -> bool {
        self.role.is_none() && self.association.is_none()
    }
}

/// What to do with one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRemoval {
    /// `Ok`: detach and delete the role; `Err`: why it stays (`Absent` when there is none).
    pub role: Result<(), Change>,
    pub service_account: SaRemoval,
    /// `None`: no association; `Ok(id)`: delete it; `Err`: why it stays.
    pub association: Option<Result<String, Change>>,
}

impl PairRemoval {
    pub fn role_change(&self) -> Change {
        match &self.role {
            Ok(()) => Change::Remove,
            Err(kept) => kept.clone(),
        }
    }

    pub fn association_change(&self) -> Option<Change> {
        self.association.as_ref().map(|a| match a {
            Ok(_) => Change::Remove,
            Err(kept) => kept.clone(),
        })
    }
}

/// `role_arn`: the ARN the pair's role has (or had) in this account.
pub fn pair_removal(pair: &Pair, state: &PairState, role_arn: &str, owner: &str) -> PairRemoval {
    PairRemoval {
        role: match &state.role {
            None => Err(Change::Absent),
            Some(role) => removable(&role.tags, owner),
        },
        service_account: sa_removal(
            state.service_account.as_ref(),
            state.role.as_ref(),
            &pair.role,
            role_arn,
            owner,
        ),
        association: state
            .association
            .as_ref()
            .map(|a| association_removable(a, owner).map(|()| a.id.clone())),
    }
}
