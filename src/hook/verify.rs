//! `verify`: prove the chain ServiceAccount token → STS → S3 for every ServiceAccount the job
//! manages. Two things run side by side, so the extra dependent AWS round trips are two when
//! the role is assumable at once:
//! - the checklist (`checklist`) on what is there, read every time: ServiceAccount, role,
//!   policy and its default document, OIDC provider;
//! - the live chain: a TokenRequest for the ServiceAccount (audience `sts.amazonaws.com`),
//!   `AssumeRoleWithWebIdentity` at the regional STS endpoint, then S3 `HeadBucket` and
//!   `ListObjectsV2` (one key at most) with those credentials; optionally a write probe.
//!
//! While IAM propagates a fresh role or trust, STS and S3 answer AccessDenied for seconds: the
//! live chain polls with the shared backoff until `EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS`, with no
//! fixed sleep. Writes nothing but the token request (and the probe's own key, when asked).

use std::time::Instant;

use aws_sdk_s3::config::Credentials;
use futures::future::try_join_all;

use super::context::{associations, skipped, Clients, Ctx};
use super::discover::{discover, read_agent, Discovered};
use crate::aws::eks;
use crate::aws::s3::{probe_key, Readable};
use crate::aws::AwsError;
use crate::checklist::{self, Broken, Links};
use crate::config::Config;
use crate::config::Mechanism;
use crate::plan;
use crate::plan::{Desired, Facts, STS_AUDIENCE};
use crate::report::{Progress, Report};
use crate::state::{ProviderState, RoleState, SaState};
use crate::vocab::{Live, Proof, Verified};
use crate::{Error, Result};

const TOKEN_SECONDS: i64 = 600;
const SESSION: &str = "epinio-irsa-verify";

/// `verify`: discovery as `provision` does it, then the checklist and the live chain for every
/// managed ServiceAccount. Writes nothing but the token requests.
pub async fn verify(config: &Config) -> Result<Report> {
    if let Some(report) = skipped("verify", config.mode) {
        return Ok(report);
    }
    let cluster = config.require_cluster()?;
    let clients = Clients::new(config).await?;
    let ctx = Ctx::new(&clients, config, cluster);
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
    let ctx = ctx.with(&eff);
    let desired = plan::desired(&eff, &ctx.names, &facts)?;
    let verified = prove(&ctx, &desired, &facts).await?;
    let mut report = Report {
        command: "verify",
        mode: Some(reason),
        epinio: Some(resolved.epinio),
        warnings: resolved.warnings,
        ..Report::default()
    };
    report.add_verified(&verified, &eff.namespace, &eff.bucket);
    if eff.gateway_mode() {
        if let Some(through) = super::verify_gateway::prove_gateway(&ctx).await? {
            report.add_gateway(&through, &eff.bucket);
        }
    }
    Ok(report)
}

/// Verify every managed ServiceAccount of `desired`. Fails with every broken link and its fix,
/// or with the live step that never passed within the timeout.
pub(super) async fn prove(
    ctx: &Ctx<'_>,
    desired: &Desired,
    facts: &Facts,
) -> Result<Vec<Verified>> {
    if desired.mechanism == Mechanism::PodIdentity {
        return verify_pod_identity(ctx, desired, facts).await;
    }
    let (broken, live) = tokio::join!(checklist_all(ctx, desired, facts), live_all(ctx, desired));
    let broken = broken?;
    if !broken.is_empty() {
        return Err(Error::VerifyBroken(broken));
    }
    live
}

/// What both checklists read, in one round: each managed ServiceAccount's role and
/// ServiceAccount, and the policy's default document.
struct Found {
    roles: Vec<Option<RoleState>>,
    sas: Vec<Option<SaState>>,
    policy: Option<String>,
}

async fn read_found(ctx: &Ctx<'_>, desired: &Desired) -> Result<Found> {
    let iam = &ctx.aws.iam;
    let (roles, sas, policy) = tokio::join!(
        try_join_all(desired.roles.iter().map(|r| iam.read_role(&r.name, false))),
        try_join_all(
            desired
                .service_accounts
                .iter()
                .map(|s| ctx.kube.read_service_account(&s.name))
        ),
        iam.read_policy_document(&desired.policy.arn, &desired.policy),
    );
    Ok(Found {
        roles: roles?,
        sas: sas?,
        policy: policy?,
    })
}

/// The links of the `i`-th managed ServiceAccount (roles and ServiceAccounts pair up by index).
fn links<'a>(
    ctx: &'a Ctx<'_>,
    desired: &'a Desired,
    facts: &'a Facts,
    found: &'a Found,
    i: usize,
    provider: Option<&'a ProviderState>,
) -> Links<'a> {
    let (role, spec) = (&desired.roles[i], &desired.service_accounts[i]);
    Links {
        namespace: &ctx.config.namespace,
        service_account: &spec.name,
        sa: found.sas[i].as_ref(),
        role_name: &role.name,
        role_arn: &role.arn,
        role: found.roles[i].as_ref(),
        provider_arn: &desired.provider.arn,
        issuer: facts.issuer_host_path(),
        provider,
        policy_arn: &desired.policy.arn,
        policy_document: found.policy.as_deref(),
        partition: facts.partition,
        bucket: &ctx.config.bucket,
    }
}

async fn checklist_all(ctx: &Ctx<'_>, desired: &Desired, facts: &Facts) -> Result<Vec<Broken>> {
    let (found, provider) = tokio::join!(
        read_found(ctx, desired),
        ctx.aws.iam.read_provider(&desired.provider.arn),
    );
    let (found, provider) = (found?, provider?);
    Ok((0..desired.roles.len())
        .flat_map(|i| checklist::check(&links(ctx, desired, facts, &found, i, provider.as_ref())))
        .collect())
}

/// EKS Pod Identity: what the hook can check, in one round of reads: the agent add-on ACTIVE,
/// each ServiceAccount's association pointing at its role, no role annotation left, the role's
/// trust, its policy and the policy's document. What it cannot: the agent's exchange of the
/// pod's token for credentials (`eks-auth:AssumeRoleForPodIdentity` takes a token only the
/// agent's projected volume holds), so the chain to S3 is not proven live.
async fn verify_pod_identity(
    ctx: &Ctx<'_>,
    desired: &Desired,
    facts: &Facts,
) -> Result<Vec<Verified>> {
    let edge = associations(ctx);
    let ns = ctx.config.namespace.as_str();
    let (found, agent, assocs) = tokio::join!(
        read_found(ctx, desired),
        crate::aws::eks::describe_agent(&ctx.aws.eks, ctx.cluster),
        try_join_all(
            desired
                .service_accounts
                .iter()
                .map(|s| edge.read(ns, &s.name))
        ),
    );
    let (found, agent, assocs) = (found?, agent?, assocs?);
    let broken: Vec<Broken> = (0..desired.roles.len())
        .flat_map(|i| {
            checklist::check_pod_identity(&checklist::PodLinks {
                links: links(ctx, desired, facts, &found, i, None),
                cluster: ctx.cluster,
                cluster_arn: &facts.cluster_arn,
                agent: agent.as_ref().map(|a| a.status.as_str()),
                association: assocs[i].as_ref(),
            })
        })
        .collect();
    if !broken.is_empty() {
        return Err(Error::VerifyBroken(broken));
    }
    Ok(desired
        .service_accounts
        .iter()
        .zip(assocs)
        .map(|(spec, assoc)| Verified {
            service_account: spec.name.clone(),
            role_arn: spec.role_arn.clone(),
            // The checklist above has just found it.
            proof: Proof::Links {
                association: assoc.map(|a| a.id).unwrap_or_default(),
            },
        })
        .collect())
}

async fn live_all(ctx: &Ctx<'_>, desired: &Desired) -> Result<Vec<Verified>> {
    let until = Instant::now() + ctx.config.verify_timeout;
    try_join_all(desired.service_accounts.iter().map(|spec| async move {
        let live = live_one(ctx, &spec.name, &spec.role_arn, until).await?;
        Ok::<_, Error>(Verified {
            service_account: spec.name.clone(),
            role_arn: spec.role_arn.clone(),
            proof: Proof::Live(live),
        })
    }))
    .await
}

/// AWS answers these while a fresh role, trust or policy propagates.
fn propagating(e: &AwsError) -> bool {
    e.code.as_deref().is_some_and(|c| {
        matches!(
            c,
            "AccessDenied" | "InvalidIdentityToken" | "IDPCommunicationError" | "Forbidden" | "403"
        )
    })
}

/// Whether `step` is worth another try after `e` (IAM propagating, time left), saying so once
/// per step and error code.
fn poll_again(progress: &Progress, who: &str, step: &str, e: &AwsError, until: Instant) -> bool {
    let again = propagating(e) && Instant::now() < until;
    if again {
        let key = format!("{step} {}", e.code.as_deref().unwrap_or_default());
        progress.say(&key, || {
            format!(
                "ServiceAccount {who}: {step} not effective yet while IAM propagates ({e}); polling"
            )
        });
    }
    again
}

async fn live_one(ctx: &Ctx<'_>, sa: &str, role_arn: &str, until: Instant) -> Result<Live> {
    let token = ctx
        .kube
        .request_token(sa, STS_AUDIENCE, TOKEN_SECONDS)
        .await?;
    let mut attempts = 0;
    let progress = Progress::new(ctx.config.log_format);
    let who = format!("{}/{sa}", ctx.config.namespace);
    let poll = |step: &'static str| {
        let progress = &progress;
        let who = &who;
        move |e: &AwsError| poll_again(progress, who, step, e, until)
    };
    let creds = crate::retry::poll(poll("AssumeRoleWithWebIdentity"), || {
        attempts += 1;
        crate::aws::sts::assume_with_web_identity(&ctx.aws.sts_anonymous, role_arn, &token, SESSION)
    })
    .await
    .map_err(|e| live_failure(sa, role_arn, "sts:AssumeRoleWithWebIdentity", e))?;
    let credentials = Credentials::new(
        creds.access_key_id,
        creds.secret_access_key,
        Some(creds.session_token),
        None,
        "epinio-irsa-verify",
    );
    let mut s3 = ctx.aws.s3_with(credentials.clone(), None);
    let bucket = ctx.config.bucket.as_str();
    let mut readable = None;
    // At most one redirect: a bucket in another region than the cluster's is asked there.
    for _ in 0..2 {
        let found = crate::retry::poll(poll("HeadBucket/ListObjectsV2"), || {
            attempts += 1;
            crate::aws::s3::bucket_readable(&s3, bucket)
        })
        .await
        .map_err(|e| live_failure(sa, role_arn, "s3:HeadBucket/ListObjectsV2", e))?;
        match found {
            Readable::InRegion(region) => s3 = ctx.aws.s3_with(credentials.clone(), Some(region)),
            other => {
                readable = Some(other);
                break;
            }
        }
    }
    let exists = match readable {
        Some(Readable::Yes) => true,
        Some(Readable::Missing) => false,
        _ => {
            return Err(live_failure(
                sa,
                role_arn,
                "s3:HeadBucket/ListObjectsV2",
                AwsError::malformed(
                    crate::aws_actions::HEAD_BUCKET.name,
                    bucket,
                    "stable bucket region (redirected twice)",
                ),
            ))
        }
    };
    let probe = if exists && ctx.config.verify_write {
        let key = probe_key(sa);
        crate::retry::poll(poll("the write probe"), || {
            crate::aws::s3::write_probe(&s3, bucket, &key)
        })
        .await
        .map_err(|e| live_failure(sa, role_arn, "s3:PutObject/GetObject/DeleteObject", e))?;
        Some(key)
    } else {
        None
    };
    Ok(Live {
        bucket_exists: exists,
        attempts,
        probe,
    })
}

fn live_failure(sa: &str, role_arn: &str, step: &'static str, e: AwsError) -> Error {
    Error::VerifyLive {
        service_account: sa.to_string(),
        role_arn: role_arn.to_string(),
        step,
        message: e.to_string(),
    }
}
