//! Why the gateway could not start or run. Request-level problems are S3 errors answered to
//! the client (see `access`, `forward`), never these.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigErrors;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid gateway configuration: {0}")]
    Config(#[from] ConfigErrors),
    #[error(
        "cannot listen on {addr} for the {listener}: {source}; choose another address or port"
    )]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the TLS {what} in {path}: {reason}")]
    Tls {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("aws-config gave no credential provider; the gateway needs its default chain (IRSA or EKS Pod Identity)")]
    NoCredentialChain,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}
