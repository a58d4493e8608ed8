//! epinio-irsa: IAM roles for service accounts (IRSA) for Epinio on Amazon EKS, as a Helm hook.
//!
//! - shared by both commands: `config` (the hook's environment contract, read and validated
//!   once), `aws` (the AWS edges), `error` (a leaf), `retry`, `arn`, `vocab` (shared words),
//!   `logging` (one subscriber; for the gateway, a ceiling for crates that could log secrets);
//! - the hook's decisions, pure: `plan` (desired state and documents), `core` (what to do about
//!   the actual state, `state`), `epinio` (versions and compatibility), `aws_actions` (the action
//!   catalog and installer policy), `checklist`, `report`;
//! - the hook's commands: `hook` (provision, plan, verify, teardown, installer-policy) over the
//!   edges `aws` and `k8s`;
//! - `gateway`: the `gateway` command, a long-running S3 endpoint that holds the role for
//!   Epinio versions that cannot use one (its own configuration, errors and modules).

#![forbid(unsafe_code)]

pub mod arn;
pub mod aws;
pub mod aws_actions;
pub mod checklist;
pub mod config;
pub mod core;
pub mod epinio;
pub mod error;
pub mod gateway;
pub mod hook;
pub mod k8s;
pub mod logging;
pub mod plan;
pub mod report;
pub mod retry;
pub mod state;
pub mod vocab;

pub use error::{Error, Result};
pub use report::{Item, Report};
pub use vocab::Change;
