//! Switching into or out of gateway mode: what the other arrangement left (its roles, the role
//! annotations and Pod Identity associations of its ServiceAccounts) is removed once the new
//! one is in place and verified. Ownership decides as in teardown: only what this installation
//! made goes; the shared S3 policy stays, the new role uses it.
//!
//! The reads run beside `provision`'s IAM rounds, so a run with nothing left over takes no
//! extra dependent round trip; a switch takes two after the restart (release the
//! ServiceAccounts and delete the associations, then detach and delete the roles).

use futures::future::try_join_all;

use super::context::Ctx;
use super::discover::read_association;
use super::remove::{release_service_accounts, remove_associations, remove_roles_and_policy};
use crate::arn::Account;
use crate::core;
use crate::report::Report;
use crate::state::{AssociationState, RoleState};
use crate::vocab::Change;
use crate::Result;

/// The other arrangement's pieces, as read.
pub(super) struct Leftovers {
    /// Each ServiceAccount with its role's name.
    pairs: Vec<(String, String)>,
    roles: Vec<Option<RoleState>>,
    associations: Vec<(Option<AssociationState>, Option<String>)>,
}

impl Leftovers {
    /// Nothing of the other arrangement exists: no role, no association. (ServiceAccounts are
    /// released before roles are deleted, so a role gone means its annotation went first.)
    fn is_empty(&self) -> bool {
        self.roles.iter().all(Option::is_none) && self.associations.iter().all(|(a, _)| a.is_none())
    }

    /// Warnings from association reads a policy without them could not make.
    pub(super) fn warnings(&self) -> impl Iterator<Item = &String> {
        self.associations.iter().filter_map(|(_, w)| w.as_ref())
    }
}

/// Read the roles and associations of `pairs` (tolerating an installer policy from before Pod
/// Identity, as teardown does).
pub(super) async fn read(ctx: &Ctx<'_>, pairs: Vec<(String, String)>) -> Result<Leftovers> {
    let iam = &ctx.aws.iam;
    let (roles, associations) = tokio::join!(
        try_join_all(pairs.iter().map(|(_, role)| iam.read_role(role, true))),
        try_join_all(pairs.iter().map(|(sa, _)| read_association(ctx, sa, true))),
    );
    Ok(Leftovers {
        pairs,
        roles: roles?,
        associations: associations?,
    })
}

/// Remove what `read` found and this installation owns, and add it to the report; `plan` only
/// says what it would remove.
pub(super) async fn remove(
    ctx: &Ctx<'_>,
    account: &Account,
    left: Leftovers,
    dry_run: bool,
    report: &mut Report,
) -> Result<()> {
    if left.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = left.pairs.iter().map(|(_, r)| r.as_str()).collect();
    let sas: Vec<String> = left.pairs.iter().map(|(sa, _)| sa.clone()).collect();
    if dry_run {
        for (name, role) in names.iter().zip(&left.roles) {
            if let Some(state) = role {
                let change = core::removable(&state.tags, &ctx.owner)
                    .map_or_else(|kept| kept, |()| Change::Remove);
                report.push("role", *name, change);
            }
        }
        return Ok(());
    }
    let (released, associations) = tokio::join!(
        release_service_accounts(ctx, account, &left.pairs, &left.roles),
        remove_associations(ctx, &sas, &left.associations),
    );
    let (released, associations) = (released?, associations?);
    let (roles, _) =
        remove_roles_and_policy(&ctx.aws.iam, &names, &left.roles, None, &ctx.owner).await?;
    for (name, change) in names.iter().zip(roles) {
        if change != Change::Absent {
            report.push("role", *name, change);
        }
    }
    for (sa, change) in released {
        if !change.is_nothing() {
            report.push("serviceaccount", sa, change);
        }
    }
    report.add_associations(associations);
    Ok(())
}
