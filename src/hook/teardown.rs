//! `teardown`: remove what this installation owns, in the fewest dependent rounds, and leave
//! everything else.

use futures::future::try_join_all;

use super::context::{skipped, Clients, Ctx};
use super::discover::{facts_from, reread};
use super::remove::{read_pair, release_and_disassociate, remove_roles_and_policy};
use crate::arn::{Account, Arn};
use crate::aws::{eks, sts};
use crate::config::{Config, CredentialMode, Mechanism};
use crate::core::{self, Pair, PairState};
use crate::plan::{self, Facts};
use crate::report::Report;
use crate::vocab::Change;
use crate::Result;

/// `teardown`: remove what this installation owns, leave everything else (`plan teardown` with
/// `dry_run`: the same reads and decisions, no write).
pub async fn teardown(config: &Config, dry_run: bool) -> Result<Report> {
    let command = if dry_run { "plan teardown" } else { "teardown" };
    // Teardown runs whenever a cluster is named: an earlier run may have made something even
    // when this configuration needs nothing.
    if config.cluster_name.is_none() {
        if let Some(report) = skipped(command, config.mode) {
            return Ok(report);
        }
    }
    let cluster = config.require_cluster()?;
    let clients = Clients::new(config).await?;
    let guess = Ctx::new(&clients, config, cluster);
    let (first, _) = core::all_pairs(config, &guess.names);

    // Round 1, Epinio's objects included: the ServiceAccounts provision managed are the ones
    // Epinio uses. Teardown never refuses on what it finds: it removes what is ours.
    let (cluster_info, epinio, first_states) = tokio::join!(
        eks::describe_cluster(&guess.aws.eks, cluster),
        guess.kube.read_epinio(),
        try_join_all(first.iter().map(|p| read_pair(&guess, p))),
    );
    let (eff, warning) = core::lenient(config, epinio?.as_ref())?;
    let ctx = guess.with(&eff);
    let (pairs, managed) = core::all_pairs(&eff, &ctx.names);
    let ctx_ref = &ctx;
    let states = reread(
        &pairs,
        first.into_iter().zip(first_states?).collect(),
        |p| async move { read_pair(ctx_ref, &p).await },
    )
    .await?;
    let (account, issuer) = account_and_issuer(&ctx, cluster_info?, &states).await?;
    let policy_arn = account.policy(&eff.role_path, &ctx.names.policy);
    let removals: Vec<_> = pairs
        .iter()
        .zip(&states)
        .map(|(p, s)| {
            let arn = account.role(&eff.role_path, &p.role);
            core::pair_removal(p, s, &arn, &ctx.owner)
        })
        .collect();

    let iam = &ctx.aws.iam;
    let (roles_r, provider_r, released_r) = tokio::join!(
        remove_roles_and_policy(
            iam,
            &pairs,
            &states,
            &removals,
            Some(&policy_arn),
            &ctx.owner,
            dry_run
        ),
        remove_provider(&ctx, issuer.as_ref(), dry_run),
        release_and_disassociate(&ctx, &pairs, &removals, dry_run),
    );
    let (role_changes, policy_change) = roles_r?;
    let (released, disassociated) = released_r?;
    let removed = Removed {
        roles: role_changes,
        policy: (policy_arn, policy_change),
        provider: provider_r?,
        service_accounts: released,
        associations: disassociated,
    };
    let mut report = summary(&eff.namespace, &pairs, managed, removed);
    report.command = command;
    report.planned = dry_run;
    report.warnings.extend(warning);
    report
        .warnings
        .extend(states.into_iter().filter_map(|s| s.association_warning));
    Ok(report)
}

/// What teardown removed (or, planned, would remove), pair by pair.
struct Removed {
    roles: Vec<Change>,
    policy: (String, Change),
    provider: Option<(String, Change)>,
    service_accounts: Vec<Change>,
    associations: Vec<Option<Change>>,
}

/// The summary: the managed pairs always, the other arrangement's pieces only when something
/// was there.
fn summary(namespace: &str, pairs: &[Pair], managed: usize, removed: Removed) -> Report {
    let shown = |i: usize, change: &Change| i < managed || !change.is_nothing();
    let subject = |p: &Pair| format!("{namespace}/{}", p.service_account);
    let mut report = Report::teardown(
        pairs
            .iter()
            .zip(removed.roles)
            .enumerate()
            .filter(|(i, (_, c))| shown(*i, c))
            .map(|(_, (p, c))| (p.role.clone(), c)),
        removed.policy,
        removed.provider,
        pairs
            .iter()
            .zip(removed.service_accounts)
            .enumerate()
            .filter(|(i, (_, c))| shown(*i, c))
            .map(|(_, (p, c))| (subject(p), c))
            .collect(),
    );
    report.add_associations(
        pairs
            .iter()
            .zip(removed.associations)
            .filter_map(|(p, c)| Some((subject(p), c?))),
    );
    report
}

/// The account (and the cluster's facts, when it still exists): from the cluster, else from
/// one of our roles, else from STS.
async fn account_and_issuer(
    ctx: &Ctx<'_>,
    cluster_info: Option<eks::ClusterInfo>,
    states: &[PairState],
) -> Result<(Account, Option<Facts>)> {
    Ok(match cluster_info {
        Some(info) => {
            let facts = facts_from(&info.arn, info.issuer_url, ctx.cluster, Mechanism::Irsa)?;
            (facts.account(), Some(facts))
        }
        // The cluster is gone already: the account still has our IAM objects.
        None => match states
            .iter()
            .filter_map(|s| s.role.as_ref())
            .find_map(|r| Arn::account_of(&r.arn))
        {
            Some((p, a)) => (Account::new(p, a), None),
            None => (sts::caller_account(&ctx.aws.sts).await?, None),
        },
    })
}

/// The OIDC provider: deleted when configured and ours, else kept. Its summary line names only
/// what is there: EKS Pod Identity never made nor reads a provider (its installer policy has no
/// call on one), so kept there means no line; `auto` reads it and names it only when it exists.
async fn remove_provider(
    ctx: &Ctx<'_>,
    facts: Option<&Facts>,
    dry_run: bool,
) -> Result<Option<(String, Change)>> {
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
            Ok(()) if dry_run => Change::Remove,
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
