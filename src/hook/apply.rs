//! `provision`'s writes to IAM and EKS (rounds 2-4): the OIDC provider, the policy, the roles
//! and their attachments, and the Pod Identity associations.

use futures::future::try_join_all;
use tokio::sync::oneshot;

use super::context::{associations, Ctx};
use super::discover::describe_association;
use crate::aws::eks;
use crate::config::{CredentialMode, Mechanism};
use crate::core::{self, AssociationPlan, AssociationStep};
use crate::core::{RoleStep, SaStep};
use crate::epinio::Resolved;
use crate::plan::{self};
use crate::plan::{Desired, Facts};
use crate::state::{AssociationState, Workload};
use crate::vocab::Change;
use crate::{Error, Result};

/// What round 1 found, and what `core` decided from it: the input of the writes.
pub(super) struct Decided {
    pub(super) desired: Desired,
    pub(super) facts: Facts,
    pub(super) providers: Vec<String>,
    pub(super) steps: Vec<RoleStep>,
    pub(super) sa_steps: Vec<SaStep>,
    pub(super) workloads: Vec<Workload>,
    pub(super) epinio: Resolved,
    /// The mechanism chosen and why.
    pub(super) mode: String,
    /// Each managed ServiceAccount with the id of its association, as round 1 listed it
    /// (described in round 2, beside the policy).
    pub(super) found: Vec<(String, Option<String>)>,
    pub(super) warnings: Vec<String>,
    /// The other arrangement's ServiceAccounts and roles (gateway mode or not), to remove.
    pub(super) other: Vec<(String, String)>,
}

/// Round 2 for associations: describe what round 1 listed, then decide. Under Pod Identity a
/// refusal here comes before any write (no OIDC provider is made in that mode); under IRSA
/// nothing here refuses (ours are removed, others left with a warning).
pub(super) async fn decide_associations(
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

/// What `apply_iam` did: the provider, the policy, each role, each association (with its plan)
/// and the warnings about associations left alone.
pub(super) type IamChanges = (
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
pub(super) async fn apply_iam(ctx: &Ctx<'_>, d: &Decided, dry_run: bool) -> Result<IamChanges> {
    let (config, iam, desired) = (ctx.config, &ctx.aws.iam, &d.desired);
    let (provider_checked, provider_checked_rx) = oneshot::channel::<()>();
    let (policy_checked, policy_checked_rx) = oneshot::channel::<()>();
    let provider_branch = provider_and_roles(ctx, d, dry_run, provider_checked, policy_checked_rx);
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

/// The provider branch of `apply_iam`: check and ensure the OIDC provider (IRSA), say so, then
/// ensure the roles once the other branch has checked the policy.
async fn provider_and_roles(
    ctx: &Ctx<'_>,
    d: &Decided,
    dry_run: bool,
    provider_checked: oneshot::Sender<()>,
    policy_checked_rx: oneshot::Receiver<()>,
) -> Result<(Change, Vec<Change>)> {
    let (config, iam, desired) = (ctx.config, &ctx.aws.iam, &d.desired);
    // Whether the provider was missing when this run read it: then it is new to IAM whoever
    // made it (this run, this run's create whose answer was lost, or a concurrent run), and
    // a role trusting it may be refused for a few seconds.
    let mut appeared = false;
    let provider = if desired.mechanism == Mechanism::PodIdentity {
        // Pod Identity needs no OIDC provider: leave whatever is there (teardown removes
        // ours). Only a provider that is there is kept; `pod-identity` mode does not even
        // list them.
        let _ = provider_checked.send(());
        if d.providers.contains(&desired.provider.arn) {
            Change::Kept("not used by EKS Pod Identity".into())
        } else {
            Change::Absent
        }
    } else {
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
        appeared = known.is_none();
        iam.ensure_provider(&desired.provider, known.as_ref(), dry_run)
            .await?
    };
    // The roles, once the other branch has checked the policy; a role trusting a provider
    // that appeared in this run is retried while IAM does not know the provider yet.
    policy_checked_rx.await.map_err(|_| Error::Stopped)?;
    let fresh_provider = provider == Change::Create || appeared;
    let roles = try_join_all(
        desired
            .roles
            .iter()
            .zip(&d.steps)
            .map(|(spec, step)| iam.ensure_role(spec, step, fresh_provider, dry_run)),
    )
    .await?;
    Ok((provider, roles))
}

/// One association's write. A create that finds one made concurrently (409, read back) checks
/// what it found as round 1 would have, and repairs it only when it is ours.
pub(super) async fn apply_association(
    ctx: &Ctx<'_>,
    plan: &AssociationPlan,
    dry_run: bool,
) -> Result<Change> {
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
pub(super) async fn repair_association(
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
