//! The S3 policy: read (with its versions), ensure (create, publish a version, tags), remove.

use futures::future::try_join_all;

use super::{document, older_version, tag_map, to_tags, Iam, KEPT_VERSIONS, MAX_POLICY_VERSIONS};
use crate::aws::{call, found, removed, retry_not_yet_visible, AwsError};
use crate::aws_actions::*;
use crate::core::{missing_tags, policy_tags, PolicyStep};
use crate::plan::{same_document, PolicySpec};
use crate::state::PolicyState;
use crate::{Change, Error};

impl Iam {
    /// The policy and (for teardown) its non-default versions, read concurrently.
    pub async fn read_policy(
        &self,
        arn: &str,
        with_versions: bool,
    ) -> Result<Option<PolicyState>, AwsError> {
        let get = call(
            GET_POLICY,
            arn,
            self.client.get_policy().policy_arn(arn).send(),
        );
        let versions = async {
            if with_versions {
                found(self.list_versions(arn).await).map(Option::unwrap_or_default)
            } else {
                Ok(Vec::new())
            }
        };
        let (get, old_versions) = tokio::join!(get, versions);
        let Some(out) = found(get)? else {
            return Ok(None);
        };
        Ok(out.policy().map(|p| PolicyState {
            default_version: p.default_version_id().unwrap_or("v1").to_string(),
            tags: tag_map(p.tags()),
            old_versions: old_versions.unwrap_or_default(),
        }))
    }

    /// The default version's document. When the job's tags name the default version and
    /// `expected`'s hash, that is the document (versions are immutable); otherwise it is read.
    pub async fn read_policy_document(
        &self,
        arn: &str,
        expected: &PolicySpec,
    ) -> Result<Option<String>, AwsError> {
        let Some(state) = self.read_policy(arn, false).await? else {
            return Ok(None);
        };
        if state.vouched_document_sha() == Some(expected.document_sha256.as_str()) {
            return Ok(Some(expected.document.clone()));
        }
        found(self.default_document(arn, &state.default_version).await)
    }

    async fn default_document(&self, arn: &str, version: &str) -> Result<String, AwsError> {
        let out = call(
            GET_POLICY_VERSION,
            arn,
            self.client
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send(),
        )
        .await?;
        document(
            GET_POLICY_VERSION,
            arn,
            out.policy_version().and_then(|v| v.document()),
        )
    }

    /// Whether the default version's document differs from `spec`'s: from the job's tags when
    /// they vouch for it (versions are immutable), else read (`GetPolicyVersion`).
    pub async fn policy_differs(
        &self,
        spec: &PolicySpec,
        state: &PolicyState,
    ) -> Result<bool, AwsError> {
        Ok(match state.vouched_document_sha() {
            Some(sha) => sha != spec.document_sha256,
            None => {
                let actual = self
                    .default_document(&spec.arn, &state.default_version)
                    .await?;
                !same_document(&actual, &spec.document)
            }
        })
    }

    /// Apply what `core::policy_step` decided: create, or publish a version, tag what the
    /// (new) default version misses and prune the version that leaves the kept window. No
    /// call when the step changes nothing.
    pub async fn apply_policy(
        &self,
        spec: &PolicySpec,
        actual: Option<&PolicyState>,
        step: &PolicyStep,
    ) -> Result<Change, Error> {
        let (state, publish) = match (step, actual) {
            (PolicyStep::Converge { publish, .. }, Some(state)) => (state, *publish),
            _ => return self.create_policy(spec).await,
        };
        let mut version = state.default_version.clone();
        if publish {
            version = self.publish_version(spec).await?;
        }
        let tags = missing_tags(&policy_tags(spec, &version), &state.tags);
        let tag = async {
            if !tags.is_empty() {
                retry_not_yet_visible(self.attempts, || {
                    call(
                        TAG_POLICY,
                        &spec.arn,
                        self.client
                            .tag_policy()
                            .policy_arn(&spec.arn)
                            .set_tags(Some(to_tags(&tags)))
                            .send(),
                    )
                })
                .await?;
            }
            Ok::<_, AwsError>(())
        };
        // Keep a window of the newest versions so the next publish fits without listing.
        let prune = async {
            match older_version(&version, KEPT_VERSIONS) {
                Some(old) if publish => self.delete_version(&spec.arn, &old).await,
                _ => Ok(()),
            }
        };
        tokio::try_join!(tag, prune)?;
        Ok(step.change())
    }

    async fn create_policy(&self, spec: &PolicySpec) -> Result<Change, Error> {
        let result = call(
            CREATE_POLICY,
            &spec.name,
            self.client
                .create_policy()
                .policy_name(&spec.name)
                .path(&spec.path)
                .description("S3 access to Epinio's bucket (managed by epinio-irsa)")
                .policy_document(&spec.document)
                .set_tags(Some(to_tags(&policy_tags(spec, "v1"))))
                .send(),
        )
        .await;
        match result {
            Ok(_) => Ok(Change::Create),
            // A concurrent run made it: `hook::provision` converges once more from what is
            // there now, ownership checks included.
            Err(e) if e.is("EntityAlreadyExists") => Err(Error::Raced {
                what: format!("policy {}", spec.name),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Publish the spec's document as the new default version. Usually there is room (the job
    /// keeps at most KEPT_VERSIONS); when someone else filled the slots, list and delete the
    /// oldest non-default versions, then try again, bounded, as a concurrent run may fill the
    /// slot we freed. Returns the new version id.
    ///
    /// `CreatePolicyVersion` is not idempotent: a retry after a lost answer (a reset, a
    /// timeout, a 5xx) would publish the document a second time. So the SDK does not retry
    /// it; after such a failure the default version is read back, and when it already holds
    /// the document the lost call did commit and its version is the one published.
    async fn publish_version(&self, spec: &PolicySpec) -> Result<String, Error> {
        let arn = &spec.arn;
        let (mut full, mut unclear) = (0, 0);
        let mut delay = crate::retry::FIRST_DELAY;
        while full < 3 {
            let result = call(
                CREATE_POLICY_VERSION,
                arn,
                self.client
                    .create_policy_version()
                    .policy_arn(arn)
                    .policy_document(&spec.document)
                    .set_as_default(true)
                    .customize()
                    .config_override(
                        aws_sdk_iam::config::Builder::default()
                            .retry_config(aws_config::retry::RetryConfig::disabled()),
                    )
                    .send(),
            )
            .await;
            match result {
                Ok(out) => {
                    return Ok(out
                        .policy_version()
                        .and_then(|v| v.version_id())
                        .unwrap_or_default()
                        .to_string())
                }
                Err(e) if e.is("LimitExceeded") => {
                    full += 1;
                    let old = self.list_versions(arn).await?;
                    // `old` excludes the default version: keep at most MAX - 2 of them, so
                    // the new version fits.
                    let excess = (old.len() + 2).saturating_sub(MAX_POLICY_VERSIONS);
                    try_join_all(
                        old.iter()
                            .take(excess)
                            .map(|id| self.delete_version(arn, id)),
                    )
                    .await?;
                }
                Err(e) if e.transient() && unclear + 1 < self.attempts => {
                    unclear += 1;
                    tracing::info!(error = %e, "publishing the policy version failed, retrying");
                    let read_back = e.may_have_committed();
                    if let Some(state) = self.read_policy(arn, false).await?.filter(|_| read_back) {
                        let current = self.default_document(arn, &state.default_version).await?;
                        if same_document(&current, &spec.document) {
                            return Ok(state.default_version);
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(crate::retry::MAX_DELAY);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::PolicyVersions { arn: arn.clone() })
    }

    /// Non-default version ids of a policy, oldest first.
    async fn list_versions(&self, arn: &str) -> Result<Vec<String>, AwsError> {
        let out = call(
            LIST_POLICY_VERSIONS,
            arn,
            self.client.list_policy_versions().policy_arn(arn).send(),
        )
        .await?;
        let mut old: Vec<_> = out
            .versions()
            .iter()
            .filter(|v| !v.is_default_version())
            .filter_map(|v| Some((v.create_date().copied(), v.version_id()?.to_string())))
            .collect();
        old.sort();
        Ok(old.into_iter().map(|(_, id)| id).collect())
    }

    async fn delete_version(&self, arn: &str, id: &str) -> Result<(), AwsError> {
        let out = call(
            DELETE_POLICY_VERSION,
            arn,
            self.client
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(id)
                .send(),
        )
        .await;
        found(out).map(drop)
    }

    /// Delete the policy: its spare versions first (IAM refuses otherwise). The roles must
    /// have let go of it already.
    pub async fn remove_policy(&self, arn: &str, actual: &PolicyState) -> Result<Change, Error> {
        try_join_all(
            actual
                .old_versions
                .iter()
                .map(|id| self.delete_version(arn, id)),
        )
        .await?;
        let out = call(
            DELETE_POLICY,
            arn,
            self.client.delete_policy().policy_arn(arn).send(),
        )
        .await;
        match removed(out) {
            Err(e) if e.is("DeleteConflict") => Err(Error::PolicyInUse {
                arn: arn.to_string(),
            }),
            other => Ok(other?),
        }
    }
}
