//! `teardown`: remove what this installation owns, in the fewest dependent rounds, and leave
//! everything else.

use futures::future::try_join_all;

use super::context::{context, managed_pairs, other_pairs, skipped, Ctx};
use super::discover::{configured, effective, facts_from, read_association, reread};
use super::remove::{release_service_accounts, remove_associations, remove_roles_and_policy};
use crate::arn::{Account, Arn};
use crate::aws::{eks, sts};
use crate::config::{Config, CredentialMode, Mechanism};
use crate::core;
use crate::epinio;
use crate::plan::{self, Facts, Names};
use crate::report::Report;
use crate::state::{EpinioObjects, RoleState};
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
    let (first_pairs, _) = all_pairs(config, &ctx.names);
    let first_names: Vec<String> = first_pairs.iter().map(|(_, r)| r.clone()).collect();
    let first_sas: Vec<String> = first_pairs.iter().map(|(sa, _)| sa.clone()).collect();

    // Round 1, Epinio's objects included: the ServiceAccounts provision managed are the ones
    // Epinio uses. Teardown never refuses on what it finds: it removes what is ours.
    let (cluster_info, roles, epinio, assocs) = tokio::join!(
        eks::describe_cluster(&ctx.aws.eks, cluster),
        try_join_all(first_names.iter().map(|n| ctx.aws.iam.read_role(n, true))),
        ctx.kube.read_epinio(),
        try_join_all(first_sas.iter().map(|n| read_association(&ctx, n, true))),
    );
    let (eff, warning) = lenient(config, epinio?.as_ref())?;
    let ctx = Ctx {
        names: Names::new(&eff, cluster),
        config: &eff,
        ..ctx
    };
    let (config, iam) = (ctx.config, &ctx.aws.iam);
    let (pairs, managed) = all_pairs(config, &ctx.names);
    let role_names: Vec<&str> = pairs.iter().map(|(_, r)| r.as_str()).collect();
    let wanted: Vec<String> = role_names.iter().map(|n| n.to_string()).collect();
    let roles = reread(
        &wanted,
        first_names.into_iter().zip(roles?).collect(),
        |n| async move { Ok(iam.read_role(&n, true).await?) },
    )
    .await?;
    let wanted_sas: Vec<String> = pairs.iter().map(|(sa, _)| sa.clone()).collect();
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
        remove_roles_and_policy(iam, &role_names, &roles, Some(&policy_arn), &ctx.owner),
        remove_provider(&ctx, issuer.as_ref()),
        release_service_accounts(&ctx, &account, &pairs, &roles),
        remove_associations(&ctx, &wanted_sas, &assocs),
    );
    let (role_changes, policy_change) = roles_r?;
    // The other arrangement's pieces are named only when something was there.
    let shown = |i: usize, change: &Change| i < managed || !change.is_nothing();
    let mut report = Report::teardown(
        role_names
            .iter()
            .map(|n| n.to_string())
            .zip(role_changes)
            .enumerate()
            .filter(|(i, (_, c))| shown(*i, c))
            .map(|(_, item)| item),
        (policy_arn, policy_change),
        provider_r?,
        kube_r?
            .into_iter()
            .enumerate()
            .filter(|(i, (_, c))| shown(*i, c))
            .map(|(_, item)| item)
            .collect(),
    );
    report.add_associations(assoc_r?);
    report.warnings.extend(warning);
    report
        .warnings
        .extend(assocs.into_iter().filter_map(|(_, w)| w));
    Ok(report)
}

/// Both arrangements' ServiceAccounts with their roles' names, the managed ones first (how
/// many is the second value), then what a switch into or out of gateway mode may have left.
fn all_pairs(config: &Config, names: &Names) -> (Vec<(String, String)>, usize) {
    let mut pairs = managed_pairs(config, names);
    let managed = pairs.len();
    pairs.extend(other_pairs(config, names));
    (pairs, managed)
}

/// The configuration with the ServiceAccounts Epinio uses, never refusing: either mechanism's
/// ServiceAccounts are the same ones, only the Epinio check differs. When they cannot be
/// resolved, the configuration's, with a warning (none in gateway mode, where Epinio's only
/// matter if an earlier run managed them).
fn lenient(config: &Config, epinio: Option<&EpinioObjects>) -> Result<(Config, Option<String>)> {
    let mut lenient = configured(config, Mechanism::Irsa);
    lenient.allow_unsupported = true;
    Ok(match epinio::resolve(&lenient, epinio) {
        Ok(resolved) => (effective(config, &resolved)?, None),
        Err(_) if config.gateway_mode() => (config.clone(), None),
        Err(e) => (
            config.clone(),
            Some(format!(
                "{e} (teardown used the configuration's ServiceAccounts)"
            )),
        ),
    })
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

/// The OIDC provider: deleted when configured and ours, else kept. Its summary line names only
/// what is there: EKS Pod Identity never made nor reads a provider (its installer policy has no
/// call on one), so kept there means no line; `auto` reads it and names it only when it exists.
async fn remove_provider(ctx: &Ctx<'_>, facts: Option<&Facts>) -> Result<Option<(String, Change)>> {
    let mode = ctx.config.credential_mode;
    if !ctx.config.delete_oidc_provider {
        let kept = || Change::Kept("shared; EPINIO_IRSA_DELETE_OIDC_PROVIDER=false".into());
        return Ok(match facts {
            _ if mode == CredentialMode::PodIdentity => None,
            None => Some(("(shared)".into(), kept())),
            Some(facts) => {
                let arn = plan::provider_arn(facts);
                match ctx.aws.iam.read_provider(&arn).await? {
                    Some(_) => Some((arn, kept())),
                    None if mode == CredentialMode::Irsa => Some((arn, Change::Absent)),
                    None => None,
                }
            }
        });
    }
    let Some(facts) = facts else {
        return Ok(Some((
            "(cluster gone: issuer unknown)".into(),
            Change::Kept("the cluster no longer exists, so its issuer is unknown".into()),
        )));
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
    // Pod Identity made none: an absent provider is not worth a line.
    if change == Change::Absent && mode == CredentialMode::PodIdentity {
        return Ok(None);
    }
    Ok(Some((arn, change)))
}
