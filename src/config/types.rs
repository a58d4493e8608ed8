//! Validated values: each type can only hold a value its rule (`rules`) accepts, so code that
//! gets a `Bucket` or a `RoleName` never re-checks it. `FromStr` errors say what is allowed;
//! `config::from_pairs` adds the variable's name.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use super::rules;
use crate::arn::Partition;

macro_rules! validated {
    ($($(#[$doc:meta])* $name:ident => $rule:path;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $rule(s).map(|()| $name(s.to_string()))
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A value known to satisfy the rule (a default); checked in debug builds.
            #[allow(dead_code)]
            pub(crate) fn from_static(s: &'static str) -> Self {
                debug_assert!($rule(s).is_ok(), "{s}");
                $name(s.to_string())
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    )*};
}

validated! {
    /// An EKS cluster name.
    ClusterName => rules::cluster_name;
    /// A Kubernetes namespace (RFC 1123 label).
    Namespace => rules::dns_label;
    /// A Helm release name.
    ReleaseName => rules::release_name;
    /// A Kubernetes ServiceAccount name (RFC 1123 subdomain).
    ServiceAccountName => rules::dns_subdomain;
    /// An S3 general purpose bucket name.
    Bucket => rules::bucket;
    /// An IAM role name.
    RoleName => rules::role_name;
    /// An IAM policy name.
    PolicyName => rules::policy_name;
    /// An IAM path, `/` or `/a/b/`.
    IamPath => rules::iam_path;
    /// A managed policy ARN, in any partition.
    PolicyArn => rules::policy_arn;
    /// A 12-digit AWS account id.
    AccountId => rules::account_id;
    /// An AWS region in a known partition.
    Region => rules::region;
}

impl Region {
    pub fn partition(&self) -> Partition {
        // The rule only accepts regions that have a partition.
        Partition::of_region(&self.0).unwrap_or(Partition::Aws)
    }
}

impl PolicyArn {
    pub fn partition(&self) -> Option<Partition> {
        crate::arn::Arn::from_str(&self.0).ok().map(|a| a.partition)
    }
}
