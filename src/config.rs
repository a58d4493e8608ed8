//! Configuration: the `EPINIO_IRSA_*` environment contract the chart renders.
//!
//! Everything is read once, from an iterator of `(name, value)` pairs (so tests never touch the
//! process environment), and validated before any network call. Every problem is reported
//! together, each naming the variable, the value (never a secret) and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::arn::Partition;

use serde::Deserialize;

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
    pub cluster_name: Option<String>,
    pub namespace: String,
    pub release_name: String,
    pub mode: Mode,
    /// Kept only to prove they never leak; the job never sends them anywhere.
    pub s3_access_key_id: Secret,
    pub s3_secret_access_key: Secret,
    pub bucket: String,
    pub server_service_account: String,
    pub staging_service_account: String,
    pub server_role_name: Option<String>,
    pub staging_role_name: Option<String>,
    pub policy_name: Option<String>,
    pub role_path: String,
    pub permissions_boundary: Option<String>,
    pub extra_policy_arns: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub create_oidc_provider: bool,
    pub delete_oidc_provider: bool,
    pub sts_regional_endpoints: bool,
    pub restart_workloads: bool,
    pub adopt_existing: bool,
    pub log_format: LogFormat,
    pub account_id: Option<String>,
    pub region: Option<String>,
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
            .as_deref()
            .and_then(Partition::of_region)
            .unwrap_or(Partition::Aws)
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

/// The raw environment, as `envy` reads it (it lower-cases names after the prefix). Everything is a string so that every conversion
/// error is ours and names the variable.
#[derive(Deserialize)]
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
    server_role_name: Option<String>,
    staging_role_name: Option<String>,
    policy_name: Option<String>,
    role_path: Option<String>,
    permissions_boundary: Option<String>,
    extra_policy_arns: Option<String>,
    tags: Option<String>,
    create_oidc_provider: Option<String>,
    delete_oidc_provider: Option<String>,
    sts_regional_endpoints: Option<String>,
    restart_workloads: Option<String>,
    adopt_existing: Option<String>,
    log_format: Option<String>,
    account_id: Option<String>,
    call_timeout_seconds: Option<String>,
    max_attempts: Option<String>,
    deadline_seconds: Option<String>,
}

/// Treat unset and empty alike: Helm renders unset values as empty strings.
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

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
                self.fail(
                    variable,
                    &s,
                    format!(
                        "must be a whole number{unit} from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn check(
        &mut self,
        variable: &'static str,
        value: &str,
        rule: fn(&str) -> Result<(), String>,
    ) -> bool {
        match rule(value) {
            Ok(()) => true,
            Err(allowed) => {
                self.fail(variable, value, allowed);
                false
            }
        }
    }
}

/// Read and validate the configuration from `(name, value)` pairs, e.g. `std::env::vars()`.
pub fn from_pairs<I, K, V>(pairs: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let plain = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // Last one wins, as in a process environment; envy itself rejects duplicates.
    let unique: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let mut v = Validator { errors: Vec::new() };
    let raw: Raw = match envy::prefixed("EPINIO_IRSA_").from_iter(unique) {
        Ok(raw) => raw,
        Err(e) => {
            // Every field is an optional string, so this is not expected; never fall back to
            // defaults silently.
            v.fail("EPINIO_IRSA_*", "", format!("cannot be read: {e}"));
            return Err(ConfigErrors(v.errors));
        }
    };

    let cluster_name = non_empty(raw.cluster_name);
    if let Some(c) = &cluster_name {
        v.check("EPINIO_IRSA_CLUSTER_NAME", c, rules::cluster_name);
    }
    let (namespace_var, namespace) = match non_empty(raw.namespace) {
        Some(ns) => ("EPINIO_IRSA_NAMESPACE", ns),
        None => match non_empty(plain("POD_NAMESPACE")) {
            Some(ns) => ("POD_NAMESPACE", ns),
            None => ("EPINIO_IRSA_NAMESPACE", "epinio".to_string()),
        },
    };
    v.check(namespace_var, &namespace, rules::dns_label);
    let release_name = non_empty(raw.release_name).unwrap_or_else(|| "epinio".into());
    v.check(
        "EPINIO_IRSA_RELEASE_NAME",
        &release_name,
        rules::release_name,
    );

    let access = Secret::new(raw.s3_access_key_id.unwrap_or_default());
    let secret = Secret::new(raw.s3_secret_access_key.unwrap_or_default());
    let bundled = v.boolean("EPINIO_IRSA_BUNDLED_S3", raw.bundled_s3, false);
    let mode = match (access.is_empty(), secret.is_empty()) {
        _ if bundled => Mode::BundledStore,
        (true, true) => Mode::Iam,
        (false, false) => Mode::StaticKeys,
        (true, false) => {
            v.fail("EPINIO_IRSA_S3_ACCESS_KEY_ID", "", "must be set when EPINIO_IRSA_S3_SECRET_ACCESS_KEY is set (s3.accessKeyID and s3.secretAccessKey go together; leave both empty to use IAM roles)");
            Mode::StaticKeys
        }
        (false, true) => {
            v.fail("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "", "must be set when EPINIO_IRSA_S3_ACCESS_KEY_ID is set (s3.accessKeyID and s3.secretAccessKey go together; leave both empty to use IAM roles)");
            Mode::StaticKeys
        }
    };

    let bucket = non_empty(raw.s3_bucket).unwrap_or_else(|| "epinio".into());
    v.check("EPINIO_IRSA_S3_BUCKET", &bucket, rules::bucket);
    let server_sa = non_empty(raw.server_service_account).unwrap_or_else(|| "epinio-server".into());
    v.check(
        "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT",
        &server_sa,
        rules::dns_subdomain,
    );
    // Defaults to the server's: validated only when given, so one mistake is one error.
    let staging_sa = match non_empty(raw.staging_service_account) {
        Some(sa) => {
            v.check(
                "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
                &sa,
                rules::dns_subdomain,
            );
            sa
        }
        None => server_sa.clone(),
    };

    let server_role_name = non_empty(raw.server_role_name);
    if let Some(n) = &server_role_name {
        v.check("EPINIO_IRSA_SERVER_ROLE_NAME", n, rules::role_name);
    }
    let staging_role_name = non_empty(raw.staging_role_name);
    if let Some(n) = &staging_role_name {
        v.check("EPINIO_IRSA_STAGING_ROLE_NAME", n, rules::role_name);
    }
    if let (Some(a), Some(b)) = (&server_role_name, &staging_role_name) {
        if a == b && staging_sa != server_sa {
            v.fail("EPINIO_IRSA_STAGING_ROLE_NAME", b, "must differ from EPINIO_IRSA_SERVER_ROLE_NAME when the staging ServiceAccount differs from the server's (each role trusts one ServiceAccount)");
        }
    }
    let policy_name = non_empty(raw.policy_name);
    if let Some(n) = &policy_name {
        v.check("EPINIO_IRSA_POLICY_NAME", n, rules::policy_name);
    }
    let role_path = non_empty(raw.role_path).unwrap_or_else(|| "/".into());
    v.check("EPINIO_IRSA_ROLE_PATH", &role_path, rules::iam_path);

    let permissions_boundary = non_empty(raw.permissions_boundary);
    if let Some(b) = &permissions_boundary {
        v.check("EPINIO_IRSA_PERMISSIONS_BOUNDARY", b, rules::policy_arn);
    }
    let mut extra_policy_arns: Vec<String> = Vec::new();
    if let Some(list) = non_empty(raw.extra_policy_arns) {
        for item in list.split(',').map(str::trim) {
            if !v.check("EPINIO_IRSA_EXTRA_POLICY_ARNS", item, rules::policy_arn) {
                continue;
            }
            if extra_policy_arns.iter().any(|a| a == item) {
                v.fail(
                    "EPINIO_IRSA_EXTRA_POLICY_ARNS",
                    item,
                    "is listed twice; list each policy ARN once",
                );
            } else {
                extra_policy_arns.push(item.to_string());
            }
        }
        if extra_policy_arns.len() > MAX_EXTRA_POLICIES {
            v.fail("EPINIO_IRSA_EXTRA_POLICY_ARNS", &list, format!("at most {MAX_EXTRA_POLICIES} ARNs: IAM attaches at most 10 managed policies to a role and one is the S3 policy"));
        }
    }

    let mut tags = BTreeMap::new();
    if let Some(list) = non_empty(raw.tags) {
        for item in list.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                v.fail(
                    "EPINIO_IRSA_TAGS",
                    item,
                    "each item must be key=value, items separated by commas",
                );
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let ok_key = v.check("EPINIO_IRSA_TAGS", key, rules::tag_key);
            let ok_value = v.check("EPINIO_IRSA_TAGS", value, rules::tag_value);
            if ok_key && ok_value && tags.insert(key.to_string(), value.to_string()).is_some() {
                v.fail(
                    "EPINIO_IRSA_TAGS",
                    key,
                    "tag key is given twice; give each key once",
                );
            }
        }
        if tags.len() > MAX_USER_TAGS {
            v.fail(
                "EPINIO_IRSA_TAGS",
                &list,
                format!(
                    "at most {MAX_USER_TAGS} tags (IAM allows 50 per object and the job uses 4)"
                ),
            );
        }
    }

    let create_oidc_provider = v.boolean(
        "EPINIO_IRSA_CREATE_OIDC_PROVIDER",
        raw.create_oidc_provider,
        true,
    );
    let delete_oidc_provider = v.boolean(
        "EPINIO_IRSA_DELETE_OIDC_PROVIDER",
        raw.delete_oidc_provider,
        false,
    );
    let sts_regional_endpoints = v.boolean(
        "EPINIO_IRSA_STS_REGIONAL_ENDPOINTS",
        raw.sts_regional_endpoints,
        true,
    );
    let restart_workloads = v.boolean("EPINIO_IRSA_RESTART_WORKLOADS", raw.restart_workloads, true);
    let adopt_existing = v.boolean("EPINIO_IRSA_ADOPT_EXISTING", raw.adopt_existing, false);

    let log_format = match non_empty(raw.log_format).as_deref() {
        None => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(f) => {
            v.fail("EPINIO_IRSA_LOG_FORMAT", f, "must be text or json");
            LogFormat::Text
        }
    };

    let account_id = non_empty(raw.account_id);
    if let Some(a) = &account_id {
        v.check("EPINIO_IRSA_ACCOUNT_ID", a, rules::account_id);
    }
    // The error names the variable the value came from.
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|var| Some((var, non_empty(plain(var))?)));
    if let Some((var, r)) = &region {
        v.check(var, r, rules::region);
    }
    let region = region.map(|(_, r)| r);

    let call_timeout = Duration::from_secs(v.number(
        "EPINIO_IRSA_CALL_TIMEOUT_SECONDS",
        raw.call_timeout_seconds,
        1..=300,
        15,
        " of seconds",
    ));
    let max_attempts = v.number("EPINIO_IRSA_MAX_ATTEMPTS", raw.max_attempts, 1..=10, 5, "") as u32;
    let deadline = Duration::from_secs(v.number(
        "EPINIO_IRSA_DEADLINE_SECONDS",
        raw.deadline_seconds,
        10..=3600,
        240,
        " of seconds",
    ));

    if !v.errors.is_empty() {
        return Err(ConfigErrors(v.errors));
    }
    Ok(Config {
        cluster_name,
        namespace,
        release_name,
        mode,
        s3_access_key_id: access,
        s3_secret_access_key: secret,
        bucket,
        server_service_account: server_sa,
        staging_service_account: staging_sa,
        server_role_name,
        staging_role_name,
        policy_name,
        role_path,
        permissions_boundary,
        extra_policy_arns,
        tags,
        create_oidc_provider,
        delete_oidc_provider,
        sts_regional_endpoints,
        restart_workloads,
        adopt_existing,
        log_format,
        account_id,
        region,
        call_timeout,
        max_attempts,
        deadline,
    })
}

/// Validation rules. Each returns what is allowed when the value is not.
pub mod rules {
    use crate::arn::{Arn, Partition};

    fn all(s: &str, ok: impl Fn(char) -> bool) -> bool {
        s.chars().all(ok)
    }

    fn iam_name_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
    }

    /// EKS: 1-100 characters, starts with a letter or digit, then letters, digits, `-`, `_`.
    pub fn cluster_name(s: &str) -> Result<(), String> {
        let ok = (1..=100).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && all(s, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then_some(()).ok_or_else(|| {
            "an EKS cluster name: 1-100 characters, letters, digits, '-' and '_', starting with a letter or digit".into()
        })
    }

    fn is_dns_label(s: &str) -> bool {
        (1..=63).contains(&s.len())
            && all(s, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            })
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    /// Kubernetes namespace: an RFC 1123 label.
    pub fn dns_label(s: &str) -> Result<(), String> {
        is_dns_label(s).then_some(()).ok_or_else(|| {
            "a Kubernetes namespace name: 1-63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit".into()
        })
    }

    /// Kubernetes object name (ServiceAccount): an RFC 1123 subdomain.
    pub fn dns_subdomain(s: &str) -> Result<(), String> {
        let ok = (1..=253).contains(&s.len())
            && s.split('.').all(|part| {
                !part.is_empty()
                    && all(part, |c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
                    })
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        ok.then_some(()).ok_or_else(|| {
            "a Kubernetes ServiceAccount name: 1-253 characters, lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit".into()
        })
    }

    /// Helm release name.
    pub fn release_name(s: &str) -> Result<(), String> {
        (is_dns_label(s) && s.len() <= 53)
            .then_some(())
            .ok_or_else(|| {
                "a Helm release name: 1-53 characters, lowercase letters, digits and '-', starting and ending with a letter or digit".into()
            })
    }

    pub fn role_name(s: &str) -> Result<(), String> {
        ((1..=64).contains(&s.len()) && all(s, iam_name_char))
            .then_some(())
            .ok_or_else(|| {
                "an IAM role name: 1-64 characters from letters, digits and + = , . @ _ -".into()
            })
    }

    pub fn policy_name(s: &str) -> Result<(), String> {
        ((1..=128).contains(&s.len()) && all(s, iam_name_char))
            .then_some(())
            .ok_or_else(|| {
                "an IAM policy name: 1-128 characters from letters, digits and + = , . @ _ -".into()
            })
    }

    /// IAM path: `/` or `/segment/.../`, at most 512 characters. IAM itself allows any printable
    /// ASCII, but `*` or `?` would turn ARNs in the installer policy into wildcards and quotes
    /// have no business in an ARN, so segments use the IAM name characters only.
    pub fn iam_path(s: &str) -> Result<(), String> {
        let ok = s.len() <= 512
            && s.starts_with('/')
            && s.ends_with('/')
            && (s == "/"
                || s[1..s.len() - 1]
                    .split('/')
                    .all(|seg| !seg.is_empty() && all(seg, iam_name_char)));
        ok.then_some(()).ok_or_else(|| {
            "an IAM path: '/' or '/segment/.../' (at most 512 characters; segments of letters, digits and + = , . @ _ -)".into()
        })
    }

    /// A managed policy ARN: `arn:<partition>:iam::<account id or aws>:policy/<path/>name`.
    pub fn policy_arn(s: &str) -> Result<(), String> {
        let allowed = || {
            "an IAM managed policy ARN such as arn:aws:iam::123456789012:policy/name or arn:aws:iam::aws:policy/ReadOnlyAccess".to_string()
        };
        let Ok(arn) = s.parse::<Arn>() else {
            return Err(allowed());
        };
        if arn.service != "iam" || !arn.region.is_empty() {
            return Err(allowed());
        }
        if arn.account != "aws" && account_id(&arn.account).is_err() {
            return Err(allowed());
        }
        let Some(rest) = arn.resource.strip_prefix("policy/") else {
            return Err(allowed());
        };
        let (path, name) = match rest.rfind('/') {
            Some(i) => (&rest[..=i], &rest[i + 1..]),
            None => ("", rest),
        };
        let path_ok = path.is_empty() || iam_path(&format!("/{path}")).is_ok();
        if path_ok && policy_name(name).is_ok() {
            Ok(())
        } else {
            Err(allowed())
        }
    }

    pub fn account_id(s: &str) -> Result<(), String> {
        crate::arn::is_account_id(s)
            .then_some(())
            .ok_or_else(|| "a 12-digit AWS account id".into())
    }

    fn tag_char(c: char) -> bool {
        // AWS: Unicode letters, digits, white space and _ . : / = + - @
        c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
    }

    pub fn tag_key(s: &str) -> Result<(), String> {
        if s.starts_with(super::RESERVED_TAG_PREFIX) || s == super::MANAGED_BY_KEY {
            return Err(format!(
                "tag keys '{}' and '{}*' are set by epinio-irsa itself; choose another key",
                super::MANAGED_BY_KEY,
                super::RESERVED_TAG_PREFIX
            ));
        }
        if s.to_ascii_lowercase().starts_with("aws:") {
            return Err("tag keys starting with 'aws:' are reserved by AWS".into());
        }
        ((1..=128).contains(&s.chars().count()) && all(s, tag_char))
            .then_some(())
            .ok_or_else(|| {
                "a tag key: 1-128 characters from letters, digits, spaces and _ . : / = + - @"
                    .into()
            })
    }

    pub fn tag_value(s: &str) -> Result<(), String> {
        (s.chars().count() <= 256 && all(s, tag_char))
            .then_some(())
            .ok_or_else(|| {
                "a tag value: at most 256 characters from letters, digits, spaces and _ . : / = + - @".into()
            })
    }

    /// S3 general purpose bucket naming rules.
    pub fn bucket(s: &str) -> Result<(), String> {
        let edge =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let looks_like_ip =
            s.split('.').count() == 4 && s.split('.').all(|p| p.parse::<u8>().is_ok());
        let reserved = s.starts_with("xn--")
            || s.starts_with("sthree-")
            || s.starts_with("amzn-s3-demo-")
            || s.ends_with("-s3alias")
            || s.ends_with("--ol-s3")
            || s.ends_with(".mrap")
            || s.ends_with("--x-s3")
            || s.ends_with("--table-s3");
        let ok = (3..=63).contains(&s.len())
            && all(s, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
            })
            && edge(s.chars().next())
            && edge(s.chars().last())
            && !s.contains("..")
            && !looks_like_ip
            && !reserved;
        ok.then_some(()).ok_or_else(|| {
            "an S3 bucket name: 3-63 characters, lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not an IP address, no reserved prefix or suffix".into()
        })
    }

    /// AWS region: `<geo>-<direction>-<n>` in a known partition (see [`Partition::of_region`]).
    pub fn region(s: &str) -> Result<(), String> {
        Partition::of_region(s).map(|_| ()).ok_or_else(|| {
            "an AWS region such as us-east-1, eu-central-1, ap-southeast-2, us-gov-west-1".into()
        })
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
}
