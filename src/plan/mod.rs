//! The desired state: from the configuration and the discovered facts to names, ARNs, trust and
//! permission documents, tags and ServiceAccount annotations. No I/O here; `core` compares it
//! with the actual state.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::arn::Account;
use crate::aws_actions;
use crate::config::{
    Config, Mechanism, ServiceAccountName, MANAGED_BY_KEY, MANAGED_BY_VALUE, OWNER_TAG,
};
pub use crate::error::{DocumentError, PlanError};

mod documents;
mod facts;
mod names;
pub use documents::*;
pub use facts::*;
pub use names::*;

pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const STS_REGIONAL_ANNOTATION: &str = "eks.amazonaws.com/sts-regional-endpoints";
/// Pod-template annotation that records which role a workload's pods were started under.
/// Changing it rolls the workload; it is how restarts stay idempotent and crash-safe.
pub const RESTARTED_FOR_ANNOTATION: &str = "epinio-irsa/role-arn";
/// Policy tags that record the document we published and the version holding it, so an
/// unchanged policy is recognised from `GetPolicy` alone.
pub const DOCUMENT_TAG: &str = "epinio-irsa/document-sha256";
pub const VERSION_TAG: &str = "epinio-irsa/document-version";

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoleKind {
    Server,
    Staging,
    /// The in-cluster S3 gateway's (gateway mode).
    Gateway,
}

impl RoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Server => "server",
            RoleKind::Staging => "staging",
            RoleKind::Gateway => "gateway",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    pub arn: String,
    pub url: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: String,
    pub path: String,
    pub arn: String,
    /// Compact JSON, as sent to IAM.
    pub document: String,
    pub document_sha256: String,
    /// Ownership and user tags (the document/version bookkeeping tags are added on write).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    pub kind: RoleKind,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub service_account: String,
    pub trust: String,
    pub boundary: Option<String>,
    /// The S3 policy first, then the extra ARNs.
    pub attachments: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccountSpec {
    pub name: String,
    pub role_arn: String,
    /// Annotations the job owns on this ServiceAccount.
    pub annotations: BTreeMap<String, String>,
    /// The staging ServiceAccount is created when missing; Epinio's chart owns the server's.
    pub create_if_missing: bool,
    /// What the workloads on it must have been started for (recorded in their pod template):
    /// the role, and the mechanism when it is Pod Identity, so a switch restarts them once.
    pub restart_for: String,
    /// Annotations nobody else may hold on it (Pod Identity: the role annotation, whose web
    /// identity every AWS SDK prefers to the agent's credentials).
    pub must_not_carry: Vec<String>,
}

/// One Pod Identity association: this ServiceAccount gets this role.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociationSpec {
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub tags: BTreeMap<String, String>,
}

/// Everything `provision` converges to.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub mechanism: Mechanism,
    /// The provider IRSA needs (unused in Pod Identity mode).
    pub provider: ProviderSpec,
    pub policy: PolicySpec,
    pub roles: Vec<RoleSpec>,
    pub service_accounts: Vec<ServiceAccountSpec>,
    /// Pod Identity mode: one per ServiceAccount; IRSA mode: none (the job's own are removed).
    pub associations: Vec<AssociationSpec>,
}

pub fn owner_tags(config: &Config) -> BTreeMap<String, String> {
    let mut tags = config.tags.clone();
    tags.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());
    tags.insert(OWNER_TAG.into(), config.owner());
    tags
}

/// Compute the desired state. Fails only on IAM size limits, before anything is written.
pub fn desired(config: &Config, names: &Names, facts: &Facts) -> Result<Desired, PlanError> {
    let tags = owner_tags(config);
    let path = &config.role_path;
    let account = facts.account();
    let policy_document = s3_policy(facts.partition, &config.bucket).to_string();
    if policy_document.len() > MAX_POLICY_CHARS {
        return Err(PlanError::PolicyTooLarge {
            len: policy_document.len(),
            max: MAX_POLICY_CHARS,
        });
    }
    let policy = PolicySpec {
        name: names.policy.clone(),
        path: path.to_string(),
        arn: account.policy(path, &names.policy),
        document_sha256: sha256_hex(&policy_document),
        document: policy_document,
        tags: tags.clone(),
    };
    let mut attachments = vec![policy.arn.clone()];
    attachments.extend(config.extra_policy_arns.iter().map(ToString::to_string));

    let mut roles = vec![(
        RoleKind::Server,
        names.server_role.clone(),
        config.server_service_account.clone(),
    )];
    if config.gateway_mode() {
        // The gateway holds the role; Epinio's own ServiceAccounts get nothing.
        roles = vec![(
            RoleKind::Gateway,
            names.gateway_role.clone(),
            config.gateway.service_account.clone(),
        )];
    } else if let Some(staging) = &names.staging_role {
        roles.push((
            RoleKind::Staging,
            staging.clone(),
            config.staging_service_account.clone(),
        ));
    }
    let roles = role_specs(config, facts, roles, &attachments, &tags)?;

    let service_accounts = roles
        .iter()
        .map(|role| service_account(config, role, facts.mechanism))
        .collect();
    let associations = match facts.mechanism {
        Mechanism::Irsa => Vec::new(),
        Mechanism::PodIdentity => roles
            .iter()
            .map(|role| AssociationSpec {
                namespace: config.namespace.to_string(),
                service_account: role.service_account.clone(),
                role_arn: role.arn.clone(),
                tags: tags.clone(),
            })
            .collect(),
    };

    Ok(Desired {
        mechanism: facts.mechanism,
        associations,
        provider: ProviderSpec {
            arn: provider_arn(facts),
            url: facts.issuer_url.clone(),
            tags,
        },
        policy,
        roles,
        service_accounts,
    })
}

/// Each role's spec: its trust (IRSA or Pod Identity), path, boundary, attachments and tags.
fn role_specs(
    config: &Config,
    facts: &Facts,
    roles: Vec<(RoleKind, String, ServiceAccountName)>,
    attachments: &[String],
    tags: &BTreeMap<String, String>,
) -> Result<Vec<RoleSpec>, PlanError> {
    let (path, account) = (&config.role_path, facts.account());
    roles
        .into_iter()
        .map(|(kind, name, sa)| {
            let trust = match facts.mechanism {
                Mechanism::Irsa => trust_policy(facts, &config.namespace, &sa),
                Mechanism::PodIdentity => pod_identity_trust_policy(facts, &config.namespace, &sa),
            }
            .to_string();
            if trust.len() > MAX_TRUST_POLICY_CHARS {
                return Err(PlanError::TrustPolicyTooLarge {
                    role: name,
                    len: trust.len(),
                    max: MAX_TRUST_POLICY_CHARS,
                    issuer: facts.issuer_url.clone(),
                });
            }
            Ok(RoleSpec {
                kind,
                arn: account.role(path, &name),
                name,
                path: path.to_string(),
                service_account: sa.to_string(),
                trust,
                boundary: config
                    .permissions_boundary
                    .as_ref()
                    .map(ToString::to_string),
                attachments: attachments.to_vec(),
                tags: tags.clone(),
            })
        })
        .collect()
}

/// One ServiceAccount per role (a shared staging ServiceAccount means one role only). IRSA: the
/// role annotation, and the regional-STS one when asked. Pod Identity: no annotation of ours
/// (a leftover role annotation would win over the agent in every AWS SDK).
fn service_account(config: &Config, role: &RoleSpec, mechanism: Mechanism) -> ServiceAccountSpec {
    let mut annotations = BTreeMap::new();
    if mechanism == Mechanism::Irsa {
        annotations.insert(ROLE_ARN_ANNOTATION.to_string(), role.arn.clone());
        if config.sts_regional_endpoints {
            annotations.insert(STS_REGIONAL_ANNOTATION.to_string(), "true".to_string());
        }
    }
    ServiceAccountSpec {
        create_if_missing: role.kind == RoleKind::Staging,
        name: role.service_account.clone(),
        role_arn: role.arn.clone(),
        restart_for: restart_for(mechanism, &role.arn),
        annotations,
        must_not_carry: match mechanism {
            Mechanism::Irsa => Vec::new(),
            Mechanism::PodIdentity => vec![ROLE_ARN_ANNOTATION.to_string()],
        },
    }
}

/// The pod-template record of what a workload was started for: the role ARN under IRSA (as
/// earlier versions wrote it), `pod-identity <role ARN>` under Pod Identity.
pub fn restart_for(mechanism: Mechanism, role_arn: &str) -> String {
    match mechanism {
        Mechanism::Irsa => role_arn.to_string(),
        Mechanism::PodIdentity => format!("pod-identity {role_arn}"),
    }
}

/// The least-privilege policy the job itself needs for this configuration.
pub fn installer_policy(
    config: &Config,
    names: &Names,
    account: &Account,
    region: Option<&str>,
    cluster: &str,
) -> Value {
    let path = &config.role_path;
    let policy_arn = account.policy(path, &names.policy);
    let mut attachable = vec![policy_arn.clone()];
    attachable.extend(config.extra_policy_arns.iter().map(ToString::to_string));
    aws_actions::installer_policy(&aws_actions::Scope {
        account,
        region,
        cluster,
        // The other arrangement's roles too: a switch into or out of gateway mode reads and
        // removes them.
        role_arns: names
            .roles()
            .chain(names.other_roles())
            .map(|r| account.role(path, r))
            .collect(),
        pathless_role_arns: if path == "/" {
            Vec::new()
        } else {
            names
                .roles()
                .chain(names.other_roles())
                .map(|r| account.role("/", r))
                .collect()
        },
        policy_arn,
        attachable,
        boundary: config.permissions_boundary.as_deref(),
        create_provider: config.create_oidc_provider,
        delete_provider: config.delete_oidc_provider,
        mode: config.credential_mode,
    })
}
