//! IAM: read the actual state of the OIDC provider, the S3 policy and the roles; apply only
//! the differences. One `ensure_*` and one `remove_*` per resource, each returning a [`Change`].
//! Every write is preceded by an ownership check: nothing without this installation's owner
//! tag is modified or deleted, unless adoption of untagged objects was asked for.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::Tag;
use futures::future::try_join_all;
use tokio::sync::oneshot;

use super::{call, retry_not_yet_visible, AwsError};
use crate::config::OWNER_TAG;
use crate::plan::{
    decode_document, same_document, PolicySpec, ProviderSpec, RoleSpec, DOCUMENT_TAG, STS_AUDIENCE,
    VERSION_TAG,
};
use crate::{Change, Error};

/// IAM keeps at most this many versions of a managed policy.
const MAX_POLICY_VERSIONS: usize = 5;
/// Versions the job keeps after publishing one, leaving a free slot for the next publish.
const KEPT_VERSIONS: u32 = 4;

/// IAM numbers versions `v1`, `v2`, ...: the version that falls out of a window of `window`
/// ending at `current`, if any.
pub fn older_version(current: &str, window: u32) -> Option<String> {
    let n: u32 = current.strip_prefix('v')?.parse().ok()?;
    (n > window).then(|| format!("v{}", n - window))
}

/// Whose an IAM object is, judged by its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// No owner tag: made by hand or by another tool.
    Untagged,
    /// Owned by another cluster, namespace or release.
    Foreign(String),
}

pub fn ownership(tags: &BTreeMap<String, String>, owner: &str) -> Ownership {
    match tags.get(OWNER_TAG) {
        Some(o) if o == owner => Ownership::Ours,
        Some(o) => Ownership::Foreign(o.clone()),
        None => Ownership::Untagged,
    }
}

/// May this run write to an object with these tags? `Ok(true)` when it must adopt it first.
pub fn check_owner(
    kind: &'static str,
    name: &str,
    tags: &BTreeMap<String, String>,
    owner: &str,
    adopt: bool,
) -> Result<bool, Error> {
    match ownership(tags, owner) {
        Ownership::Ours => Ok(false),
        Ownership::Untagged if adopt => Ok(true),
        Ownership::Untagged => Err(Error::NotOwned {
            kind,
            name: name.to_string(),
            owner: None,
        }),
        Ownership::Foreign(other) => Err(Error::NotOwned {
            kind,
            name: name.to_string(),
            owner: Some(other),
        }),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn to_tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// Desired tags that are missing or different on the object.
fn missing_tags(
    desired: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[derive(Debug, Clone)]
pub struct RoleState {
    pub arn: String,
    pub trust: String,
    pub boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub attached: Vec<String>,
    pub inline: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PolicyState {
    pub default_version: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct ProviderState {
    pub client_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// What differs between a role and its spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleDiff {
    pub adopt: bool,
    pub trust: bool,
    pub boundary: Option<Option<String>>,
    pub tags: BTreeMap<String, String>,
    pub attach: Vec<String>,
    pub detach: Vec<String>,
}

impl RoleDiff {
    pub fn between(spec: &RoleSpec, state: &RoleState, adopt: bool) -> RoleDiff {
        let attached: BTreeSet<&String> = state.attached.iter().collect();
        let wanted: BTreeSet<&String> = spec.attachments.iter().collect();
        RoleDiff {
            adopt,
            trust: !same_document(&spec.trust, &state.trust),
            boundary: (spec.boundary != state.boundary).then(|| spec.boundary.clone()),
            tags: missing_tags(&spec.tags, &state.tags),
            attach: spec
                .attachments
                .iter()
                .filter(|a| !attached.contains(a))
                .cloned()
                .collect(),
            detach: state
                .attached
                .iter()
                .filter(|a| !wanted.contains(a))
                .cloned()
                .collect(),
        }
    }

    /// What changes, for the summary and the plan.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.adopt {
            out.push("adopt (add owner tags)".to_string());
        }
        if self.trust {
            out.push("trust policy".to_string());
        }
        match &self.boundary {
            Some(Some(b)) => out.push(format!("permissions boundary -> {b}")),
            Some(None) => out.push("remove permissions boundary".to_string()),
            None => {}
        }
        if !self.tags.is_empty() && !self.adopt {
            out.push(format!(
                "tags ({})",
                self.tags.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        out.extend(self.attach.iter().map(|a| format!("attach {a}")));
        out.extend(self.detach.iter().map(|a| format!("detach {a}")));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.describe().is_empty()
    }
}

/// The IAM client with the bound for eventual-consistency retries.
#[derive(Clone)]
pub struct Iam {
    pub client: aws_sdk_iam::Client,
    pub attempts: u32,
}

impl Iam {
    // ----- reads -------------------------------------------------------------------------

    /// The role, its attached managed policies and (for teardown) its inline policies, read
    /// concurrently. `None` when the role does not exist.
    pub async fn read_role(
        &self,
        name: &str,
        with_inline: bool,
    ) -> Result<Option<RoleState>, AwsError> {
        let c = &self.client;
        let get = call("iam:GetRole", name, c.get_role().role_name(name).send());
        let attached = call(
            "iam:ListAttachedRolePolicies",
            name,
            c.list_attached_role_policies()
                .role_name(name)
                .max_items(1000)
                .send(),
        );
        let inline = async {
            if with_inline {
                call(
                    "iam:ListRolePolicies",
                    name,
                    c.list_role_policies()
                        .role_name(name)
                        .max_items(1000)
                        .send(),
                )
                .await
                .map(|o| o.policy_names().to_vec())
            } else {
                Ok(Vec::new())
            }
        };
        let (get, attached, inline) = tokio::join!(get, attached, inline);
        let role = match get {
            Ok(out) => out,
            Err(e) if e.not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(role) = role.role() else {
            return Ok(None);
        };
        let attached = match attached {
            Ok(out) => out
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect(),
            // Deleted between the two reads: treat as absent.
            Err(e) if e.not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let inline = match inline {
            Ok(v) => v,
            Err(e) if e.not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(RoleState {
            arn: role.arn().to_string(),
            trust: role
                .assume_role_policy_document()
                .map(decode_document)
                .unwrap_or_default(),
            boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            tags: tag_map(role.tags()),
            attached,
            inline,
        }))
    }

    pub async fn read_policy(&self, arn: &str) -> Result<Option<PolicyState>, AwsError> {
        match call(
            "iam:GetPolicy",
            arn,
            self.client.get_policy().policy_arn(arn).send(),
        )
        .await
        {
            Ok(out) => Ok(out.policy().map(|p| PolicyState {
                default_version: p.default_version_id().unwrap_or("v1").to_string(),
                tags: tag_map(p.tags()),
            })),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ARNs of all OIDC providers of the account (one call, no arguments: it can run before
    /// the cluster's issuer is known).
    pub async fn list_providers(&self) -> Result<Vec<String>, AwsError> {
        let out = call(
            "iam:ListOpenIDConnectProviders",
            "account",
            self.client.list_open_id_connect_providers().send(),
        )
        .await?;
        Ok(out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn().map(str::to_string))
            .collect())
    }

    pub async fn read_provider(&self, arn: &str) -> Result<Option<ProviderState>, AwsError> {
        match call(
            "iam:GetOpenIDConnectProvider",
            arn,
            self.client
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send(),
        )
        .await
        {
            Ok(out) => Ok(Some(ProviderState {
                client_ids: out.client_id_list().to_vec(),
                tags: tag_map(out.tags()),
            })),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn default_document(&self, arn: &str, version: &str) -> Result<String, AwsError> {
        let out = call(
            "iam:GetPolicyVersion",
            arn,
            self.client
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send(),
        )
        .await?;
        Ok(out
            .policy_version()
            .and_then(|v| v.document())
            .map(decode_document)
            .unwrap_or_default())
    }

    // ----- OIDC provider -----------------------------------------------------------------

    /// `known` is what `read_provider` found (`None`: absent). The provider is shared by every
    /// IRSA user of the cluster: an existing one is never modified.
    pub async fn ensure_provider(
        &self,
        spec: &ProviderSpec,
        known: Option<&ProviderState>,
        dry_run: bool,
    ) -> Result<Change, Error> {
        if known.is_some() {
            return Ok(Change::Unchanged);
        }
        if dry_run {
            return Ok(Change::Create);
        }
        let result = call(
            "iam:CreateOpenIDConnectProvider",
            &spec.url,
            self.client
                .create_open_id_connect_provider()
                .url(&spec.url)
                .client_id_list(STS_AUDIENCE)
                .set_tags(Some(to_tags(&spec.tags)))
                .send(),
        )
        .await;
        match result {
            Ok(_) => Ok(Change::Create),
            // Made meanwhile by a concurrent run or another tool: shared, so that is fine.
            Err(e) if e.is("EntityAlreadyExists") => Ok(Change::Unchanged),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_provider(&self, arn: &str, owner: &str) -> Result<Change, Error> {
        let Some(state) = self.read_provider(arn).await? else {
            return Ok(Change::Absent);
        };
        if ownership(&state.tags, owner) != Ownership::Ours {
            return Ok(Change::Kept("not created by this installation".into()));
        }
        match call(
            "iam:DeleteOpenIDConnectProvider",
            arn,
            self.client
                .delete_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send(),
        )
        .await
        {
            Ok(_) => Ok(Change::Remove),
            Err(e) if e.not_found() => Ok(Change::Absent),
            Err(e) => Err(e.into()),
        }
    }

    // ----- S3 policy ---------------------------------------------------------------------

    /// Tags to write on the policy: ownership, user tags and the bookkeeping of which version
    /// holds which document.
    fn policy_tags(spec: &PolicySpec, version: &str) -> BTreeMap<String, String> {
        let mut tags = spec.tags.clone();
        tags.insert(DOCUMENT_TAG.into(), spec.document_sha256.clone());
        tags.insert(VERSION_TAG.into(), version.into());
        tags
    }

    pub async fn ensure_policy(
        &self,
        spec: &PolicySpec,
        known: Option<&PolicyState>,
        owner: &str,
        adopt: bool,
        dry_run: bool,
    ) -> Result<Change, Error> {
        let Some(state) = known else {
            if dry_run {
                return Ok(Change::Create);
            }
            let result = call(
                "iam:CreatePolicy",
                &spec.name,
                self.client
                    .create_policy()
                    .policy_name(&spec.name)
                    .path(&spec.path)
                    .description("S3 access to Epinio's bucket (managed by epinio-irsa)")
                    .policy_document(&spec.document)
                    .set_tags(Some(to_tags(&Self::policy_tags(spec, "v1"))))
                    .send(),
            )
            .await;
            return match result {
                Ok(_) => Ok(Change::Create),
                Err(e) if e.is("EntityAlreadyExists") => {
                    // A concurrent run made it: converge from what is there now. If IAM does
                    // not show it yet (eventual consistency), do not create again, which
                    // would recurse for as long as reads stay stale: report the race, which
                    // `run::provision` absorbs once by converging again.
                    match self.read_policy(&spec.arn).await? {
                        Some(state) => {
                            Box::pin(self.ensure_policy(spec, Some(&state), owner, adopt, dry_run))
                                .await
                        }
                        None => Err(Error::Raced {
                            what: format!("policy {}", spec.name),
                        }),
                    }
                }
                Err(e) => Err(e.into()),
            };
        };
        let adopting = check_owner("policy", &spec.arn, &state.tags, owner, adopt)?;
        // The tags vouch for the default version's document when they name that version:
        // versions are immutable, so then no read is needed either way.
        let vouched = state.tags.get(VERSION_TAG) == Some(&state.default_version);
        let differs = match state.tags.get(DOCUMENT_TAG) {
            Some(sha) if vouched => sha != &spec.document_sha256,
            _ => {
                let actual = self
                    .default_document(&spec.arn, &state.default_version)
                    .await?;
                !same_document(&actual, &spec.document)
            }
        };
        let mut changes = Vec::new();
        let mut version = state.default_version.clone();
        if differs {
            changes.push("document".to_string());
            if !dry_run {
                version = self.publish_version(spec).await?;
            }
        }
        let tags = missing_tags(&Self::policy_tags(spec, &version), &state.tags);
        if adopting {
            changes.insert(0, "adopt (add owner tags)".into());
        } else if !tags.is_empty() && changes.is_empty() {
            changes.push("tags".into());
        }
        let tag = async {
            if !tags.is_empty() && !dry_run {
                retry_not_yet_visible(self.attempts, || {
                    call(
                        "iam:TagPolicy",
                        &spec.arn,
                        self.client
                            .tag_policy()
                            .policy_arn(&spec.arn)
                            .set_tags(Some(to_tags(&tags)))
                            .send(),
                    )
                })
                .await?;
            }
            Ok::<_, AwsError>(())
        };
        // Keep a window of the newest versions so the next publish fits without listing.
        let prune = async {
            match older_version(&version, KEPT_VERSIONS) {
                Some(old) if differs && !dry_run => self.delete_version(&spec.arn, &old).await,
                _ => Ok(()),
            }
        };
        tokio::try_join!(tag, prune)?;
        Ok(if changes.is_empty() {
            Change::Unchanged
        } else {
            Change::Update(changes)
        })
    }

    /// Publish the spec's document as the new default version, first deleting the oldest
    /// non-default versions so IAM's limit of five is never hit. Returns the new version id.
    async fn publish_version(&self, spec: &PolicySpec) -> Result<String, Error> {
        let arn = &spec.arn;
        // Usually there is room (the job keeps at most KEPT_VERSIONS). When someone else filled
        // the slots, list and delete the oldest non-default versions, then try again; bounded,
        // as a concurrent run may fill the slot we freed.
        for _ in 0..3 {
            match call(
                "iam:CreatePolicyVersion",
                arn,
                self.client
                    .create_policy_version()
                    .policy_arn(arn)
                    .policy_document(&spec.document)
                    .set_as_default(true)
                    .send(),
            )
            .await
            {
                Ok(out) => {
                    return Ok(out
                        .policy_version()
                        .and_then(|v| v.version_id())
                        .unwrap_or_default()
                        .to_string())
                }
                Err(e) if e.is("LimitExceeded") => {
                    let old = self.list_versions(arn).await?;
                    // `old` excludes the default version: keep at most MAX - 2 of them, so
                    // the new version fits.
                    let excess = (old.len() + 2).saturating_sub(MAX_POLICY_VERSIONS);
                    try_join_all(
                        old.iter()
                            .take(excess)
                            .map(|id| self.delete_version(arn, id)),
                    )
                    .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::PolicyVersions { arn: arn.clone() })
    }

    /// Non-default version ids of a policy, oldest first.
    pub async fn list_versions(&self, arn: &str) -> Result<Vec<String>, AwsError> {
        let out = call(
            "iam:ListPolicyVersions",
            arn,
            self.client.list_policy_versions().policy_arn(arn).send(),
        )
        .await?;
        let mut old: Vec<_> = out
            .versions()
            .iter()
            .filter(|v| !v.is_default_version())
            .filter_map(|v| Some((v.create_date().copied(), v.version_id()?.to_string())))
            .collect();
        old.sort();
        Ok(old.into_iter().map(|(_, id)| id).collect())
    }

    async fn delete_version(&self, arn: &str, id: &str) -> Result<(), AwsError> {
        match call(
            "iam:DeletePolicyVersion",
            arn,
            self.client
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(id)
                .send(),
        )
        .await
        {
            Err(e) if !e.not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Delete the policy if it is ours: spare versions at once, the policy itself once
    /// `detached` says the roles let go of it.
    pub async fn remove_policy(
        &self,
        arn: &str,
        known: Option<&PolicyState>,
        versions: &[String],
        owner: &str,
        detached: oneshot::Receiver<()>,
    ) -> Result<Change, Error> {
        let Some(state) = known else {
            return Ok(Change::Absent);
        };
        if ownership(&state.tags, owner) != Ownership::Ours {
            return Ok(Change::Kept("not owned by this installation".into()));
        }
        try_join_all(versions.iter().map(|id| self.delete_version(arn, id))).await?;
        detached.await.map_err(|_| Error::Stopped)?;
        match call(
            "iam:DeletePolicy",
            arn,
            self.client.delete_policy().policy_arn(arn).send(),
        )
        .await
        {
            Ok(_) => Ok(Change::Remove),
            Err(e) if e.not_found() => Ok(Change::Absent),
            Err(e) if e.is("DeleteConflict") => Err(Error::PolicyInUse {
                arn: arn.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    // ----- roles -------------------------------------------------------------------------

    /// Phase one: the role itself (create, or repair trust, boundary and tags). Attachments
    /// come in [`Iam::ensure_attachments`], once the policy exists.
    pub async fn ensure_role(
        &self,
        spec: &RoleSpec,
        known: Option<&RoleState>,
        diff: Option<&RoleDiff>,
        dry_run: bool,
    ) -> Result<(), Error> {
        if dry_run {
            return Ok(());
        }
        let (Some(_), Some(diff)) = (known, diff) else {
            let result = call(
                "iam:CreateRole",
                &spec.name,
                self.client
                    .create_role()
                    .role_name(&spec.name)
                    .path(&spec.path)
                    .assume_role_policy_document(&spec.trust)
                    .description(format!(
                        "Epinio IRSA role for ServiceAccount {} (managed by epinio-irsa)",
                        spec.service_account
                    ))
                    .set_permissions_boundary(spec.boundary.clone())
                    .set_tags(Some(to_tags(&spec.tags)))
                    .send(),
            )
            .await;
            return match result {
                Ok(_) => Ok(()),
                Err(e) if e.is("EntityAlreadyExists") => Err(Error::Raced {
                    what: format!("role {}", spec.name),
                }),
                Err(e) => Err(e.into()),
            };
        };
        let name = spec.name.as_str();
        let c = &self.client;
        let trust = async {
            if diff.trust {
                call(
                    "iam:UpdateAssumeRolePolicy",
                    name,
                    c.update_assume_role_policy()
                        .role_name(name)
                        .policy_document(&spec.trust)
                        .send(),
                )
                .await?;
            }
            Ok::<_, AwsError>(())
        };
        let boundary = async {
            match &diff.boundary {
                Some(Some(b)) => {
                    call(
                        "iam:PutRolePermissionsBoundary",
                        name,
                        c.put_role_permissions_boundary()
                            .role_name(name)
                            .permissions_boundary(b)
                            .send(),
                    )
                    .await?;
                }
                Some(None) => {
                    call(
                        "iam:DeleteRolePermissionsBoundary",
                        name,
                        c.delete_role_permissions_boundary().role_name(name).send(),
                    )
                    .await?;
                }
                None => {}
            }
            Ok(())
        };
        let tags = async {
            if !diff.tags.is_empty() {
                call(
                    "iam:TagRole",
                    name,
                    c.tag_role()
                        .role_name(name)
                        .set_tags(Some(to_tags(&diff.tags)))
                        .send(),
                )
                .await?;
            }
            Ok(())
        };
        tokio::try_join!(trust, boundary, tags)?;
        Ok(())
    }

    /// Phase two: attach what is missing, detach what is not wanted. A freshly created role
    /// or policy may not be visible yet: retried, bounded.
    pub async fn ensure_attachments(
        &self,
        spec: &RoleSpec,
        attach: &[String],
        detach: &[String],
    ) -> Result<(), Error> {
        let name = spec.name.as_str();
        let attaches = attach.iter().map(|arn| {
            retry_not_yet_visible(self.attempts, move || {
                call(
                    "iam:AttachRolePolicy",
                    name,
                    self.client
                        .attach_role_policy()
                        .role_name(name)
                        .policy_arn(arn)
                        .send(),
                )
            })
        });
        let detaches = detach.iter().map(|arn| async move {
            match call(
                "iam:DetachRolePolicy",
                name,
                self.client
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send(),
            )
            .await
            {
                Err(e) if !e.not_found() => Err(e),
                _ => Ok(()),
            }
        });
        let (a, d) = tokio::join!(try_join_all(attaches), try_join_all(detaches));
        a?;
        d?;
        Ok(())
    }

    /// Detach every managed policy and delete inline policies, so the role can be deleted.
    pub async fn strip_role(&self, name: &str, state: &RoleState) -> Result<(), Error> {
        let c = &self.client;
        let detaches = try_join_all(state.attached.iter().map(|arn| async move {
            match call(
                "iam:DetachRolePolicy",
                name,
                c.detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send(),
            )
            .await
            {
                Err(e) if !e.not_found() => Err(e),
                _ => Ok(()),
            }
        }));
        let inline = try_join_all(state.inline.iter().map(|p| async move {
            match call(
                "iam:DeleteRolePolicy",
                name,
                c.delete_role_policy().role_name(name).policy_name(p).send(),
            )
            .await
            {
                Err(e) if !e.not_found() => Err(e),
                _ => Ok(()),
            }
        }));
        tokio::try_join!(detaches, inline)?;
        Ok(())
    }

    pub async fn delete_role(&self, name: &str) -> Result<Change, Error> {
        match call(
            "iam:DeleteRole",
            name,
            self.client.delete_role().role_name(name).send(),
        )
        .await
        {
            Ok(_) => Ok(Change::Remove),
            Err(e) if e.not_found() => Ok(Change::Absent),
            Err(e) => Err(e.into()),
        }
    }
}

/// Before any write: an existing provider must accept STS tokens; a missing one may only be
/// created when allowed.
pub fn check_provider(
    spec: &ProviderSpec,
    known: Option<&ProviderState>,
    create: bool,
) -> Result<(), Error> {
    match known {
        Some(state) if !state.client_ids.iter().any(|c| c == STS_AUDIENCE) => {
            Err(Error::ProviderAudience {
                arn: spec.arn.clone(),
            })
        }
        Some(_) => Ok(()),
        None if !create => Err(Error::ProviderMissing {
            issuer: spec.url.clone(),
        }),
        None => Ok(()),
    }
}
