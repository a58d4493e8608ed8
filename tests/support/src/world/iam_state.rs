//! The account's IAM state (roles, local policies, OIDC providers) and the Pod Identity
//! associations, read the way a user would, without ids and dates.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{decode, parse_doc, World};

impl World {
    /// Every role, local policy and OIDC provider of the account, as a user would list them,
    /// without ids and dates.
    pub async fn iam_state(&self) -> Value {
        let iam = &self.iam;
        let roles = roles(iam).await;
        let policies = policies(iam).await;
        let providers = providers(iam).await;
        let mut associations: Vec<Value> = self
            .pod_identity()
            .associations()
            .into_iter()
            .map(|a| {
                json!({
                    "subject": format!("{}/{}", a.namespace, a.service_account),
                    "role": a.role_arn,
                    "tags": a.tags,
                    "owner": a.owner_arn,
                })
            })
            .collect();
        associations.sort_by_key(|a| a["subject"].as_str().unwrap_or_default().to_string());
        json!({
            "roles": roles,
            "policies": policies,
            "providers": providers,
            "pod_identity_associations": associations,
        })
    }
}

/// Every role by name: ARN, path, trust policy, tags, boundary and attached policies.
async fn roles(iam: &aws_sdk_iam::Client) -> BTreeMap<String, Value> {
    let mut roles = BTreeMap::new();
    let listed = iam
        .list_roles()
        .max_items(1000)
        .send()
        .await
        .expect("ListRoles");
    for r in listed.roles() {
        let name = r.role_name();
        let role = iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .expect("GetRole");
        let role = role.role().expect("role");
        let attached = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .expect("ListAttachedRolePolicies");
        let mut attached: Vec<String> = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        attached.sort();
        let trust = role
            .assume_role_policy_document()
            .map(|d| parse_doc(&decode(d)))
            .unwrap_or(Value::Null);
        roles.insert(
            name.to_string(),
            json!({
                "arn": role.arn(),
                "path": role.path(),
                "trust": trust,
                "tags": role.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect::<BTreeMap<_,_>>(),
                "boundary": role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
                "attached": attached,
            }),
        );
    }
    roles
}

/// Every local policy by ARN: default document, number of versions, tags (without the
/// job's document version) and attachments.
async fn policies(iam: &aws_sdk_iam::Client) -> BTreeMap<String, Value> {
    let mut policies = BTreeMap::new();
    let listed = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .max_items(1000)
        .send()
        .await
        .expect("ListPolicies");
    for p in listed.policies() {
        let arn = p.arn().unwrap_or_default();
        let got = iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .expect("GetPolicy");
        let got = got.policy().expect("policy");
        let versions = iam
            .list_policy_versions()
            .policy_arn(arn)
            .send()
            .await
            .expect("ListPolicyVersions");
        let default = got.default_version_id().unwrap_or_default();
        let doc = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(default)
            .send()
            .await
            .expect("GetPolicyVersion");
        let doc = doc
            .policy_version()
            .and_then(|v| v.document())
            .map(|d| parse_doc(&decode(d)))
            .unwrap_or(Value::Null);
        let mut tags: BTreeMap<String, String> = got
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.remove("epinio-irsa/document-version");
        policies.insert(
            arn.to_string(),
            json!({
                "document": doc,
                "versions": versions.versions().len(),
                "tags": tags,
                "attachments": got.attachment_count(),
            }),
        );
    }
    policies
}

/// Every OIDC provider by ARN: client ids and tags.
async fn providers(iam: &aws_sdk_iam::Client) -> BTreeMap<String, Value> {
    let mut providers = BTreeMap::new();
    let listed = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .expect("ListOpenIDConnectProviders");
    for p in listed.open_id_connect_provider_list() {
        let arn = p.arn().unwrap_or_default();
        let got = iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .expect("GetOpenIDConnectProvider");
        providers.insert(
            arn.to_string(),
            json!({
                "client_ids": got.client_id_list(),
                "tags": got.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect::<BTreeMap<_,_>>(),
            }),
        );
    }
    providers
}
