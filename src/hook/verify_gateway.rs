//! `verify` through the gateway (gateway mode): Epinio's own path. Requests signed with
//! Epinio's cluster-local key pair (`s3.accessKeyID` / `s3.secretAccessKey`) go to the
//! gateway's Service, path style, as Epinio's S3 clients send them: HeadBucket and
//! ListObjectsV2 on the bucket (and the opt-in write probe), then a HeadBucket on another
//! bucket, which the gateway must refuse with AccessDenied before calling AWS.
//!
//! Under EKS Pod Identity this is the first live proof of the agent's credential exchange: the
//! gateway's pod holds credentials from the agent. While the gateway's pods roll out with the
//! role's credentials it answers 503 (or the connection is refused): polled with the shared
//! backoff until `EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS`.

use std::time::Instant;

use aws_sdk_s3::config::{Credentials, Region};

use super::context::Ctx;
use crate::aws::s3::{self, Readable};
use crate::aws::AwsError;
use crate::report::Progress;
use crate::vocab::ThroughGateway;
use crate::{Error, Result};

/// Epinio signs with `s3.region`, `us-east-1` when empty (Epinio 1.13.10+); the gateway checks
/// each request in its own credential scope, so any region works.
const CLIENT_REGION: &str = "us-east-1";
/// A bucket name no one can own through the gateway: `verify` asks for it to see it refused.
const OTHER_BUCKET: &str = "epinio-irsa-verify-not-this-bucket";

/// Prove Epinio's path through the gateway; `None` when no endpoint is configured
/// (`EPINIO_IRSA_GATEWAY_ENDPOINT`, which the chart always sets).
pub(super) async fn prove_gateway(ctx: &Ctx<'_>) -> Result<Option<ThroughGateway>> {
    let Some(endpoint) = ctx.config.gateway.endpoint.clone() else {
        return Ok(None);
    };
    let fail = |step: &'static str, e: AwsError| Error::VerifyGateway {
        endpoint: endpoint.clone(),
        step,
        message: e.to_string(),
    };
    let client = client(ctx, &endpoint);
    let bucket = ctx.config.bucket.as_str();
    let until = Instant::now() + ctx.config.verify_timeout;
    let mut attempts = 0;
    let progress = Progress::new(ctx.config.log_format);
    let poll = |e: &AwsError| {
        let again = rolling(e) && Instant::now() < until;
        if again {
            progress.say(e.code.as_deref().unwrap_or_default(), || {
                format!("the gateway at {endpoint} is not serving with the role yet ({e}); polling")
            });
        }
        again
    };
    let readable = crate::retry::poll(poll, || {
        attempts += 1;
        s3::bucket_readable(&client, bucket)
    })
    .await
    .map_err(|e| fail("HeadBucket/ListObjectsV2 signed with s3.accessKeyID", e))?;
    let bucket_exists = match readable {
        Readable::Yes => true,
        Readable::Missing => false,
        Readable::InRegion(region) => {
            return Err(fail(
                "HeadBucket",
                AwsError::malformed(
                    "s3:HeadBucket",
                    bucket,
                    &format!("a gateway answer, not a redirect to {region}"),
                ),
            ))
        }
    };
    let probe = if bucket_exists && ctx.config.verify_write {
        let key = s3::probe_key("gateway");
        s3::write_probe(&client, bucket, &key)
            .await
            .map_err(|e| fail("write probe put/get/delete", e))?;
        Some(key)
    } else {
        None
    };
    match s3::bucket_readable(&client, OTHER_BUCKET).await {
        Err(e) if e.is("AccessDenied") || e.code.as_deref() == Some("403") => {}
        Err(e) => {
            return Err(fail(
                "a request for another bucket must get AccessDenied",
                e,
            ))
        }
        Ok(found) => {
            return Err(fail(
                "a request for another bucket must get AccessDenied",
                AwsError::malformed(
                    "s3:HeadBucket",
                    OTHER_BUCKET,
                    &format!("AccessDenied, but the gateway let it through ({found:?})"),
                ),
            ))
        }
    }
    Ok(Some(ThroughGateway {
        tls: trusted(ctx, &endpoint),
        endpoint,
        bucket_exists,
        attempts,
        probe,
    }))
}

/// What the proof trusted for the gateway's certificate, over `https://`.
fn trusted(ctx: &Ctx<'_>, endpoint: &str) -> Option<String> {
    endpoint
        .starts_with("https://")
        .then(|| match &ctx.config.gateway.trust {
            Some(t) => format!("over TLS, trusting only {}", t.files.join(" and ")),
            None => "over TLS, trusting the system's CAs".to_string(),
        })
}

/// Epinio's client, as Epinio 1.13.10+ builds it: path style, static keys, the endpoint; over
/// `https://` it trusts what Epinio trusts: the certificates of `s3.certificateSecret`
/// (`EPINIO_IRSA_GATEWAY_CA_FILES`) and nothing else, or the system's CAs without them.
fn client(ctx: &Ctx<'_>, endpoint: &str) -> aws_sdk_s3::Client {
    let credentials = Credentials::new(
        ctx.config.s3_access_key_id.expose(),
        ctx.config.s3_secret_access_key.expose(),
        None,
        None,
        "epinio-s3-keys",
    );
    let mut config = aws_sdk_s3::config::Builder::from(&ctx.aws.sdk)
        .endpoint_url(endpoint)
        .region(Region::new(CLIENT_REGION))
        .credentials_provider(credentials)
        .force_path_style(true);
    if let Some(trust) = &ctx.config.gateway.trust {
        config = config.http_client(https_trusting(&trust.pem));
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// An HTTPS client that trusts exactly the PEM certificates given.
fn https_trusting(pem: &[u8]) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(pem.to_vec());
    let context = TlsContext::builder().with_trust_store(trust).build();
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    match context {
        Ok(context) => builder.tls_context(context).build_https(),
        // The certificates were checked when the configuration was read.
        Err(_) => builder.build_https(),
    }
}

/// What the gateway answers while its pods roll out with the role's credentials: 503 until
/// they have credentials, a refused or reset connection while pods come and go, and 403 while
/// IAM propagates the role's policy behind it. A certificate the proof does not trust is not
/// a rollout: it fails at once, saying so.
fn rolling(e: &AwsError) -> bool {
    match e.code.as_deref() {
        Some(code) => matches!(
            code,
            "ServiceUnavailable" | "SlowDown" | "503" | "502" | "504" | "AccessDenied" | "403"
        ),
        None => !untrusted_certificate(e),
    }
}

/// Whether the TLS handshake refused the gateway's certificate (rustls's words).
fn untrusted_certificate(e: &AwsError) -> bool {
    let text = e.to_string();
    text.contains("invalid peer certificate") || text.contains("UnknownIssuer")
}
