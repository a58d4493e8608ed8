//! One log subscriber for both commands; for the gateway, with a ceiling that no `RUST_LOG`
//! setting lifts.
//!
//! `RUST_LOG` (the chart's `irsa.logLevel`) picks levels per target, and a more specific
//! target overrides a general one, so silencing by adding directives is not enough:
//! `aws_sigv4::http_request=trace` would log a canonical request with an SSE-C key in it, and
//! `s3s::ops::signature=debug` the correct signature for a request that was refused. So each
//! event also passes [`allowed`], applied after `RUST_LOG`:
//! - this crate's own events: as `RUST_LOG` says (they never carry a secret);
//! - s3s: never (it logs whole requests and signatures; the gateway's own line per request
//!   says what happened);
//! - crates that see requests, headers, signatures or credentials (the SDK's signing and HTTP
//!   stack, hyper, rustls, kube's client): warnings and errors only;
//! - every other crate: up to info.
//!
//! The hook keeps what `RUST_LOG` asks for, the SDK's traces included: it handles no request
//! of anyone else's, the SDK redacts credentials in its own traces, and `tests/secrets.rs`
//! runs every command at `RUST_LOG=trace` and finds no secret in what it prints.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{stderr_colour, LogFormat};

/// Never logged at all.
const SILENT: &[&str] = &["s3s"];

/// Logged at warning and error only.
const QUIET: &[&str] = &[
    "aws_sigv4",
    "aws_smithy",
    "aws_sdk",
    "aws_credential_types",
    "aws_runtime",
    "hyper",
    "h2",
    "http",
    "rustls",
    "tokio_rustls",
    "kube",
    "tower",
    "reqwest",
];

/// Whether an event of `target` at `level` may be written, whatever `RUST_LOG` says.
pub fn allowed(target: &str, level: Level) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    let matches = |list: &[&str]| {
        list.iter()
            .any(|p| crate_name == *p || crate_name.starts_with(&format!("{p}_")))
    };
    if crate_name == "epinio_irsa" {
        true
    } else if matches(SILENT) {
        false
    } else if matches(QUIET) {
        level <= Level::WARN
    } else {
        level <= Level::INFO
    }
}

/// Whether [`init`] applies the ceiling of [`allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    /// The gateway: [`allowed`] after `RUST_LOG`.
    Secrets,
    /// The hook: `RUST_LOG` alone.
    None,
}

/// Installs the subscriber: `RUST_LOG` (default `info`), then (for the gateway) [`allowed`],
/// to stderr as text or one JSON object per line. A subscriber an embedding program set
/// already stays.
pub fn init(format: LogFormat, ceiling: Ceiling) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ceiling = filter_fn(move |meta: &Metadata<'_>| {
        ceiling == Ceiling::None || allowed(meta.target(), *meta.level())
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colour())
        .with_target(false);
    let layer = match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(env.and(ceiling)))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_that_carry_secrets_stay_quiet_at_any_level() {
        for target in ["s3s", "s3s::ops::signature", "s3s_aws::proxy"] {
            assert!(!allowed(target, Level::ERROR), "{target}");
        }
        for target in [
            "aws_sigv4::http_request::sign",
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime_api::client",
            "aws_smithy_http_client::hyper",
            "hyper::proto::h1::role",
            "hyper_util::client",
            "rustls::server::hs",
            "kube_client::client",
        ] {
            assert!(allowed(target, Level::WARN), "{target}");
            assert!(!allowed(target, Level::INFO), "{target}");
            assert!(!allowed(target, Level::TRACE), "{target}");
        }
        assert!(allowed("aws_config::meta", Level::INFO));
        assert!(!allowed("aws_config::meta", Level::DEBUG));
        assert!(allowed("epinio_irsa::gateway::log", Level::TRACE));
    }
}
