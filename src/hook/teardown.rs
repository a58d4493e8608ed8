//! `teardown`: remove what this installation owns, in the fewest dependent rounds, and leave
//! everything else.

use futures::future::try_join_all;

use super::context::{associations, context, service_account_names, skipped, Ctx};
use super::discover::{configured, effective, facts_from, read_association, reread};
use crate::arn::{Account, Arn};
use crate::aws::{eks, iam::Iam, sts};
use crate::config::{Config, Mechanism};
use crate::core;
use crate::epinio;
use crate::plan::{self, Facts, Names};
use crate::report::Report;
use crate::state::{AssociationState, RoleState};
use crate::vocab::Change;
use crate::Result;

/// `teardown`: remove what this installation owns, leave everything else.
pub async fn teardown(config: &Config) -> Result<Report> {
    let Some(cluster) = config.cluster_name.as_deref() else {
        if let Some(report) = skipped("teardown", config.mode) {
            return Ok(report);
        }
        return Err(config.require_cluster().unwrap_err().into());
    };
    let ctx = context(config, cluster).await?;
    let first_names: Vec<String> = ctx.names.roles().map(str::to_string).collect();

    // Round 1, Epinio's objects included: the ServiceAccounts provision managed are the ones
    // Epinio uses. Teardown never refuses on what it finds: it removes what is ours.
    let first_sas = service_account_names(config);
    let (cluster_info, roles, epinio, assocs) = tokio::join!(
        eks::describe_cluster(&ctx.aws.eks, cluster),
        try_join_all(first_names.iter().map(|n| ctx.aws.iam.read_role(n, true))),
        ctx.kube.read_epinio(),
        try_join_all(first_sas.iter().map(|n| read_association(&ctx, n, true))),
    );
    // Either mechanism's ServiceAccounts are the same ones; only the Epinio check differs.
    let mut lenient = configured(config, Mechanism::Irsa);
    lenient.allow_unsupported = true;
    let (eff, warning) = match epinio::resolve(&lenient, epinio?.as_ref()) {
        Ok(resolved) => (effective(config, &resolved)?, None),
        Err(e) => (
            config.clone(),
            Some(format!(
                "{e} (teardown used the configuration's ServiceAccounts)"
            )),
        ),
    };
    let ctx = Ctx {
        names: Names::new(&eff, cluster),
        config: &eff,
        ..ctx
    };
    let (config, iam) = (ctx.config, &ctx.aws.iam);
    let role_names: Vec<&str> = ctx.names.roles().collect();
    let wanted: Vec<String> = role_names.iter().map(|n| n.to_string()).collect();
    let roles = reread(
        &wanted,
        first_names.into_iter().zip(roles?).collect(),
        |n| async move { Ok(iam.read_role(&n, true).await?) },
    )
    .await?;
    let wanted_sas = service_account_names(config);
    let ctx_ref = &ctx;
    let assocs = reread(
        &wanted_sas,
        first_sas.into_iter().zip(assocs?).collect(),
        |n| async move { read_association(ctx_ref, &n, true).await },
    )
    .await?;
    let (account, issuer) = account_and_issuer(&ctx, cluster_info?, &roles).await?;
    let policy_arn = account.policy(&config.role_path, &ctx.names.policy);

    let (roles_r, provider_r, kube_r, assoc_r) = tokio::join!(
        remove_roles_and_policy(iam, &role_names, &roles, &policy_arn, &ctx.owner),
        remove_provider(&ctx, issuer.as_ref()),
        release_service_accounts(&ctx, &account, &roles),
        remove_associations(&ctx, &wanted_sas, &assocs),
    );
    let (role_changes, policy_change) = roles_r?;
    let mut report = Report::teardown(
        role_names.iter().map(|n| n.to_string()).zip(role_changes),
        (policy_arn, policy_change),
        provider_r?,
        kube_r?,
    );
    report.add_associations(assoc_r?);
    report.warnings.extend(warning);
    report
        .warnings
        .extend(assocs.into_iter().filter_map(|(_, w)| w));
    Ok(report)
}

/// The account (and the cluster's facts, when it still exists): from the cluster, else from
/// one of our roles, else from STS.
async fn account_and_issuer(
    ctx: &Ctx<'_>,
    cluster_info: Option<eks::ClusterInfo>,
    roles: &[Option<RoleState>],
) -> Result<(Account, Option<Facts>)> {
    Ok(match cluster_info {
        Some(info) => {
            let facts = facts_from(&info.arn, info.issuer_url, ctx.cluster, Mechanism::Irsa)?;
            (facts.account(), Some(facts))
        }
        // The cluster is gone already: the account still has our IAM objects.
        None => match roles.iter().flatten().find_map(|r| Arn::account_of(&r.arn)) {
            Some((p, a)) => (Account::new(p, a), None),
            None => (sts::caller_account(&ctx.aws.sts).await?, None),
        },
    })
}

/// The Pod Identity associations of the managed ServiceAccounts: delete ours, keep the rest.
async fn remove_associations(
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
/// policy (round 3; spare versions first, when there are any).
async fn remove_roles_and_policy(
    iam: &Iam,
    role_names: &[&str],
    roles: &[Option<RoleState>],
    policy_arn: &str,
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
        iam.read_policy(policy_arn, true),
    );
    stripped?;
    let policy = policy?;
    let remove_policy = async {
        match &policy {
            None => Ok(Change::Absent),
            Some(state) => match core::removable(&state.tags, owner) {
                Ok(()) => iam.remove_policy(policy_arn, state).await,
                Err(kept) => Ok(kept),
            },
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

async fn remove_provider(ctx: &Ctx<'_>, facts: Option<&Facts>) -> Result<(String, Change)> {
    if !ctx.config.delete_oidc_provider {
        return Ok((
            "(shared)".into(),
            Change::Kept("EPINIO_IRSA_DELETE_OIDC_PROVIDER=false".into()),
        ));
    }
    let Some(facts) = facts else {
        return Ok((
            "(cluster gone: issuer unknown)".into(),
            Change::Kept("the cluster no longer exists, so its issuer is unknown".into()),
        ));
    };
    let arn = plan::provider_arn(facts);
    let iam = &ctx.aws.iam;
    let change = match iam.read_provider(&arn).await? {
        None => Change::Absent,
        Some(state) => match core::removable(&state.tags, &ctx.owner) {
            Ok(()) => iam.remove_provider(&arn).await?,
            Err(_) => Change::Kept("not created by this installation".into()),
        },
    };
    Ok((arn, change))
}

async fn release_service_accounts(
    ctx: &Ctx<'_>,
    account: &Account,
    roles: &[Option<RoleState>],
) -> Result<Vec<(String, Change)>> {
    let config = ctx.config;
    let mut pairs = vec![(
        config.server_service_account.as_str(),
        ctx.names.server_role.as_str(),
    )];
    if let Some(staging) = &ctx.names.staging_role {
        pairs.push((config.staging_service_account.as_str(), staging));
    }
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
