//! Discovery, shared by `provision`, `verify` and `teardown`: the cluster's facts, the Pod
//! Identity agent, the Epinio that is really running (and the ServiceAccounts it uses), and the
//! associations of the managed ServiceAccounts.

use futures::future::try_join_all;

use super::context::{associations, Ctx};
use crate::arn::Arn;
use crate::aws::{self, eks};
use crate::config::{Config, CredentialMode, Mechanism};
use crate::core::{self};
use crate::epinio::{self, Resolved};
use crate::plan::Facts;
use crate::state::{AddonState, AssociationState, EpinioObjects};
use crate::{Error, Result};

pub(super) fn facts_from(
    cluster_arn: &str,
    issuer_url: String,
    cluster: &str,
    mechanism: Mechanism,
) -> Result<Facts> {
    let (partition, account_id) = Arn::account_of(cluster_arn).ok_or_else(|| aws::AwsError {
        op: crate::aws_actions::DESCRIBE_CLUSTER.name,
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
pub(super) async fn read_agent(
    ctx: &Ctx<'_>,
) -> std::result::Result<Option<AddonState>, aws::AwsError> {
    if ctx.config.credential_mode == CredentialMode::Irsa {
        Ok(None)
    } else {
        eks::describe_agent(&ctx.aws.eks, ctx.cluster).await
    }
}

/// What `provision` and `verify` decide from round 1's cluster, Epinio and agent reads.
pub(super) struct Discovered {
    /// The mechanism chosen and why.
    pub(super) reason: String,
    pub(super) resolved: Resolved,
    /// The configuration with the ServiceAccounts Epinio really uses.
    pub(super) config: Config,
    pub(super) facts: Facts,
}

/// A missing cluster is named first (its add-on then reads as absent too), then the mechanism is
/// chosen, Epinio checked for it, and the cluster's facts taken.
pub(super) fn discover(
    ctx: &Ctx<'_>,
    epinio: Option<&EpinioObjects>,
    cluster: Option<eks::ClusterInfo>,
    agent: Option<&AddonState>,
) -> Result<Discovered> {
    let info = cluster.ok_or_else(|| Error::ClusterNotFound {
        cluster: ctx.cluster.to_string(),
        region: ctx.aws.region.clone(),
    })?;
    let gateway = ctx.config.gateway_mode();
    // In gateway mode only the gateway uses the role, and it reads either mechanism.
    let users = if gateway {
        Ok("the gateway, which holds the role, reads Pod Identity credentials")
    } else {
        epinio::supports_pod_identity(epinio).map(|()| epinio::EPINIO_CAN)
    };
    let (mechanism, reason) =
        core::choose_mechanism(ctx.config.credential_mode, ctx.cluster, agent, users)?;
    let resolved = if gateway {
        epinio::gateway::through_gateway(&core::configured(ctx.config, mechanism), epinio)
    } else {
        epinio::resolve(&core::configured(ctx.config, mechanism), epinio)?
    };
    Ok(Discovered {
        reason,
        config: core::effective(ctx.config, &resolved)?,
        resolved,
        facts: facts_from(&info.arn, info.issuer_url, ctx.cluster, mechanism)?,
    })
}

/// Where no Pod Identity call is needed to converge (IRSA mode, teardown), a policy from before
/// Pod Identity that denies the association reads is a warning, not a failure: the run goes on
/// without them and says what it could not check.
pub(super) fn tolerated<T: Default>(
    ctx: &Ctx<'_>,
    service_account: &str,
    tolerate_denied: bool,
    result: std::result::Result<T, aws::AwsError>,
) -> Result<(T, Option<String>)> {
    match result {
        Ok(found) => Ok((found, None)),
        Err(e) if tolerate_denied && (e.is("AccessDeniedException") || e.is("AccessDenied")) => {
            Ok((
                T::default(),
                Some(core::associations_unreadable(
                    &ctx.config.namespace,
                    service_account,
                    &e.to_string(),
                )),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The id of one ServiceAccount's association (round 1), and the warning when it could not
/// be read.
pub(super) async fn find_association(
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
pub(super) async fn describe_association(
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
pub(super) async fn read_association(
    ctx: &Ctx<'_>,
    service_account: &str,
    tolerate_denied: bool,
) -> Result<(Option<AssociationState>, Option<String>)> {
    let (id, warning) = find_association(ctx, service_account, tolerate_denied).await?;
    let (state, later) =
        describe_association(ctx, service_account, id.as_deref(), tolerate_denied).await?;
    Ok((state, warning.or(later)))
}

/// Reads again only what round 1 could not know it needed: roles and ServiceAccounts named
/// by discovery instead of the configuration (none when the two agree).
pub(super) async fn reread<K, T, F, Fut>(
    wanted: &[K],
    known: Vec<(K, T)>,
    read: F,
) -> Result<Vec<T>>
where
    K: PartialEq + Clone,
    T: Clone,
    F: Fn(K) -> Fut,
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
