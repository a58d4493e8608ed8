//! Removing what this installation made, shared by `teardown` (everything) and `provision`
//! (what the other arrangement left when switching into or out of gateway mode).

use futures::future::try_join_all;

use super::context::{associations, Ctx};
use crate::arn::Account;
use crate::aws::iam::Iam;
use crate::core;
use crate::state::{AssociationState, RoleState};
use crate::vocab::Change;
use crate::Result;

/// The Pod Identity associations of these ServiceAccounts: delete ours, keep the rest.
pub(super) async fn remove_associations(
    ctx: &Ctx<'_>,
    service_accounts: &[String],
    found: &[(Option<AssociationState>, Option<String>)],
) -> Result<Vec<(String, Change)>> {
    let edge = associations(ctx);
    try_join_all(
        service_accounts
            .iter()
            .zip(found)
            .filter_map(|(sa, (state, _))| Some((sa, state.as_ref()?)))
            .map(|(sa, state)| {
                let edge = &edge;
                async move {
                    let subject = format!("{}/{sa}", ctx.config.namespace);
                    let change = match core::association_removable(state, &ctx.owner) {
                        Ok(()) => edge.delete(&state.id).await?,
                        Err(kept) => kept,
                    };
                    Ok::<_, crate::Error>((subject, change))
                }
            }),
    )
    .await
}

/// Roles and the policy: detach and read the policy (round 2), then delete the roles and the
/// policy (round 3; spare versions first, when there are any). `policy_arn: None` leaves the
/// policy (a switch into or out of gateway mode keeps it: the new role uses it).
pub(super) async fn remove_roles_and_policy(
    iam: &Iam,
    role_names: &[&str],
    roles: &[Option<RoleState>],
    policy_arn: Option<&str>,
    owner: &str,
) -> Result<(Vec<Change>, Change)> {
    let decisions: Vec<Result<&RoleState, Change>> = roles
        .iter()
        .map(|r| match r {
            None => Err(Change::Absent),
            Some(s) => core::removable(&s.tags, owner).map(|()| s),
        })
        .collect();
    let owned: Vec<(&str, &RoleState)> = role_names
        .iter()
        .zip(&decisions)
        .filter_map(|(n, d)| Some((*n, *d.as_ref().ok()?)))
        .collect();
    let (stripped, policy) = tokio::join!(
        try_join_all(owned.iter().map(|(n, s)| iam.remove_attachments(n, s))),
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
                Ok(()) => iam.remove_policy(policy_arn, state).await,
                Err(kept) => Ok(kept),
            },
            _ => Ok(Change::Absent),
        }
    };
    let (deleted, policy_change) = tokio::join!(
        try_join_all(owned.iter().map(|(n, _)| iam.remove_role(n))),
        remove_policy,
    );
    let mut deleted = deleted?.into_iter();
    let changes = decisions
        .into_iter()
        .map(|d| match d {
            Ok(_) => deleted.next().unwrap_or(Change::Absent),
            Err(kept) => kept,
        })
        .collect();
    Ok((changes, policy_change?))
}

/// Release (or, when this installation created it, delete) each ServiceAccount of `pairs`
/// whose role annotation is ours; `roles` are the states of the pairs' roles, in order.
pub(super) async fn release_service_accounts(
    ctx: &Ctx<'_>,
    account: &Account,
    pairs: &[(String, String)],
    roles: &[Option<RoleState>],
) -> Result<Vec<(String, Change)>> {
    let config = ctx.config;
    let changes = try_join_all(
        pairs
            .iter()
            .zip(roles)
            .map(|((sa, role), state)| async move {
                let actual = ctx.kube.read_service_account(sa).await?;
                let arn = account.role(&config.role_path, role);
                let removal =
                    core::sa_removal(actual.as_ref(), state.as_ref(), role, &arn, &ctx.owner);
                ctx.kube.remove_service_account(sa, &removal).await
            }),
    )
    .await?;
    Ok(pairs
        .iter()
        .map(|(sa, _)| format!("{}/{sa}", config.namespace))
        .zip(changes)
        .collect())
}
