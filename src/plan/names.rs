//! The resource names: the roles (server, staging, gateway) and the policy, known from the
//! configuration alone, bounded to IAM's limits and unique per cluster and namespace.

use sha2::{Digest, Sha256};

use super::facts::{MAX_POLICY_NAME, MAX_ROLE_NAME};
use crate::config::Config;

/// The resource names, known from configuration alone (no account needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub server_role: String,
    /// `None` when the staging ServiceAccount is the server's: one role serves both.
    pub staging_role: Option<String>,
    /// The gateway's role (gateway mode).
    pub gateway_role: String,
    pub policy: String,
    /// Gateway mode: the gateway's role is the one managed; the server's and staging's are
    /// what an earlier run outside gateway mode left, and the other way round.
    pub gateway: bool,
}

impl Names {
    pub fn new(config: &Config, cluster: &str) -> Names {
        let base = format!("epinio-{cluster}-{}", config.namespace);
        let key = format!("{cluster}\n{}", config.namespace);
        Names {
            server_role: config
                .server_role_name
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| bounded_name(&base, &key, "server", MAX_ROLE_NAME)),
            staging_role: (!config.staging_is_shared()).then(|| {
                config
                    .staging_role_name
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| bounded_name(&base, &key, "staging", MAX_ROLE_NAME))
            }),
            gateway_role: bounded_name(&base, &key, "gateway", MAX_ROLE_NAME),
            policy: config
                .policy_name
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| bounded_name(&base, &key, "s3", MAX_POLICY_NAME)),
            gateway: config.gateway_mode(),
        }
    }

    /// The roles this run manages.
    pub fn roles(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        if self.gateway {
            Box::new(std::iter::once(self.gateway_role.as_str()))
        } else {
            Box::new(self.epinio_roles())
        }
    }

    /// The roles of the other arrangement, which a switch into or out of gateway mode removes.
    pub fn other_roles(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        if self.gateway {
            Box::new(self.epinio_roles())
        } else {
            Box::new(std::iter::once(self.gateway_role.as_str()))
        }
    }

    /// The roles of Epinio's own ServiceAccounts (outside gateway mode).
    fn epinio_roles(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.server_role.as_str()).chain(self.staging_role.as_deref())
    }
}

/// `<readable prefix>-<hash>-<suffix>`, at most `max` characters. The hash covers the exact
/// cluster and namespace, so two installations never share a name even when their readable
/// parts run together (`a-b`/`c` versus `a`/`b-c`) or are truncated; the same input always
/// gives the same name.
pub fn bounded_name(readable: &str, key: &str, suffix: &str, max: usize) -> String {
    let hash = short_hash(key);
    let room = max - hash.len() - suffix.len() - 2;
    let prefix: String = readable.chars().take(room).collect();
    let prefix = prefix.trim_end_matches(['-', '_']);
    format!("{prefix}-{hash}-{suffix}")
}

fn short_hash(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..4])
}
