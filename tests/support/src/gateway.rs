//! The gateway's test world: moto with IAM enforcement on, a role that carries the job's S3
//! policy, a counting proxy between the gateway and moto, and a container credentials
//! endpoint that serves the role's credentials the way the EKS Pod Identity agent does
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
//!
//! The endpoint answers each call with fresh credentials from a signed `sts:AssumeRole`
//! against moto (moto's access control crashes on the unsigned `AssumeRoleWithWebIdentity`,
//! see `tests/s3_policy.rs`), and states an expiry as short as the test asks, so the
//! gateway's refreshes happen for real and are counted.
//!
//! The tests start the gateway in-process from [`GatewayWorld::gateway_env`]; this module
//! does not depend on the crate under test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_iam::config::Credentials;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::gateway_agent::Issued;
use crate::gateway_agent::{lock, serve_credentials, EndpointState, AGENT_TOKEN};
pub use crate::gateway_wire::get;
use crate::moto::{self, Moto};
use crate::proxy::{Call, Proxy};

/// Epinio's bucket, and one the gateway must never reach.
pub const BUCKET: &str = "epinio-sources";
pub const OTHER: &str = "someone-elses";
/// Epinio's cluster-local key pair (`s3.accessKeyID` / `s3.secretAccessKey`).
pub const ACCESS_KEY: &str = "EPINIOGATEWAYKEY0001";
pub const SECRET_KEY: &str = "cluster-local-secret/0123456789abcdefghij";
const ROLE: &str = "epinio-gateway";

/// Moto, the role, the proxy and the credentials endpoint.
pub struct GatewayWorld {
    pub moto: Moto,
    /// Between the gateway and moto: every request the gateway sends to AWS is here.
    pub proxy: Proxy,
    /// An administrator's SDK configuration, straight to moto.
    pub admin: aws_config::SdkConfig,
    pub role_arn: String,
    endpoint: Arc<EndpointState>,
    endpoint_addr: SocketAddr,
    endpoint_task: JoinHandle<()>,
    dir: PathBuf,
}

impl GatewayWorld {
    /// Starts moto with IAM enforcement, creates both buckets' owner (an administrator),
    /// [`OTHER`] (Epinio's own bucket is left for the test to create, as Epinio does), and a
    /// role carrying `s3_policy` (the job's generated document) plus `s3:HeadBucket`, which
    /// moto checks instead of `s3:ListBucket` (see `tests/s3_policy.rs`).
    pub async fn start(s3_policy: &str) -> GatewayWorld {
        let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]).await;
        let admin = admin(&moto).await;
        let s3 = path_style(&admin);
        s3.create_bucket()
            .bucket(OTHER)
            .send()
            .await
            .expect("create the other bucket");
        let role_arn = role(&admin, s3_policy).await;
        let proxy = Proxy::start(&moto.endpoint()).await;
        let endpoint = Arc::new(EndpointState::default());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the credentials endpoint");
        let endpoint_addr = listener.local_addr().expect("endpoint address");
        let sts = aws_sdk_sts::Client::new(&admin);
        let endpoint_task = tokio::spawn(serve_credentials(
            listener,
            endpoint.clone(),
            sts,
            role_arn.clone(),
        ));
        let dir = std::env::temp_dir().join(format!(
            "epinio-irsa-gateway-{}-{}",
            std::process::id(),
            endpoint_addr.port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("token"), AGENT_TOKEN).expect("write the agent token");
        GatewayWorld {
            moto,
            proxy,
            admin,
            role_arn,
            endpoint,
            endpoint_addr,
            endpoint_task,
            dir,
        }
    }

    /// The gateway's whole environment: its own settings on loopback ports chosen by the
    /// OS, and the AWS SDK pointed at the proxy with Pod Identity's container credentials.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        let file = |n: &str| self.dir.join(n).display().to_string();
        let mut env = gateway_settings(&self.dir, BUCKET, (ACCESS_KEY, SECRET_KEY));
        env.extend(
            [
                ("EPINIO_IRSA_GATEWAY_REGION", moto::REGION.into()),
                ("AWS_ENDPOINT_URL", self.proxy.url()),
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    format!("http://{}/v1/credentials", self.endpoint_addr),
                ),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file("token")),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                ("AWS_CONFIG_FILE", "/dev/null".into()),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    /// The expiry the endpoint states from now on.
    pub fn set_credential_lifetime(&self, lifetime: Duration) {
        *lock(&self.endpoint.lifetime) = lifetime;
    }

    /// While `true`, the endpoint answers 500 (the agent cannot give credentials yet).
    pub fn fail_credentials(&self, fail: bool) {
        self.endpoint.fail.store(fail, Ordering::SeqCst);
    }

    /// Every credentials answer so far.
    pub fn issued(&self) -> Vec<Issued> {
        lock(&self.endpoint.issued).clone()
    }

    /// Calls with a wrong or missing token.
    pub fn refused(&self) -> usize {
        *lock(&self.endpoint.refused)
    }

    /// S3 requests the gateway sent to AWS.
    pub fn s3_calls(&self) -> Vec<Call> {
        self.proxy
            .calls()
            .into_iter()
            .filter(|c| c.service == "s3")
            .collect()
    }

    /// An administrator's S3 client, straight to moto: to see what really is in a bucket.
    pub fn admin_s3(&self) -> aws_sdk_s3::Client {
        path_style(&self.admin)
    }

    /// Make Epinio's bucket ([`BUCKET`]) as the administrator.
    pub async fn create_bucket(&self) {
        self.admin_s3()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create Epinio's bucket");
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for GatewayWorld {
    fn drop(&mut self) {
        self.endpoint_task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An S3 client configured as Epinio 1.14 configures aws-sdk-go-v2 (`s3manager.go`): path
/// style, static keys, region `us-east-1`, the SDK's default checksum behaviour, and its
/// standard retries (3 attempts) unless `attempts` says otherwise.
pub fn epinio_client(
    endpoint: &str,
    access: &str,
    secret: &str,
    attempts: u32,
) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(epinio_config(endpoint, access, secret, attempts).build())
}

/// The configuration of [`epinio_client`], to add to (an HTTPS client, an interceptor).
pub fn epinio_config(
    endpoint: &str,
    access: &str,
    secret: &str,
    attempts: u32,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "epinio"))
        .force_path_style(true)
        .retry_config(
            aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(attempts),
        )
}

/// Waits (up to 20 s) until the gateway's `/credentials` says `ready`.
pub async fn wait_for_credentials(health: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((200, body)) = get(&format!("http://{health}/credentials")).await {
            last = String::from_utf8_lossy(&body).into_owned();
            if last.contains("\"state\":\"ready\"") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway has no credentials after 20 s: {last}");
}

fn path_style(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Turns on moto's enforcement: three unauthenticated calls make an administrator.
async fn admin(moto: &Moto) -> aws_config::SdkConfig {
    let anon = moto::sdk_config(moto, Credentials::for_tests()).await;
    let iam = aws_sdk_iam::Client::new(&anon);
    iam.create_user()
        .user_name("admin")
        .send()
        .await
        .expect("CreateUser");
    iam.put_user_policy()
        .user_name("admin")
        .policy_name("admin")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("PutUserPolicy");
    let key = iam
        .create_access_key()
        .user_name("admin")
        .send()
        .await
        .expect("CreateAccessKey");
    let key = key.access_key().expect("an access key");
    let creds = Credentials::new(
        key.access_key_id(),
        key.secret_access_key(),
        None,
        None,
        "admin",
    );
    moto::sdk_config(moto, creds).await
}

/// The gateway's role: `s3_policy` attached, `s3:HeadBucket` inline (moto's quirk only).
async fn role(admin: &aws_config::SdkConfig, s3_policy: &str) -> String {
    let iam = aws_sdk_iam::Client::new(admin);
    let policy = iam
        .create_policy()
        .policy_name("epinio-s3")
        .policy_document(s3_policy)
        .send()
        .await
        .expect("CreatePolicy");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"Action":"sts:AssumeRole"}]}"#;
    let role = iam
        .create_role()
        .role_name(ROLE)
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole");
    let arn = policy.policy().and_then(|p| p.arn()).expect("policy ARN");
    iam.attach_role_policy()
        .role_name(ROLE)
        .policy_arn(arn)
        .send()
        .await
        .expect("AttachRolePolicy");
    let head = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:HeadBucket","Resource":"arn:aws:s3:::{BUCKET}"}}]}}"#
    );
    iam.put_role_policy()
        .role_name(ROLE)
        .policy_name("moto-head-bucket")
        .policy_document(head)
        .send()
        .await
        .expect("PutRolePolicy");
    role.role().map(|r| r.arn().to_string()).expect("role ARN")
}

/// What Epinio's namespace holds in gateway mode besides Epinio, as Helm renders it: the
/// gateway's ServiceAccount and its 2-replica Deployment running under it (name
/// `epinio-irsa-gateway` for both, release `epinio-irsa`).
pub fn helm_objects(namespace: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    const NAME: &str = "epinio-irsa-gateway";
    let helm = json!({"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": NAME});
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": NAME, "namespace": namespace, "labels": helm}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": NAME, "namespace": namespace, "labels": helm},
               "spec": {"replicas": 2,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                        "template": {"metadata": {"labels": {"app.kubernetes.io/name": NAME}},
                                     "spec": {"serviceAccountName": NAME,
                                              "containers": [{"name": "gateway", "image": "epinio-irsa:test", "args": ["gateway"]}]}}}}),
    ]
}

/// The gateway's own settings: listeners on loopback ports the OS picks, `bucket`,
/// path-style requests, and Epinio's key pair, written as files into `dir`.
pub fn gateway_settings(
    dir: &Path,
    bucket: &str,
    (key_id, secret): (&str, &str),
) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).expect("key dir");
    let file = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, value).expect("key file");
        path.display().to_string()
    };
    [
        ("EPINIO_IRSA_GATEWAY_LISTEN", "127.0.0.1:0".to_string()),
        (
            "EPINIO_IRSA_GATEWAY_HEALTH_LISTEN",
            "127.0.0.1:0".to_string(),
        ),
        ("EPINIO_IRSA_GATEWAY_BUCKET", bucket.to_string()),
        ("EPINIO_IRSA_GATEWAY_PATH_STYLE", "true".to_string()),
        (
            "EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE",
            file("accessKeyID", key_id),
        ),
        (
            "EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE",
            file("secretAccessKey", secret),
        ),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// The environment of a gateway started in-process beside a hook scenario: loopback ports,
/// `bucket`, Epinio's key pair written as files under `dir`, and forwarding to `moto` with
/// moto's own keys (the role the hook makes cannot be assumed by web identity in moto),
/// served by a container credentials endpoint, the only way besides web identity that the
/// gateway takes credentials. Needs a running Tokio runtime.
pub fn env_beside(
    moto: &Moto,
    dir: &Path,
    bucket: &str,
    (key_id, secret): (&str, &str),
) -> Vec<(String, String)> {
    let mut env = moto::test_env(moto);
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && k != "AWS_SECRET_ACCESS_KEY");
    env.extend(crate::gateway_agent::serve_static(
        &dir.join("gateway-agent"),
        "testing",
        "testing",
    ));
    env.extend(gateway_settings(
        &dir.join("gateway-keys"),
        bucket,
        (key_id, secret),
    ));
    env
}
