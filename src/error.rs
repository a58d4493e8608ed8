//! Every error the job reports. A leaf: it imports nothing from the rest of the crate, so the
//! edges (`aws`, `k8s`) raise their own [`AwsError`] / `kube::Error`, and the core and `hook`
//! turn them into the domain variants below, each naming the resource and what to do.

use std::fmt;

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    /// Shown to the user; `<redacted>` for secrets.
    pub value: String,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}: {}",
            self.variable,
            quote(&self.value),
            self.allowed
        )
    }
}

/// All invalid settings found in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn variables(&self) -> Vec<&'static str> {
        self.0.iter().map(|e| e.variable).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Quote a value for an error message so control characters and odd bytes stay visible and
/// cannot forge log lines.
pub fn quote(value: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// A planning error: the document would break an IAM limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the trust policy of role {role} would be {len} characters, over IAM's limit of {max} (issuer {issuer}); shorten the namespace or ServiceAccount name, or raise the IAM quota and file an issue")]
    TrustPolicyTooLarge {
        role: String,
        len: usize,
        max: usize,
        issuer: String,
    },
    #[error("the S3 policy document would be {len} characters, over IAM's limit of {max}")]
    PolicyTooLarge { len: usize, max: usize },
}

/// A policy document IAM returned that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("malformed percent escape at byte {0}")]
    Escape(usize),
    #[error("the decoded document is not UTF-8")]
    Utf8,
}

/// A failed AWS call, naming the operation and the resource.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} on {resource} failed: {message}")]
pub struct AwsError {
    pub op: &'static str,
    pub resource: String,
    /// The AWS error code (`NoSuchEntity`, `EntityAlreadyExists`, ...), when AWS answered.
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
    pub fn not_found(&self) -> bool {
        self.is("NoSuchEntity") || self.is("ResourceNotFoundException")
    }
    /// Worth another attempt: throttled, IAM's `ConcurrentModification`, or
    /// [`AwsError::may_have_committed`].
    pub fn transient(&self) -> bool {
        self.may_have_committed()
            || matches!(
                self.code.as_deref(),
                Some(
                    "Throttling"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "SlowDown"
                        | "ConcurrentModification"
                )
            )
    }
    /// A failure after which a write may still have been applied: no answer at all (reset,
    /// timeout) or a server-side failure. A throttled or refused call was not applied.
    pub fn may_have_committed(&self) -> bool {
        match self.code.as_deref() {
            None => true,
            Some(code) => matches!(
                code,
                "InternalFailure"
                    | "InternalError"
                    | "ServiceFailure"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException"
                    | "ServerException"
            ),
        }
    }
    /// A response that lacks what the service model promises.
    pub fn malformed(op: &'static str, resource: &str, what: &str) -> AwsError {
        AwsError {
            op,
            resource: resource.to_string(),
            code: None,
            message: format!("the response has no {what}"),
        }
    }
}

/// One broken link of the IRSA checklist and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub link: &'static str,
    pub detail: String,
    pub fix: String,
}

/// The configuration names another ServiceAccount than Epinio uses.
#[derive(Debug, thiserror::Error)]
#[error("the configuration names ServiceAccount {configured:?} for the {what} ({variable}), but Epinio uses {actual:?} ({origin}). Nothing was changed. Set {value}: {actual} in the values file both charts read (or remove it), then re-run")]
pub struct SaMismatch {
    pub what: String,
    pub configured: String,
    pub variable: &'static str,
    pub actual: String,
    pub origin: String,
    pub value: String,
}

/// Everything that can fail, one variant per failing step, naming the resource.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigErrors),

    #[error("EKS cluster {cluster:?} was not found{}: check EPINIO_IRSA_CLUSTER_NAME and AWS_REGION", region.as_deref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    ClusterNotFound {
        cluster: String,
        region: Option<String>,
    },

    #[error("no AWS region is configured: set AWS_REGION to the cluster's region (chart value irsa.region, default s3.region)")]
    NoRegion,

    #[error("{plan}")]
    Plan {
        #[from]
        plan: PlanError,
    },

    #[error(transparent)]
    Aws(#[from] AwsError),

    #[error("IAM {kind} {name} exists but was not created by epinio-irsa (no epinio-irsa/owner tag); epinio-irsa leaves it untouched. Choose another name (EPINIO_IRSA_*_NAME), or set EPINIO_IRSA_ADOPT_EXISTING=true to take it over")]
    Untagged { kind: &'static str, name: String },

    #[error("IAM {kind} {name} exists but belongs to another installation (epinio-irsa/owner={owner}); epinio-irsa leaves it untouched. Choose another name (EPINIO_IRSA_*_NAME)")]
    Foreign {
        kind: &'static str,
        name: String,
        owner: String,
    },

    #[error("the IAM OIDC provider for {issuer} does not exist and EPINIO_IRSA_CREATE_OIDC_PROVIDER=false: create it (eksctl utils associate-iam-oidc-provider) or allow the job to")]
    ProviderMissing { issuer: String },

    #[error("the IAM OIDC provider {arn} does not list the audience sts.amazonaws.com, so no ServiceAccount token can assume a role through it; add it with `aws iam add-client-id-to-open-id-connect-provider --client-id sts.amazonaws.com --open-id-connect-provider-arn {arn}`")]
    ProviderAudience { arn: String },

    #[error("the policy {arn} kept hitting IAM's limit of 5 versions while publishing a new one (another writer?); re-run")]
    PolicyVersions { arn: String },

    #[error("the policy {arn} is still attached to IAM entities epinio-irsa does not manage; detach it from them (aws iam list-entities-for-policy --policy-arn {arn}) and re-run")]
    PolicyInUse { arn: String },

    #[error("{what} was created by a concurrent run while this one was creating it")]
    Raced { what: String },

    #[error("gave up after {seconds} s (EPINIO_IRSA_DEADLINE_SECONDS): AWS or Kubernetes kept failing or answering slowly; nothing is left half-made, the next run (the hook's retry or the next helm upgrade) continues from the actual state")]
    Deadline { seconds: u64 },

    #[error("Kubernetes configuration: {0}")]
    KubeConfig(String),

    #[error("Kubernetes {verb} {resource} failed: {source}")]
    Kube {
        verb: &'static str,
        resource: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("ServiceAccount {namespace}/{name} does not exist: install Epinio first (this job runs after it), or set EPINIO_IRSA_SERVER_SERVICE_ACCOUNT to the server's ServiceAccount")]
    ServiceAccountMissing { namespace: String, name: String },

    #[error("ServiceAccount {namespace}/{name} was created by another epinio-irsa installation (epinio-irsa/owner={owner}); epinio-irsa leaves it untouched. Set EPINIO_IRSA_STAGING_SERVICE_ACCOUNT to another name, or delete it if that installation is gone")]
    ServiceAccountNotOwned {
        namespace: String,
        name: String,
        owner: String,
    },

    #[error("ServiceAccount {namespace}/{name}: {detail}. epinio-irsa does not override annotations another field manager set; remove them (kubectl annotate serviceaccount -n {namespace} {name} eks.amazonaws.com/role-arn-) and re-run")]
    AnnotationConflict {
        namespace: String,
        name: String,
        detail: String,
    },

    #[error("EKS Pod Identity needs the add-on {addon} ACTIVE on cluster {cluster}, and it is {state}. Nothing was changed. Install it (aws eks create-addon --cluster-name {cluster} --addon-name {addon}, then wait for ACTIVE), or set EPINIO_IRSA_MODE=irsa (chart value irsa.mode) or auto")]
    AgentAddon {
        cluster: String,
        addon: &'static str,
        state: String,
    },

    #[error("ServiceAccount {subject} already has EKS Pod Identity association {id} (role {role_arn}), which this installation did not make ({owner}); epinio-irsa leaves it untouched. Nothing was changed. Delete it (aws eks delete-pod-identity-association --cluster-name {cluster} --association-id {id}) or use EPINIO_IRSA_MODE=irsa")]
    AssociationNotOwned {
        subject: String,
        cluster: String,
        id: String,
        role_arn: String,
        owner: String,
    },

    #[error("ServiceAccount {subject} has EKS Pod Identity association {id}, owned by the EKS add-on {owner_arn}; epinio-irsa never touches add-on associations. Nothing was changed. Give Epinio other ServiceAccounts, or use EPINIO_IRSA_MODE=irsa")]
    AssociationAddonOwned {
        subject: String,
        id: String,
        owner_arn: String,
    },

    #[error("Epinio {version} cannot work with IAM roles: {reason}. Nothing was changed. Choices: {choices}")]
    EpinioUnsupported {
        version: String,
        reason: String,
        choices: String,
    },

    #[error("{what} runs as the namespace's default ServiceAccount; epinio-irsa never annotates `default` (every pod without a ServiceAccount of its own would get the role). Nothing was changed. Set {value}, then re-run")]
    DefaultServiceAccount { what: String, value: String },

    #[error("{0}")]
    ServiceAccountMismatch(Box<SaMismatch>),

    #[error("verify: {} broken link(s), nothing was restarted: {}", .0.len(), .0.iter().map(|b| format!("[{}] {}; fix: {}", b.link, b.detail, b.fix)).collect::<Vec<_>>().join(" | "))]
    VerifyBroken(Vec<Broken>),

    #[error("verify: {step} for ServiceAccount {service_account} with role {role_arn} kept failing until EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS: {message}. Every checklist link holds, so IAM may still be propagating, or a permissions boundary, SCP or bucket policy denies it; nothing was restarted; re-run (helm upgrade) or run `epinio-irsa verify`")]
    VerifyLive {
        service_account: String,
        role_arn: String,
        step: &'static str,
        message: String,
    },

    #[error("{deployment} did not finish rolling out within EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS: {state}; see `kubectl rollout status {deployment}` and the events of its pods")]
    Rollout { deployment: String, state: String },

    #[error("verify through the gateway {endpoint}: {step}: {message}. The gateway's role is verified; check the gateway's pods (`kubectl rollout status` of its Deployment, its /credentials endpoint and logs), that s3.accessKeyID / s3.secretAccessKey are the pair the gateway was given, and that its NetworkPolicy admits the hook's pod; then re-run (helm upgrade) or run `epinio-irsa verify`")]
    VerifyGateway {
        endpoint: String,
        step: &'static str,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\nb\""), "\"a\\nb\\\"\"");
    }
}
