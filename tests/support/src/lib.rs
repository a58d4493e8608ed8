//! Test support for epinio-irsa: a stateful Kubernetes API stand-in
//! ([`kube`]), a moto (AWS emulator) launcher ([`moto`]) and a fault and
//! latency proxy ([`proxy`]). Shared by the integration tests, the shell demos
//! and the benchmarks.
#![forbid(unsafe_code)]

pub mod argocd;
pub mod epinio;
pub mod gateway;
pub mod gateway_agent;
pub mod gateway_cut;
pub mod gateway_fs;
pub mod gateway_load;
pub mod gateway_pieces;
pub mod gateway_process;
pub mod gateway_recorder;
pub mod gateway_wire;
pub mod iam_eval;
pub mod kube;
pub mod moto;
pub mod pod_identity;
pub mod proxy;
pub mod world;
