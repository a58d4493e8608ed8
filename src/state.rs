//! Actual state, as the edges read it: plain data, no I/O. The edges fill these in, the core
//! (`core`) decides from them, and `hook` hands them back to the edges' `ensure` / `remove`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{MANAGED_BY_KEY, MANAGED_BY_VALUE, OWNER_TAG};
use crate::plan::{DOCUMENT_TAG, VERSION_TAG};

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub arn: String,
    pub issuer_url: String,
}

#[derive(Debug, Clone)]
pub struct RoleState {
    pub arn: String,
    pub trust: String,
    pub boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub attached: Vec<String>,
    pub inline: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PolicyState {
    pub default_version: String,
    pub tags: BTreeMap<String, String>,
    /// Non-default versions, oldest first (read by teardown only).
    pub old_versions: Vec<String>,
}

impl PolicyState {
    /// The document hash the job's tags vouch for, when they name the default version:
    /// versions are immutable, so then the default document needs no read.
    pub fn vouched_document_sha(&self) -> Option<&str> {
        (self.tags.get(VERSION_TAG) == Some(&self.default_version))
            .then(|| self.tags.get(DOCUMENT_TAG).map(String::as_str))
            .flatten()
    }
}

#[derive(Debug, Clone)]
pub struct ProviderState {
    pub client_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// What the job needs to know of a ServiceAccount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaState {
    pub uid: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Annotation keys `epinio-irsa` holds by server-side apply.
    pub our_annotations: BTreeSet<String>,
    /// Whether `epinio-irsa` holds the managed-by label: then it created this ServiceAccount.
    pub ours_label: bool,
}

impl SaState {
    /// Carries our managed-by label, held by our field manager.
    pub fn labelled_by_us(&self) -> bool {
        self.ours_label
            && self.labels.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
    }

    /// Created by this installation: our label, held by our field manager, and our owner.
    pub fn created_by(&self, owner: &str) -> bool {
        self.labelled_by_us() && self.annotations.get(OWNER_TAG).map(String::as_str) == Some(owner)
    }
}

/// A workload running pods under some ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    pub name: String,
    pub service_account: String,
    /// The role its pods were last started for, by this job.
    pub restarted_for: Option<String>,
}

/// Epinio's own objects as discovery read them (Deployment `epinio-server`, ConfigMap
/// `epinio-stage-scripts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpinioObjects {
    /// The server container's image.
    pub image: Option<String>,
    /// The Deployment's labels (`app.kubernetes.io/version`, `helm.sh/chart`).
    pub labels: BTreeMap<String, String>,
    /// The pod template's `serviceAccountName` (`None`: unset, i.e. `default`).
    pub service_account: Option<String>,
    /// The server container's env `STAGING_SERVICE_ACCOUNT_NAME` (Epinio 1.7 - 1.12).
    pub staging_env: Option<String>,
    /// `serviceAccountName` of `staging-values.json` in ConfigMap `epinio-stage-scripts`
    /// (Epinio 1.13+).
    pub stage_config: Option<String>,
    /// `downloadImage` of ConfigMap `epinio-stage-scripts`: the aws CLI image staging's
    /// `download-s3-blob` init container runs (Epinio value `image.awscli.*`).
    pub download_image: Option<String>,
}

/// The EKS Pod Identity agent add-on, as `DescribeAddon` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonState {
    pub status: String,
    pub version: Option<String>,
}

/// One Pod Identity association of a managed ServiceAccount (list, then describe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationState {
    pub id: String,
    pub arn: String,
    pub role_arn: String,
    /// Set when an EKS add-on owns the association: never touched.
    pub owner_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}
