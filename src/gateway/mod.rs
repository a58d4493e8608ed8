//! `epinio-irsa gateway`: an S3 endpoint in Epinio's namespace that holds the IAM role, so
//! Epinio versions that cannot use a role (1.13.10+) still need no AWS keys. Epinio signs
//! with a cluster-local key pair; the gateway checks that signature, admits only Epinio's
//! bucket and operations, and forwards the request signed with the role's short-lived
//! credentials.
//!
//! Split by role, as s3s is:
//! - `config`: the `EPINIO_IRSA_GATEWAY_*` contract, read once;
//! - `early`: what is refused before s3s reads the request (SigV4 only, as AWS bounds it);
//! - `auth`: who may ask (one key pair); `access`: what they may ask for, by the table in
//!   `allowlist`; `chunks`: an aws-chunked body's framing, checked before s3s buffers it;
//! - `forward`: how it is forwarded (s3s-aws over aws-sdk-s3); `body`: an upload's body on
//!   the way; `trailer`: the trailing checksum of aws-chunked uploads, checked on the way;
//! - `credentials`: the role's credential state, which `forward` and `health` read;
//! - `health`: the probe listener and `/metrics` (`metrics`); `log`: one line per request (`note`: what the request
//!   turned out to be); `serve`: listening and
//!   graceful shutdown; `tls`: the certificate, read again when its files change; `error`: why it could not start.
//!
//! This file only wires them: configuration is read once and shared behind `Arc`.

pub mod access;
pub mod allowlist;
pub mod auth;
pub mod body;
pub mod chunks;
pub mod config;
pub mod credentials;
pub mod early;
pub mod error;
pub mod forward;
pub mod health;
pub mod log;
pub mod metrics;
pub mod note;
pub mod serve;
pub mod tls;
pub mod trailer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_types::os_shim_internal::Env;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::config::GatewayConfig;
use self::credentials::{CredentialState, Tracked};
pub use self::error::GatewayError;

/// A running gateway: its addresses, its credential state, and the way to stop it.
pub struct Gateway {
    s3_addr: SocketAddr,
    health_addr: SocketAddr,
    credentials: CredentialState,
    serving: Arc<AtomicBool>,
    stop_s3: watch::Sender<bool>,
    stop_rest: watch::Sender<bool>,
    s3_task: JoinHandle<()>,
    other_tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_addr
    }

    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    pub fn credentials(&self) -> &CredentialState {
        &self.credentials
    }

    /// Stops accepting S3 connections, lets requests in flight finish (up to the drain
    /// time) while `/readyz` answers 503, then closes the health listener too.
    pub async fn shutdown(self) {
        self.serving.store(false, Ordering::Release);
        let _ = self.stop_s3.send(true);
        let _ = self.s3_task.await;
        let _ = self.stop_rest.send(true);
        for task in self.other_tasks {
            let _ = task.await;
        }
    }
}

/// The `gateway` command: reads the configuration from `env` (the process environment),
/// serves until SIGTERM or SIGINT, then drains.
pub fn run<I>(env: I) -> Result<(), GatewayError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let env: Vec<(String, String)> = env.into_iter().collect();
    let config = config::from_pairs(env.clone())?;
    crate::logging::init(config.log_format, crate::logging::Ceiling::Secrets);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Runtime)?;
    runtime.block_on(async {
        // Before anything listens: a SIGTERM that comes as soon as `/readyz` answers must
        // drain, not kill (the handlers only exist once registered).
        let stop = Stop::install();
        let gateway = start_with(config, env).await?;
        let stop = stop.wait().await;
        tracing::info!(signal = stop, "shutting down");
        gateway.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Starts a gateway configured by `env` (gateway settings and the AWS SDK's own variables
/// alike; the process environment is not read). For tests and embedding.
pub async fn start<I>(env: I) -> Result<Gateway, GatewayError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let env: Vec<(String, String)> = env.into_iter().collect();
    let config = config::from_pairs(env.clone())?;
    start_with(config, env).await
}

async fn start_with(
    config: GatewayConfig,
    env: Vec<(String, String)>,
) -> Result<Gateway, GatewayError> {
    let config = Arc::new(config);
    let credentials = CredentialState::default();
    let (client, tracked) = s3_client(&config, env, credentials.clone()).await?;
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let s3 = s3_service(&config, client, credentials.clone());
    let metrics = Arc::new(metrics::Metrics::new(
        credentials.clone(),
        tls.as_ref().map(|(_, resolver)| resolver.clone()),
    ));

    let s3_listener = serve::bind("S3 listener", config.listen).await?;
    let health_listener = serve::bind("health listener", config.health_listen).await?;
    let s3_addr = s3_listener.local_addr().unwrap_or(config.listen);
    let health_addr = health_listener.local_addr().unwrap_or(config.health_listen);
    let serving = Arc::new(AtomicBool::new(true));
    let health = Arc::new(health::Health {
        serving: serving.clone(),
        credentials: credentials.clone(),
        metrics: metrics.clone(),
    });
    let (stop_s3, s3_stopped) = watch::channel(false);
    let (stop_rest, rest_stopped) = watch::channel(false);
    let settings = serve::Settings {
        name: "S3 listener",
        header_read_timeout: config.header_read_timeout,
        drain: config.drain,
        tls: tls.as_ref().map(|(acceptor, _)| acceptor.clone()),
        max_connections: config.max_connections,
        open: Some(metrics.connections()),
    };
    let health_settings = serve::Settings {
        name: "health listener",
        tls: None,
        max_connections: 64,
        open: None,
        ..settings.clone()
    };
    let s3_task = tokio::spawn(serve::serve(
        s3_listener,
        settings,
        move |peer, req| log::handle(s3.clone(), metrics.clone(), peer, req),
        s3_stopped,
    ));
    let watch_tls = config.tls.clone().zip(tls.map(|(_, resolver)| resolver));
    let other_tasks = background(
        (health_listener, health_settings, health),
        (tracked, credentials.clone()),
        watch_tls,
        rest_stopped,
    );
    tracing::info!(
        s3 = %s3_addr,
        health = %health_addr,
        bucket = %config.bucket,
        region = %config.region,
        tls = config.tls.is_some(),
        "gateway listening"
    );
    Ok(Gateway {
        s3_addr,
        health_addr,
        credentials,
        serving,
        stop_s3,
        stop_rest,
        s3_task,
        other_tasks,
    })
}

/// The tasks beside the S3 listener, all stopped by `stopped`: the health listener, the
/// credentials' retries, and the certificate's watch (with TLS).
fn background(
    (listener, settings, health): (TcpListener, serve::Settings, Arc<health::Health>),
    (tracked, credentials): (Arc<Tracked>, CredentialState),
    tls: Option<(config::TlsFiles, Arc<tls::Reloading>)>,
    stopped: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(serve::serve(
            listener,
            settings,
            move |_, req| health::handle(health.clone(), req),
            stopped.clone(),
        )),
        tokio::spawn(credentials::keep_trying(
            tracked,
            credentials,
            stopped.clone(),
        )),
    ];
    if let Some((files, resolver)) = tls {
        tasks.push(tokio::spawn(tls::watch_files(files, resolver, stopped)));
    }
    tasks
}

/// aws-sdk-s3 on the role's credentials only: aws-config's default chain given an
/// environment in which web identity (IRSA) and the container endpoint (EKS Pod Identity) are
/// the only sources (`credentials::role_sources_only`), watched by [`Tracked`]; the SDK's
/// identity cache refreshes the credentials before they expire. Checksums are computed and
/// validated only where the client asked for them, and there are no retries: the gateway
/// relays, the client decides.
async fn s3_client(
    config: &GatewayConfig,
    env: Vec<(String, String)>,
    state: CredentialState,
) -> Result<(aws_sdk_s3::Client, Arc<Tracked>), GatewayError> {
    let (env, source) = credentials::role_sources_only(env);
    match source {
        Some(source) => tracing::info!(source, "gateway credentials come from"),
        None => tracing::warn!("{}", credentials::NO_SOURCE),
    }
    let env: HashMap<String, String> = env.into_iter().collect();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .env(Env::from(env))
        .region(aws_config::Region::new(config.region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        // A slow client is not a stalled S3: uploads wait for the client's body.
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .upload_enabled(false)
                .grace_period(Duration::from_secs(30))
                .build(),
        );
    if source.is_none() {
        loader = loader.credentials_provider(credentials::NoSource);
    }
    let sdk = loader.load().await;
    let chain = sdk
        .credentials_provider()
        .ok_or(GatewayError::NoCredentialChain)?;
    let tracked = Arc::new(Tracked::new(chain, state));
    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
        .credentials_provider(Tracked::clone(&tracked))
        .force_path_style(config.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Ok((aws_sdk_s3::Client::from_conf(s3), tracked))
}

fn s3_service(
    config: &GatewayConfig,
    client: aws_sdk_s3::Client,
    credentials: CredentialState,
) -> S3Service {
    let forward = forward::Forward::new(client, credentials, config.region.clone());
    let mut builder = S3ServiceBuilder::new(forward);
    builder.set_auth(auth::KeyPair::new(
        config.access_key_id.clone(),
        config.secret_access_key.clone(),
    ));
    builder.set_access(access::BucketOnly::new(config.bucket.clone()));
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_limits()))));
    builder.build()
}

/// s3s's limits, tightened: XML bodies (CompleteMultipartUpload of 10,000 parts is about
/// 1.5 MiB) and browser POST forms, which `access` refuses before s3s would buffer them.
fn s3_limits() -> S3Config {
    let mut c = S3Config::default();
    c.xml_max_body_size = 4 * 1024 * 1024;
    c.post_object_max_file_size = 0;
    c.form_max_field_size = 16 * 1024;
    c.form_max_fields_size = 64 * 1024;
    c.form_max_parts = 16;
    c
}

/// SIGTERM and SIGINT, registered up front.
struct Stop {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Stop {
    fn install() -> Stop {
        use tokio::signal::unix::{signal, SignalKind};
        let register = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
                .ok()
        };
        Stop {
            term: register(SignalKind::terminate(), "SIGTERM"),
            int: register(SignalKind::interrupt(), "SIGINT"),
        }
    }

    async fn wait(mut self) -> &'static str {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.int) => "SIGINT",
        }
    }
}
