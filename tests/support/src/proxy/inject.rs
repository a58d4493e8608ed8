//! The responses of injected faults, shaped after each protocol's errors (AWS Query XML,
//! S3 XML, AWS REST-JSON, Kubernetes `Status`).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header;
use hyper::Response;

use super::{Classification, Fault, Protocol};

pub(super) fn request_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    format!(
        "fa017000-0000-4000-8000-{:012x}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn not_found_message(c: &Classification) -> String {
    let what = c.resource.clone().unwrap_or_else(|| "unknown".to_string());
    let op = c.op.as_str();
    if op.contains("OpenIDConnectProvider") {
        format!("OpenIDConnect Provider not found for arn {what}")
    } else if op.contains("Policy") && !op.contains("Role") {
        format!("Policy {what} was not found.")
    } else if op.contains("Cluster") || c.service == "eks" {
        format!("No cluster found for name: {what}.")
    } else {
        format!("The role with name {what} cannot be found.")
    }
}

/// Build the response for an injected fault (not for `ResetConnection` /
/// `Slow`, which are not responses).
pub(super) fn fault_response(c: &Classification, fault: &Fault) -> Response<Full<Bytes>> {
    match c.protocol {
        Protocol::AwsQuery => query_fault(c, fault),
        Protocol::S3Rest => s3_fault(fault),
        Protocol::AwsRestJson => rest_json_fault(c, fault),
        Protocol::Kubernetes => kube_fault(c, fault),
    }
}

/// AWS Query (IAM, STS): an XML `ErrorResponse`.
fn query_fault(c: &Classification, fault: &Fault) -> Response<Full<Bytes>> {
    let (status, kind, code, message) = match fault {
        Fault::Throttling => (400, "Sender", "Throttling", "Rate exceeded".to_string()),
        Fault::ServiceUnavailable => (
            503,
            "Receiver",
            "ServiceUnavailable",
            "Service is unavailable. Please try again later.".to_string(),
        ),
        Fault::NoSuchEntity => (404, "Sender", "NoSuchEntity", not_found_message(c)),
        Fault::Conflict => (
            409,
            "Sender",
            "ConcurrentModification",
            "Rate of concurrent modifications exceeded; please try again.".to_string(),
        ),
        Fault::AccessDenied => (
            403,
            "Sender",
            "AccessDenied",
            format!("Not authorized to perform sts:{}", c.op),
        ),
        Fault::InvalidPrincipal => (
            400,
            "Sender",
            "MalformedPolicyDocument",
            "Invalid principal in policy: \"Federated\"".to_string(),
        ),
        _ => (
            500,
            "Receiver",
            "InternalFailure",
            "We encountered an internal error. Please try again.".to_string(),
        ),
    };
    let ns = if c.service == "sts" {
        "https://sts.amazonaws.com/doc/2011-06-15/"
    } else {
        "https://iam.amazonaws.com/doc/2010-05-08/"
    };
    let rid = request_id();
    let body = format!(
        "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>",
        xml_escape(&message)
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/xml")
        .header("x-amzn-RequestId", rid)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// S3 REST: an XML `Error` body, throttling as 503 `SlowDown`.
fn s3_fault(fault: &Fault) -> Response<Full<Bytes>> {
    let (status, code, message) = match fault {
        Fault::Throttling => (503, "SlowDown", "Please reduce your request rate."),
        Fault::ServiceUnavailable => (503, "ServiceUnavailable", "Service is unavailable."),
        Fault::NoSuchEntity => (404, "NoSuchBucket", "The specified bucket does not exist"),
        Fault::Conflict => (
            409,
            "OperationAborted",
            "A conflicting conditional operation is in progress.",
        ),
        Fault::AccessDenied => (403, "AccessDenied", "Access Denied"),
        _ => (
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>{}</RequestId></Error>",
        request_id()
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// AWS REST-JSON (EKS): `{"message"}` and `x-amzn-ErrorType`.
fn rest_json_fault(c: &Classification, fault: &Fault) -> Response<Full<Bytes>> {
    let (status, code, message) = match fault {
        Fault::Throttling => (429, "ThrottlingException", "Rate exceeded".to_string()),
        Fault::ServiceUnavailable => (
            503,
            "ServiceUnavailableException",
            "Service is unavailable. Please try again later.".to_string(),
        ),
        Fault::NoSuchEntity => (404, "ResourceNotFoundException", not_found_message(c)),
        Fault::Conflict => (
            409,
            "ResourceInUseException",
            "The resource is in use by another operation.".to_string(),
        ),
        Fault::AccessDenied => (
            403,
            "AccessDeniedException",
            format!("User is not authorized to perform: eks:{}", c.op),
        ),
        Fault::InvalidPrincipal => (
            400,
            "InvalidParameterException",
            "Role provided does not exist or is not accessible yet".to_string(),
        ),
        _ => (
            500,
            "InternalFailure",
            "We encountered an internal error. Please try again.".to_string(),
        ),
    };
    let body = serde_json::json!({ "message": message }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-amzn-ErrorType", code)
        .header("x-amzn-RequestId", request_id())
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// Kubernetes: a `Status` object (`Retry-After: 1` when throttled).
fn kube_fault(c: &Classification, fault: &Fault) -> Response<Full<Bytes>> {
    let res = c.op.split_once(' ').map(|(_, r)| r).unwrap_or("");
    let kind_res = res.split('/').next().unwrap_or(res);
    let name = c
        .resource
        .as_deref()
        .map(|r| r.rsplit('/').next().unwrap_or(r))
        .unwrap_or("");
    let (status, reason, message) = match fault {
        Fault::Throttling => (
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".to_string(),
        ),
        Fault::ServiceUnavailable => (
            503,
            "ServiceUnavailable",
            "The server is currently unable to handle the request".to_string(),
        ),
        Fault::NoSuchEntity => (404, "NotFound", format!("{kind_res} \"{name}\" not found")),
        Fault::Conflict => (
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {kind_res} \"{name}\": the object has \
                 been modified; please apply your changes to the latest version and try \
                 again"
            ),
        ),
        _ => (
            500,
            "InternalError",
            "Internal error occurred: injected by fault proxy".to_string(),
        ),
    };
    let mut details = serde_json::json!({ "name": name, "kind": kind_res });
    if status == 429 {
        details["retryAfterSeconds"] = serde_json::json!(1);
    }
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": status,
    })
    .to_string();
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if status == 429 {
        b = b.header(header::RETRY_AFTER, "1");
    }
    b.body(Full::new(Bytes::from(body)))
        .expect("valid response")
}
