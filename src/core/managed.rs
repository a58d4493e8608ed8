//! Which ServiceAccounts and roles the job manages (the gateway's in gateway mode, else Epinio's
//! server and, when it has its own, staging), which ones the other arrangement had, and the
//! configuration discovery makes effective (the ServiceAccounts Epinio really uses).

use crate::config::{Config, Mechanism, ServiceAccountName};
use crate::epinio::{self, Configured, Resolved};
use crate::error::{ConfigError, ConfigErrors, Error};
use crate::plan::Names;
use crate::state::EpinioObjects;

use super::Pair;

/// The ServiceAccounts the job manages, server first: read before the cluster's facts (and so
/// the role names) are known.
pub fn service_account_names(config: &Config) -> Vec<String> {
    if config.gateway_mode() {
        vec![config.gateway.service_account.to_string()]
    } else {
        epinio_service_accounts(config)
    }
}

/// Each managed ServiceAccount with its role's name.
pub fn managed_pairs(config: &Config, names: &Names) -> Vec<Pair> {
    if config.gateway_mode() {
        gateway_pair(config, names)
    } else {
        epinio_pairs(config, names)
    }
}

/// The other arrangement's ServiceAccounts and roles, which a switch into or out of gateway
/// mode removes (and teardown removes with the managed ones).
pub fn other_pairs(config: &Config, names: &Names) -> Vec<Pair> {
    if config.gateway_mode() {
        epinio_pairs(config, names)
    } else {
        gateway_pair(config, names)
    }
}

fn gateway_pair(config: &Config, names: &Names) -> Vec<Pair> {
    vec![Pair {
        service_account: config.gateway.service_account.to_string(),
        role: names.gateway_role.clone(),
    }]
}

/// Epinio's server and, when it has its own, staging.
fn epinio_service_accounts(config: &Config) -> Vec<String> {
    let mut sas = vec![config.server_service_account.to_string()];
    if !config.staging_is_shared() {
        sas.push(config.staging_service_account.to_string());
    }
    sas
}

/// `Names` has a staging role exactly when staging has its own ServiceAccount.
fn epinio_pairs(config: &Config, names: &Names) -> Vec<Pair> {
    let roles = std::iter::once(&names.server_role).chain(names.staging_role.as_ref());
    epinio_service_accounts(config)
        .into_iter()
        .zip(roles)
        .map(|(service_account, role)| Pair {
            service_account,
            role: role.clone(),
        })
        .collect()
}

/// What the configuration says of Epinio's ServiceAccounts, for `epinio::resolve`.
pub fn configured(config: &Config, mechanism: Mechanism) -> Configured<'_> {
    Configured {
        server: &config.server_service_account,
        server_given: config.server_service_account_given,
        staging: &config.staging_service_account,
        staging_given: config.staging_service_account_given,
        legacy_staging: config.legacy_staging_service_account.as_deref(),
        allow_unsupported: config.allow_unsupported_epinio,
        mechanism,
    }
}

/// The configuration with the ServiceAccounts Epinio really uses.
pub fn effective(config: &Config, resolved: &Resolved) -> Result<Config, Error> {
    let parse = |sa: &str| {
        sa.parse::<ServiceAccountName>().map_err(|allowed| {
            Error::Config(ConfigErrors(vec![ConfigError {
                variable: "(discovered ServiceAccount)",
                value: sa.to_string(),
                allowed,
            }]))
        })
    };
    let mut eff = config.clone();
    eff.server_service_account = parse(&resolved.server_service_account)?;
    eff.staging_service_account = match &resolved.staging_service_account {
        Some(sa) => parse(sa)?,
        // Staging cannot get a role: manage the server's only.
        None => eff.server_service_account.clone(),
    };
    Ok(eff)
}

/// Both arrangements' ServiceAccounts with their roles' names, the managed ones first (how
/// many is the second value), then what a switch into or out of gateway mode may have left.
pub fn all_pairs(config: &Config, names: &Names) -> (Vec<Pair>, usize) {
    let mut pairs = managed_pairs(config, names);
    let managed = pairs.len();
    pairs.extend(other_pairs(config, names));
    (pairs, managed)
}

/// The configuration with the ServiceAccounts Epinio uses, never refusing: either mechanism's
/// ServiceAccounts are the same ones, only the Epinio check differs. When they cannot be
/// resolved, the configuration's, with a warning (none in gateway mode, where Epinio's only
/// matter if an earlier run managed them).
pub fn lenient(
    config: &Config,
    epinio: Option<&EpinioObjects>,
) -> Result<(Config, Option<String>), Error> {
    let mut lenient = configured(config, Mechanism::Irsa);
    lenient.allow_unsupported = true;
    Ok(match epinio::resolve(&lenient, epinio) {
        Ok(resolved) => (effective(config, &resolved)?, None),
        Err(_) if config.gateway_mode() => (config.clone(), None),
        Err(e) => (
            config.clone(),
            Some(format!(
                "{e} (teardown used the configuration's ServiceAccounts)"
            )),
        ),
    })
}

/// The summary's warning when ServiceAccounts were annotated and restarts are off.
pub fn restart_warning(config: &Config, annotated: bool) -> Option<String> {
    (!config.restart_workloads && annotated).then(|| "EPINIO_IRSA_RESTART_WORKLOADS=false: pods started before the role annotation get no IAM credentials until they are restarted".to_string())
}

/// The warning when an installer policy from before Pod Identity denies an association read
/// where none is needed to converge (IRSA mode, teardown).
pub fn associations_unreadable(namespace: &str, service_account: &str, error: &str) -> String {
    format!("could not read the EKS Pod Identity associations of ServiceAccount {namespace}/{service_account} ({error}); an association left from pod-identity mode would stay: grant the eks:*PodIdentityAssociation* statement of `epinio-irsa installer-policy`")
}
