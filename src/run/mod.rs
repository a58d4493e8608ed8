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
use tokio::sync::oneshot;

use crate::arn::{Account, Arn};
use crate::aws::{self, eks, iam::Iam, sts};
use crate::config::{Config, CredentialMode, Mechanism, Mode, ServiceAccountName};
use crate::core::{self, AssociationPlan, AssociationStep, RoleStep, SaStep};
use crate::epinio::{self, Configured, Resolved};
use crate::k8s::{self, K8s, SaState, Workload};
use crate::plan::{self, Desired, Facts, Names};
use crate::report::{Change, Report};
use crate::state::{AddonState, AssociationState, EpinioObjects};
use crate::{Error, Result};

mod teardown;
pub use teardown::teardown;

/// The AWS clients, sharing one configuration.
pub struct AwsClients {
    pub iam: Iam,
    pub eks: aws_sdk_eks::Client,
    pub sts: aws_sdk_sts::Client,
    /// STS without credentials: `AssumeRoleWithWebIdentity` is authorized by the token alone
    /// and goes out unsigned, as a pod's SDK sends it (the job's identity plays no part).
    pub sts_anonymous: aws_sdk_sts::Client,
    pub region: Option<String>,
    sdk: aws_config::SdkConfig,
}

impl AwsClients {
    pub async fn new(config: &Config) -> AwsClients {
        let sdk = aws::sdk_config(config).await;
        AwsClients {
            iam: Iam {
                client: aws::iam_client(&sdk),
                attempts: config.max_attempts,
            },
            eks: aws_sdk_eks::Client::new(&sdk),
            sts: aws_sdk_sts::Client::new(&sdk),
            sts_anonymous: {
                let mut builder = aws_sdk_sts::config::Builder::from(&sdk);
                builder.set_credentials_provider(None);
                aws_sdk_sts::Client::from_conf(builder.build())
            },
            region: sdk.region().map(|r| r.to_string()),
            sdk,
        }
    }

    /// An S3 client with other credentials (`verify`'s assumed role). Path-style addressing
    /// when an endpoint override is set (S3-compatible test endpoints), virtual-hosted on AWS.
    pub fn s3_with(
        &self,
        credentials: aws_sdk_s3::config::Credentials,
        region: Option<String>,
    ) -> aws_sdk_s3::Client {
        let mut builder = aws_sdk_s3::config::Builder::from(&self.sdk)
            .credentials_provider(credentials)
            .force_path_style(self.sdk.endpoint_url().is_some());
        if let Some(region) = region {
            builder = builder.region(aws_sdk_s3::config::Region::new(region));
        }
        let config = builder.build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

pub async fn kube(config: &Config) -> Result<K8s> {
    Ok(K8s {
        client: k8s::client(config.call_timeout).await?,
        namespace: config.namespace.to_string(),
        attempts: config.max_attempts,
    })
}

fn skipped(command: &'static str, mode: Mode) -> Option<Report> {
    mode.skip_reason().map(|why| Report {
        command,
        skipped: Some(why.to_string()),
        ..Report::default()
    })
}

/// Everything one command works with.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub cluster: &'a str,
    pub names: Names,
    pub aws: AwsClients,
    pub kube: K8s,
    pub owner: String,
}

async fn context<'a>(config: &'a Config, cluster: &'a str) -> Result<Ctx<'a>> {
    let aws = AwsClients::new(config).await;
    if aws.region.is_none() {
        return Err(Error::NoRegion);
    }
    Ok(Ctx {
        names: Names::new(config, cluster),
        kube: kube(config).await?,
        owner: config.owner(),
        config,
        cluster,
        aws,
    })
}

/// `provision` (or `plan` with `dry_run`).
pub async fn provision(config: &Config, dry_run: bool) -> Result<Report> {
    let command = if dry_run { "plan" } else { "provision" };
    if let Some(report) = skipped(command, config.mode) {
        tracing::info!(reason = report.skipped.as_deref(), "nothing to provision");
        return Ok(report);
    }
    let ctx = context(config, config.require_cluster()?).await?;
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

fn facts_from(
    cluster_arn: &str,
    issuer_url: String,
    cluster: &str,
    mechanism: Mechanism,
) -> Result<Facts> {
    let (partition, account_id) = Arn::account_of(cluster_arn).ok_or_else(|| aws::AwsError {
        op: crate::access::DESCRIBE_CLUSTER.name,
        resource: cluster.to_string(),
        code: None,
        message: format!("unexpected cluster ARN {cluster_arn:?}"),
    })?;
    Ok(Facts {
        partition,
        account_id,
        issuer_url,
        cluster_arn: cluster_arn.to_string(),
        mechanism,
    })
}

/// `DescribeAddon` of the Pod Identity agent, unless the mode is `irsa` (which never uses it).
async fn read_agent(ctx: &Ctx<'_>) -> std::result::Result<Option<AddonState>, aws::AwsError> {
    if ctx.config.credential_mode == CredentialMode::Irsa {
        Ok(None)
    } else {
        eks::describe_agent(&ctx.aws.eks, ctx.cluster).await
    }
}

/// What `provision` and `verify` decide from round 1's cluster, Epinio and agent reads.
struct Discovered {
    /// The mechanism chosen and why.
    reason: String,
    resolved: Resolved,
    /// The configuration with the ServiceAccounts Epinio really uses.
    config: Config,
    facts: Facts,
}

/// A missing cluster is named first (its add-on then reads as absent too), then the mechanism is
/// chosen, Epinio checked for it, and the cluster's facts taken.
fn discover(
    ctx: &Ctx<'_>,
    epinio: Option<&EpinioObjects>,
    cluster: Option<eks::ClusterInfo>,
    agent: Option<&AddonState>,
) -> Result<Discovered> {
    let info = cluster.ok_or_else(|| Error::ClusterNotFound {
        cluster: ctx.cluster.to_string(),
        region: ctx.aws.region.clone(),
    })?;
    let (mechanism, reason) = core::choose_mechanism(
        ctx.config.credential_mode,
        ctx.cluster,
        agent,
        epinio::supports_pod_identity(epinio),
    )?;
    let resolved = epinio::resolve(&configured(ctx.config, mechanism), epinio)?;
    Ok(Discovered {
        reason,
        config: effective(ctx.config, &resolved)?,
        resolved,
        facts: facts_from(&info.arn, info.issuer_url, ctx.cluster, mechanism)?,
    })
}

/// The ServiceAccounts the job manages, server first.
fn service_account_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.server_service_account.to_string()];
    if !config.staging_is_shared() {
        names.push(config.staging_service_account.to_string());
    }
    names
}

/// What round 1 found, and what `core` decided from it.
struct Decided {
    desired: Desired,
    facts: Facts,
    providers: Vec<String>,
    steps: Vec<RoleStep>,
    sa_steps: Vec<SaStep>,
    workloads: Vec<Workload>,
    epinio: Resolved,
    /// The mechanism chosen and why.
    mode: String,
    /// Each managed ServiceAccount with the id of its association, as round 1 listed it
    /// (described in round 2, beside the policy).
    found: Vec<(String, Option<String>)>,
    warnings: Vec<String>,
}

/// The Pod Identity edge of this run's cluster.
pub(crate) fn associations<'a>(ctx: &'a Ctx<'_>) -> eks::Associations<'a> {
    eks::Associations {
        client: &ctx.aws.eks,
        cluster: ctx.cluster,
        attempts: ctx.config.max_attempts,
    }
}

/// Where no Pod Identity call is needed to converge (IRSA mode, teardown), a policy from before
/// Pod Identity that denies the association reads is a warning, not a failure: the run goes on
/// without them and says what it could not check.
fn tolerated<T: Default>(
    ctx: &Ctx<'_>,
    service_account: &str,
    tolerate_denied: bool,
    result: std::result::Result<T, aws::AwsError>,
) -> Result<(T, Option<String>)> {
    match result {
        Ok(found) => Ok((found, None)),
        Err(e) if tolerate_denied && (e.is("AccessDeniedException") || e.is("AccessDenied")) => {
            Ok((T::default(), Some(format!("could not read the EKS Pod Identity associations of ServiceAccount {}/{service_account} ({e}); an association left from pod-identity mode would stay: grant the eks:*PodIdentityAssociation* statement of `epinio-irsa installer-policy`", ctx.config.namespace))))
        }
        Err(e) => Err(e.into()),
    }
}

/// The id of one ServiceAccount's association (round 1), and the warning when it could not
/// be read.
async fn find_association(
    ctx: &Ctx<'_>,
    service_account: &str,
    tolerate_denied: bool,
) -> Result<(Option<String>, Option<String>)> {
    let found = associations(ctx)
        .find(&ctx.config.namespace, service_account)
        .await;
    tolerated(ctx, service_account, tolerate_denied, found)
}

/// The association `find_association` found, described (round 2).
async fn describe_association(
    ctx: &Ctx<'_>,
    service_account: &str,
    id: Option<&str>,
    tolerate_denied: bool,
) -> Result<(Option<AssociationState>, Option<String>)> {
    let Some(id) = id else {
        return Ok((None, None));
    };
    let who = format!("{}/{service_account}", ctx.config.namespace);
    let found = associations(ctx).describe(id, &who).await;
    tolerated(ctx, service_account, tolerate_denied, found)
}

/// Both, for teardown.
async fn read_association(
    ctx: &Ctx<'_>,
    service_account: &str,
    tolerate_denied: bool,
) -> Result<(Option<AssociationState>, Option<String>)> {
    let (id, warning) = find_association(ctx, service_account, tolerate_denied).await?;
    let (state, later) =
        describe_association(ctx, service_account, id.as_deref(), tolerate_denied).await?;
    Ok((state, warning.or(later)))
}

fn configured(config: &Config, mechanism: Mechanism) -> Configured<'_> {
    Configured {
        server: &config.server_service_account,
        server_given: config.server_service_account_given,
        staging: &config.staging_service_account,
        staging_given: config.staging_service_account_given,
        legacy_staging: config.legacy_staging_service_account.as_deref(),
        allow_unsupported: config.allow_unsupported_epinio,
        mechanism,
    }
}

/// The configuration with the ServiceAccounts Epinio really uses.
fn effective(config: &Config, resolved: &Resolved) -> Result<Config> {
    let parse = |sa: &str| {
        sa.parse::<ServiceAccountName>().map_err(|allowed| {
            Error::Config(crate::error::ConfigErrors(vec![
                crate::error::ConfigError {
                    variable: "(discovered ServiceAccount)",
                    value: sa.to_string(),
                    allowed,
                },
            ]))
        })
    };
    let mut eff = config.clone();
    eff.server_service_account = parse(&resolved.server_service_account)?;
    eff.staging_service_account = match &resolved.staging_service_account {
        Some(sa) => parse(sa)?,
        // Staging cannot get a role: manage the server's only.
        None => eff.server_service_account.clone(),
    };
    Ok(eff)
}

/// Reads again only what round 1 could not know it needed: roles and ServiceAccounts named
/// by discovery instead of the configuration (none when the two agree).
async fn reread<T, F, Fut>(wanted: &[String], known: Vec<(String, T)>, read: F) -> Result<Vec<T>>
where
    T: Clone,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    try_join_all(wanted.iter().map(|name| {
        let hit = known
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone());
        let read = &read;
        async move {
            match hit {
                Some(v) => Ok(v),
                None => read(name.clone()).await,
            }
        }
    }))
    .await
}

/// Round 1 (everything that needs no discovered fact, Epinio's objects and the Pod Identity
/// agent included), then the checks that need no further call: the mechanism, Epinio versions
/// and ServiceAccounts that cannot work, roles and associations we may not touch,
/// ServiceAccounts missing or annotated by someone else.
async fn read_and_decide(ctx: &Ctx<'_>) -> Result<Decided> {
    let (config, iam) = (ctx.config, &ctx.aws.iam);
    let mode = config.credential_mode;
    let sa_names = service_account_names(config);
    let role_names: Vec<String> = ctx.names.roles().map(str::to_string).collect();
    let tolerate = mode == CredentialMode::Irsa;
    let (cluster_info, providers, roles, sas, assocs, agent, workloads, epinio) = tokio::join!(
        eks::describe_cluster(&ctx.aws.eks, ctx.cluster),
        async {
            if mode == CredentialMode::PodIdentity {
                Ok(Vec::new())
            } else {
                iam.list_providers().await
            }
        },
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
        config,
        facts,
    } = discover(ctx, epinio?.as_ref(), cluster_info?, agent?.as_ref())?;
    let config = &config;
    let names = Names::new(config, ctx.cluster);
    let desired = plan::desired(config, &names, &facts)?;
    let (providers, workloads) = (providers?, workloads?);
    let wanted_roles: Vec<String> = names.roles().map(str::to_string).collect();
    let wanted = service_account_names(config);
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
    let sas: BTreeMap<&str, Option<SaState>> = wanted.iter().map(String::as_str).zip(sas).collect();
    let steps = core::role_steps(&desired.roles, &roles, &ctx.owner, config.adopt_existing)?;
    let sa_steps = desired
        .service_accounts
        .iter()
        .map(|spec| {
            let state = sas.get(spec.name.as_str()).and_then(Option::as_ref);
            core::sa_step(&config.namespace, spec, state, &ctx.owner)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Decided {
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
    })
}

/// Round 2 for associations: describe what round 1 listed, then decide. Under Pod Identity a
/// refusal here comes before any write (no OIDC provider is made in that mode); under IRSA
/// nothing here refuses (ours are removed, others left with a warning).
async fn decide_associations(
    ctx: &Ctx<'_>,
    d: &Decided,
) -> Result<(Vec<AssociationPlan>, Vec<String>)> {
    let tolerate = ctx.config.credential_mode == CredentialMode::Irsa;
    let described = try_join_all(
        d.found
            .iter()
            .map(|(sa, id)| describe_association(ctx, sa, id.as_deref(), tolerate)),
    )
    .await?;
    let mut warnings: Vec<String> = described.iter().filter_map(|(_, w)| w.clone()).collect();
    let found: Vec<(&str, Option<&AssociationState>)> = d
        .found
        .iter()
        .map(|(sa, _)| sa.as_str())
        .zip(described.iter().map(|(a, _)| a.as_ref()))
        .collect();
    let (plans, left) = core::association_plans(
        &d.desired,
        &ctx.config.namespace,
        ctx.cluster,
        &found,
        &ctx.owner,
    )?;
    warnings.extend(left);
    Ok((plans, warnings))
}

async fn converge(ctx: &Ctx<'_>, dry_run: bool) -> Result<Report> {
    let d = read_and_decide(ctx).await?;
    let (provider_change, policy_change, role_changes, associations, association_warnings) =
        apply_iam(ctx, &d, dry_run).await?;
    let kube = &ctx.kube;
    let sa_changes = try_join_all(
        d.desired
            .service_accounts
            .iter()
            .zip(&d.sa_steps)
            .map(|(spec, step)| kube.ensure_service_account(&spec.name, step, dry_run)),
    )
    .await?;
    // Epinio restarts into working credentials only: verify first.
    let verified = if ctx.config.verify && !dry_run {
        crate::verify::verify(ctx, &d.desired, &d.facts).await?
    } else {
        Vec::new()
    };
    let restarts = core::restarts(&d.desired.service_accounts, &d.sa_steps, &d.workloads);
    if !dry_run {
        try_join_all(restarts.iter().map(|(w, arn)| kube.restart(w, arn))).await?;
    }
    if !ctx.config.restart_workloads && sa_changes.iter().any(Change::is_write) {
        tracing::warn!("EPINIO_IRSA_RESTART_WORKLOADS=false: pods started before the role annotation get no IAM credentials until they are restarted");
    }
    for w in &d.epinio.warnings {
        tracing::warn!(warning = %w, "epinio");
    }
    let mut report = Report::provision(
        &ctx.config.namespace,
        &d.desired,
        dry_run,
        [provider_change, policy_change],
        role_changes,
        sa_changes,
        &restarts,
    );
    report.add_associations(
        associations
            .into_iter()
            .map(|(plan, change)| (plan.subject(), change)),
    );
    report.epinio = Some(d.epinio.epinio.clone());
    report.mode = Some(d.mode.clone());
    report.warnings = d.epinio.warnings.clone();
    report.warnings.extend(d.warnings.iter().cloned());
    report.warnings.extend(association_warnings);
    report.add_verified(&verified, &ctx.config.namespace, &ctx.config.bucket);
    Ok(report)
}

/// `verify`: discovery as `provision` does it, then the checklist and the live chain for every
/// managed ServiceAccount. Writes nothing but the token requests.
pub async fn verify(config: &Config) -> Result<Report> {
    if let Some(report) = skipped("verify", config.mode) {
        return Ok(report);
    }
    let cluster = config.require_cluster()?;
    let ctx = context(config, cluster).await?;
    let (cluster_info, epinio, agent) = tokio::join!(
        eks::describe_cluster(&ctx.aws.eks, cluster),
        ctx.kube.read_epinio(),
        read_agent(&ctx),
    );
    let Discovered {
        reason,
        resolved,
        config: eff,
        facts,
    } = discover(&ctx, epinio?.as_ref(), cluster_info?, agent?.as_ref())?;
    let ctx = Ctx {
        names: Names::new(&eff, cluster),
        config: &eff,
        ..ctx
    };
    let desired = plan::desired(&eff, &ctx.names, &facts)?;
    let verified = crate::verify::verify(&ctx, &desired, &facts).await?;
    let mut report = Report {
        command: "verify",
        mode: Some(reason),
        epinio: Some(resolved.epinio),
        warnings: resolved.warnings,
        ..Report::default()
    };
    report.add_verified(&verified, &eff.namespace, &eff.bucket);
    Ok(report)
}

/// What `apply_iam` did: the provider, the policy, each role, each association (with its plan)
/// and the warnings about associations left alone.
type IamChanges = (
    Change,
    Change,
    Vec<Change>,
    Vec<(AssociationPlan, Change)>,
    Vec<String>,
);

/// Rounds 2-4 of IAM, in two branches that wait for each other's checks before writing: the
/// provider's, and the policy's with the associations' (described beside `GetPolicy`). The
/// OIDC provider is the exception: shared, tagged and needed whatever else happens, it is
/// created as soon as it is known to be missing, so roles can trust it in round 3 (IRSA only,
/// where nothing about associations can refuse).
async fn apply_iam(ctx: &Ctx<'_>, d: &Decided, dry_run: bool) -> Result<IamChanges> {
    let (config, iam, desired) = (ctx.config, &ctx.aws.iam, &d.desired);
    let (provider_checked, provider_checked_rx) = oneshot::channel::<()>();
    let (policy_checked, policy_checked_rx) = oneshot::channel::<()>();
    let provider_branch = async {
        if desired.mechanism == Mechanism::PodIdentity {
            // Pod Identity needs no OIDC provider: leave whatever is there (teardown removes
            // ours), and create the roles once the policy is checked.
            let _ = provider_checked.send(());
            policy_checked_rx.await.map_err(|_| Error::Stopped)?;
            let roles = try_join_all(
                desired
                    .roles
                    .iter()
                    .zip(&d.steps)
                    .map(|(spec, step)| iam.ensure_role(spec, step, false, dry_run)),
            )
            .await?;
            return Ok((Change::Kept("not used by EKS Pod Identity".into()), roles));
        }
        let known = if d.providers.contains(&desired.provider.arn) {
            iam.read_provider(&desired.provider.arn).await?
        } else {
            None
        };
        core::check_provider(
            &desired.provider,
            known.as_ref(),
            config.create_oidc_provider,
        )?;
        let _ = provider_checked.send(());
        let change = iam
            .ensure_provider(&desired.provider, known.as_ref(), dry_run)
            .await?;
        policy_checked_rx.await.map_err(|_| Error::Stopped)?;
        let roles =
            try_join_all(desired.roles.iter().zip(&d.steps).map(|(spec, step)| {
                iam.ensure_role(spec, step, change == Change::Create, dry_run)
            }))
            .await?;
        Ok::<_, Error>((change, roles))
    };
    let policy_branch = async {
        let (known, associations) = tokio::join!(
            iam.read_policy(&desired.policy.arn, false),
            decide_associations(ctx, d),
        );
        let (known, associations) = (known?, associations?);
        let adopting = match &known {
            Some(state) => core::may_write(
                "policy",
                &desired.policy.arn,
                &state.tags,
                &ctx.owner,
                config.adopt_existing,
            )?,
            None => false,
        };
        let _ = policy_checked.send(());
        provider_checked_rx.await.map_err(|_| Error::Stopped)?;
        let change = iam
            .ensure_policy(&desired.policy, known.as_ref(), adopting, dry_run)
            .await?;
        Ok::<_, Error>((change, associations))
    };
    let ((provider_change, role_changes), (policy_change, (plans, warnings))) =
        match tokio::join!(provider_branch, policy_branch) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(Error::Stopped), Err(e)) | (Err(e), _) | (_, Err(e)) => return Err(e),
        };
    // Round 4: attachments, once both the roles and the policy exist; associations, once the
    // roles exist (EKS checks the role it is handed).
    let attachments = async {
        if !dry_run {
            try_join_all(desired.roles.iter().zip(&d.steps).map(|(spec, step)| {
                let (attach, detach) = step.attachments(spec);
                iam.ensure_attachments(&spec.name, attach, detach)
            }))
            .await?;
        }
        Ok::<_, Error>(())
    };
    let (attached, association_changes) = tokio::join!(
        attachments,
        try_join_all(
            plans
                .iter()
                .map(|plan| apply_association(ctx, plan, dry_run))
        ),
    );
    attached?;
    Ok((
        provider_change,
        policy_change,
        role_changes,
        plans.into_iter().zip(association_changes?).collect(),
        warnings,
    ))
}

/// One association's write. A create that finds one made concurrently (409, read back) checks
/// what it found as round 1 would have, and repairs it only when it is ours.
async fn apply_association(ctx: &Ctx<'_>, plan: &AssociationPlan, dry_run: bool) -> Result<Change> {
    let edge = associations(ctx);
    match plan {
        AssociationPlan::Leave { why, .. } => Ok(why.clone()),
        AssociationPlan::Remove { .. } if dry_run => Ok(Change::Remove),
        AssociationPlan::Remove { id, .. } => Ok(edge.delete(id).await?),
        AssociationPlan::Ensure { step, .. } if dry_run => Ok(step.change()),
        AssociationPlan::Ensure { spec, step } => match step {
            AssociationStep::Keep => Ok(Change::Unchanged),
            AssociationStep::Repair { .. } => repair_association(&edge, spec, step).await,
            AssociationStep::Create => {
                let (change, found) = edge.create(spec).await?;
                if change == Change::Create {
                    return Ok(change);
                }
                match core::association_step(ctx.cluster, spec, Some(&found), &ctx.owner)? {
                    repair @ AssociationStep::Repair { .. } => {
                        repair_association(&edge, spec, &repair).await
                    }
                    _ => Ok(Change::Unchanged),
                }
            }
        },
    }
}

/// Repoint (`UpdatePodIdentityAssociation`) and retag (`TagResource`) our association, both at
/// once.
async fn repair_association(
    edge: &eks::Associations<'_>,
    spec: &plan::AssociationSpec,
    step: &AssociationStep,
) -> Result<Change> {
    let AssociationStep::Repair {
        id,
        arn,
        role,
        tags,
    } = step
    else {
        return Ok(step.change());
    };
    let (repointed, tagged) = tokio::join!(
        async {
            if *role {
                edge.update(id, &spec.role_arn).await
            } else {
                Ok(())
            }
        },
        async {
            if tags.is_empty() {
                Ok(())
            } else {
                edge.tag(arn, id, tags).await
            }
        },
    );
    repointed?;
    tagged?;
    Ok(step.change())
}

/// `installer-policy`: the least-privilege IAM policy the job itself needs.
pub async fn installer_policy(config: &Config) -> Result<String> {
    let cluster = config.require_cluster()?;
    let names = Names::new(config, cluster);
    let account = match &config.account_id {
        Some(id) => Account::new(config.partition(), id.as_str()),
        None => sts::caller_account(&AwsClients::new(config).await.sts).await?,
    };
    let doc = plan::installer_policy(config, &names, &account, config.region.as_deref(), cluster);
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default())
}
