//! `kube-standin`: the Kubernetes API stand-in as a process, for shell demos
//! and benchmarks. Serves until killed.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;
use testkit::kube::KubeStandIn;

const USAGE: &str =
    "usage: kube-standin [--port P] [--seed FILE.json] [--kubeconfig PATH [--namespace NS]]
                    [--rollouts MS]

  --port P           listen on 127.0.0.1:P (default: a free port)
  --seed FILE.json   objects to start with: a JSON array or a List ({\"items\": [...]});
                     objects without metadata.namespace go to --namespace
  --kubeconfig PATH  write a kubeconfig for the server to PATH
  --namespace NS     namespace of the kubeconfig's context (default: default)
  --rollouts MS      run the Deployment controller: a rollout completes MS ms after the
                     Deployment's generation moves (default: off, status stays as written)

Prints `listening on http://127.0.0.1:P` once it serves.";

struct Args {
    port: u16,
    seed: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    namespace: String,
    rollouts: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        seed: None,
        kubeconfig: None,
        namespace: "default".to_owned(),
        rollouts: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--seed" => args.seed = Some(value.into()),
            "--kubeconfig" => args.kubeconfig = Some(value.into()),
            "--namespace" => args.namespace = value,
            "--rollouts" => {
                args.rollouts = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--rollouts {value}: {e}"))?,
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn seed_objects(path: &PathBuf, namespace: &str) -> Result<Vec<Value>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--seed {}: {e}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("--seed {}: {e}", path.display()))?;
    let items = match doc {
        Value::Array(items) => items,
        Value::Object(mut list) => match list.remove("items") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(format!(
                    "--seed {}: an object must be a List with items",
                    path.display()
                ))
            }
        },
        _ => {
            return Err(format!(
                "--seed {}: want a JSON array or a List",
                path.display()
            ))
        }
    };
    items
        .into_iter()
        .map(|mut obj| {
            if obj.pointer("/metadata/namespace").is_none() {
                let no_metadata = format!(
                    "--seed {}: an object has no metadata: {obj}",
                    path.display()
                );
                obj.pointer_mut("/metadata")
                    .and_then(Value::as_object_mut)
                    .ok_or(no_metadata)?
                    .insert("namespace".into(), namespace.into());
            }
            for required in ["/apiVersion", "/kind", "/metadata/name"] {
                if obj.pointer(required).and_then(Value::as_str).is_none() {
                    return Err(format!(
                        "--seed {}: {required} missing in {obj}",
                        path.display()
                    ));
                }
            }
            Ok(obj)
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("kube-standin: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seed = match args
        .seed
        .as_ref()
        .map(|p| seed_objects(p, &args.namespace))
        .transpose()
    {
        Ok(seed) => seed.unwrap_or_default(),
        Err(e) => {
            eprintln!("kube-standin: {e}");
            return ExitCode::from(2);
        }
    };
    let standin =
        match KubeStandIn::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await {
            Ok(standin) => standin,
            Err(e) => {
                eprintln!(
                    "kube-standin: cannot listen on 127.0.0.1:{}: {e}",
                    args.port
                );
                return ExitCode::FAILURE;
            }
        };
    for obj in seed {
        standin.seed(obj);
    }
    if let Some(ms) = args.rollouts {
        standin.enable_rollouts(std::time::Duration::from_millis(ms));
    }
    if let Some(path) = &args.kubeconfig {
        if let Err(e) = standin.write_kubeconfig(path, &args.namespace) {
            eprintln!(
                "kube-standin: cannot write kubeconfig {}: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let mut stdout = std::io::stdout();
    // Scripts wait for this line; it must not sit in a buffer.
    let _ = writeln!(stdout, "listening on {}", standin.url());
    let _ = stdout.flush();
    // SIGTERM and ctrl-c end the process through their default action; there
    // is nothing to flush or clean up.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
