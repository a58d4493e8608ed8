//! The deciding core: from the desired state (`plan`) and the actual state (`state`), what to do,
//! and every check that must pass before the first write. No I/O; `crate::hook` reads, calls these,
//! hands the results to the edges and reports.
//!
//! - `managed`: which ServiceAccounts and roles the job manages, and the effective configuration;
//! - `ownership`: whose an object is, and whether this run may write or remove it;
//! - `policy`: the S3 policy's step (create, publish a version, tags, adopt);
//! - `removal`: what teardown and a switch remove of each ServiceAccount, role and association;
//! - `roles`: role steps; `service_accounts`: ServiceAccount steps, restarts and removals;
//! - `mechanism`: IRSA or EKS Pod Identity; `associations`: Pod Identity association steps.

mod associations;
mod managed;
mod mechanism;
mod ownership;
mod policy;
mod removal;
mod roles;
mod service_accounts;
#[cfg(test)]
mod tests;

pub use associations::*;
pub use managed::*;
pub use mechanism::*;
pub use ownership::*;
pub use policy::*;
pub use removal::*;
pub use roles::*;
pub use service_accounts::*;
