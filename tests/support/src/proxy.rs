//! An HTTP/1.1 forwarding proxy for tests and benchmarks, with fault
//! injection, added latency and a per-call log.
//!
//! The proxy sits between the job and moto (AWS emulator; the SDK is pointed
//! at the proxy with `AWS_ENDPOINT_URL`) or between the job and the
//! Kubernetes API stand-in. Every request is buffered, classified into an
//! operation name (see [`classify`]), optionally answered with an injected
//! fault (see [`Fault`] and [`Rule`]), and otherwise forwarded unchanged
//! (hop-by-hop headers aside; `Host` is kept as the client sent it, so SigV4
//! signatures stay valid).
//!
//! ```no_run
//! # async fn demo() {
//! use testkit::proxy::{Fault, Proxy, Rule};
//! let proxy = Proxy::start("http://127.0.0.1:5000").await;
//! proxy.add_rule(Rule::new("CreateRole", Fault::Throttling, 2));
//! // point the job at proxy.url() ...
//! let depth = testkit::proxy::critical_path_depth(&proxy.calls());
//! # let _ = depth;
//! # }
//! ```
//!
//! The same proxy can run as a standalone process for shell benchmarks, the demo and the
//! image tests, see [`cli_main`]. Either way it also serves the EKS Pod Identity stand-in
//! ([`crate::pod_identity`]) at the EKS endpoint.
//!
//! Its parts: [`Fault`] and [`Rule`] (`fault.rs`), the call log (`calls.rs`), [`classify`]
//! (`classify.rs`, `classify_kube.rs`, `parse.rs`), the injected responses (`inject.rs`), the
//! shared state (`state.rs`), connections and forwarding (`stream.rs`, `serve.rs`,
//! `forward.rs`, `standin.rs`), the [`Proxy`] handle (`control.rs`), the analysis helpers
//! (`analysis.rs`) and the command line (`cli.rs`).

mod analysis;
mod calls;
mod classify;
mod classify_kube;
mod cli;
mod control;
mod fault;
mod forward;
mod inject;
mod parse;
mod serve;
mod standin;
mod state;
mod stream;

pub use analysis::{critical_path_depth, duplicates, summarize, Summary};
pub use calls::{read_log, Call, CallRecord};
pub use classify::{classify, Classification, Protocol};
pub use cli::{cli_main, CliOptions, CLI_USAGE};
pub use control::Proxy;
pub use fault::{Fault, Rule};
pub use parse::percent_decode;

/// `service` value of Kubernetes API calls in [`Call`].
pub const KUBE_SERVICE: &str = "kube";
