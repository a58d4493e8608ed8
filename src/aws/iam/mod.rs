//! IAM edge: one `read` / `ensure` / `remove` per resource kind (OIDC provider here, the S3
//! policy in `policy`, roles and their attachments in `role`), each returning a [`Change`]. These do SDK calls and translate
//! errors; what may be touched and what differs is decided by `core` before they are called.

use std::collections::BTreeMap;

mod policy;
mod role;

use aws_sdk_iam::types::Tag;

use super::{call, found, removed, AwsError};
use crate::aws_actions::*;
use crate::plan::{decode_document, ProviderSpec, STS_AUDIENCE};
use crate::state::ProviderState;
use crate::Change;

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

    /// Create the cluster's OIDC provider (the core found none). One made meanwhile by a
    /// concurrent run or another tool is fine: it is shared, and never modified.
    pub async fn create_provider(&self, spec: &ProviderSpec) -> Result<Change, AwsError> {
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
}
