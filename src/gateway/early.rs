//! What is refused before s3s reads anything of the request: an oversized header section,
//! browser POST uploads, and every signature but SigV4 as AWS bounds it. s3s itself still
//! accepts SigV2 (whose signature does not cover the body and whose dates are not bounded),
//! presigned URLs valid for longer than AWS allows, and credential scopes naming `sts`; the
//! gateway answers those as S3 does, with nothing sent to AWS.

use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use percent_encoding::percent_decode_str;
use s3s::{S3Error, S3ErrorCode};

/// Requests whose header section (names and values) is larger than this get S3's
/// `RequestHeaderSectionTooLarge`. Every client Epinio uses sends well under 4 KiB; AWS
/// allows 8 KiB of user metadata. hyper refuses larger sections (431) even earlier
/// (`serve::MAX_BUF`).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The longest validity of a presigned URL AWS accepts: seven days.
pub const MAX_PRESIGNED_SECONDS: u64 = 604_800;

/// Refusals that come before s3s looks at the request.
pub fn refuse_early(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<S3Error> {
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return Some(S3Error::with_message(
            S3ErrorCode::RequestHeaderSectionTooLarge,
            "Your request header section exceeds the maximum allowed size.",
        ));
    }
    // Browser POST uploads (`multipart/form-data`): s3s would read the file into memory
    // before asking `access` (it checks the POST policy first). Epinio never sends them.
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    if method == Method::POST && form {
        return Some(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "The gateway does not accept POST uploads",
        ));
    }
    signature(uri, headers).err()
}

/// The reason a refusal of [`refuse_early`] is counted under in the metrics.
pub fn reason(e: &S3Error) -> &'static str {
    match e.code() {
        S3ErrorCode::RequestHeaderSectionTooLarge => "request",
        S3ErrorCode::AccessDenied => "operation",
        _ => "authentication",
    }
}

/// SigV4 only (header or presigned), valid for at most seven days, scoped to service `s3`.
fn signature(uri: &Uri, headers: &HeaderMap) -> Result<(), S3Error> {
    let query = query_pairs(uri.query().unwrap_or_default());
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("?"));
    let v2_query = param("Signature").is_some() || param("AWSAccessKeyId").is_some();
    let v2_header = authorization.is_some_and(|a| !a.starts_with("AWS4-HMAC-SHA256 "));
    if v2_query || v2_header {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    let query_error = |message: String| {
        S3Error::with_message(S3ErrorCode::AuthorizationQueryParametersError, message)
    };
    if let Some(expires) = param("X-Amz-Expires") {
        match expires.parse::<u64>() {
            Ok(s) if s <= MAX_PRESIGNED_SECONDS => {}
            Ok(_) => {
                return Err(query_error(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is; {MAX_PRESIGNED_SECONDS}"
                )))
            }
            Err(_) => {
                return Err(query_error(
                    "X-Amz-Expires should be a number of seconds".into(),
                ))
            }
        }
    }
    if let Some(credential) = param("X-Amz-Credential") {
        if let Some(service) = wrong_service(credential) {
            return Err(query_error(format!(
                "Error parsing the X-Amz-Credential parameter; incorrect service '{service}'. This endpoint belongs to 's3'."
            )));
        }
    }
    let header_credential = authorization.and_then(|a| {
        a.split([',', ' '])
            .find_map(|part| part.trim().strip_prefix("Credential="))
    });
    if let Some(service) = header_credential.and_then(wrong_service) {
        return Err(S3Error::with_message(
            S3ErrorCode::AuthorizationHeaderMalformed,
            format!(
                "The authorization header is malformed; incorrect service '{service}'. This endpoint belongs to 's3'."
            ),
        ));
    }
    Ok(())
}

/// The service of a credential scope (`AKID/date/region/service/aws4_request`) when it is not
/// `s3`.
fn wrong_service(credential: &str) -> Option<String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let service = parts.len().checked_sub(2).map_or("", |i| parts[i]);
    (service != "s3").then(|| service.to_string())
}

/// A query string's parameters, names and values percent-decoded (`+` as a space), in order;
/// a parameter without `=` has an empty value.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(uri: &str, auth: Option<&str>) -> Option<String> {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        refuse_early(&Method::GET, &uri.parse().unwrap(), &h).map(|e| e.code().as_str().to_string())
    }

    const V4: &str = "AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

    #[test]
    fn sigv4_within_aws_bounds_passes() {
        assert_eq!(refused("/b/k", Some(V4)), None);
        assert_eq!(refused("/b/k", None), None);
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261207%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=604800&X-Amz-Signature=00";
        assert_eq!(refused(presigned, None), None);
    }

    const STS: &str = "AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00";

    #[test]
    fn sigv2_long_presigned_urls_and_other_services_are_refused() {
        let cases = [
            ("/b/k", Some("AWS AKID:c2lnbmF0dXJl"), "InvalidRequest"),
            ("/b/k?AWSAccessKeyId=AKID&Expires=4102444800&Signature=x", None, "InvalidRequest"),
            ("/b/k?X-Amz-Expires=604801&X-Amz-Signature=00", None, "AuthorizationQueryParametersError"),
            ("/b/k?X-Amz-Expires=-1&X-Amz-Signature=00", None, "AuthorizationQueryParametersError"),
            ("/b/k?X-Amz-Credential=AKID%2F20261207%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Signature=00", None, "AuthorizationQueryParametersError"),
            ("/b/k", Some(STS), "AuthorizationHeaderMalformed"),
        ];
        for (uri, auth, code) in cases {
            assert_eq!(refused(uri, auth).as_deref(), Some(code), "{uri} {auth:?}");
        }
    }
}
