//! Launches a private moto server (the AWS emulator the tests run IAM, EKS and
//! STS against) and gives tests the environment that points the AWS SDK at it.
//!
//! The project pins moto 5.2.5 in `.tools/venv` (installed by
//! `scripts/setup.sh`); a moto from `PATH` is deliberately not used, so every
//! machine tests against the same emulator. A missing moto is a test failure,
//! never a skip.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Overrides where `moto_server` is found.
pub const MOTO_SERVER_ENV: &str = "EPINIO_IRSA_MOTO_SERVER";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Region and account moto answers for; tests need nothing else.
pub const REGION: &str = "us-east-1";

/// A moto server on a free loopback port; the process is killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Moto {
    /// Spawns `moto_server` and waits (up to 20 s) until `GET /moto-api/`
    /// answers. Panics with moto's log if it does not.
    pub async fn start() -> Moto {
        Moto::start_with_env(&[]).await
    }

    /// Like [`Moto::start`], with extra environment for `moto_server` (for example
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, which turns on moto's IAM policy enforcement).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let program = moto_server_path();
        // The port can be taken between probing and moto binding it; a
        // second or third try with a fresh port settles that race.
        let mut last_failure = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "epinio-irsa-moto-{}-{port}.log",
                std::process::id()
            ));
            let log_file = File::create(&log)
                .unwrap_or_else(|e| panic!("cannot create moto log {}: {e}", log.display()));
            let stderr = log_file
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot share moto log {}: {e}", log.display()));
            let child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
            let mut moto = Moto { child, port, log };
            match moto.wait_until_ready().await {
                Ok(()) => return moto,
                Err(why) => last_failure = why,
            }
        }
        panic!("moto_server did not start: {last_failure}");
    }

    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let url = format!("{}/moto-api/", self.endpoint());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "it exited with {status} on port {}; log {}:\n{}",
                    self.port,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            if let Ok((200, _)) = request(Method::GET, &url, &[], None).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {url} within {STARTUP_TIMEOUT:?}; log {}:\n{}",
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub async fn reset(&self) {
        let url = format!("{}/moto-api/reset", self.endpoint());
        match request(Method::POST, &url, &[], None).await {
            Ok((200, _)) => {}
            other => panic!("moto reset failed: {other:?}"),
        }
    }

    /// Where moto writes its output (removed on drop unless the test panicked).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Already gone is fine; a zombie is not, hence the wait.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log is kept when a test fails (it may explain why), else removed.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// `$EPINIO_IRSA_MOTO_SERVER`, else the workspace's `.tools/venv/bin/moto_server`.
/// Panics if neither exists.
pub fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os(MOTO_SERVER_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{MOTO_SERVER_ENV}={} does not exist",
            path.display()
        );
        return path;
    }
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join(".tools/venv/bin/moto_server");
    assert!(
        venv.is_file(),
        "moto_server not found: run `scripts/setup.sh` (installs moto[server]==5.2.5 into .tools/venv); looked for {} and ${MOTO_SERVER_ENV}",
        venv.display()
    );
    venv
}

/// A loopback port that was free a moment ago.
/// The AWS SDK configuration for talking to `moto` directly with `credentials`
/// (`Credentials::for_tests()` before its access control is on).
pub async fn sdk_config(
    moto: &Moto,
    credentials: aws_sdk_iam::config::Credentials,
) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new(REGION))
        .credentials_provider(credentials)
        .endpoint_url(moto.endpoint())
        .load()
        .await
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

/// Environment for a process (the job under test) that must talk to this
/// moto and nothing else: static test credentials, no shared config files, no
/// instance metadata lookups. Pass it to `Command::envs`.
pub fn test_env(moto: &Moto) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Creates an EKS cluster in moto and returns its ARN and OIDC issuer URL
/// (`https://oidc.eks.us-east-1.amazonaws.com/id/...`).
pub async fn create_eks_cluster(moto: &Moto, name: &str) -> (String, String) {
    // moto picks the service and region from the credential scope; the
    // signature itself is not checked.
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/eks/aws4_request, SignedHeaders=host, Signature=x"
    );
    let body = json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": []},
    });
    let url = format!("{}/clusters", moto.endpoint());
    let (status, reply) = request(
        Method::POST,
        &url,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(body.to_string()),
    )
    .await
    .unwrap_or_else(|e| panic!("EKS CreateCluster {name}: {e}"));
    let reply: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
    let field = |ptr: &str| {
        reply
            .pointer(ptr)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                panic!("EKS CreateCluster {name}: HTTP {status}, no {ptr} in {reply}")
            })
    };
    (
        field("/cluster/arn"),
        field("/cluster/identity/oidc/issuer"),
    )
}

/// One plain-HTTP request; returns status and body.
async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<(u16, Bytes), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 10 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok((status, body))
}
