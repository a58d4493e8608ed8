//! What the plan starts from and is bounded by: the discovered [`Facts`], the provider ARN
//! they name, the STS audience, and IAM's limits. A leaf: `documents`, `names` and the rest of
//! `plan` read it.

use crate::arn::{Account, Partition};
use crate::config::Mechanism;

/// IAM's default limit on a role's trust policy.
pub const MAX_TRUST_POLICY_CHARS: usize = 2048;
/// IAM's limit on a managed policy document (white space not counted).
pub const MAX_POLICY_CHARS: usize = 6144;
pub const MAX_ROLE_NAME: usize = 64;
pub const MAX_POLICY_NAME: usize = 128;

pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// What the cluster and account look like, as discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub partition: Partition,
    pub account_id: String,
    /// The cluster's OIDC issuer URL, `https://oidc.eks.<region>.amazonaws.com/id/<ID>`.
    pub issuer_url: String,
    pub cluster_arn: String,
    /// How pods get the role, as the mode setting and the cluster decided it.
    pub mechanism: Mechanism,
}

impl Facts {
    /// The issuer without scheme: the provider's identity in ARNs and condition keys.
    pub fn issuer_host_path(&self) -> &str {
        self.issuer_url
            .strip_prefix("https://")
            .unwrap_or(&self.issuer_url)
            .trim_end_matches('/')
    }

    pub fn account(&self) -> Account {
        Account::new(self.partition, &self.account_id)
    }
}

pub fn provider_arn(facts: &Facts) -> String {
    facts.account().oidc_provider(facts.issuer_host_path())
}
