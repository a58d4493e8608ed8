//! `provision`'s writes to IAM and EKS (rounds 2-4): the OIDC provider, the policy, the roles
//! and their attachments, and the Pod Identity associations.

use futures::future::try_join_all;

use super::context::{associations, Ctx};
use super::discover::describe_association;
use crate::aws::eks;
use crate::config::{Config, CredentialMode, Mechanism};
use crate::core::Pair;
use crate::core::{self, AssociationPlan, AssociationStep};
use crate::core::{RoleStep, SaStep};
use crate::epinio::Resolved;
use crate::plan::{self};
use crate::plan::{Desired, Facts, PolicySpec};
use crate::state::{AssociationState, PolicyState, Workload};
use crate::vocab::Change;
use crate::{Error, Result};

/// What round 1 found, and what `core` decided from it: the input of the writes.
pub(super) struct Decided {
    /// The configuration with the ServiceAccounts Epinio really uses (discovery's).
    pub(super) config: Config,
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
    pub(super) other: Vec<Pair>,
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

/// What `apply_iam` did (or, for `plan`, would do).
pub(super) struct IamChanges {
    pub(super) provider: Change,
    pub(super) policy: Change,
    /// One per desired role, in order.
    pub(super) roles: Vec<Change>,
    /// Each association's subject (`namespace/serviceaccount`) and change.
    pub(super) associations: Vec<(String, Change)>,
    /// About associations left alone.
    pub(super) warnings: Vec<String>,
}

/// Rounds 2-4 of IAM. Round 2 reads and checks the policy and the associations (described
/// beside `GetPolicy`) and, beside them, the OIDC provider; round 3 writes the roles and the
/// policy, once every check has passed; round 4 the attachments and the associations. The
/// provider is the one exception: shared, tagged and needed whatever else happens, it is
/// created in round 2 as soon as it is known to be missing, so that roles can trust it in round
/// 3 (IRSA only, where nothing about associations can refuse).
pub(super) async fn apply_iam(ctx: &Ctx<'_>, d: &Decided, dry_run: bool) -> Result<IamChanges> {
    let (iam, desired) = (&ctx.aws.iam, &d.desired);
    let (provider, checked) = tokio::join!(
        ensure_provider(ctx, d, dry_run),
        read_and_check_policy(ctx, d)
    );
    let ((provider, fresh_provider), checked) = (provider?, checked?);
    let (roles, policy) = tokio::join!(
        ensure_roles(ctx, d, fresh_provider, dry_run),
        ensure_policy(ctx, &desired.policy, &checked, dry_run),
    );
    let (roles, policy) = (roles?, policy?);
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
            checked
                .associations
                .iter()
                .map(|plan| apply_association(ctx, plan, dry_run))
        ),
    );
    attached?;
    Ok(IamChanges {
        provider,
        policy,
        roles,
        associations: checked
            .associations
            .iter()
            .map(AssociationPlan::subject)
            .zip(association_changes?)
            .collect(),
        warnings: checked.warnings,
    })
}

/// What round 2 read and `core` decided about the policy and the associations.
struct PolicyChecked {
    known: Option<PolicyState>,
    /// Untagged and adoption allowed.
    adopting: bool,
    associations: Vec<AssociationPlan>,
    warnings: Vec<String>,
}

/// Round 2: the policy (whose ownership `core` checks) and the associations, read together.
async fn read_and_check_policy(ctx: &Ctx<'_>, d: &Decided) -> Result<PolicyChecked> {
    let desired = &d.desired;
    let (known, associations) = tokio::join!(
        ctx.aws.iam.read_policy(&desired.policy.arn, false),
        decide_associations(ctx, d),
    );
    let (known, (associations, warnings)) = (known?, associations?);
    let adopting = match &known {
        Some(state) => core::may_write(
            "policy",
            &desired.policy.arn,
            &state.tags,
            &ctx.owner,
            ctx.config.adopt_existing,
        )?,
        None => false,
    };
    Ok(PolicyChecked {
        known,
        adopting,
        associations,
        warnings,
    })
}

/// Round 3 (or 4, when the tags do not vouch for the document and it is read first): the
/// policy's step, decided by `core` and applied.
async fn ensure_policy(
    ctx: &Ctx<'_>,
    spec: &PolicySpec,
    checked: &PolicyChecked,
    dry_run: bool,
) -> Result<Change> {
    let (iam, known) = (&ctx.aws.iam, checked.known.as_ref());
    let differs = match known {
        Some(state) => iam.policy_differs(spec, state).await?,
        None => false,
    };
    let step = core::policy_step(spec, known, differs, checked.adopting);
    Ok(if dry_run {
        step.change()
    } else {
        iam.apply_policy(spec, known, &step).await?
    })
}

/// Round 2: check and ensure the OIDC provider (IRSA). Also says whether it is new to IAM: then
/// a role trusting it may be refused for a few seconds.
async fn ensure_provider(ctx: &Ctx<'_>, d: &Decided, dry_run: bool) -> Result<(Change, bool)> {
    let (iam, desired) = (&ctx.aws.iam, &d.desired);
    let listed = d.providers.contains(&desired.provider.arn);
    if desired.mechanism == Mechanism::PodIdentity {
        // Pod Identity needs no OIDC provider: leave whatever is there (teardown removes
        // ours). Only a provider that is there is kept; `pod-identity` mode does not even
        // list them.
        let change = if listed {
            Change::Kept("not used by EKS Pod Identity".into())
        } else {
            Change::Absent
        };
        return Ok((change, false));
    }
    let known = if listed {
        iam.read_provider(&desired.provider.arn).await?
    } else {
        None
    };
    core::check_provider(
        &desired.provider,
        known.as_ref(),
        ctx.config.create_oidc_provider,
    )?;
    // Missing when this run read it: new to IAM whoever made it (this run, this run's create
    // whose answer was lost, or a concurrent run).
    let appeared = known.is_none();
    let change = match known {
        // Shared by every IRSA user of the cluster: an existing one is never modified.
        Some(_) => Change::Unchanged,
        None if dry_run => Change::Create,
        None => iam.create_provider(&desired.provider).await?,
    };
    let fresh = change == Change::Create || appeared;
    Ok((change, fresh))
}

/// Round 3: the roles; one trusting a provider that appeared in this run is retried while IAM
/// does not know the provider yet.
async fn ensure_roles(
    ctx: &Ctx<'_>,
    d: &Decided,
    fresh_provider: bool,
    dry_run: bool,
) -> Result<Vec<Change>> {
    let iam = &ctx.aws.iam;
    try_join_all(
        d.desired
            .roles
            .iter()
            .zip(&d.steps)
            .map(|(spec, step)| async move {
                if dry_run {
                    Ok(step.change())
                } else {
                    iam.ensure_role(spec, step, fresh_provider).await
                }
            }),
    )
    .await
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
