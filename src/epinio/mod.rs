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
        return Ok(Resolved {
            server_service_account: cfg.server.to_string(),
            staging_service_account: Some(cfg.staging.to_string()),
            epinio: "no epinio-server Deployment found: used the configuration (EPINIO_IRSA_SERVER_SERVICE_ACCOUNT, EPINIO_IRSA_STAGING_SERVICE_ACCOUNT); Epinio's version was not checked".into(),
            warnings: vec!["no epinio-server Deployment in the namespace yet: the ServiceAccounts come from the configuration and Epinio's version is unchecked; run `helm upgrade` of this chart after installing Epinio to check them".into()],
        });
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
                format!("Epinio v{version} (from the {from}); {row}"),
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
    match cfg.mechanism {
        Mechanism::Irsa => {
            if let Some(row) = row {
                check_row(row, &version_text, cfg.allow_unsupported, &mut warnings)?;
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
                        version: version_text,
                        reason,
                        choices: format!("use EPINIO_IRSA_MODE=irsa (or auto), or change what the reason names, or set {OVERRIDE} to provision anyway"),
                    });
                }
            }
        }
    }
    // What staging's Pod Identity column depends on, as this installation has it.
    let epinio = match StagingCli::of(objects).summary() {
        Some(cli) => format!("{epinio}; {cli}"),
        None => epinio,
    };
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

    /// For the summary line of Epinio, when the image is known.
    fn summary(&self) -> Option<String> {
        let (image, verdict) = match self {
            StagingCli::Unknown => return None,
            StagingCli::Reads(i) => (i, "reads Pod Identity credentials"),
            StagingCli::TooOld(i) => (i, "is too old for Pod Identity (2.15.0 or later)"),
            StagingCli::NoReleaseTag(i) => {
                (i, "has no release tag: its Pod Identity support is unknown")
            }
        };
        Some(format!(
            "staging's aws CLI image {image} (ConfigMap epinio-stage-scripts downloadImage) {verdict}"
        ))
    }
}

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
        choices: format!("use static S3 keys (s3.accessKeyID / s3.secretAccessKey), or run an Epinio version whose server works with IAM roles (1.6.0 - 1.13.9 for the server; 1.7.0 or later for staging), or set {OVERRIDE} to provision anyway (staging still benefits where it can)"),
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
mod tests {
    use super::*;

    #[test]
    fn table_is_contiguous_and_covers_every_version() {
        for pair in TABLE.windows(2) {
            assert_eq!(
                pair[0].until,
                Some(pair[1].from),
                "{} / {}",
                pair[0].label,
                pair[1].label
            );
        }
        assert_eq!(TABLE[0].from, (0, 0, 0));
        assert_eq!(TABLE.last().unwrap().until, None);
        for (v, label) in [
            ("v1.5.9", "< 1.6.0"),
            ("v1.6.0", "1.6.x"),
            ("1.11.3", "1.7.0 - 1.11.x"),
            ("v1.12.0", "1.12.x"),
            ("v1.13.9", "1.13.0 - 1.13.9"),
            ("v1.13.10-rc2", ">= 1.13.10 (all of 1.14.x)"),
            ("1.14.0-rc3", ">= 1.13.10 (all of 1.14.x)"),
            ("v1.14.1", ">= 1.13.10 (all of 1.14.x)"),
        ] {
            assert_eq!(row(&parse_version(v).unwrap()).label, label, "{v}");
        }
    }

    fn objects(image: &str) -> EpinioObjects {
        EpinioObjects {
            image: Some(image.into()),
            service_account: Some("epinio-server".into()),
            ..EpinioObjects::default()
        }
    }

    #[test]
    fn version_from_tag_then_labels_and_unknown_otherwise() {
        let mut o = objects("ghcr.io/epinio/epinio-server:v1.13.9");
        assert!(
            matches!(server_version(&o), ServerVersion::Known { ref version, from: "image tag" } if version.to_string() == "1.13.9")
        );
        o.labels
            .insert("helm.sh/chart".into(), "epinio-1.12.0".into());
        o.image = Some("registry:5000/epinio/epinio-server@sha256:abcd".into());
        assert!(
            matches!(server_version(&o), ServerVersion::Unknown { chart: Some(ref c), .. } if c.to_string() == "1.12.0")
        );
        o.image = Some("ghcr.io/epinio/epinio-server:my-fork".into());
        assert!(matches!(server_version(&o), ServerVersion::Unknown { .. }));
        // A registry port is not a tag: the labels tell.
        o.image = Some("registry:5000/epinio-server".into());
        assert!(matches!(
            server_version(&o),
            ServerVersion::Known {
                from: "label helm.sh/chart",
                ..
            }
        ));
        o.labels
            .insert("app.kubernetes.io/version".into(), "v1.13.2".into());
        assert!(
            matches!(server_version(&o), ServerVersion::Known { ref version, .. } if version.to_string() == "1.13.2")
        );
    }

    #[test]
    fn pod_identity_needs_a_new_server_and_a_new_aws_cli_for_staging() {
        let mut o = objects("ghcr.io/epinio/epinio-server:v1.13.9");
        let why = supports_pod_identity(Some(&o)).unwrap_err();
        assert!(why.contains("image.awscli.tag"), "{why}");
        o.download_image = Some("amazon/aws-cli:2.13.26".into());
        let why = supports_pod_identity(Some(&o)).unwrap_err();
        assert!(
            why.contains("amazon/aws-cli:2.13.26") && why.contains("2.15.0"),
            "{why}"
        );
        o.download_image = Some("registry:5000/amazon/aws-cli:2.15.0".into());
        assert_eq!(supports_pod_identity(Some(&o)), Ok(()));
        // minio-go before 7.0.69 has no container credentials; 1.13.10+ sends unsigned requests.
        for old in ["v1.11.0", "v1.13.10"] {
            o.image = Some(format!("ghcr.io/epinio/epinio-server:{old}"));
            let why = supports_pod_identity(Some(&o)).unwrap_err();
            assert!(
                why.contains("server cannot use Pod Identity"),
                "{old}: {why}"
            );
        }
        assert!(supports_pod_identity(None).is_err());
    }
}
