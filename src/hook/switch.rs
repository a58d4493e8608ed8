//! Switching into or out of gateway mode: what the other arrangement left (its roles, the role
//! annotations and Pod Identity associations of its ServiceAccounts) is removed once the new
//! one is in place and verified. Ownership decides as in teardown (`core::pair_removal`): only
//! what this installation made goes; the shared S3 policy stays, the new role uses it. `plan`
//! shows every one of those removals.
//!
//! The reads run beside `provision`'s IAM rounds, so a run with nothing left over takes no
//! extra dependent round trip; a switch takes two after the restart (release the
//! ServiceAccounts and delete the associations, then detach and delete the roles).

use futures::future::try_join_all;

use super::context::Ctx;
use super::remove::{read_pair, release_and_disassociate, remove_roles_and_policy};
use crate::arn::Account;
use crate::core::{self, Pair, PairState};
use crate::report::Report;
use crate::vocab::Change;
use crate::Result;

/// The other arrangement's pairs, as read.
pub(super) struct Leftovers {
    pairs: Vec<Pair>,
    states: Vec<PairState>,
}

impl Leftovers {
    /// Warnings from association reads a policy without them could not make.
    pub(super) fn warnings(&self) -> impl Iterator<Item = &String> {
        self.states
            .iter()
            .filter_map(|s| s.association_warning.as_ref())
    }
}

/// Read the roles, associations and ServiceAccounts of `pairs`.
pub(super) async fn read(ctx: &Ctx<'_>, pairs: Vec<Pair>) -> Result<Leftovers> {
    let states = try_join_all(pairs.iter().map(|p| read_pair(ctx, p))).await?;
    Ok(Leftovers { pairs, states })
}

/// Remove what `read` found and this installation owns (`plan`: say what it would remove), and
/// add it to the report.
pub(super) async fn remove(
    ctx: &Ctx<'_>,
    account: &Account,
    left: Leftovers,
    dry_run: bool,
    report: &mut Report,
) -> Result<()> {
    if left.states.iter().all(PairState::is_gone) {
        return Ok(());
    }
    let removals: Vec<_> = left
        .pairs
        .iter()
        .zip(&left.states)
        .map(|(p, s)| {
            let arn = account.role(&ctx.config.role_path, &p.role);
            core::pair_removal(p, s, &arn, &ctx.owner)
        })
        .collect();
    let (released, disassociated) =
        release_and_disassociate(ctx, &left.pairs, &removals, dry_run).await?;
    let (roles, _) = remove_roles_and_policy(
        &ctx.aws.iam,
        &left.pairs,
        &left.states,
        &removals,
        None,
        &ctx.owner,
        dry_run,
    )
    .await?;
    let namespace = &ctx.config.namespace;
    for (pair, change) in left.pairs.iter().zip(roles) {
        if change != Change::Absent {
            report.push("role", &pair.role, change);
        }
    }
    for (pair, change) in left.pairs.iter().zip(released) {
        if !change.is_nothing() {
            report.push(
                "serviceaccount",
                format!("{namespace}/{}", pair.service_account),
                change,
            );
        }
    }
    report.add_associations(
        left.pairs
            .iter()
            .zip(disassociated)
            .filter_map(|(p, c)| Some((format!("{namespace}/{}", p.service_account), c?))),
    );
    Ok(())
}
