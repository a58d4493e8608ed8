//! The compatibility table (one row per range of Epinio versions, each reason naming the
//! Epinio file it comes from) and reading the version of a running server.

use std::fmt;

use semver::Version;

use crate::state::EpinioObjects;

/// Where Epinio reads staging's ServiceAccount from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagingSource {
    /// No setting: staging runs as the namespace's `default` ServiceAccount.
    Default,
    /// Env `STAGING_SERVICE_ACCOUNT_NAME` of the server container (value
    /// `server.stagingServiceAccountName`); empty means `default`.
    ServerEnv,
    /// ConfigMap `epinio-stage-scripts`, `staging-values.json`, field `serviceAccountName`
    /// (value `server.stagingWorkloads.serviceAccountName`).
    StageConfigMap,
}

impl StagingSource {
    /// The Epinio chart value that sets it.
    pub fn value(self) -> &'static str {
        match self {
            StagingSource::Default => "(none: upgrade Epinio to 1.7 or later)",
            StagingSource::ServerEnv => "server.stagingServiceAccountName",
            StagingSource::StageConfigMap => "server.stagingWorkloads.serviceAccountName",
        }
    }
}

/// Whether something works, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    pub works: bool,
    pub why: &'static str,
}

const fn yes(why: &'static str) -> Support {
    Support { works: true, why }
}

const fn no(why: &'static str) -> Support {
    Support { works: false, why }
}

/// One row of the compatibility table: a range of Epinio versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// First version of the range, inclusive (major, minor, patch).
    pub from: (u64, u64, u64),
    /// End of the range, exclusive; `None`: open.
    pub until: Option<(u64, u64, u64)>,
    pub label: &'static str,
    pub server_irsa: Support,
    pub server_pod_identity: Support,
    pub staging_irsa: Support,
    pub staging_pod_identity: Support,
    pub staging_source: StagingSource,
}

const NO_IAM: &str = "no IAM mode before v1.6.0 (epinio#1925): the server needs static keys";
const MINIO_IAM: &str =
    "minio-go credentials.NewIAM reads the web identity token (internal/s3manager/s3manager.go)";
const MINIO_OLD: &str = "minio-go before 7.0.69 has no container-credentials provider (go.mod)";
const MINIO_NEW: &str = "minio-go 7.0.95 reads the Pod Identity container credentials (go.mod)";
const UNSIGNED: &str = "aws-sdk-go-v2 with nil credentials and no default chain: requests go out unsigned (internal/s3manager/s3manager.go)";
const CLI_IRSA: &str =
    "the aws CLI of the download-s3-blob init container uses the web identity token";
const CLI_OLD: &str =
    "the default aws CLI image 2.13.26 is older than 2.15.0, the first with Pod Identity";
const ONLY_DEFAULT: &str =
    "staging runs as the namespace's default ServiceAccount, which epinio-irsa never annotates";

/// The compatibility table, oldest first. Ranges are contiguous and ignore pre-release tags
/// (a `1.13.10-rc2` is in the `1.13.10` row: release candidates carry the code of the release).
pub const TABLE: &[Row] = &[
    Row {
        from: (0, 0, 0),
        until: Some((1, 6, 0)),
        label: "< 1.6.0",
        server_irsa: no(NO_IAM),
        server_pod_identity: no(NO_IAM),
        staging_irsa: no(ONLY_DEFAULT),
        staging_pod_identity: no(ONLY_DEFAULT),
        staging_source: StagingSource::Default,
    },
    Row {
        from: (1, 6, 0),
        until: Some((1, 7, 0)),
        label: "1.6.x",
        server_irsa: yes(MINIO_IAM),
        server_pod_identity: no(MINIO_OLD),
        staging_irsa: no(ONLY_DEFAULT),
        staging_pod_identity: no(ONLY_DEFAULT),
        staging_source: StagingSource::Default,
    },
    Row {
        from: (1, 7, 0),
        until: Some((1, 12, 0)),
        label: "1.7.0 - 1.11.x",
        server_irsa: yes(MINIO_IAM),
        server_pod_identity: no(MINIO_OLD),
        staging_irsa: yes(CLI_IRSA),
        staging_pod_identity: no(CLI_OLD),
        staging_source: StagingSource::ServerEnv,
    },
    Row {
        from: (1, 12, 0),
        until: Some((1, 13, 0)),
        label: "1.12.x",
        server_irsa: yes(MINIO_IAM),
        server_pod_identity: yes(MINIO_NEW),
        staging_irsa: yes(CLI_IRSA),
        staging_pod_identity: no(CLI_OLD),
        staging_source: StagingSource::ServerEnv,
    },
    Row {
        from: (1, 13, 0),
        until: Some((1, 13, 10)),
        label: "1.13.0 - 1.13.9",
        server_irsa: yes(MINIO_IAM),
        server_pod_identity: yes(MINIO_NEW),
        staging_irsa: yes(CLI_IRSA),
        staging_pod_identity: no(CLI_OLD),
        staging_source: StagingSource::StageConfigMap,
    },
    Row {
        from: (1, 13, 10),
        until: None,
        label: ">= 1.13.10 (all of 1.14.x)",
        server_irsa: no(UNSIGNED),
        server_pod_identity: no(UNSIGNED),
        staging_irsa: yes(CLI_IRSA),
        staging_pod_identity: no(CLI_OLD),
        staging_source: StagingSource::StageConfigMap,
    },
];

/// The row for a version.
pub fn row(version: &Version) -> &'static Row {
    let v = (version.major, version.minor, version.patch);
    TABLE
        .iter()
        .find(|r| r.from <= v && r.until.is_none_or(|u| v < u))
        .unwrap_or(&TABLE[TABLE.len() - 1])
}

fn mark(s: Support) -> &'static str {
    if s.works {
        "yes"
    } else {
        "no"
    }
}

impl Row {
    /// One short line per column of the table, for this installation: `staging_pod_identity`,
    /// when known, is what staging's own aws CLI image can do, which decides that column
    /// instead of Epinio's default image.
    pub fn columns(&self, staging_pod_identity: Option<(bool, String)>) -> Vec<String> {
        let column = |name: &str, s: Support| format!("{name}: {} ({})", mark(s), s.why);
        let staging_pi = match staging_pod_identity {
            Some((works, why)) => format!(
                "staging with Pod Identity: {} ({why})",
                if works { "yes" } else { "no" }
            ),
            None => column("staging with Pod Identity", self.staging_pod_identity),
        };
        vec![
            column("server with IRSA", self.server_irsa),
            column("server with Pod Identity", self.server_pod_identity),
            column("staging with IRSA", self.staging_irsa),
            staging_pi,
            format!(
                "staging ServiceAccount from {}",
                self.staging_source.value()
            ),
        ]
    }
}

/// The row's label, then one line per column (Epinio's defaults).
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epinio {}:", self.label)?;
        for line in self.columns(None) {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// The version of the running server, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVersion {
    Known {
        version: Version,
        from: &'static str,
    },
    /// A custom tag or a digest: the code is not known to be any release. `chart` is what the
    /// labels say the chart was, a hint for where staging's ServiceAccount is read from.
    Unknown {
        image: String,
        chart: Option<Version>,
    },
}

/// `v1.13.9`, `1.14.0-rc3` (Epinio's chart tags its appVersion both ways).
pub fn parse_version(s: &str) -> Option<Version> {
    Version::parse(s.strip_prefix('v').unwrap_or(s)).ok()
}

/// The image's tag or digest, if it names one (`registry:5000/x` has neither).
pub fn image_reference(image: &str) -> Option<&str> {
    if let Some((_, digest)) = image.split_once('@') {
        return Some(digest);
    }
    let (_, last) = image.rsplit_once('/').unwrap_or(("", image));
    last.rsplit_once(':').map(|(_, tag)| tag)
}

/// The version from the image tag; when the image names no tag, from the
/// `app.kubernetes.io/version` label, then the `helm.sh/chart` label (`epinio-1.13.9`: Epinio's
/// chart versions follow its releases). An image with a custom tag or a digest is unknown:
/// the labels then only say which chart rendered it.
pub fn server_version(objects: &EpinioObjects) -> ServerVersion {
    let label = |k: &str| objects.labels.get(k).map(String::as_str);
    let from_labels = label("app.kubernetes.io/version")
        .and_then(parse_version)
        .map(|v| (v, "label app.kubernetes.io/version"))
        .or_else(|| {
            label("helm.sh/chart")
                .and_then(|c| c.strip_prefix("epinio-"))
                .and_then(parse_version)
                .map(|v| (v, "label helm.sh/chart"))
        });
    let image = objects.image.as_deref().unwrap_or("(no image)");
    match objects.image.as_deref().and_then(image_reference) {
        Some(reference) => match parse_version(reference) {
            Some(version) => ServerVersion::Known {
                version,
                from: "image tag",
            },
            None => ServerVersion::Unknown {
                image: image.to_string(),
                chart: from_labels.map(|(v, _)| v),
            },
        },
        None => match from_labels {
            Some((version, from)) => ServerVersion::Known { version, from },
            None => ServerVersion::Unknown {
                image: image.to_string(),
                chart: None,
            },
        },
    }
}
