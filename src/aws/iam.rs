//! IAM edge: one `read` / `ensure` / `remove` per resource kind (OIDC provider, S3 policy,
//! role, a role's attachments), each returning a [`Change`]. These do SDK calls and translate
//! errors; what may be touched and what differs is decided by `core` before they are called.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use futures::future::try_join_all;

use super::{call, found, removed, retry_not_yet_visible, AwsError};
use crate::access::*;
use crate::core::{missing_tags, RoleStep};
use crate::plan::{
    decode_document, same_document, PolicySpec, ProviderSpec, RoleSpec, DOCUMENT_TAG, STS_AUDIENCE,
    VERSION_TAG,
};
use crate::state::{PolicyState, ProviderState, RoleState};
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

fn document(action: Action, resource: &str, raw: Option<&str>) -> Result<String, AwsError> {
    decode_document(raw.unwrap_or_default()).map_err(|e| AwsError {
        op: action.name,
        resource: resource.to_string(),
        code: None,
        message: format!("IAM returned a policy document that does not decode: {e}"),
    })
}

/// IAM calls a principal it created seconds ago invalid (`MalformedPolicyDocument: Invalid
/// principal in policy`): transient only right after this run created the OIDC provider.
fn principal_not_yet(fresh_provider: bool) -> impl Fn(&AwsError) -> bool {
    move |e| {
        fresh_provider && e.is("MalformedPolicyDocument") && e.message.contains("Invalid principal")
    }
}

/// The IAM client with the bound for eventual-consistency retries.
#[derive(Clone)]
pub struct Iam {
    pub client: aws_sdk_iam::Client,
    pub attempts: u32,
}

impl Iam {
    // ----- OIDC provider -----------------------------------------------------------------

    /// ARNs of all OIDC providers of the account (one call, no arguments: it can run before
    /// the cluster's issuer is known).
    pub async fn list_providers(&self) -> Result<Vec<String>, AwsError> {
        let out = call(
            LIST_PROVIDERS,
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
        let out = call(
            GET_PROVIDER,
            arn,
            self.client
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send(),
        )
        .await;
        Ok(found(out)?.map(|out| ProviderState {
            client_ids: out.client_id_list().to_vec(),
            tags: tag_map(out.tags()),
        }))
    }

    /// The provider is shared by every IRSA user of the cluster: an existing one is never
    /// modified.
    pub async fn ensure_provider(
        &self,
        spec: &ProviderSpec,
        actual: Option<&ProviderState>,
        dry_run: bool,
    ) -> Result<Change, AwsError> {
        if actual.is_some() {
            return Ok(Change::Unchanged);
        }
        if dry_run {
            return Ok(Change::Create);
        }
        let result = call(
            CREATE_PROVIDER,
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
            Err(e) => Err(e),
        }
    }

    pub async fn remove_provider(&self, arn: &str) -> Result<Change, AwsError> {
        removed(
            call(
                DELETE_PROVIDER,
                arn,
                self.client
                    .delete_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .send(),
            )
            .await,
        )
    }

    // ----- S3 policy ---------------------------------------------------------------------

    /// The policy and (for teardown) its non-default versions, read concurrently.
    pub async fn read_policy(
        &self,
        arn: &str,
        with_versions: bool,
    ) -> Result<Option<PolicyState>, AwsError> {
        let get = call(
            GET_POLICY,
            arn,
            self.client.get_policy().policy_arn(arn).send(),
        );
        let versions = async {
            if with_versions {
                found(self.list_versions(arn).await).map(Option::unwrap_or_default)
            } else {
                Ok(Vec::new())
            }
        };
        let (get, old_versions) = tokio::join!(get, versions);
        let Some(out) = found(get)? else {
            return Ok(None);
        };
        Ok(out.policy().map(|p| PolicyState {
            default_version: p.default_version_id().unwrap_or("v1").to_string(),
            tags: tag_map(p.tags()),
            old_versions: old_versions.unwrap_or_default(),
        }))
    }

    /// The default version's document. When the job's tags name the default version and
    /// `expected`'s hash, that is the document (versions are immutable); otherwise it is read.
    pub async fn read_policy_document(
        &self,
        arn: &str,
        expected: &PolicySpec,
    ) -> Result<Option<String>, AwsError> {
        let Some(state) = self.read_policy(arn, false).await? else {
            return Ok(None);
        };
        let vouched = state.tags.get(VERSION_TAG) == Some(&state.default_version)
            && state.tags.get(DOCUMENT_TAG) == Some(&expected.document_sha256);
        if vouched {
            return Ok(Some(expected.document.clone()));
        }
        found(self.default_document(arn, &state.default_version).await)
    }

    async fn default_document(&self, arn: &str, version: &str) -> Result<String, AwsError> {
        let out = call(
            GET_POLICY_VERSION,
            arn,
            self.client
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send(),
        )
        .await?;
        document(
            GET_POLICY_VERSION,
            arn,
            out.policy_version().and_then(|v| v.document()),
        )
    }

    /// Tags to write on the policy: ownership, user tags and the bookkeeping of which version
    /// holds which document.
    fn policy_tags(spec: &PolicySpec, version: &str) -> BTreeMap<String, String> {
        let mut tags = spec.tags.clone();
        tags.insert(DOCUMENT_TAG.into(), spec.document_sha256.clone());
        tags.insert(VERSION_TAG.into(), version.into());
        tags
    }

    /// `adopting`: the core found the policy untagged and adoption allowed.
    pub async fn ensure_policy(
        &self,
        spec: &PolicySpec,
        actual: Option<&PolicyState>,
        adopting: bool,
        dry_run: bool,
    ) -> Result<Change, Error> {
        let Some(state) = actual else {
            return self.create_policy(spec, dry_run).await;
        };
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
                        TAG_POLICY,
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

    async fn create_policy(&self, spec: &PolicySpec, dry_run: bool) -> Result<Change, Error> {
        if dry_run {
            return Ok(Change::Create);
        }
        let result = call(
            CREATE_POLICY,
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
        match result {
            Ok(_) => Ok(Change::Create),
            // A concurrent run made it: `run::provision` converges once more from what is
            // there now, ownership checks included.
            Err(e) if e.is("EntityAlreadyExists") => Err(Error::Raced {
                what: format!("policy {}", spec.name),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Publish the spec's document as the new default version. Usually there is room (the job
    /// keeps at most KEPT_VERSIONS); when someone else filled the slots, list and delete the
    /// oldest non-default versions, then try again, bounded, as a concurrent run may fill the
    /// slot we freed. Returns the new version id.
    async fn publish_version(&self, spec: &PolicySpec) -> Result<String, Error> {
        let arn = &spec.arn;
        for _ in 0..3 {
            let result = call(
                CREATE_POLICY_VERSION,
                arn,
                self.client
                    .create_policy_version()
                    .policy_arn(arn)
                    .policy_document(&spec.document)
                    .set_as_default(true)
                    .send(),
            )
            .await;
            match result {
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
    async fn list_versions(&self, arn: &str) -> Result<Vec<String>, AwsError> {
        let out = call(
            LIST_POLICY_VERSIONS,
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
        let out = call(
            DELETE_POLICY_VERSION,
            arn,
            self.client
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(id)
                .send(),
        )
        .await;
        found(out).map(drop)
    }

    /// Delete the policy: its spare versions first (IAM refuses otherwise). The roles must
    /// have let go of it already.
    pub async fn remove_policy(&self, arn: &str, actual: &PolicyState) -> Result<Change, Error> {
        try_join_all(
            actual
                .old_versions
                .iter()
                .map(|id| self.delete_version(arn, id)),
        )
        .await?;
        let out = call(
            DELETE_POLICY,
            arn,
            self.client.delete_policy().policy_arn(arn).send(),
        )
        .await;
        match removed(out) {
            Err(e) if e.is("DeleteConflict") => Err(Error::PolicyInUse {
                arn: arn.to_string(),
            }),
            other => Ok(other?),
        }
    }

    // ----- roles -------------------------------------------------------------------------

    /// The role, its attached managed policies and (for teardown) its inline policies, read
    /// concurrently. `None` when the role does not exist.
    pub async fn read_role(
        &self,
        name: &str,
        with_inline: bool,
    ) -> Result<Option<RoleState>, AwsError> {
        let c = &self.client;
        let get = call(GET_ROLE, name, c.get_role().role_name(name).send());
        let attached = call(
            LIST_ATTACHED_ROLE_POLICIES,
            name,
            c.list_attached_role_policies()
                .role_name(name)
                .max_items(1000)
                .send(),
        );
        let inline = async {
            if !with_inline {
                return Ok(Some(Vec::new()));
            }
            let out = call(
                LIST_ROLE_POLICIES,
                name,
                c.list_role_policies()
                    .role_name(name)
                    .max_items(1000)
                    .send(),
            )
            .await;
            found(out).map(|o| o.map(|o| o.policy_names().to_vec()))
        };
        let (get, attached, inline) = tokio::join!(get, attached, inline);
        // Deleted between the reads: absent.
        let (Some(get), Some(attached), Some(inline)) = (found(get)?, found(attached)?, inline?)
        else {
            return Ok(None);
        };
        let Some(role) = get.role() else {
            return Ok(None);
        };
        Ok(Some(RoleState {
            arn: role.arn().to_string(),
            trust: document(GET_ROLE, name, role.assume_role_policy_document())?,
            boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            tags: tag_map(role.tags()),
            attached: attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect(),
            inline,
        }))
    }

    /// The role itself (create, or repair trust, boundary and tags). Attachments come in
    /// [`Iam::ensure_attachments`], once the policy exists.
    /// `fresh_provider`: this run created the OIDC provider the trust names, so IAM may call
    /// it an invalid principal for a few seconds: retried within the bound.
    pub async fn ensure_role(
        &self,
        spec: &RoleSpec,
        step: &RoleStep,
        fresh_provider: bool,
        dry_run: bool,
    ) -> Result<Change, Error> {
        let change = step.change();
        if dry_run {
            return Ok(change);
        }
        let diff = match step {
            RoleStep::Create => {
                self.create_role(spec, fresh_provider).await?;
                return Ok(change);
            }
            RoleStep::Repair(diff) => diff,
        };
        let name = spec.name.as_str();
        let c = &self.client;
        let trust = async {
            if diff.trust {
                crate::retry::retry(self.attempts, principal_not_yet(fresh_provider), || {
                    call(
                        UPDATE_ASSUME_ROLE_POLICY,
                        name,
                        c.update_assume_role_policy()
                            .role_name(name)
                            .policy_document(&spec.trust)
                            .send(),
                    )
                })
                .await?;
            }
            Ok::<_, AwsError>(())
        };
        let boundary = async {
            match &diff.boundary {
                Some(Some(b)) => {
                    call(
                        PUT_ROLE_PERMISSIONS_BOUNDARY,
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
                        DELETE_ROLE_PERMISSIONS_BOUNDARY,
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
                    TAG_ROLE,
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
        Ok(change)
    }

    async fn create_role(&self, spec: &RoleSpec, fresh_provider: bool) -> Result<(), Error> {
        let result = crate::retry::retry(self.attempts, principal_not_yet(fresh_provider), || {
            call(
                CREATE_ROLE,
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
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is("EntityAlreadyExists") => Err(Error::Raced {
                what: format!("role {}", spec.name),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_role(&self, name: &str) -> Result<Change, AwsError> {
        removed(
            call(
                DELETE_ROLE,
                name,
                self.client.delete_role().role_name(name).send(),
            )
            .await,
        )
    }

    // ----- a role's attachments ----------------------------------------------------------

    /// Attach what is missing, detach what is not wanted. A freshly created role or policy
    /// may not be visible yet: retried, bounded.
    pub async fn ensure_attachments(
        &self,
        role: &str,
        attach: &[String],
        detach: &[String],
    ) -> Result<Change, AwsError> {
        if attach.is_empty() && detach.is_empty() {
            return Ok(Change::Unchanged);
        }
        let attaches = attach.iter().map(|arn| {
            retry_not_yet_visible(self.attempts, move || {
                call(
                    ATTACH_ROLE_POLICY,
                    role,
                    self.client
                        .attach_role_policy()
                        .role_name(role)
                        .policy_arn(arn)
                        .send(),
                )
            })
        });
        let detaches = detach.iter().map(|arn| self.detach(role, arn));
        let (a, d) = tokio::join!(try_join_all(attaches), try_join_all(detaches));
        a?;
        d?;
        Ok(Change::Update(
            attach
                .iter()
                .map(|a| format!("attach {a}"))
                .chain(detach.iter().map(|d| format!("detach {d}")))
                .collect(),
        ))
    }

    /// Detach every managed policy and delete the inline policies, so the role can go.
    pub async fn remove_attachments(
        &self,
        role: &str,
        actual: &RoleState,
    ) -> Result<Change, AwsError> {
        let detaches = try_join_all(actual.attached.iter().map(|arn| self.detach(role, arn)));
        let inline = try_join_all(actual.inline.iter().map(|p| async move {
            let out = call(
                DELETE_ROLE_POLICY,
                role,
                self.client
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(p)
                    .send(),
            )
            .await;
            found(out).map(drop)
        }));
        tokio::try_join!(detaches, inline)?;
        Ok(if actual.attached.is_empty() && actual.inline.is_empty() {
            Change::Absent
        } else {
            Change::Remove
        })
    }

    async fn detach(&self, role: &str, arn: &str) -> Result<(), AwsError> {
        let out = call(
            DETACH_ROLE_POLICY,
            role,
            self.client
                .detach_role_policy()
                .role_name(role)
                .policy_arn(arn)
                .send(),
        )
        .await;
        found(out).map(drop)
    }
}
