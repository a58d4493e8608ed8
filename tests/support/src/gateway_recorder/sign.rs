//! Signatures the SDKs will not make: SigV4 scoped to another service, presigned URLs with
//! any expiry and start time, SigV2 (header and query), and aws-chunked uploads whose chunk
//! signatures are valid, bogus or missing, or that carry an unsigned trailer. All SigV4 work
//! is aws-sigv4's (the SDK's own signer); SigV2 is HMAC-SHA1 of S3's string to sign.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_sdk_iam::config::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::gateway_wire::Wire;

/// RFC 3986's unreserved characters stay; everything else is percent-encoded (SigV4's rule).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn settings(location: SignatureLocation, expires: Option<Duration>) -> SigningSettings {
    let mut s = SigningSettings::default();
    s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    s.percent_encoding_mode = PercentEncodingMode::Single;
    s.signature_location = location;
    s.expires_in = expires;
    if location == SignatureLocation::Headers {
        s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    s
}

/// `wire` signed in headers for `us-east-1` and `service` (`s3`, or `sts` to test the scope
/// check): the given headers, `host`, and the signer's. Like [`Wire::signed`], any service.
pub fn headers_for(
    wire: &Wire,
    access: &str,
    secret: &str,
    service: &str,
) -> Vec<(String, String)> {
    let identity: Identity = Credentials::new(access, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(wire.time)
        .settings(settings(SignatureLocation::Headers, None))
        .build()
        .expect("signing parameters")
        .into();
    let mut headers = wire.headers.clone();
    headers.push(("host".into(), host(&wire.url)));
    let body = match &wire.content_sha256 {
        Some(v) => SignableBody::Precomputed(v.clone()),
        None => SignableBody::Bytes(&wire.signed_body),
    };
    let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let signable = SignableRequest::new(wire.method, &wire.url, pairs, body).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signing").into_parts();
    let (extra, _) = instructions.into_parts();
    headers.extend(
        extra
            .into_iter()
            .map(|h| (h.name().to_string(), h.value().to_string())),
    );
    headers
}

/// `url` presigned (query parameters, `UNSIGNED-PAYLOAD`) at `time` for `expires`, scoped to
/// `service`. aws-sigv4 signs any expiry; the SDK's presigning config caps it at a week.
pub fn presign(
    method: &str,
    url: &str,
    (access, secret): (&str, &str),
    service: &str,
    time: SystemTime,
    expires: Duration,
) -> String {
    let identity: Identity = Credentials::new(access, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(time)
        .settings(settings(SignatureLocation::QueryParams, Some(expires)))
        .build()
        .expect("signing parameters")
        .into();
    let host = [("host", host(url))];
    let pairs = host.iter().map(|(k, v)| (*k, v.as_str()));
    let signable =
        SignableRequest::new(method, url, pairs, SignableBody::UnsignedPayload).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signing").into_parts();
    let (_, query): (_, Vec<(&str, Cow<'static, str>)>) = instructions.into_parts();
    let mut out = url.to_string();
    for (i, (k, v)) in query.iter().enumerate() {
        let sep = if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        };
        out.push_str(&format!("{sep}{k}={}", utf8_percent_encode(v, QUERY)));
    }
    out
}

/// The `Signature=` of an `Authorization` header among `headers`.
pub fn signature_of(headers: &[(String, String)]) -> String {
    let auth = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .expect("an authorization header");
    auth.split("Signature=")
        .nth(1)
        .expect("a signature")
        .to_string()
}

/// SigV2: base64(HMAC-SHA1(secret, string_to_sign)).
pub fn sigv2(secret: &str, string_to_sign: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url`'s `host:port`.
pub fn host(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split('/').next().unwrap_or_default().to_string()
}

/// How an aws-chunked body is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, every chunk signed in the chain.
    Signed,
    /// The same, but each chunk's signature is 64 hex characters that are not it (so no
    /// hashing: for chunks larger than is worth hashing in a debug build).
    BogusSignatures,
    /// The same, but the first chunk header has no `;chunk-signature=`.
    MissingSignature,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, with `x-amz-checksum-crc32` as trailer.
    UnsignedTrailer,
}

/// An aws-chunked `PUT`: `chunks` (each as pieces, so a large one is many clones of one
/// buffer), `decoded_length` as declared (the chunks' total unless a test lies), extra
/// `headers` (a `content-encoding` among them replaces `aws-chunked`).
#[derive(Debug, Clone)]
pub struct ChunkedPut {
    pub url: String,
    pub chunks: Vec<Vec<Bytes>>,
    pub decoded_length: u64,
    pub headers: Vec<(String, String)>,
    pub chunking: Chunking,
    pub time: SystemTime,
}

impl ChunkedPut {
    pub fn new(url: impl Into<String>, chunks: Vec<Vec<Bytes>>, chunking: Chunking) -> ChunkedPut {
        let decoded_length = chunks.iter().flatten().map(|b| b.len() as u64).sum();
        ChunkedPut {
            url: url.into(),
            chunks,
            decoded_length,
            headers: Vec::new(),
            chunking,
            time: SystemTime::now(),
        }
    }

    /// The request's path (with query), headers and body pieces, signed with `access`/`secret`.
    pub fn build(&self, access: &str, secret: &str) -> (String, Vec<(String, String)>, Vec<Bytes>) {
        let headers = headers_for(&self.wire(), access, secret, "s3");
        let body = self.body(signature_of(&headers), access, secret);
        let path = self.url.splitn(4, '/').nth(3).map(|p| format!("/{p}"));
        (path.unwrap_or("/".into()), headers, body)
    }

    fn signed(&self) -> bool {
        self.chunking != Chunking::UnsignedTrailer
    }

    /// The extension of chunk `i`'s header line, its signature chained from `previous`.
    fn extension(
        &self,
        i: usize,
        keys: (&str, &str),
        previous: &mut String,
        data: &[Bytes],
    ) -> String {
        match self.chunking {
            Chunking::UnsignedTrailer => String::new(),
            Chunking::MissingSignature if i == 0 => String::new(),
            Chunking::BogusSignatures => format!(";chunk-signature={}", "0".repeat(64)),
            Chunking::Signed | Chunking::MissingSignature => {
                *previous = self.chunk_signature(keys.0, keys.1, previous, data);
                format!(";chunk-signature={previous}")
            }
        }
    }

    /// After the last (empty) chunk: the blank line, or the checksum trailer.
    fn end(&self) -> String {
        if self.signed() {
            "\r\n".into()
        } else {
            format!("x-amz-checksum-crc32:{}\r\n\r\n", self.crc32())
        }
    }

    /// The encoded body's length, known before any signature: each chunk's header line (a
    /// signature is always 64 hex digits), its data and CRLF, then the last chunk and the end.
    fn encoded_length(&self) -> usize {
        let line = |i: usize, size: usize| {
            let signature = match self.chunking {
                Chunking::UnsignedTrailer => 0,
                Chunking::MissingSignature if i == 0 => 0,
                _ => ";chunk-signature=".len() + 64,
            };
            format!("{size:x}").len() + signature + 2
        };
        let sizes = self
            .chunks
            .iter()
            .map(|c| c.iter().map(Bytes::len).sum::<usize>());
        let data: usize = sizes.enumerate().map(|(i, s)| line(i, s) + s + 2).sum();
        data + line(self.chunks.len(), 0) + self.end().len()
    }

    /// The request to sign: the headers of an aws-chunked upload, and its payload mode.
    fn wire(&self) -> Wire<'_> {
        let mut headers = self.headers.clone();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        {
            headers.push(("content-encoding".into(), "aws-chunked".into()));
        }
        headers.push(("content-length".into(), self.encoded_length().to_string()));
        let decoded = self.decoded_length.to_string();
        headers.push(("x-amz-decoded-content-length".into(), decoded));
        let mode = if self.signed() {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        } else {
            headers.push(("x-amz-trailer".into(), "x-amz-checksum-crc32".into()));
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        };
        let mut wire = Wire::new("PUT", &self.url);
        wire.headers = headers;
        wire.time = self.time;
        wire.content_sha256 = Some(mode.to_string());
        wire
    }

    /// The encoded body as pieces (the data's own pieces are shared, not copied).
    fn body(&self, seed: String, access: &str, secret: &str) -> Vec<Bytes> {
        let mut previous = seed;
        let mut body = Vec::new();
        let last: &[Bytes] = &[];
        let all = self
            .chunks
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(last));
        for (i, pieces) in all.enumerate() {
            let size: usize = pieces.iter().map(Bytes::len).sum();
            let extension = self.extension(i, (access, secret), &mut previous, pieces);
            body.push(Bytes::from(format!("{size:x}{extension}\r\n")));
            body.extend(pieces.iter().cloned());
            if size > 0 {
                body.push(Bytes::from_static(b"\r\n"));
            }
        }
        body.push(Bytes::from(self.end()));
        body
    }

    fn chunk_signature(
        &self,
        access: &str,
        secret: &str,
        previous: &str,
        pieces: &[Bytes],
    ) -> String {
        let identity: Identity = Credentials::new(access, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(self.time)
            .settings(())
            .build()
            .expect("signing parameters");
        let data = Bytes::from(pieces.concat());
        v4::sign_chunk(&data, previous, &params)
            .expect("chunk signature")
            .signature()
            .to_string()
    }

    /// The data's `x-amz-checksum-crc32`.
    pub fn crc32(&self) -> String {
        crc32_of(self.chunks.iter().flatten().map(|b| b.as_ref()))
    }
}

/// Base64 of the big-endian CRC32 of `pieces` in order, as `x-amz-checksum-crc32` carries it.
pub fn crc32_of<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = crc32fast::Hasher::new();
    for piece in pieces {
        h.update(piece);
    }
    base64::engine::general_purpose::STANDARD.encode(h.finalize().to_be_bytes())
}
