//! The configuration's values: the validated [`Config`] and the settings it is made of, and
//! the helpers that read what they name ([`gateway_trust`]). `read` builds them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::types::*;
use crate::arn::Partition;
use crate::error::{ConfigError, ConfigErrors};

/// A value that must never be printed: `Debug` and `Display` redact it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The raw value. Only for handing it on; never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why the job has (or has not) anything to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Both S3 keys empty and no bundled store: Epinio uses the AWS credential chain.
    Iam,
    /// Gateway mode (`EPINIO_IRSA_GATEWAY=true`): Epinio signs with a cluster-local key pair
    /// to the in-cluster S3 gateway, which holds the IAM role. The keys are the gateway's
    /// client keys, not AWS keys.
    Gateway,
    /// Static S3 keys are configured: IRSA is not needed.
    StaticKeys,
    /// Epinio's bundled object store (seaweedfs / minio / s3gw) is on.
    BundledStore,
}

impl Mode {
    pub fn skip_reason(self) -> Option<&'static str> {
        match self {
            Mode::Iam | Mode::Gateway => None,
            Mode::StaticKeys => Some(
                "static S3 keys are configured (s3.accessKeyID / s3.secretAccessKey): Epinio does not use IAM roles, nothing to provision",
            ),
            Mode::BundledStore => Some(
                "Epinio's bundled object store is enabled (seaweedfs / minio / s3gw): nothing to provision",
            ),
        }
    }
}

/// How pods get the role: the setting (`EPINIO_IRSA_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialMode {
    /// IAM Roles for Service Accounts: OIDC provider, web-identity trust, role annotation.
    Irsa,
    /// EKS Pod Identity: `pods.eks.amazonaws.com` trust and one association per ServiceAccount.
    PodIdentity,
    /// Pod Identity where the agent add-on is ACTIVE and Epinio can use it, else IRSA.
    Auto,
}

impl CredentialMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialMode::Irsa => "irsa",
            CredentialMode::PodIdentity => "pod-identity",
            CredentialMode::Auto => "auto",
        }
    }
}

/// The mechanism a run converges to (what `auto` chose, or the setting itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Irsa,
    PodIdentity,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Irsa => "irsa",
            Mechanism::PodIdentity => "pod-identity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub cluster_name: Option<ClusterName>,
    pub namespace: Namespace,
    pub release_name: ReleaseName,
    pub mode: Mode,
    /// IRSA, Pod Identity, or chosen from the cluster (`EPINIO_IRSA_MODE`).
    pub credential_mode: CredentialMode,
    /// Epinio's S3 keys. Outside gateway mode they are only kept to prove they never leak; in
    /// gateway mode `verify` signs with them (SigV4 never sends the secret).
    pub s3_access_key_id: Secret,
    pub s3_secret_access_key: Secret,
    pub bucket: Bucket,
    pub server_service_account: ServiceAccountName,
    /// Whether the user gave the server's / staging's ServiceAccount (else they are defaults,
    /// and what discovery finds in the cluster wins over them).
    pub server_service_account_given: bool,
    pub staging_service_account_given: bool,
    /// Staging's ServiceAccount as Epinio 1.13+ reads it (`server.stagingWorkloads.serviceAccountName`);
    /// the server's when unset.
    pub staging_service_account: ServiceAccountName,
    /// Staging's ServiceAccount as Epinio 1.7 - 1.12 read it (`server.stagingServiceAccountName`);
    /// `None` (empty) means the namespace's `default` ServiceAccount.
    pub legacy_staging_service_account: Option<ServiceAccountName>,
    /// Provision even where the discovered Epinio server cannot use a role (staging still can).
    pub allow_unsupported_epinio: bool,
    /// `provision` verifies the chain token -> STS -> S3 before restarting.
    pub verify: bool,
    /// `verify` also puts, gets and deletes one key under its own prefix.
    pub verify_write: bool,
    /// How long `verify` polls while IAM propagates.
    pub verify_timeout: Duration,
    pub server_role_name: Option<RoleName>,
    pub staging_role_name: Option<RoleName>,
    pub policy_name: Option<PolicyName>,
    pub role_path: IamPath,
    pub permissions_boundary: Option<PolicyArn>,
    pub extra_policy_arns: Vec<PolicyArn>,
    pub tags: BTreeMap<String, String>,
    pub create_oidc_provider: bool,
    pub delete_oidc_provider: bool,
    pub sts_regional_endpoints: bool,
    pub restart_workloads: bool,
    pub adopt_existing: bool,
    pub log_format: LogFormat,
    pub account_id: Option<AccountId>,
    pub region: Option<Region>,
    /// Per-attempt timeout of every AWS and Kubernetes call.
    pub call_timeout: Duration,
    /// Attempts per call, first one included.
    pub max_attempts: u32,
    /// The whole run gives up after this long, so the hook ends before Helm's own timeout.
    pub deadline: Duration,
    /// The in-cluster S3 gateway (gateway mode): its ServiceAccount is the one managed; named
    /// even outside gateway mode, so a switch out of it removes what it had.
    pub gateway: GatewaySettings,
    /// The summary's lines are wrapped at this many columns (JSON documents excepted); 0: not
    /// wrapped.
    pub output_width: usize,
}

/// The gateway as the hook sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// `EPINIO_IRSA_GATEWAY`: gateway mode is on.
    pub enabled: bool,
    /// The gateway's own ServiceAccount (`EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT`).
    pub service_account: ServiceAccountName,
    /// Where `verify` sends requests signed with Epinio's key pair
    /// (`EPINIO_IRSA_GATEWAY_ENDPOINT`, `http://` or `https://`); `None`: not checked.
    pub endpoint: Option<String>,
    /// What `verify` trusts for the gateway's certificate over `https://`
    /// (`EPINIO_IRSA_GATEWAY_CA_FILES`: the `ca.crt` and `tls.crt` of Epinio's
    /// `s3.certificateSecret`, as Epinio's server and staging trust them); `None`: the system's
    /// CAs, as Epinio without `s3.certificateSecret`.
    pub trust: Option<GatewayTrust>,
}

/// PEM certificates read from the files named, all of them trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTrust {
    pub files: Vec<String>,
    pub pem: Vec<u8>,
}

/// Reads `files` (comma-separated paths) into a [`GatewayTrust`]: each must be readable and
/// hold at least one PEM certificate.
pub(super) fn gateway_trust(files: &str) -> Result<GatewayTrust, String> {
    let mut pem = Vec::new();
    let mut names = Vec::new();
    for file in files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let bytes = std::fs::read(file).map_err(|e| {
            format!("comma-separated PEM files to trust for the gateway; cannot read {file}: {e}")
        })?;
        if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "comma-separated PEM files to trust for the gateway; {file} holds no PEM certificate"
            ));
        }
        pem.extend_from_slice(&bytes);
        pem.push(b'\n');
        names.push(file.to_string());
    }
    if names.is_empty() {
        return Err("comma-separated PEM files to trust for the gateway".into());
    }
    Ok(GatewayTrust { files: names, pem })
}

/// The chart's default name for the gateway's ServiceAccount.
pub const DEFAULT_GATEWAY_SERVICE_ACCOUNT: &str = "epinio-irsa-gateway";

/// Log colour for both commands: on a terminal only, and not when `NO_COLOR` is set to
/// anything (no-color.org).
pub fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether stderr's logs get colour, by [`colour`].
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    )
}

/// Pod logs and terminals alike read well at this width.
pub const DEFAULT_OUTPUT_WIDTH: usize = 120;

impl Config {
    /// The owner tag value: identifies this installation among all that share an account.
    pub fn owner(&self) -> String {
        format!(
            "{}/{}/{}",
            self.cluster_name.as_deref().unwrap_or(""),
            self.namespace,
            self.release_name
        )
    }

    /// The partition of the configured region (`aws` when none is set).
    pub fn partition(&self) -> Partition {
        self.region
            .as_ref()
            .map_or(Partition::Aws, Region::partition)
    }

    /// Gateway mode: the gateway's ServiceAccount gets the role; Epinio's get nothing.
    pub fn gateway_mode(&self) -> bool {
        self.mode == Mode::Gateway
    }

    pub fn staging_is_shared(&self) -> bool {
        self.staging_service_account == self.server_service_account
    }

    /// The cluster name, required by every command that talks to IAM.
    pub fn require_cluster(&self) -> Result<&str, ConfigErrors> {
        self.cluster_name.as_deref().ok_or_else(|| {
            ConfigErrors(vec![ConfigError {
                variable: "EPINIO_IRSA_CLUSTER_NAME",
                value: String::new(),
                allowed: "the EKS cluster name; it is required when Epinio uses IAM (both S3 keys empty and no bundled store)".into(),
            }])
        })
    }
}
