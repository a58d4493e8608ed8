//! The Helm hook's commands: `provision` (and `plan`, its dry run), `verify`, `teardown` (and
//! `plan teardown`) and `installer-policy`. Each reads, asks the pure decisions (`crate::core`,
//! `crate::plan`, `crate::epinio`) what to do, applies it through the edges (`crate::aws`,
//! `crate::k8s`, which only read or write: a dry run never reaches them) and reports
//! (`crate::report`).
//!
//! - `context`: what every command shares (the clients, made once; the configuration in force,
//!   replaced by the effective one once discovery has run; the pairs of ServiceAccount and role);
//! - `discover`: cluster facts, the agent, the Epinio really running, associations;
//! - `provision` with its IAM and EKS rounds in `apply` and the removal of the other
//!   arrangement's leftovers in `switch`; `teardown`; the removals both share in `remove`;
//! - `verify` (and `verify_gateway`, Epinio's path through the gateway), `installer_policy`.

mod apply;
mod context;
mod discover;
mod installer_policy;
mod provision;
mod remove;
mod switch;
mod teardown;
mod verify;
mod verify_gateway;

pub use context::{kube, AwsClients, Ctx};
pub use installer_policy::installer_policy;
pub use provision::provision;
pub use teardown::teardown;
pub use verify::verify;
