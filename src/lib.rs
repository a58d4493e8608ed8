//! epinio-irsa: IAM roles for service accounts (IRSA) for Epinio on Amazon EKS, as a Helm hook.
//!
//! `config` reads and validates the environment, `plan` computes the desired state without
//! I/O, `aws` and `k8s` read actual state and apply differences, `run` orchestrates the
//! commands and `report` prints what happened.

#![forbid(unsafe_code)]

pub mod aws;
pub mod config;
pub mod k8s;
pub mod plan;
pub mod report;
pub mod run;

pub use report::{Change, Item, Report};

/// Everything that can fail, one variant per failing step, naming the resource.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigErrors),

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
        plan: plan::PlanError,
    },

    #[error(transparent)]
    Aws(#[from] aws::AwsError),

    #[error("IAM {kind} {name} exists but {}; epinio-irsa leaves it untouched. Choose another name (EPINIO_IRSA_*_NAME){}", match owner { Some(o) => format!("belongs to another installation (epinio-irsa/owner={o})"), None => "was not created by epinio-irsa (no epinio-irsa/owner tag)".to_string() }, if owner.is_none() { ", or set EPINIO_IRSA_ADOPT_EXISTING=true to take it over" } else { "" })]
    NotOwned {
        kind: &'static str,
        name: String,
        owner: Option<String>,
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

    /// A concurrent branch stopped because another failed; that one's error is reported.
    #[error("stopped because another step failed")]
    Stopped,

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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
