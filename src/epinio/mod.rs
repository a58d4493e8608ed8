//! The Epinio the job serves: its version, the compatibility table, and the ServiceAccounts it
//! really uses, decided from what discovery read (`state::EpinioObjects`). Pure: no I/O.
//!
//! Sources (epinio/epinio and epinio/helm-charts, tags v1.6.0 to v1.14.1):
//! - the server's S3 client: `internal/s3manager/s3manager.go` (minio-go `credentials.NewIAM`
//!   up to v1.13.9; from v1.13.10 aws-sdk-go-v2 with `cfg.Credentials = nil` and no default
//!   chain, so requests go out unsigned);
//! - minio-go versions: `go.mod` (7.0.63 in v1.11, 7.0.95 from v1.12.0; web identity in all,
//!   the Pod Identity container credentials from 7.0.69);
//! - staging's ServiceAccount: chart 1.7-1.12 `templates/server.yaml` env
//!   `STAGING_SERVICE_ACCOUNT_NAME` (empty = `default`); chart 1.13+ ConfigMap
//!   `epinio-stage-scripts` key `staging-values.json`, read by
//!   `internal/api/v1/application/stage.go`; chart 1.6 has no setting (`default`);
//! - staging's S3 client: the `download-s3-blob` init container, aws CLI image
//!   `amazon/aws-cli:2.13.26` by default: web identity works, Pod Identity needs >= 2.15.0.

pub mod gateway;
mod table;

pub use table::*;

use crate::config::Mechanism;
use crate::error::{Error, SaMismatch};
use crate::state::EpinioObjects;

/// What the configuration says about the ServiceAccounts, and whether the user gave each.
#[derive(Debug, Clone)]
pub struct Configured<'a> {
    pub server: &'a str,
    pub server_given: bool,
    /// `server.stagingWorkloads.serviceAccountName` (1.13+); the server's when not given.
    pub staging: &'a str,
    pub staging_given: bool,
    /// `server.stagingServiceAccountName` (1.7 - 1.12); `None`: empty.
    pub legacy_staging: Option<&'a str>,
    pub allow_unsupported: bool,
    /// The mechanism the run converges to: its column of the table is checked.
    pub mechanism: Mechanism,
}

/// What the job will manage, decided from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub server_service_account: String,
    /// `None`: staging cannot be given a role on this version (overridden refusal).
    pub staging_service_account: Option<String>,
    /// One line for the summary: version, where it came from, the table row.
    pub epinio: String,
    /// Warnings the summary prints.
    pub warnings: Vec<String>,
}

pub const DEFAULT_SA: &str = "default";
const OVERRIDE: &str =
    "EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO=true (chart value irsa.allowUnsupportedEpinio)";

/// Decide the ServiceAccounts from what discovery found, refusing (before any write) what
/// cannot work: a server version that cannot use a role, the `default` ServiceAccount, a
/// configuration that names other ServiceAccounts than Epinio uses.
pub fn resolve(cfg: &Configured, objects: Option<&EpinioObjects>) -> Result<Resolved, Error> {
    let Some(objects) = objects else {
        return from_configuration(cfg);
    };
    let mut warnings = Vec::new();
    let version = server_version(objects);
    let (row, hint, version_text, epinio) = match &version {
        ServerVersion::Known { version, from } => {
            let row = row(version);
            (
                Some(row),
                Some(row),
                format!("v{version}"),
                format!(
                    "Epinio v{version} (from the {from}), compatibility row {}",
                    row.label
                ),
            )
        }
        ServerVersion::Unknown { image, chart } => {
            let chart_text = chart
                .as_ref()
                .map(|c| format!(", chart {c}"))
                .unwrap_or_default();
            warnings.push(format!("the Epinio server image {image} is not a release tag{chart_text}: its version is not checked against the compatibility table; check it yourself (README, Compatibility)"));
            let hint = chart.as_ref().map(row);
            (
                None,
                hint,
                image.clone(),
                format!("Epinio of unknown version (image {image}{chart_text})"),
            )
        }
    };
    check_mechanism(cfg, row, objects, &version_text, &mut warnings)?;
    // One line per column; staging's Pod Identity column as this installation has it.
    let columns = row.map(|r| {
        let mut lines = r.columns(StagingCli::of(objects).column());
        lines.push(GATEWAY_COLUMN.to_string());
        lines
    });
    let epinio = std::iter::once(epinio)
        .chain(columns.into_iter().flatten())
        .collect::<Vec<_>>()
        .join("\n");
    let server = resolve_server(cfg, objects)?;
    let source = match hint {
        Some(r) => r.staging_source,
        None if objects.stage_config.is_some() => StagingSource::StageConfigMap,
        None if objects.staging_env.is_some() => StagingSource::ServerEnv,
        None => StagingSource::StageConfigMap,
    };
    let staging = resolve_staging(cfg, objects, source, &version_text, &mut warnings)?;
    Ok(Resolved {
        server_service_account: server,
        staging_service_account: staging,
        epinio,
        warnings,
    })
}

/// No `epinio-server` Deployment yet: the configuration's ServiceAccounts, said so.
fn from_configuration(cfg: &Configured) -> Result<Resolved, Error> {
    for (what, sa, value) in [
        ("the Epinio server", cfg.server, "serviceAccount.name"),
        (
            "staging",
            cfg.staging,
            "server.stagingWorkloads.serviceAccountName",
        ),
    ] {
        if sa == DEFAULT_SA {
            return Err(Error::DefaultServiceAccount {
                what: format!("{what} (from the configuration)"),
                value: format!("{value} to a ServiceAccount of its own"),
            });
        }
    }
    Ok(Resolved {
        server_service_account: cfg.server.to_string(),
        staging_service_account: Some(cfg.staging.to_string()),
        epinio: "no epinio-server Deployment found: used the configuration (EPINIO_IRSA_SERVER_SERVICE_ACCOUNT, EPINIO_IRSA_STAGING_SERVICE_ACCOUNT); Epinio's version was not checked".into(),
        warnings: vec!["no epinio-server Deployment in the namespace yet: the ServiceAccounts come from the configuration and Epinio's version is unchecked; run `helm upgrade` of this chart after installing Epinio to check them".into()],
    })
}

/// The refusals (or, when overridden, warnings) of the mechanism's column for this Epinio.
fn check_mechanism(
    cfg: &Configured,
    row: Option<&Row>,
    objects: &EpinioObjects,
    version_text: &str,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    match cfg.mechanism {
        Mechanism::Irsa => {
            if let Some(row) = row {
                check_row(row, version_text, cfg.allow_unsupported, warnings)?;
            }
        }
        Mechanism::PodIdentity => {
            if let Err(reason) = pod_identity_support(row, objects) {
                if row.is_none() {
                    warnings.push(format!(
                        "{reason}; Pod Identity for this Epinio is not checked"
                    ));
                } else if cfg.allow_unsupported {
                    warnings.push(format!(
                        "Epinio {version_text}: {reason}. Provisioning anyway because {OVERRIDE}"
                    ));
                } else {
                    return Err(Error::EpinioUnsupported {
                        version: version_text.to_string(),
                        reason,
                        choices: format!("use EPINIO_IRSA_MODE=irsa (or auto), or change what the reason names, or set {OVERRIDE} to provision anyway"),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The first aws CLI release whose credential chain reads EKS Pod Identity's container
/// credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
pub const CLI_POD_IDENTITY: (u64, u64, u64) = (2, 15, 0);

/// Whether EKS Pod Identity works for both the server and staging of this Epinio. `row` is the
/// server version's row (`None`: unknown version). Staging's S3 client is the aws CLI of
/// ConfigMap `epinio-stage-scripts` `downloadImage` (chart `templates/stage-scripts.yaml`,
/// value `image.awscli.*`), so its version decides, not Epinio's.
pub fn pod_identity_support(row: Option<&Row>, objects: &EpinioObjects) -> Result<(), String> {
    let mut broken = Vec::new();
    match row {
        Some(row) if !row.server_pod_identity.works => broken.push(format!(
            "the Epinio server cannot use Pod Identity: {}",
            row.server_pod_identity.why
        )),
        Some(_) => {}
        None => broken.push("the Epinio server's version is unknown".to_string()),
    }
    if let Some(why) = StagingCli::of(objects).problem() {
        broken.push(format!("{why}; set the Epinio chart value image.awscli.tag to 2.15.0 or later (staging's download-s3-blob init container runs that image)"));
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}

/// Staging's aws CLI (ConfigMap `epinio-stage-scripts` `downloadImage`) and Pod Identity.
enum StagingCli<'a> {
    /// No `downloadImage`: Epinio's default, 2.13.26, is assumed.
    Unknown,
    Reads(&'a str),
    TooOld(&'a str),
    NoReleaseTag(&'a str),
}

impl<'a> StagingCli<'a> {
    fn of(objects: &'a EpinioObjects) -> StagingCli<'a> {
        let Some(image) = objects.download_image.as_deref() else {
            return StagingCli::Unknown;
        };
        match table::image_reference(image).and_then(parse_version) {
            Some(v) if (v.major, v.minor, v.patch) >= CLI_POD_IDENTITY => StagingCli::Reads(image),
            Some(_) => StagingCli::TooOld(image),
            None => StagingCli::NoReleaseTag(image),
        }
    }

    /// Why it cannot be used with Pod Identity, if it cannot.
    fn problem(&self) -> Option<String> {
        match self {
            StagingCli::Reads(_) => None,
            StagingCli::Unknown => Some("staging's aws CLI image is not known (ConfigMap epinio-stage-scripts has no downloadImage), and Epinio's default amazon/aws-cli 2.13.26 is older than 2.15.0, the first that reads Pod Identity credentials".into()),
            StagingCli::TooOld(image) => Some(format!("staging's aws CLI image {image} (ConfigMap epinio-stage-scripts downloadImage) is older than 2.15.0, the first that reads Pod Identity credentials")),
            StagingCli::NoReleaseTag(image) => Some(format!("the version of staging's aws CLI image {image} (ConfigMap epinio-stage-scripts downloadImage) is not a release tag")),
        }
    }

    /// Staging's Pod Identity column when the image is known: whether it works, and why.
    fn column(&self) -> Option<(bool, String)> {
        let (image, works, verdict) = match self {
            StagingCli::Unknown => return None,
            StagingCli::Reads(i) => (i, true, "reads Pod Identity credentials"),
            StagingCli::TooOld(i) => (
                i,
                false,
                "is older than 2.15.0, the first with Pod Identity",
            ),
            StagingCli::NoReleaseTag(i) => (i, false, "has no release tag: its support is unknown"),
        };
        Some((works, format!("staging's aws CLI image {image} {verdict}")))
    }
}

/// The column every version has: gateway mode.
const GATEWAY_COLUMN: &str =
    "through the gateway: yes, with either mechanism (gateway mode: irsa.gateway.enabled=true)";

/// Who uses the role under Pod Identity, for `auto`'s reason when Epinio can.
pub const EPINIO_CAN: &str = "Epinio's server and staging can use it";

/// `pod_identity_support` from what discovery read (`auto` asks it before choosing).
pub fn supports_pod_identity(objects: Option<&EpinioObjects>) -> Result<(), String> {
    let objects =
        objects.ok_or("no epinio-server Deployment found, so Epinio's version is unknown")?;
    let row = match server_version(objects) {
        ServerVersion::Known { version, .. } => Some(row(&version)),
        ServerVersion::Unknown { .. } => None,
    };
    pod_identity_support(row, objects)
}

fn check_row(
    row: &Row,
    version: &str,
    allow: bool,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let mut broken = Vec::new();
    if !row.server_irsa.works {
        broken.push(format!(
            "the Epinio server cannot use an IAM role: {}",
            row.server_irsa.why
        ));
    }
    if !row.staging_irsa.works {
        broken.push(format!(
            "staging cannot use an IAM role: {}",
            row.staging_irsa.why
        ));
    }
    if broken.is_empty() {
        return Ok(());
    }
    let reason = broken.join("; ");
    if allow {
        warnings.push(format!("Epinio {version}: {reason}. Provisioning anyway because {OVERRIDE}: only what can use a role benefits"));
        return Ok(());
    }
    Err(Error::EpinioUnsupported {
        version: version.to_string(),
        reason,
        choices: format!("use gateway mode (chart value irsa.gateway.enabled=true, EPINIO_IRSA_GATEWAY=true: an in-cluster S3 gateway holds the role, and every Epinio from 1.6 works through it; README, Gateway mode), or use static S3 keys (s3.accessKeyID / s3.secretAccessKey), or run an Epinio version whose server works with IAM roles (1.6.0 - 1.13.9 for the server; 1.7.0 or later for staging), or set {OVERRIDE} to provision anyway (staging still benefits where it can)"),
    })
}

fn resolve_server(cfg: &Configured, objects: &EpinioObjects) -> Result<String, Error> {
    let actual = objects
        .service_account
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SA.into());
    if actual == DEFAULT_SA {
        return Err(Error::DefaultServiceAccount {
            what: "the Epinio server (Deployment epinio-server)".into(),
            value: "serviceAccount.create: true and serviceAccount.name (Epinio chart)".into(),
        });
    }
    if cfg.server_given && cfg.server != actual {
        return Err(Error::ServiceAccountMismatch(Box::new(SaMismatch {
            what: "server".into(),
            configured: cfg.server.to_string(),
            variable: "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT",
            actual: actual.clone(),
            origin: "Deployment epinio-server, spec.template.spec.serviceAccountName".into(),
            value: "serviceAccount.name".into(),
        })));
    }
    Ok(actual)
}

fn resolve_staging(
    cfg: &Configured,
    objects: &EpinioObjects,
    source: StagingSource,
    version: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, Error> {
    let (actual, configured, given, variable, origin) = match source {
        StagingSource::Default => (DEFAULT_SA.to_string(), None, false, "", String::new()),
        StagingSource::ServerEnv => (
            objects
                .staging_env
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SA.into()),
            cfg.legacy_staging,
            cfg.legacy_staging.is_some(),
            "EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT",
            "env STAGING_SERVICE_ACCOUNT_NAME of Deployment epinio-server".to_string(),
        ),
        StagingSource::StageConfigMap => {
            let Some(sa) = objects.stage_config.clone() else {
                // 1.13+ without the ConfigMap key: Epinio falls back to its chart default,
                // which the configuration mirrors.
                warnings.push("ConfigMap epinio-stage-scripts has no staging-values.json serviceAccountName: staging's ServiceAccount comes from the configuration".into());
                return Ok(Some(cfg.staging.to_string()));
            };
            (
                sa,
                Some(cfg.staging),
                cfg.staging_given,
                "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
                "ConfigMap epinio-stage-scripts, staging-values.json serviceAccountName"
                    .to_string(),
            )
        }
    };
    if actual == DEFAULT_SA {
        if source == StagingSource::Default && cfg.allow_unsupported {
            warnings.push(format!("Epinio {version} stages under the namespace's default ServiceAccount, which epinio-irsa never annotates: staging gets no role"));
            return Ok(None);
        }
        return Err(Error::DefaultServiceAccount {
            what: format!("staging (Epinio {version}, from {})", if origin.is_empty() { "its built-in default" } else { &origin }),
            value: format!("{} to a ServiceAccount of its own, e.g. epinio-staging, in the values of both charts (epinio-irsa then creates it)", source.value()),
        });
    }
    if let Some(configured) = configured.filter(|_| given) {
        if configured != actual {
            return Err(Error::ServiceAccountMismatch(Box::new(SaMismatch {
                what: "staging".into(),
                configured: configured.to_string(),
                variable,
                actual,
                origin,
                value: source.value().into(),
            })));
        }
    }
    Ok(Some(actual))
}

#[cfg(test)]
mod tests;
