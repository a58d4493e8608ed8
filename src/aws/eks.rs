//! EKS: the cluster's ARN and OIDC issuer, the Pod Identity agent add-on, and Pod Identity
//! associations.

use super::{call, found, removed, AwsError};
use crate::aws_actions::{
    CREATE_POD_IDENTITY_ASSOCIATION, DELETE_POD_IDENTITY_ASSOCIATION, DESCRIBE_ADDON,
    DESCRIBE_CLUSTER, DESCRIBE_POD_IDENTITY_ASSOCIATION, LIST_POD_IDENTITY_ASSOCIATIONS,
    TAG_RESOURCE, UPDATE_POD_IDENTITY_ASSOCIATION,
};
use crate::plan::AssociationSpec;
pub use crate::state::{AddonState, AssociationState, ClusterInfo};
use crate::vocab::Change;

pub async fn describe_cluster(
    client: &aws_sdk_eks::Client,
    name: &str,
) -> Result<Option<ClusterInfo>, AwsError> {
    let Some(out) = found(
        call(
            DESCRIBE_CLUSTER,
            name,
            client.describe_cluster().name(name).send(),
        )
        .await,
    )?
    else {
        return Ok(None);
    };
    let missing = |what: &str| AwsError::malformed(DESCRIBE_CLUSTER.name, name, what);
    let cluster = out.cluster().ok_or_else(|| missing("cluster"))?;
    let issuer_url = cluster
        .identity()
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .ok_or_else(|| missing("OIDC issuer (identity.oidc.issuer)"))?;
    Ok(Some(ClusterInfo {
        arn: cluster.arn().ok_or_else(|| missing("ARN"))?.to_string(),
        issuer_url: issuer_url.to_string(),
    }))
}

pub use crate::vocab::AGENT_ADDON;

/// `DescribeAddon` of the agent: `None` when the cluster does not have it.
pub async fn describe_agent(
    client: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<Option<AddonState>, AwsError> {
    let Some(out) = found(
        call(
            DESCRIBE_ADDON,
            AGENT_ADDON,
            client
                .describe_addon()
                .cluster_name(cluster)
                .addon_name(AGENT_ADDON)
                .send(),
        )
        .await,
    )?
    else {
        return Ok(None);
    };
    let addon = out
        .addon()
        .ok_or_else(|| AwsError::malformed(DESCRIBE_ADDON.name, AGENT_ADDON, "addon"))?;
    Ok(Some(AddonState {
        status: addon
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        version: addon.addon_version().map(str::to_string),
    }))
}

/// The Pod Identity edge of one cluster: read, create, update and delete associations. Each
/// call is one SDK call; deciding is `core`'s.
pub struct Associations<'a> {
    pub client: &'a aws_sdk_eks::Client,
    pub cluster: &'a str,
    pub attempts: u32,
}

fn subject(namespace: &str, service_account: &str) -> String {
    format!("{namespace}/{service_account}")
}

impl Associations<'_> {
    /// The association of `namespace/service_account`, if any: [`Self::find`], then
    /// [`Self::describe`] for its role and tags. EKS allows one per ServiceAccount; should a
    /// list ever hold more, the first wins and the others are named in the log.
    pub async fn read(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<Option<AssociationState>, AwsError> {
        match self.find(namespace, service_account).await? {
            Some(id) => {
                self.describe(&id, &subject(namespace, service_account))
                    .await
            }
            None => Ok(None),
        }
    }

    /// The id of the association of `namespace/service_account`, if any:
    /// `ListPodIdentityAssociations` filtered to it, every page.
    pub async fn find(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<Option<String>, AwsError> {
        let who = subject(namespace, service_account);
        let mut summaries = Vec::new();
        let mut next: Option<String> = None;
        loop {
            // A cluster that is gone has no associations left.
            let Some(out) = found(
                call(
                    LIST_POD_IDENTITY_ASSOCIATIONS,
                    &who,
                    self.client
                        .list_pod_identity_associations()
                        .cluster_name(self.cluster)
                        .namespace(namespace)
                        .service_account(service_account)
                        .set_next_token(next.take())
                        .send(),
                )
                .await,
            )?
            else {
                return Ok(None);
            };
            summaries.extend(out.associations().iter().filter_map(|s| {
                (s.namespace() == Some(namespace) && s.service_account() == Some(service_account))
                    .then(|| s.association_id().map(str::to_string))
                    .flatten()
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        if summaries.len() > 1 {
            tracing::warn!(service_account = %who, ids = ?summaries, "more than one Pod Identity association; using the first");
        }
        Ok(summaries.into_iter().next())
    }

    /// `DescribePodIdentityAssociation`: its role, tags and owner; `None` when it was deleted
    /// since it was listed. `who` names the ServiceAccount in errors.
    pub async fn describe(
        &self,
        id: &str,
        who: &str,
    ) -> Result<Option<AssociationState>, AwsError> {
        let Some(out) = found(
            call(
                DESCRIBE_POD_IDENTITY_ASSOCIATION,
                id,
                self.client
                    .describe_pod_identity_association()
                    .cluster_name(self.cluster)
                    .association_id(id)
                    .send(),
            )
            .await,
        )?
        else {
            // Deleted between the list and the describe.
            return Ok(None);
        };
        let a = out.association().ok_or_else(|| {
            AwsError::malformed(DESCRIBE_POD_IDENTITY_ASSOCIATION.name, who, "association")
        })?;
        Ok(Some(state_of(a, who)?))
    }

    /// Create the association (tagged). A `ResourceInUseException` (409) means one exists
    /// already, made concurrently or still being deleted: read it back; when the read finds
    /// none, the earlier delete is still settling and the create is tried again, within the
    /// shared attempt bound. Returns what now exists, for `core` to check.
    pub async fn create(
        &self,
        spec: &AssociationSpec,
    ) -> Result<(Change, AssociationState), AwsError> {
        let who = subject(&spec.namespace, &spec.service_account);
        let attempt = || async {
            let created = call(
                CREATE_POD_IDENTITY_ASSOCIATION,
                &who,
                self.client
                    .create_pod_identity_association()
                    .cluster_name(self.cluster)
                    .namespace(&spec.namespace)
                    .service_account(&spec.service_account)
                    .role_arn(&spec.role_arn)
                    .set_tags(Some(spec.tags.clone().into_iter().collect()))
                    .send(),
            )
            .await;
            match created {
                Ok(out) => {
                    let a = out.association().ok_or_else(|| {
                        AwsError::malformed(
                            CREATE_POD_IDENTITY_ASSOCIATION.name,
                            &who,
                            "association",
                        )
                    })?;
                    Ok((Change::Create, state_of(a, &who)?))
                }
                Err(e) if e.is("ResourceInUseException") => {
                    match self.read(&spec.namespace, &spec.service_account).await? {
                        Some(existing) => Ok((Change::Unchanged, existing)),
                        None => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        };
        // A role created in this run may not be visible to EKS yet either.
        crate::retry::retry(
            self.attempts,
            |e: &AwsError| e.is("ResourceInUseException") || not_yet_visible(e),
            attempt,
        )
        .await
    }

    /// Point our association at the desired role.
    pub async fn update(&self, id: &str, role_arn: &str) -> Result<(), AwsError> {
        crate::retry::retry(self.attempts, not_yet_visible, || {
            call(
                UPDATE_POD_IDENTITY_ASSOCIATION,
                id,
                self.client
                    .update_pod_identity_association()
                    .cluster_name(self.cluster)
                    .association_id(id)
                    .role_arn(role_arn)
                    .send(),
            )
        })
        .await
        .map(|_| ())
    }

    /// Add tags to our association (`id` names it in errors).
    pub async fn tag(
        &self,
        arn: &str,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        call(
            TAG_RESOURCE,
            id,
            self.client
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags.clone().into_iter().collect()))
                .send(),
        )
        .await
        .map(|_| ())
    }

    pub async fn delete(&self, id: &str) -> Result<Change, AwsError> {
        removed(
            call(
                DELETE_POD_IDENTITY_ASSOCIATION,
                id,
                self.client
                    .delete_pod_identity_association()
                    .cluster_name(self.cluster)
                    .association_id(id)
                    .send(),
            )
            .await,
        )
    }
}

/// EKS checks the role when an association is created or updated; a role this run just
/// created can be invisible to it for seconds (`InvalidParameterException` naming the role).
fn not_yet_visible(e: &AwsError) -> bool {
    e.is("InvalidParameterException") && e.message.to_ascii_lowercase().contains("role")
}

fn state_of(
    a: &aws_sdk_eks::types::PodIdentityAssociation,
    who: &str,
) -> Result<AssociationState, AwsError> {
    let need = |v: Option<&str>, what: &str| {
        v.map(str::to_string)
            .ok_or_else(|| AwsError::malformed(DESCRIBE_POD_IDENTITY_ASSOCIATION.name, who, what))
    };
    Ok(AssociationState {
        id: need(a.association_id(), "associationId")?,
        arn: need(a.association_arn(), "associationArn")?,
        role_arn: need(a.role_arn(), "roleArn")?,
        owner_arn: a.owner_arn().map(str::to_string),
        tags: a
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    })
}
