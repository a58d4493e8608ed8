//! Orchestration of the commands: read, ask `core`, apply through the edges, report. Reads run
//! concurrently, no call is made twice, and every check `core` makes passes before the first
//! write that depends on it.
//!
//! Fresh `provision`, in dependent AWS round trips:
//! 1. `DescribeCluster` | `ListOpenIDConnectProviders` (not in `pod-identity` mode) | `GetRole`
//!    and `ListAttachedRolePolicies` per role | `ListPodIdentityAssociations` per
//!    ServiceAccount | `DescribeAddon` (not in `irsa` mode); then the mechanism is chosen
//! 2. `CreateOpenIDConnectProvider` (or `GetOpenIDConnectProvider`; IRSA only) | `GetPolicy` |
//!    `DescribePodIdentityAssociation` of each association round 1 listed
//! 3. `CreateRole` per role | `CreatePolicy`
//! 4. `AttachRolePolicy` per role and policy | `CreatePodIdentityAssociation` per ServiceAccount
//!    (Pod Identity) or `DeletePodIdentityAssociation` of ours (IRSA)
//!
//! A re-run with nothing to change stops after round 2 with reads only.

use std::collections::BTreeMap;

use futures::future::try_join_all;

use super::apply::{apply_iam, Decided};
use super::context::{skipped, Clients, Ctx};
use super::discover::{discover, find_association, read_agent, reread, Discovered};
use super::switch;
use crate::aws::eks;
use crate::config::{Config, CredentialMode};
use crate::core::{self, SaStep};
use crate::k8s::SaState;
use crate::plan::{self, Desired, Names};
use crate::report::{Progress, Report};
use crate::state::Workload;
use crate::vocab::Change;
use crate::{Error, Result};

/// `provision` (or `plan` with `dry_run`).
pub async fn provision(config: &Config, dry_run: bool) -> Result<Report> {
    let command = if dry_run { "plan" } else { "provision" };
    if let Some(report) = skipped(command, config.mode) {
        tracing::info!(reason = report.skipped.as_deref(), "nothing to provision");
        return Ok(report);
    }
    let cluster = config.require_cluster()?;
    let clients = Clients::new(config).await?;
    let ctx = Ctx::new(&clients, config, cluster);
    match converge(&ctx, dry_run).await {
        // Another run created a role or the policy between our read and our create: converge
        // from the new state, once, checks included.
        Err(Error::Raced { what }) => {
            tracing::info!(%what, "created concurrently by another run; converging again");
            converge(&ctx, dry_run).await
        }
        other => other,
    }
}

/// Round 1 (everything that needs no discovered fact, Epinio's objects and the Pod Identity
/// agent included), then the checks that need no further call: the mechanism, Epinio versions
/// and ServiceAccounts that cannot work, roles and associations we may not touch,
/// ServiceAccounts missing or annotated by someone else.
pub(super) async fn read_and_decide(ctx: &Ctx<'_>) -> Result<Decided> {
    let (config, iam) = (ctx.config, &ctx.aws.iam);
    let mode = config.credential_mode;
    let sa_names = core::service_account_names(config);
    let role_names: Vec<String> = ctx.names.roles().map(str::to_string).collect();
    let tolerate = mode == CredentialMode::Irsa;
    let (cluster_info, providers, roles, sas, assocs, agent, workloads, epinio) = tokio::join!(
        eks::describe_cluster(&ctx.aws.eks, ctx.cluster),
        list_providers(ctx),
        try_join_all(role_names.iter().map(|n| iam.read_role(n, false))),
        try_join_all(sa_names.iter().map(|n| ctx.kube.read_service_account(n))),
        try_join_all(sa_names.iter().map(|n| find_association(ctx, n, tolerate))),
        read_agent(ctx),
        async {
            if config.restart_workloads {
                ctx.kube.list_workloads().await
            } else {
                Ok(Vec::new())
            }
        },
        ctx.kube.read_epinio(),
    );
    let Discovered {
        reason,
        resolved,
        config: effective,
        facts,
    } = discover(ctx, epinio?.as_ref(), cluster_info?, agent?.as_ref())?;
    let config = &effective;
    let names = Names::new(config, ctx.cluster);
    let desired = plan::desired(config, &names, &facts)?;
    let (providers, workloads) = (providers?, workloads?);
    let wanted_roles: Vec<String> = names.roles().map(str::to_string).collect();
    let wanted = core::service_account_names(config);
    // Only what discovery named that the configuration did not: nothing, usually.
    let (roles, sas, found) = tokio::join!(
        reread(
            &wanted_roles,
            role_names.into_iter().zip(roles?).collect(),
            |n| async move { Ok(iam.read_role(&n, false).await?) },
        ),
        reread(
            &wanted,
            sa_names.iter().cloned().zip(sas?).collect(),
            |n| async move { ctx.kube.read_service_account(&n).await },
        ),
        reread(
            &wanted,
            sa_names.into_iter().zip(assocs?).collect(),
            |n| async move { find_association(ctx, &n, tolerate).await },
        ),
    );
    let (roles, sas, found) = (roles?, sas?, found?);
    let warnings: Vec<String> = found.iter().filter_map(|(_, w)| w.clone()).collect();
    let found = wanted
        .iter()
        .cloned()
        .zip(found.into_iter().map(|(id, _)| id))
        .collect();
    let steps = core::role_steps(&desired.roles, &roles, &ctx.owner, config.adopt_existing)?;
    let sa_steps = sa_steps(config, &desired, &wanted, sas, &ctx.owner)?;
    let other = core::other_pairs(config, &names);
    Ok(Decided {
        config: effective,
        desired,
        facts,
        providers,
        steps,
        sa_steps,
        workloads,
        epinio: resolved,
        mode: reason,
        found,
        warnings,
        other,
    })
}

/// The account's OIDC providers, except in `pod-identity` mode (which never uses one).
async fn list_providers(ctx: &Ctx<'_>) -> std::result::Result<Vec<String>, crate::aws::AwsError> {
    if ctx.config.credential_mode == CredentialMode::PodIdentity {
        Ok(Vec::new())
    } else {
        ctx.aws.iam.list_providers().await
    }
}

/// Each desired ServiceAccount's step, from what was read of it (by name).
fn sa_steps(
    config: &Config,
    desired: &Desired,
    names: &[String],
    read: Vec<Option<SaState>>,
    owner: &str,
) -> Result<Vec<SaStep>> {
    let sas: BTreeMap<&str, Option<SaState>> = names.iter().map(String::as_str).zip(read).collect();
    desired
        .service_accounts
        .iter()
        .map(|spec| {
            let state = sas.get(spec.name.as_str()).and_then(Option::as_ref);
            core::sa_step(&config.namespace, spec, state, owner)
        })
        .collect()
}

/// Waits (bounded by the verify timeout) for the restarted Deployments to roll out, saying what
/// each still misses whenever that changes.
async fn wait_rolled_out(ctx: &Ctx<'_>, restarts: &[(&Workload, &str)]) -> Result<()> {
    let until = std::time::Instant::now() + ctx.config.verify_timeout;
    try_join_all(restarts.iter().filter(|(w, _)| w.kind == "Deployment").map(
        |(w, _)| async move {
            let progress = Progress::new(ctx.config.log_format);
            ctx.kube
                .wait_rolled_out(&w.name, until, |what, state| {
                    progress.say(state, || format!("waiting for {what} to roll out: {state}"))
                })
                .await
        },
    ))
    .await?;
    Ok(())
}

/// One convergence: read and decide (round 1, discovery included), then everything else with
/// the effective configuration discovery made.
async fn converge(guess: &Ctx<'_>, dry_run: bool) -> Result<Report> {
    let d = read_and_decide(guess).await?;
    let ctx = &guess.with(&d.config);
    let (applied, left) = tokio::join!(
        apply_iam(ctx, &d, dry_run),
        switch::read(ctx, d.other.clone())
    );
    let (iam, left) = (applied?, left?);
    let kube = ctx.kube;
    let sa_changes = try_join_all(d.desired.service_accounts.iter().zip(&d.sa_steps).map(
        |(spec, step)| async move {
            if dry_run {
                Ok(step.change.clone())
            } else {
                kube.ensure_service_account(&spec.name, step).await
            }
        },
    ))
    .await?;
    // Epinio restarts into working credentials only: verify first.
    let verified = if ctx.config.verify && !dry_run {
        super::verify::prove(ctx, &d.desired, &d.facts).await?
    } else {
        Vec::new()
    };
    let restarts = core::restarts(&d.desired.service_accounts, &d.sa_steps, &d.workloads);
    if !dry_run {
        try_join_all(restarts.iter().map(|(w, arn)| kube.restart(w, arn))).await?;
    }
    // Gateway mode: the gateway's pods are what serve Epinio; wait (bounded) for them to run
    // with the role's credentials, then prove Epinio's own path through them.
    if ctx.config.gateway_mode() && !dry_run {
        wait_rolled_out(ctx, &restarts).await?;
    }
    let through = if ctx.config.gateway_mode() && ctx.config.verify && !dry_run {
        super::verify_gateway::prove_gateway(ctx).await?
    } else {
        None
    };
    let annotated = sa_changes.iter().any(Change::is_write);
    let mut report = Report::provision(
        &ctx.config.namespace,
        &d.desired,
        dry_run,
        [iam.provider, iam.policy],
        iam.roles,
        sa_changes,
        &restarts,
    );
    report.add_associations(iam.associations);
    report.epinio = Some(d.epinio.epinio.clone());
    report.mode = Some(d.mode.clone());
    report.warnings = d.epinio.warnings.clone();
    report.warnings.extend(d.warnings.iter().cloned());
    report.warnings.extend(iam.warnings);
    report
        .warnings
        .extend(core::restart_warning(ctx.config, annotated));
    report.warnings.extend(left.warnings().cloned());
    report.add_verified(&verified, &ctx.config.namespace, &ctx.config.bucket);
    if let Some(through) = &through {
        report.add_gateway(through, &ctx.config.bucket);
    }
    switch::remove(ctx, &d.facts.account(), left, dry_run, &mut report).await?;
    Ok(report)
}
