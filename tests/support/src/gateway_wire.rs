//! Requests built by hand, for the gateway's hostile-input tests: SigV4-signed with any key,
//! time and payload hash (aws-sigv4, the SDK's own signer, with S3's settings: no path
//! normalisation, single encoding), sent as they are, and the S3 error code read back.

use std::time::{Duration, SystemTime};

use aws_sdk_iam::config::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The `<Code>` of an S3 error body.
    pub fn code(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        let start = text.find("<Code>")? + "<Code>".len();
        let end = text[start..].find("</Code>")? + start;
        Some(text[start..end].to_string())
    }
}

/// A request to sign and send. `signed_body` is what the signature covers (its SHA-256 goes
/// into `x-amz-content-sha256`); `body` is what is sent, the same unless a test tampers.
#[derive(Debug, Clone)]
pub struct Wire<'a> {
    pub method: &'a str,
    /// `http://host:port/path?query`, sent and signed exactly as written.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub signed_body: Vec<u8>,
    pub body: Vec<u8>,
    pub time: SystemTime,
    /// Signed and sent as `x-amz-content-sha256` instead of the SHA-256 of `signed_body`
    /// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, `UNSIGNED-PAYLOAD`).
    pub content_sha256: Option<String>,
}

impl<'a> Wire<'a> {
    pub fn new(method: &'a str, url: impl Into<String>) -> Wire<'a> {
        Wire {
            method,
            url: url.into(),
            headers: Vec::new(),
            signed_body: Vec::new(),
            body: Vec::new(),
            time: SystemTime::now(),
            content_sha256: None,
        }
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.signed_body = body.to_vec();
        self.body = body.to_vec();
        self
    }

    /// Sends `body` as it is, signed with `x-amz-content-sha256: value`.
    pub fn raw_body(mut self, body: Vec<u8>, value: &str) -> Self {
        self.body = body;
        self.content_sha256 = Some(value.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Signs with `access`/`secret` for `us-east-1` / `s3` and returns the headers to send
    /// (the given ones, `host`, and the signer's).
    pub fn signed(&self, access: &str, secret: &str) -> Vec<(String, String)> {
        let identity: Identity = Credentials::new(access, secret, None, None, "test").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(self.time)
            .settings(settings)
            .build()
            .expect("signing parameters")
            .into();
        let mut headers = self.headers.clone();
        headers.push(("host".into(), self.host()));
        let signable = SignableRequest::new(
            self.method,
            &self.url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            match &self.content_sha256 {
                Some(v) => SignableBody::Precomputed(v.clone()),
                None => SignableBody::Bytes(&self.signed_body),
            },
        )
        .expect("signable request");
        let (instructions, _) = sign(signable, &params).expect("signing works").into_parts();
        let (extra, _) = instructions.into_parts();
        headers.extend(
            extra
                .into_iter()
                .map(|h| (h.name().to_string(), h.value().to_string())),
        );
        headers
    }

    fn host(&self) -> String {
        self.url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_string()
    }

    /// Sends with the headers of [`Wire::signed`].
    pub async fn send_signed(&self, access: &str, secret: &str) -> Answer {
        let headers = self.signed(access, secret);
        send(self.method, &self.url, &headers, self.body.clone()).await
    }

    /// Sends with only the given headers (no signature).
    pub async fn send_unsigned(&self) -> Answer {
        send(self.method, &self.url, &self.headers, self.body.clone()).await
    }
}

/// Sends one request as given (10 s at most) and reads the whole answer.
pub async fn send(method: &str, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no answer in 10 s"))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// One plain GET: status and body.
pub async fn get(url: &str) -> Result<(u16, Bytes), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer in 10 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}
