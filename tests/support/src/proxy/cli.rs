//! The `fault-proxy` command (`src/bin/fault-proxy.rs`): its options and entry point.

use std::io::{self, Write as _};
use std::time::Duration;

use super::{Proxy, Rule};

/// Options of the `fault-proxy` command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CliOptions {
    pub upstream: String,
    pub port: u16,
    pub delay: Duration,
    pub log: Option<std::path::PathBuf>,
    pub rules: Vec<Rule>,
    pub crash_after_writes: Option<usize>,
    /// `CLUSTER=STATUS`: the Pod Identity agent add-on the stand-in reports for that cluster.
    pub pod_identity_agents: Vec<(String, String)>,
}

pub const CLI_USAGE: &str = "usage: fault-proxy --upstream URL [--port P] [--delay-ms N] \
[--log FILE.jsonl] [--fault OP=FAULT[*TIMES][@AFTER]]... [--crash-after-writes K] \
[--pod-identity-agent CLUSTER=STATUS]...";

impl CliOptions {
    /// Parse arguments (without the program name). `--opt value` and
    /// `--opt=value` are accepted.
    pub fn parse<I, S>(args: I) -> Result<CliOptions, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut opts = CliOptions::default();
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flag == "-h" || flag == "--help" {
                return Err(CLI_USAGE.to_string());
            }
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{flag} needs a value\n{CLI_USAGE}"))
            };
            match flag.as_str() {
                "--upstream" => opts.upstream = value()?,
                "--port" => opts.port = value()?.parse().map_err(|_| "bad --port".to_string())?,
                "--delay-ms" => {
                    let ms: u64 = value()?.parse().map_err(|_| "bad --delay-ms".to_string())?;
                    opts.delay = Duration::from_millis(ms);
                }
                "--log" => opts.log = Some(value()?.into()),
                "--fault" => opts.rules.push(Rule::parse(&value()?)?),
                "--crash-after-writes" => {
                    let k = value()?
                        .parse()
                        .map_err(|_| "bad --crash-after-writes".to_string())?;
                    opts.crash_after_writes = Some(k);
                }
                "--pod-identity-agent" => {
                    let v = value()?;
                    let (cluster, status) = v.split_once('=').ok_or_else(|| {
                        format!("--pod-identity-agent {v:?}: want CLUSTER=STATUS")
                    })?;
                    opts.pod_identity_agents
                        .push((cluster.to_string(), status.to_string()));
                }
                other => return Err(format!("unknown argument {other:?}\n{CLI_USAGE}")),
            }
        }
        if opts.upstream.is_empty() {
            return Err(format!("--upstream is required\n{CLI_USAGE}"));
        }
        Ok(opts)
    }
}

/// Entry point of the `fault-proxy` binary: parse `args` (without the
/// program name), start the proxy, print `listening on http://127.0.0.1:P`
/// and serve until the process is killed. With `--log`, one JSON line
/// ([`CallRecord`](super::CallRecord)) is appended per call as soon as it completes.
///
/// `tests/support/src/bin/fault-proxy.rs`:
/// ```no_run
/// #[tokio::main]
/// async fn main() {
///     if let Err(e) = testkit::proxy::cli_main(std::env::args().skip(1)).await {
///         eprintln!("fault-proxy: {e}");
///         std::process::exit(2);
///     }
/// }
/// ```
pub async fn cli_main<I, S>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let opts = CliOptions::parse(args)?;
    let proxy = Proxy::start_on(&opts.upstream, opts.port)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(path) = &opts.log {
        proxy
            .set_log_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    proxy.set_delay(opts.delay);
    for rule in opts.rules {
        proxy.add_rule(rule);
    }
    proxy.crash_after_writes(opts.crash_after_writes);
    for (cluster, status) in &opts.pod_identity_agents {
        proxy
            .pod_identity()
            .install_agent_on(cluster, status, "v1.3.4-eksbuild.1");
    }
    println!("listening on {}", proxy.url());
    let _ = io::stdout().flush();
    std::future::pending::<()>().await;
    Ok(())
}
