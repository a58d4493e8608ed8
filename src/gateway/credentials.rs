//! The role's credentials as the gateway sees them: which provider of aws-config's default
//! chain gave them (web identity for IRSA, the container endpoint for EKS Pod Identity), when
//! they expire, and the last error. Nothing here holds a key.
//!
//! The chain itself is aws-config's; [`Tracked`] only watches it. The SDK's identity cache
//! (`LazyCache`) calls it again shortly before the credentials expire, so refreshes need no
//! code here. [`keep_trying`] asks the chain while there are no credentials, because the
//! role may not exist yet: on a first install the hook that creates it runs after the
//! gateway is ready, which is why readiness never waits for this.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Where the credentials stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// None obtained yet.
    Pending,
    /// The last attempt gave credentials.
    Ready,
    /// The last attempt failed (after none, or after earlier credentials ran out).
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Status {
    phase: Phase,
    provider: Option<&'static str>,
    expires: Option<SystemTime>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    fetches: u64,
    failures: u64,
}

/// Shared view of the credential state; cheap to clone.
#[derive(Debug, Clone)]
pub struct CredentialState(Arc<Mutex<Status>>);

impl Default for CredentialState {
    fn default() -> Self {
        CredentialState(Arc::new(Mutex::new(Status {
            phase: Phase::Pending,
            provider: None,
            expires: None,
            last_success: None,
            last_error: None,
            fetches: 0,
            failures: 0,
        })))
    }
}

impl CredentialState {
    fn lock(&self) -> MutexGuard<'_, Status> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// The phase, and when the current credentials expire.
    pub fn phase_and_expiry(&self) -> (Phase, Option<SystemTime>) {
        let s = self.lock();
        (s.phase, s.expires)
    }

    /// How many times the chain was asked, successful or not.
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    /// `Ok` when S3 may be called; else the message for the client's `ServiceUnavailable`.
    pub fn check(&self) -> Result<(), String> {
        let s = self.lock();
        match s.phase {
            Phase::Ready => Ok(()),
            Phase::Pending => Err(format!(
                "the gateway has no AWS credentials for its IAM role yet{}; it keeps trying (see its /credentials endpoint)",
                s.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            )),
            Phase::Failed => Err(format!(
                "the gateway cannot obtain AWS credentials for its IAM role: {}; it keeps trying (see its /credentials endpoint)",
                s.last_error.as_deref().unwrap_or("unknown error")
            )),
        }
    }

    fn record(&self, result: &Result<Credentials, CredentialsError>) {
        let mut s = self.lock();
        s.fetches += 1;
        let before = s.phase;
        match result {
            Ok(c) => {
                s.phase = Phase::Ready;
                s.provider = Some(source(c));
                s.expires = c.expiry();
                s.last_success = Some(SystemTime::now());
                s.last_error = None;
                tracing::info!(
                    provider = source(c),
                    expires = %rfc3339(c.expiry()),
                    "gateway credentials obtained"
                );
            }
            Err(e) => {
                s.failures += 1;
                s.phase = if before == Phase::Pending {
                    Phase::Pending
                } else {
                    Phase::Failed
                };
                // `NoSource` says everything; the chain's errors need their whole context.
                let no_source =
                    std::error::Error::source(e).is_some_and(|s| s.to_string() == NO_SOURCE);
                let message = if no_source {
                    NO_SOURCE.to_string()
                } else {
                    DisplayErrorContext(e).to_string()
                };
                if s.last_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(error = %message, "gateway cannot obtain credentials");
                }
                s.last_error = Some(message);
            }
        }
    }

    /// The `/credentials` document: state, provider, expiry, last error; never a key.
    pub fn report(&self) -> Value {
        let s = self.lock().clone();
        let now = SystemTime::now();
        json!({
            "state": s.phase.as_str(),
            "provider": s.provider,
            "expires_at": s.expires.map(|t| rfc3339(Some(t))),
            "expired": s.expires.map(|t| t <= now),
            "last_success": s.last_success.map(|t| rfc3339(Some(t))),
            "last_error": s.last_error,
            "fetches": s.fetches,
            "failures": s.failures,
        })
    }
}

/// Which link of the default chain gave `c`, from the features aws-config records on it.
fn source(c: &Credentials) -> &'static str {
    use aws_credential_types::credential_feature::AwsCredentialFeature as F;
    let features = c
        .get_property::<Vec<F>>()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let has = |f: F| features.contains(&f);
    if has(F::CredentialsHttp) {
        "container endpoint (EKS Pod Identity)"
    } else if has(F::CredentialsEnvVarsStsWebIdToken)
        || has(F::CredentialsStsAssumeRoleWebId)
        || has(F::CredentialsProfileStsWebIdToken)
    {
        "web identity (IRSA)"
    } else if has(F::CredentialsEnvVars) {
        "environment variables"
    } else if has(F::CredentialsImds) {
        "instance metadata"
    } else {
        "other"
    }
}

pub(crate) fn rfc3339(t: Option<SystemTime>) -> String {
    t.and_then(|t| DateTime::from(t).fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| "never".into())
}

/// Variables that would let aws-config's default chain find credentials other than the
/// role's: static keys, profiles (and their `credential_process`, SSO, ...), and the node's
/// instance metadata. They are taken out of the gateway's environment, so that with IRSA or
/// Pod Identity missing (a switch in progress, a removed annotation) it has no identity at
/// all instead of the node's instance role.
const OTHER_SOURCES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
];

/// Why there is nothing to ask when neither source is configured.
pub const NO_SOURCE: &str = "no credential source for the gateway's IAM role: neither web identity (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, set by IRSA from the ServiceAccount's eks.amazonaws.com/role-arn) nor the container endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI, set by EKS Pod Identity) is configured; static keys, profiles and instance metadata are never used";

/// The environment aws-config's default chain gets: `env` without [`OTHER_SOURCES`], profile
/// files pointed at nothing and instance metadata off, so the chain is exactly web identity
/// and the container endpoint. Also which of the two is configured, if any.
pub fn role_sources_only(
    env: Vec<(String, String)>,
) -> (Vec<(String, String)>, Option<&'static str>) {
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| !OTHER_SOURCES.contains(&k.as_str()))
        .collect();
    let set = |name: &str| env.iter().any(|(k, v)| k == name && !v.is_empty());
    let source = if set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN") {
        Some("web identity (IRSA)")
    } else if set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    {
        Some("container endpoint (EKS Pod Identity)")
    } else {
        None
    };
    for (k, v) in [
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    (env, source)
}

/// The provider when neither source is configured: always [`NO_SOURCE`].
#[derive(Debug)]
pub struct NoSource;

impl ProvideCredentials for NoSource {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(NO_SOURCE)))
    }
}

/// aws-config's default chain, watched: every outcome lands in a [`CredentialState`].
#[derive(Debug, Clone)]
pub struct Tracked {
    inner: SharedCredentialsProvider,
    state: CredentialState,
}

impl Tracked {
    pub fn new(inner: SharedCredentialsProvider, state: CredentialState) -> Self {
        Tracked { inner, state }
    }
}

impl ProvideCredentials for Tracked {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let result = self.inner.provide_credentials().await;
            self.state.record(&result);
            result
        })
    }
}

/// Asks the chain while the state is not [`Phase::Ready`], backing off from 1 s to 15 s,
/// until `shutdown` turns true. While ready it only looks, because the SDK refreshes.
pub async fn keep_trying(
    provider: Arc<Tracked>,
    state: CredentialState,
    mut shutdown: watch::Receiver<bool>,
) {
    const FIRST: Duration = Duration::from_secs(1);
    const MOST: Duration = Duration::from_secs(15);
    let mut wait = FIRST;
    loop {
        if state.phase() == Phase::Ready {
            wait = FIRST;
        } else {
            let _ = provider.provide_credentials().await;
            if state.phase() != Phase::Ready {
                wait = (wait * 2).min(MOST);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
