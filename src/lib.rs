//! epinio-irsa: IAM roles for service accounts (IRSA) for Epinio on Amazon EKS, as a Helm hook.
//!
//! - `config`: the environment contract, read and validated once.
//! - `arn`, `access`: partitions and ARNs; the catalog of AWS actions the job calls, from which
//!   `installer-policy` is built.
//! - `plan`: the desired state (names, documents, tags), pure.
//! - `state`: actual state as the edges read it; `core`: what to do about it and every check
//!   before the first write, pure.
//! - `aws/{iam,eks,sts}`, `k8s`: the edges, one `read` / `ensure` / `remove` per resource kind.
//! - `epinio`: Epinio's versions, the compatibility table and the ServiceAccounts it really
//!   uses, decided from what discovery read, pure.
//! - `retry`: the one bounded retry loop both edges use.
//! - `run`: reads, asks `core`, applies, reports (`report`).
//! - `checklist` (pure) and `verify`: the IRSA checklist on what is there, and the live chain
//!   token -> STS -> S3.
//! - `error`: every error, a leaf module.
//! - `gateway`: the `gateway` command, a long-running S3 endpoint that holds the role for
//!   Epinio versions that cannot use one (own configuration, errors and modules).

#![forbid(unsafe_code)]

pub mod access;
pub mod arn;
pub mod aws;
pub mod checklist;
pub mod config;
pub mod core;
pub mod epinio;
pub mod error;
pub mod gateway;
pub mod k8s;
pub mod plan;
pub mod report;
pub mod retry;
pub mod run;
pub mod state;
pub mod verify;

pub use error::{Error, Result};
pub use report::{Change, Item, Report};
