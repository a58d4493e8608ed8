//! The container credentials endpoint of the gateway's test world: what the EKS Pod
//! Identity agent serves a pod at `AWS_CONTAINER_CREDENTIALS_FULL_URI`. It checks the
//! `Authorization` header against the token file's content, then answers with fresh
//! credentials from a signed `sts:AssumeRole` against moto and the expiry the test set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The token the endpoint expects, as the agent checks the pod's.
pub const AGENT_TOKEN: &str = "pod-identity-token-for-tests";

/// One answer of the endpoint.
#[derive(Debug, Clone)]
pub struct Issued {
    pub at: SystemTime,
    pub expires: SystemTime,
}

#[derive(Debug)]
pub struct EndpointState {
    pub issued: Mutex<Vec<Issued>>,
    pub refused: Mutex<usize>,
    pub lifetime: Mutex<Duration>,
    pub fail: AtomicBool,
}

impl Default for EndpointState {
    fn default() -> Self {
        EndpointState {
            issued: Mutex::default(),
            refused: Mutex::default(),
            lifetime: Mutex::new(Duration::from_secs(900)),
            fail: AtomicBool::new(false),
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn serve_credentials(
    listener: TcpListener,
    state: Arc<EndpointState>,
    sts: aws_sdk_sts::Client,
    role_arn: String,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (state, sts, role_arn) = (state.clone(), sts.clone(), role_arn.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (state, sts, role_arn) = (state.clone(), sts.clone(), role_arn.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(answer(&req, &state, &sts, &role_arn).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn answer(
    req: &Request<Incoming>,
    state: &EndpointState,
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if token != Some(AGENT_TOKEN) {
        *lock(&state.refused) += 1;
        return reply(
            StatusCode::UNAUTHORIZED,
            r#"{"message":"bad token"}"#.into(),
        );
    }
    if state.fail.load(Ordering::SeqCst) {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"no association for this ServiceAccount yet"}"#.into(),
        );
    }
    let assumed = match sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("epinio-gateway")
        .send()
        .await
    {
        Ok(a) => a,
        Err(e) => {
            let msg = aws_sdk_sts::error::DisplayErrorContext(&e).to_string();
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"message": msg}).to_string(),
            );
        }
    };
    let Some(c) = assumed.credentials() else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"no credentials"}"#.into(),
        );
    };
    let now = SystemTime::now();
    let expires = now + *lock(&state.lifetime);
    lock(&state.issued).push(Issued { at: now, expires });
    let expiration = aws_sdk_sts::primitives::DateTime::from(expires)
        .fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    let body = serde_json::json!({
        "AccessKeyId": c.access_key_id(),
        "SecretAccessKey": c.secret_access_key(),
        "Token": c.session_token(),
        "Expiration": expiration,
    });
    reply(StatusCode::OK, body.to_string())
}

/// A container credentials endpoint that always serves the same key pair (with a token and a
/// 12-hour expiry, as the agent states one), for backends that know only static keys (moto's
/// own keys, s3s-fs). The gateway reads credentials only from web identity or this endpoint,
/// never from `AWS_ACCESS_KEY_ID`. Writes the token file into `dir` and returns the two
/// variables that point the SDK at the endpoint. Needs a running Tokio runtime; the endpoint
/// lives as long as it.
pub fn serve_static(
    dir: &std::path::Path,
    access_key_id: &str,
    secret_access_key: &str,
) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).expect("endpoint dir");
    let token_file = dir.join("agent-token");
    std::fs::write(&token_file, AGENT_TOKEN).expect("write the agent token");
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the endpoint");
    std_listener.set_nonblocking(true).expect("non-blocking");
    let addr = std_listener.local_addr().expect("endpoint address");
    let listener = TcpListener::from_std(std_listener).expect("a Tokio listener");
    let keys = Arc::new((access_key_id.to_string(), secret_access_key.to_string()));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let keys = keys.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let keys = keys.clone();
                    async move { Ok::<_, std::convert::Infallible>(static_answer(&req, &keys)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
            format!("http://{addr}/v1/credentials"),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".to_string(),
            token_file.display().to_string(),
        ),
    ]
}

fn static_answer(
    req: &Request<Incoming>,
    (id, secret): &(String, String),
) -> Response<Full<Bytes>> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let (status, body) = if token == Some(AGENT_TOKEN) {
        let expires = SystemTime::now() + Duration::from_secs(12 * 3600);
        let expiration = aws_sdk_sts::primitives::DateTime::from(expires)
            .fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime)
            .unwrap_or_default();
        let body = serde_json::json!({
            "AccessKeyId": id,
            "SecretAccessKey": secret,
            "Token": "static-keys-session-token",
            "Expiration": expiration,
        });
        (StatusCode::OK, body.to_string())
    } else {
        (
            StatusCode::UNAUTHORIZED,
            r#"{"message":"bad token"}"#.to_string(),
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
