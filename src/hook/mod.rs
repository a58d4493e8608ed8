//! The Helm hook's commands: `provision` (and `plan`, its dry run), `verify`, `teardown` and
//! `installer-policy`. Each reads, asks the pure decisions (`crate::core`, `crate::plan`,
//! `crate::epinio`) what to do, applies it through the edges (`crate::aws`, `crate::k8s`) and
//! reports (`crate::report`).
//!
//! - `context`: what every command shares (clients, names, this cluster's Pod Identity edge);
//! - `discover`: cluster facts, the agent, the Epinio really running, associations;
//! - `provision` (its writes in `apply`), `verify`, `teardown`, `installer_policy`: one file
//!   per command.

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
