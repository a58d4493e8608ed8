//! The `epinio-irsa` command: parses the command line, reads the configuration, sets up
//! logging, runs one command and reports the outcome (stdout: summary; stderr and
//! /dev/termination-log: the final error).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use epinio_irsa::config::{self, Config, LogFormat};
use epinio_irsa::{hook, Error};

const USAGE: &str = "\
epinio-irsa: IAM roles for service accounts (IRSA) for Epinio on Amazon EKS

Usage: epinio-irsa <COMMAND>

Commands:
  provision         create or repair the OIDC provider, S3 policy, roles and ServiceAccount
                    annotations, then restart the workloads that need the new credentials
  teardown          remove what provision made for this installation, and nothing else
  plan              print what provision would do and the full policy documents; writes nothing
  plan teardown     print what teardown would remove and keep; writes nothing
  verify            prove ServiceAccount token -> STS -> S3 for every managed ServiceAccount
                    (the IRSA checklist plus live calls); writes nothing but token requests
  installer-policy  print the least-privilege IAM policy the job itself needs
  gateway           serve Epinio's bucket as an S3 endpoint that holds the IAM role
                    (long-running; configured by EPINIO_IRSA_GATEWAY_* only)

Options:
  -h, --help        print this help
  -V, --version     print the version

Configuration comes from EPINIO_IRSA_* environment variables (see the README), plus the
standard AWS_REGION, AWS_ENDPOINT_URL, AWS credential chain, KUBECONFIG and RUST_LOG.
";

const GATEWAY_USAGE: &str = "\
epinio-irsa gateway: serve Epinio's bucket as an S3 endpoint that holds the IAM role

Usage: epinio-irsa gateway

Epinio signs with its cluster-local key pair (s3.accessKeyID / s3.secretAccessKey); the
gateway checks SigV4, admits only Epinio's bucket and the operations, query parameters and
headers Epinio's clients send, and forwards with the role's short-lived credentials.

Settings (environment):
  EPINIO_IRSA_GATEWAY_BUCKET                     Epinio's bucket (required)
  EPINIO_IRSA_GATEWAY_REGION                     the bucket's region (default: AWS_REGION)
  EPINIO_IRSA_GATEWAY_LISTEN                     S3 listener (default 0.0.0.0:9000)
  EPINIO_IRSA_GATEWAY_HEALTH_LISTEN              /livez /readyz /credentials (default 0.0.0.0:9090)
  EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE            file with Epinio's access key id
                                                 (default /etc/epinio-irsa-gateway/keys/accessKeyID)
  EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE            file with Epinio's secret key
                                                 (default /etc/epinio-irsa-gateway/keys/secretAccessKey)
  EPINIO_IRSA_GATEWAY_TLS_CERT_FILE              PEM certificate chain; with the key: serve HTTPS
  EPINIO_IRSA_GATEWAY_TLS_KEY_FILE               PEM private key
  EPINIO_IRSA_GATEWAY_PATH_STYLE                 address the backend path-style (default false)
  EPINIO_IRSA_GATEWAY_MAX_CONNECTIONS            connections served at once, 1-65536 (default 1024)
  EPINIO_IRSA_GATEWAY_HEADER_READ_TIMEOUT_SECONDS  time to send a request's headers (default 10)
  EPINIO_IRSA_GATEWAY_DRAIN_SECONDS              shutdown's wait for requests in flight (default 25)
  EPINIO_IRSA_GATEWAY_LOG_FORMAT                 text or json (default text)
  RUST_LOG                                       log levels (crates that could log secrets stay quiet)

Credentials: only the role's, from web identity (IRSA: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)
or the container endpoint (EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI). Static keys,
profiles and instance metadata are never used.
";

const TERMINATION_LOG: &str = "/dev/termination-log";
/// Where the final error goes instead of [`TERMINATION_LOG`]: for tests, and for pods whose
/// `terminationMessagePath` is not the default.
const TERMINATION_LOG_ENV: &str = "EPINIO_IRSA_TERMINATION_LOG";

#[derive(Clone, Copy)]
enum Command {
    Provision,
    Teardown,
    Plan,
    PlanTeardown,
    Verify,
    InstallerPolicy,
    Gateway,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["-h" | "--help" | "help"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ["-V" | "--version"] => {
            println!("epinio-irsa {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        ["gateway", "-h" | "--help" | "help"] => {
            print!("{GATEWAY_USAGE}");
            return ExitCode::SUCCESS;
        }
        ["provision"] => Command::Provision,
        ["teardown"] => Command::Teardown,
        ["plan"] => Command::Plan,
        ["plan", "teardown"] => Command::PlanTeardown,
        ["verify"] => Command::Verify,
        ["installer-policy"] => Command::InstallerPolicy,
        ["gateway"] => Command::Gateway,
        _ => {
            eprint!("error: expected exactly one command\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The gateway has its own configuration: dispatched before the hook's is read.
    if let Command::Gateway = command {
        return match epinio_irsa::gateway::run(std::env::vars()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e, LogFormat::Text),
        };
    }
    let config = match config::from_pairs(std::env::vars()) {
        Ok(c) => c,
        Err(e) => return fail(&Error::from(e), LogFormat::Text),
    };
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let deadline = config.deadline;
    let outcome = runtime.block_on(async {
        tokio::time::timeout(deadline, execute(command, &config))
            .await
            .unwrap_or(Err(Error::Deadline {
                seconds: deadline.as_secs(),
            }))
    });
    match outcome {
        Ok((output, warnings)) => {
            // Text: each warning once, in the summary. JSON: also one event per warning, for
            // log pipelines that read only the structured stream.
            if config.log_format == LogFormat::Json {
                for warning in &warnings {
                    tracing::warn!(%warning, "warning");
                }
            }
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, config.log_format),
    }
}

/// The command's stdout, and the warnings its summary carries (logged as events too in JSON).
async fn execute(command: Command, config: &Config) -> Result<(String, Vec<String>), Error> {
    let report = match command {
        Command::Provision => hook::provision(config, false).await?,
        Command::Plan => hook::provision(config, true).await?,
        Command::Teardown => hook::teardown(config, false).await?,
        Command::PlanTeardown => hook::teardown(config, true).await?,
        Command::Verify => hook::verify(config).await?,
        Command::InstallerPolicy => {
            return Ok((hook::installer_policy(config).await? + "\n", Vec::new()))
        }
        Command::Gateway => unreachable!("dispatched before the hook's configuration is read"),
    };
    Ok((report.render(config.output_width), report.warnings))
}

/// The final error, once on stderr (and as an event too in JSON), and in the termination log.
fn fail(error: &dyn std::fmt::Display, format: LogFormat) -> ExitCode {
    let message = format!("error: {error}");
    if format == LogFormat::Json {
        tracing::error!(error = %error, "failed");
    }
    eprintln!("{message}");
    // Best effort: the path exists only in a pod, where `kubectl describe pod` shows it.
    let path = std::env::var_os(TERMINATION_LOG_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| TERMINATION_LOG.into());
    let _ = std::fs::write(path, &message);
    ExitCode::FAILURE
}

fn init_tracing(format: LogFormat) {
    epinio_irsa::logging::init(format, epinio_irsa::logging::Ceiling::None);
}

#[cfg(test)]
mod tests {
    use epinio_irsa::config::colour;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
