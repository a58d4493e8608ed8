//! Roles (create, repair trust, boundary, tags; delete) and their attachments.

use futures::future::try_join_all;

use super::{document, principal_not_yet, tag_map, to_tags, Iam};
use crate::aws::{call, found, removed, retry_not_yet_visible, AwsError};
use crate::aws_actions::*;
use crate::core::RoleStep;
use crate::plan::RoleSpec;
use crate::state::RoleState;
use crate::{Change, Error};

impl Iam {
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
    ) -> Result<Change, Error> {
        let change = step.change();
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
