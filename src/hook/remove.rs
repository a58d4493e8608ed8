//! Removing what this installation made, as `core::pair_removal` decided, shared by `teardown`
//! (everything) and `provision` (what the other arrangement left when switching into or out
//! of gateway mode).

use futures::future::try_join_all;

use super::context::{associations, Ctx};
use super::discover::read_association;
use crate::aws::iam::Iam;
use crate::core::{self, Pair, PairRemoval, PairState};
use crate::vocab::Change;
use crate::Result;

/// One pair's role (with its attachments), association and ServiceAccount, read concurrently
/// (tolerating an installer policy from before Pod Identity).
pub(super) async fn read_pair(ctx: &Ctx<'_>, pair: &Pair) -> Result<PairState> {
    let (role, association, service_account) = tokio::join!(
        ctx.aws.iam.read_role(&pair.role, true),
        read_association(ctx, &pair.service_account, true),
        ctx.kube.read_service_account(&pair.service_account),
    );
    let (association, association_warning) = association?;
    Ok(PairState {
        role: role?,
        service_account: service_account?,
        association,
        association_warning,
    })
}

/// Release (or, when this installation created it, delete) each ServiceAccount and delete each
/// association, as decided: one round (`plan`: none, it says what would be done).
pub(super) async fn release_and_disassociate(
    ctx: &Ctx<'_>,
    pairs: &[Pair],
    removals: &[PairRemoval],
    dry_run: bool,
) -> Result<(Vec<Change>, Vec<Option<Change>>)> {
    if dry_run {
        return Ok((
            removals
                .iter()
                .map(|r| r.service_account.change())
                .collect(),
            removals
                .iter()
                .map(PairRemoval::association_change)
                .collect(),
        ));
    }
    let edge = associations(ctx);
    let edge = &edge;
    let released = try_join_all(pairs.iter().zip(removals).map(|(p, r)| {
        ctx.kube
            .remove_service_account(&p.service_account, &r.service_account)
    }));
    let disassociated = try_join_all(removals.iter().map(|r| async move {
        Ok::<_, crate::Error>(match &r.association {
            None => None,
            Some(Ok(id)) => Some(edge.delete(id).await?),
            Some(Err(kept)) => Some(kept.clone()),
        })
    }));
    let (released, disassociated) = tokio::join!(released, disassociated);
    Ok((released?, disassociated?))
}

/// Roles and the policy: detach and read the policy (round 2), then delete the roles and the
/// policy (round 3; spare versions first, when there are any). `policy_arn: None` leaves the
/// policy (a switch into or out of gateway mode keeps it: the new role uses it). `plan` reads
/// the policy and writes nothing.
pub(super) async fn remove_roles_and_policy(
    iam: &Iam,
    pairs: &[Pair],
    states: &[PairState],
    removals: &[PairRemoval],
    policy_arn: Option<&str>,
    owner: &str,
    dry_run: bool,
) -> Result<(Vec<Change>, Change)> {
    let doomed = || {
        pairs
            .iter()
            .zip(states)
            .zip(removals)
            .map(|((p, s), r)| (p, s.role.as_ref().filter(|_| r.role.is_ok() && !dry_run)))
    };
    let (stripped, policy) = tokio::join!(
        try_join_all(doomed().filter_map(|(p, role)| Some(iam.remove_attachments(&p.role, role?)))),
        async {
            match policy_arn {
                Some(arn) => iam.read_policy(arn, true).await,
                None => Ok(None),
            }
        },
    );
    stripped?;
    let policy = policy?;
    let remove_policy = async {
        match (&policy, policy_arn) {
            (Some(state), Some(policy_arn)) => match core::removable(&state.tags, owner) {
                Ok(()) if dry_run => Ok(Change::Remove),
                Ok(()) => iam.remove_policy(policy_arn, state).await,
                Err(kept) => Ok(kept),
            },
            _ => Ok(Change::Absent),
        }
    };
    let roles = try_join_all(pairs.iter().zip(removals).map(|(p, r)| async move {
        match &r.role {
            Ok(()) if dry_run => Ok(Change::Remove),
            Ok(()) => iam.remove_role(&p.role).await,
            Err(kept) => Ok(kept.clone()),
        }
    }));
    let (roles, policy_change) = tokio::join!(roles, remove_policy);
    Ok((roles?, policy_change?))
}
