//! Epinio in gateway mode: every version works (its S3 client signs with a key pair to the
//! gateway), so nothing is refused; its ServiceAccounts are still resolved for the removal of
//! what an earlier run outside gateway mode gave them.

use super::{resolve, Configured, Resolved};
use crate::config::Mechanism;
use crate::state::EpinioObjects;

/// Gateway mode: Epinio's S3 client talks to the gateway with a key pair, so every version
/// works and nothing is refused. Epinio's ServiceAccounts are still resolved (leniently, as
/// teardown does), because what an earlier run outside gateway mode gave them is removed; when
/// they cannot be, the configuration's are used. The summary keeps the version line and says
/// how S3 is reached.
pub fn through_gateway(cfg: &Configured, objects: Option<&EpinioObjects>) -> Resolved {
    let lenient = Configured {
        allow_unsupported: true,
        mechanism: Mechanism::Irsa,
        ..cfg.clone()
    };
    let gateway = "S3 through the gateway: yes, for every Epinio from 1.6 (Epinio signs with a cluster-local key pair; the gateway holds the role)";
    match resolve(&lenient, objects) {
        Ok(r) => Resolved {
            epinio: format!("{}\n{gateway}", r.epinio.lines().next().unwrap_or_default()),
            warnings: Vec::new(),
            ..r
        },
        Err(_) => Resolved {
            server_service_account: cfg.server.to_string(),
            staging_service_account: Some(cfg.staging.to_string()),
            epinio: format!("Epinio's own ServiceAccounts taken from the configuration\n{gateway}"),
            warnings: Vec::new(),
        },
    }
}
