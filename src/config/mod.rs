//! Configuration: the `EPINIO_IRSA_*` environment contract the chart renders.
//!
//! Everything is read once, from an iterator of `(name, value)` pairs (so tests never touch the
//! process environment), and validated before any network call. Every problem is reported
//! together, each naming the variable, the value (never a secret) and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::arn::Partition;

pub mod rules;
mod types;
pub use types::*;

/// Label/tag value marking what this job created.
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "epinio-irsa";
/// Tag naming the installation that owns an IAM object: `<cluster>/<namespace>/<release>`.
pub const OWNER_TAG: &str = "epinio-irsa/owner";
/// Tags reserved for the job itself; users may not set them through `EPINIO_IRSA_TAGS`.
pub const RESERVED_TAG_PREFIX: &str = "epinio-irsa/";

/// IAM allows at most 50 tags per object; we use up to 4 of our own.
const MAX_USER_TAGS: usize = 46;
/// A role holds at most 10 managed policies by default; one is ours.
const MAX_EXTRA_POLICIES: usize = 9;

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
    /// Static S3 keys are configured: IRSA is not needed.
    StaticKeys,
    /// Epinio's bundled object store (seaweedfs / minio / s3gw) is on.
    BundledStore,
}

impl Mode {
    pub fn skip_reason(self) -> Option<&'static str> {
        match self {
            Mode::Iam => None,
            Mode::StaticKeys => Some(
                "static S3 keys are configured (s3.accessKeyID / s3.secretAccessKey): Epinio does not use IAM roles, nothing to provision",
            ),
            Mode::BundledStore => Some(
                "Epinio's bundled object store is enabled (seaweedfs / minio / s3gw): nothing to provision",
            ),
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
    /// Kept only to prove they never leak; the job never sends them anywhere.
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
}

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

pub use crate::error::{ConfigError, ConfigErrors};

/// The raw environment, as `envy` reads it (it lower-cases names after the prefix). Everything
/// is a string so that every conversion error is ours and names the variable.
#[derive(Deserialize, Default)]
struct Raw {
    cluster_name: Option<String>,
    namespace: Option<String>,
    release_name: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    bundled_s3: Option<String>,
    s3_bucket: Option<String>,
    server_service_account: Option<String>,
    staging_service_account: Option<String>,
    legacy_staging_service_account: Option<String>,
    server_role_name: Option<String>,
    staging_role_name: Option<String>,
    policy_name: Option<String>,
    role_path: Option<String>,
    permissions_boundary: Option<String>,
    extra_policy_arns: Option<String>,
    tags: Option<String>,
    log_format: Option<String>,
    account_id: Option<String>,
    #[serde(flatten)]
    switches: RawSwitches,
}

#[derive(Deserialize, Default)]
struct RawSwitches {
    allow_unsupported_epinio: Option<String>,
    verify: Option<String>,
    verify_write: Option<String>,
    verify_timeout_seconds: Option<String>,
    create_oidc_provider: Option<String>,
    delete_oidc_provider: Option<String>,
    sts_regional_endpoints: Option<String>,
    restart_workloads: Option<String>,
    adopt_existing: Option<String>,
    call_timeout_seconds: Option<String>,
    max_attempts: Option<String>,
    deadline_seconds: Option<String>,
}

/// Treat unset and empty alike: Helm renders unset values as empty strings.
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Collects every problem while reading; nothing is reported until all was read.
#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    fn fail(&mut self, variable: &'static str, value: &str, allowed: impl Into<String>) {
        self.errors.push(ConfigError {
            variable,
            value: value.to_string(),
            allowed: allowed.into(),
        });
    }

    /// A validated value, `None` when unset, empty or invalid (then recorded).
    fn parse<T: std::str::FromStr<Err = String>>(
        &mut self,
        variable: &'static str,
        raw: Option<String>,
    ) -> Option<T> {
        let s = non_empty(raw)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(allowed) => {
                self.fail(variable, &s, allowed);
                None
            }
        }
    }

    fn boolean(&mut self, variable: &'static str, raw: Option<String>, default: bool) -> bool {
        match non_empty(raw) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.fail(variable, &v, "must be true or false (any case)");
                default
            }
        }
    }

    /// A whole number within `range` (inclusive), `default` when unset.
    fn number(
        &mut self,
        variable: &'static str,
        raw: Option<String>,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
        unit: &str,
    ) -> u64 {
        let Some(s) = non_empty(raw) else {
            return default;
        };
        match s.parse::<u64>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                let (lo, hi) = (range.start(), range.end());
                self.fail(
                    variable,
                    &s,
                    format!("must be a whole number{unit} from {lo} to {hi}"),
                );
                default
            }
        }
    }

    /// A comma-separated list of validated, distinct values.
    fn list<T>(&mut self, variable: &'static str, raw: Option<String>) -> Vec<T>
    where
        T: std::str::FromStr<Err = String> + PartialEq,
    {
        let mut out = Vec::new();
        for item in non_empty(raw)
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
        {
            match item.parse::<T>() {
                Err(allowed) => self.fail(variable, item, allowed),
                Ok(v) if out.contains(&v) => {
                    self.fail(variable, item, "is listed twice; list each value once")
                }
                Ok(v) => out.push(v),
            }
        }
        out
    }

    fn tags(&mut self, raw: Option<String>) -> BTreeMap<String, String> {
        const VAR: &str = "EPINIO_IRSA_TAGS";
        let mut tags = BTreeMap::new();
        let Some(list) = non_empty(raw) else {
            return tags;
        };
        for item in list.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                self.fail(
                    VAR,
                    item,
                    "each item must be key=value, items separated by commas",
                );
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let ok_key = self.rule(VAR, key, rules::tag_key);
            let ok_value = self.rule(VAR, value, rules::tag_value);
            if ok_key && ok_value && tags.insert(key.to_string(), value.to_string()).is_some() {
                self.fail(VAR, key, "tag key is given twice; give each key once");
            }
        }
        if tags.len() > MAX_USER_TAGS {
            self.fail(
                VAR,
                &list,
                format!(
                    "at most {MAX_USER_TAGS} tags (IAM allows 50 per object and the job uses 4)"
                ),
            );
        }
        tags
    }

    fn rule(
        &mut self,
        variable: &'static str,
        value: &str,
        rule: fn(&str) -> Result<(), String>,
    ) -> bool {
        rule(value)
            .map_err(|allowed| self.fail(variable, value, allowed))
            .is_ok()
    }
}

/// Read and validate the configuration from `(name, value)` pairs, e.g. `std::env::vars()`.
/// Every problem is reported at once, each naming its variable.
pub fn from_pairs<I, K, V>(pairs: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    // Last one wins, as in a process environment; envy itself rejects duplicates.
    let unique: BTreeMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let plain = |name: &str| unique.get(name).cloned();
    let mut v = Validator::default();
    let mut raw: Raw = match envy::prefixed("EPINIO_IRSA_").from_iter(unique.clone()) {
        Ok(raw) => raw,
        Err(e) => {
            // Every field is an optional string, so this is not expected; never fall back to
            // defaults silently.
            v.fail("EPINIO_IRSA_*", "", format!("cannot be read: {e}"));
            return Err(ConfigErrors(v.errors));
        }
    };
    let namespace = match (
        non_empty(raw.namespace.take()),
        non_empty(plain("POD_NAMESPACE")),
    ) {
        (Some(ns), _) => v.parse("EPINIO_IRSA_NAMESPACE", Some(ns)),
        (None, Some(ns)) => v.parse("POD_NAMESPACE", Some(ns)),
        (None, None) => Some(Namespace::from_static("epinio")),
    };
    // The error names the variable the region came from.
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|var| Some((var, non_empty(plain(var))?)))
        .and_then(|(var, r)| v.parse::<Region>(var, Some(r)));
    let config = read(&mut v, raw, namespace, region);
    match config {
        Some(c) if v.errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors(v.errors)),
    }
}

/// Everything but the namespace and region. `None` only when something was invalid.
fn read(
    v: &mut Validator,
    raw: Raw,
    namespace: Option<Namespace>,
    region: Option<Region>,
) -> Option<Config> {
    let cluster_name = v.parse("EPINIO_IRSA_CLUSTER_NAME", raw.cluster_name);
    let release_name = v
        .parse("EPINIO_IRSA_RELEASE_NAME", raw.release_name)
        .unwrap_or_else(|| ReleaseName::from_static("epinio"));
    let access = Secret::new(raw.s3_access_key_id.unwrap_or_default());
    let secret = Secret::new(raw.s3_secret_access_key.unwrap_or_default());
    let bundled = v.boolean("EPINIO_IRSA_BUNDLED_S3", raw.bundled_s3, false);
    let mode = mode(v, &access, &secret, bundled);
    let bucket = v.parse("EPINIO_IRSA_S3_BUCKET", raw.s3_bucket);
    let server_given = non_empty(raw.server_service_account.clone()).is_some();
    let server_sa: Option<ServiceAccountName> = match non_empty(raw.server_service_account) {
        None => Some(ServiceAccountName::from_static("epinio-server")),
        some => v.parse("EPINIO_IRSA_SERVER_SERVICE_ACCOUNT", some),
    };
    // Defaults to the server's: validated only when given, so one mistake is one error.
    let staging_given = non_empty(raw.staging_service_account.clone()).is_some();
    let staging_sa = v.parse(
        "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
        raw.staging_service_account,
    );
    let legacy_staging = v.parse(
        "EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT",
        raw.legacy_staging_service_account,
    );
    let server_role_name: Option<RoleName> =
        v.parse("EPINIO_IRSA_SERVER_ROLE_NAME", raw.server_role_name);
    let staging_role_name: Option<RoleName> =
        v.parse("EPINIO_IRSA_STAGING_ROLE_NAME", raw.staging_role_name);
    if let (Some(a), Some(b), Some(server), Some(staging)) = (
        &server_role_name,
        &staging_role_name,
        &server_sa,
        &staging_sa,
    ) {
        if a == b && staging != server {
            v.fail("EPINIO_IRSA_STAGING_ROLE_NAME", b, "must differ from EPINIO_IRSA_SERVER_ROLE_NAME when the staging ServiceAccount differs from the server's (each role trusts one ServiceAccount)");
        }
    }
    let permissions_boundary: Option<PolicyArn> =
        v.parse("EPINIO_IRSA_PERMISSIONS_BOUNDARY", raw.permissions_boundary);
    let extra_policy_arns: Vec<PolicyArn> =
        v.list("EPINIO_IRSA_EXTRA_POLICY_ARNS", raw.extra_policy_arns);
    if extra_policy_arns.len() > MAX_EXTRA_POLICIES {
        let all: Vec<&str> = extra_policy_arns.iter().map(|a| a.as_str()).collect();
        v.fail("EPINIO_IRSA_EXTRA_POLICY_ARNS", &all.join(","), format!("at most {MAX_EXTRA_POLICIES} ARNs: IAM attaches at most 10 managed policies to a role and one is the S3 policy"));
    }
    if let (Some(r), Some(b)) = (&region, &permissions_boundary) {
        if b.partition() != Some(r.partition()) {
            let allowed = format!(
                "must be in the region's partition ({}): arn:{}:iam::...",
                r.partition(),
                r.partition()
            );
            v.fail("EPINIO_IRSA_PERMISSIONS_BOUNDARY", b, allowed);
        }
    }
    let log_format = match non_empty(raw.log_format).as_deref() {
        None => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(f) => {
            v.fail("EPINIO_IRSA_LOG_FORMAT", f, "must be text or json");
            LogFormat::Text
        }
    };
    let policy_name = v.parse("EPINIO_IRSA_POLICY_NAME", raw.policy_name);
    let role_path = v.parse("EPINIO_IRSA_ROLE_PATH", raw.role_path);
    let tags = v.tags(raw.tags);
    let account_id = v.parse("EPINIO_IRSA_ACCOUNT_ID", raw.account_id);
    let s = switches(v, raw.switches);
    let server_sa = server_sa?;
    Some(Config {
        cluster_name,
        namespace: namespace?,
        release_name,
        mode,
        s3_access_key_id: access,
        s3_secret_access_key: secret,
        bucket: bucket.unwrap_or_else(|| Bucket::from_static("epinio")),
        staging_service_account: staging_sa.unwrap_or_else(|| server_sa.clone()),
        server_service_account: server_sa,
        server_service_account_given: server_given,
        staging_service_account_given: staging_given,
        legacy_staging_service_account: legacy_staging,
        allow_unsupported_epinio: s.allow_unsupported_epinio,
        verify: s.verify,
        verify_write: s.verify_write,
        verify_timeout: s.verify_timeout,
        server_role_name,
        staging_role_name,
        policy_name,
        role_path: role_path.unwrap_or_else(|| IamPath::from_static("/")),
        permissions_boundary,
        extra_policy_arns,
        tags,
        create_oidc_provider: s.create_oidc_provider,
        delete_oidc_provider: s.delete_oidc_provider,
        sts_regional_endpoints: s.sts_regional_endpoints,
        restart_workloads: s.restart_workloads,
        adopt_existing: s.adopt_existing,
        log_format,
        account_id,
        region,
        call_timeout: s.call_timeout,
        max_attempts: s.max_attempts,
        deadline: s.deadline,
    })
}

/// The on/off settings and the numeric bounds, as read.
struct Switches {
    allow_unsupported_epinio: bool,
    verify: bool,
    verify_write: bool,
    verify_timeout: Duration,
    create_oidc_provider: bool,
    delete_oidc_provider: bool,
    sts_regional_endpoints: bool,
    restart_workloads: bool,
    adopt_existing: bool,
    call_timeout: Duration,
    max_attempts: u32,
    deadline: Duration,
}

fn switches(v: &mut Validator, raw: RawSwitches) -> Switches {
    let seconds = |v: &mut Validator, var, raw, range, default| {
        Duration::from_secs(v.number(var, raw, range, default, " of seconds"))
    };
    Switches {
        allow_unsupported_epinio: v.boolean(
            "EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO",
            raw.allow_unsupported_epinio,
            false,
        ),
        verify: v.boolean("EPINIO_IRSA_VERIFY", raw.verify, true),
        verify_write: v.boolean("EPINIO_IRSA_VERIFY_WRITE", raw.verify_write, false),
        verify_timeout: seconds(
            v,
            "EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS",
            raw.verify_timeout_seconds,
            5..=1800,
            120,
        ),
        create_oidc_provider: v.boolean(
            "EPINIO_IRSA_CREATE_OIDC_PROVIDER",
            raw.create_oidc_provider,
            true,
        ),
        delete_oidc_provider: v.boolean(
            "EPINIO_IRSA_DELETE_OIDC_PROVIDER",
            raw.delete_oidc_provider,
            false,
        ),
        sts_regional_endpoints: v.boolean(
            "EPINIO_IRSA_STS_REGIONAL_ENDPOINTS",
            raw.sts_regional_endpoints,
            true,
        ),
        restart_workloads: v.boolean("EPINIO_IRSA_RESTART_WORKLOADS", raw.restart_workloads, true),
        adopt_existing: v.boolean("EPINIO_IRSA_ADOPT_EXISTING", raw.adopt_existing, false),
        call_timeout: seconds(
            v,
            "EPINIO_IRSA_CALL_TIMEOUT_SECONDS",
            raw.call_timeout_seconds,
            1..=300,
            15,
        ),
        max_attempts: v.number("EPINIO_IRSA_MAX_ATTEMPTS", raw.max_attempts, 1..=10, 5, "") as u32,
        deadline: seconds(
            v,
            "EPINIO_IRSA_DEADLINE_SECONDS",
            raw.deadline_seconds,
            10..=3600,
            240,
        ),
    }
}

/// IAM mode, static keys or a bundled store; one key without the other is an error.
fn mode(v: &mut Validator, access: &Secret, secret: &Secret, bundled: bool) -> Mode {
    const TOGETHER: &str =
        "(s3.accessKeyID and s3.secretAccessKey go together; leave both empty to use IAM roles)";
    match (access.is_empty(), secret.is_empty()) {
        _ if bundled => Mode::BundledStore,
        (true, true) => Mode::Iam,
        (false, false) => Mode::StaticKeys,
        (true, false) => {
            let allowed =
                format!("must be set when EPINIO_IRSA_S3_SECRET_ACCESS_KEY is set {TOGETHER}");
            v.fail("EPINIO_IRSA_S3_ACCESS_KEY_ID", "", allowed);
            Mode::StaticKeys
        }
        (false, true) => {
            let allowed =
                format!("must be set when EPINIO_IRSA_S3_ACCESS_KEY_ID is set {TOGETHER}");
            v.fail("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "", allowed);
            Mode::StaticKeys
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn defaults_satisfy_their_rules() {
        let c = from_pairs(Vec::<(String, String)>::new()).expect("defaults are valid");
        assert_eq!(c.namespace, "epinio");
        assert_eq!(c.release_name, "epinio");
        assert_eq!(c.bucket, "epinio");
        assert_eq!(c.server_service_account, "epinio-server");
        assert_eq!(c.role_path, "/");
    }
}
