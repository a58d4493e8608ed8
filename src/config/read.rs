//! Reading the environment: `envy` fills [`Raw`] with strings, the [`Validator`] turns each
//! into its validated type and collects every problem, each naming its variable.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::model::*;
use super::tags::*;
use super::types::*;
use super::validator::{non_empty, Validator};
use crate::error::ConfigErrors;

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
    mode: Option<String>,
    account_id: Option<String>,
    gateway: Option<String>,
    gateway_service_account: Option<String>,
    gateway_endpoint: Option<String>,
    gateway_ca_files: Option<String>,
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
    output_width: Option<String>,
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

/// Everything but the namespace and region. `None` only when something was invalid. Long because
/// (about 120 lines) it is the environment contract itself, one setting after another;
/// splitting it would scatter the contract without sharing any logic.
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
    let gateway = gateway(
        v,
        raw.gateway,
        raw.gateway_service_account,
        raw.gateway_endpoint,
        raw.gateway_ca_files,
    );
    let mode = mode(v, &access, &secret, bundled, gateway.enabled);
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
    let log_format = v.log_format("EPINIO_IRSA_LOG_FORMAT", raw.log_format);
    let credential_mode = match non_empty(raw.mode).as_deref() {
        None => CredentialMode::Irsa,
        Some(m) if m.eq_ignore_ascii_case("irsa") => CredentialMode::Irsa,
        Some(m) if m.eq_ignore_ascii_case("pod-identity") => CredentialMode::PodIdentity,
        Some(m) if m.eq_ignore_ascii_case("auto") => CredentialMode::Auto,
        Some(m) => {
            v.fail("EPINIO_IRSA_MODE", m, "must be irsa, pod-identity or auto");
            CredentialMode::Irsa
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
        credential_mode,
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
        output_width: s.output_width,
        gateway,
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
    output_width: usize,
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
        output_width: v.number(
            "EPINIO_IRSA_OUTPUT_WIDTH",
            raw.output_width,
            0..=1000,
            DEFAULT_OUTPUT_WIDTH as u64,
            " of columns (0: no wrapping)",
        ) as usize,
    }
}

/// The gateway's settings; its endpoint must be an `http://` or `https://` URL.
fn gateway(
    v: &mut Validator,
    enabled: Option<String>,
    service_account: Option<String>,
    endpoint: Option<String>,
    ca_files: Option<String>,
) -> GatewaySettings {
    let enabled = v.boolean("EPINIO_IRSA_GATEWAY", enabled, false);
    let service_account = v
        .parse("EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT", service_account)
        .unwrap_or_else(|| ServiceAccountName::from_static(DEFAULT_GATEWAY_SERVICE_ACCOUNT));
    let endpoint = non_empty(endpoint).filter(|e| {
        let host = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .unwrap_or_default();
        let ok = !host.is_empty() && !host.contains(['/', '?', '#', ' ', '@']);
        if !ok {
            v.fail("EPINIO_IRSA_GATEWAY_ENDPOINT", e, "must be http://HOST[:PORT] or https://HOST[:PORT] (the gateway's Service), with no path");
        }
        ok
    });
    let trust = non_empty(ca_files).and_then(|files| {
        const VAR: &str = "EPINIO_IRSA_GATEWAY_CA_FILES";
        if endpoint.as_deref().is_some_and(|e| !e.starts_with("https://")) {
            v.fail(VAR, &files, "only with an https:// EPINIO_IRSA_GATEWAY_ENDPOINT (the CAs verify trusts for the gateway's certificate)");
            return None;
        }
        super::model::gateway_trust(&files).map_err(|why| v.fail(VAR, &files, why)).ok()
    });
    GatewaySettings {
        enabled,
        service_account,
        endpoint,
        trust,
    }
}

/// IAM mode, gateway mode, static keys or a bundled store; one key without the other is an
/// error, and gateway mode needs both (they are the gateway's client keys).
fn mode(v: &mut Validator, access: &Secret, secret: &Secret, bundled: bool, gateway: bool) -> Mode {
    const TOGETHER: &str =
        "(s3.accessKeyID and s3.secretAccessKey go together; leave both empty to use IAM roles)";
    if gateway {
        if bundled {
            v.fail("EPINIO_IRSA_BUNDLED_S3", "true", "must be false in gateway mode (EPINIO_IRSA_GATEWAY=true): Epinio uses the gateway, not a bundled store (seaweedfs / minio / s3gw)");
        }
        for (variable, value) in [
            ("EPINIO_IRSA_S3_ACCESS_KEY_ID", access),
            ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", secret),
        ] {
            if value.is_empty() {
                v.fail(variable, "", "must be set in gateway mode (EPINIO_IRSA_GATEWAY=true): Epinio signs its requests to the gateway with s3.accessKeyID / s3.secretAccessKey, a cluster-local key pair");
            }
        }
        return Mode::Gateway;
    }
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
