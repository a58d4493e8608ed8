//! The names the job marks its own objects with, and the limits on the tags and policies a
//! user may add. A leaf: the rules and the model read it.

/// Label/tag value marking what this job created.
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "epinio-irsa";
/// Tag naming the installation that owns an IAM object: `<cluster>/<namespace>/<release>`.
pub const OWNER_TAG: &str = "epinio-irsa/owner";
/// Tags reserved for the job itself; users may not set them through `EPINIO_IRSA_TAGS`.
pub const RESERVED_TAG_PREFIX: &str = "epinio-irsa/";

/// IAM allows at most 50 tags per object; we use up to 4 of our own.
pub(super) const MAX_USER_TAGS: usize = 46;
/// A role holds at most 10 managed policies by default; one is ours.
pub(super) const MAX_EXTRA_POLICIES: usize = 9;
