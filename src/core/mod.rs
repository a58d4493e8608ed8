//! The deciding core: from the desired state (`plan`) and the actual state (`state`), what to do,
//! and every check that must pass before the first write. No I/O; `crate::hook` reads, calls these,
//! hands the results to the edges and reports.
//!
//! - `ownership`: whose an object is, and whether this run may write or remove it;
//! - `roles`: role steps; `service_accounts`: ServiceAccount steps, restarts and removals;
//! - `mechanism`: IRSA or EKS Pod Identity; `associations`: Pod Identity association steps.

mod associations;
mod mechanism;
mod ownership;
mod roles;
mod service_accounts;
#[cfg(test)]
mod tests;

pub use associations::*;
pub use mechanism::*;
pub use ownership::*;
pub use roles::*;
pub use service_accounts::*;
