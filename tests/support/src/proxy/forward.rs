//! Forwarding a call upstream (end-to-end headers only), asking moto on the caller's behalf,
//! and answering an `AttachRolePolicy` of a policy already attached, as IAM does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Method, Request, Response, StatusCode, Uri};

use super::inject::{request_id, xml_escape};
use super::parse::param;
use super::state::State;
use super::Classification;

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn copy_end_to_end(src: &HeaderMap, dst: &mut HeaderMap, also_drop: &[HeaderName]) {
    let listed: Vec<String> = src
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for (name, value) in src {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || listed.iter().any(|l| l == n) || also_drop.contains(name) {
            continue;
        }
        dst.append(name.clone(), value.clone());
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(text)))
        .expect("valid response")
}

pub(super) async fn forward(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let target = match state.upstream.target(&parts.uri) {
        Ok(t) => t,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("fault-proxy: bad URI: {e}"),
            )
        }
    };
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = target;
    // `Host` is copied as sent by the client (the legacy client only sets it
    // when missing), so SigV4 signatures over it stay valid.
    copy_end_to_end(&parts.headers, req.headers_mut(), &[header::EXPECT]);
    let resp = match state.client.request(req).await {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("fault-proxy: upstream error: {e:?}"),
            )
        }
    };
    let (rparts, rbody) = resp.into_parts();
    let bytes = match rbody.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("fault-proxy: upstream body error: {e}"),
            )
        }
    };
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = rparts.status;
    copy_end_to_end(&rparts.headers, out.headers_mut(), &[]);
    out
}

/// Ask moto something with the caller's own headers (so it passes wherever the call itself
/// would): `(status, body)`, or `None` when moto could not be reached.
pub(super) async fn ask_moto(
    state: &State,
    parts: &hyper::http::request::Parts,
    method: Method,
    path: String,
    body: Option<String>,
) -> Option<(u16, Bytes)> {
    let mut req = Request::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
    *req.method_mut() = method;
    let uri: Uri = match path.parse() {
        Ok(u) => u,
        Err(_) => Uri::from_static("/"),
    };
    let target = state.upstream.target(&uri);
    copy_end_to_end(
        &parts.headers,
        req.headers_mut(),
        &[header::EXPECT, header::CONTENT_LENGTH, header::CONTENT_TYPE],
    );
    if body.is_some() {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        // moto routes Query calls by the credential scope's service: IAM's.
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let iam = auth.replace("/eks/aws4_request", "/iam/aws4_request");
            if let Ok(v) = header::HeaderValue::from_str(&iam) {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
        }
    }
    *req.uri_mut() = target.ok()?;
    let resp = state.client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, bytes))
}

/// moto counts an `AttachRolePolicy` of a policy already attached to the role as a second
/// attachment (its `attachment_count` goes up again, so a later `DeletePolicy` fails with
/// `DeleteConflict` after one detach). IAM attaches once and answers success. So the proxy
/// asks moto first and answers such a call itself, as IAM would.
pub(super) async fn already_attached(
    state: &State,
    parts: &hyper::http::request::Parts,
    class: &Classification,
) -> bool {
    let (Some(role), Some(policy)) = (
        param(&class.params, "RoleName"),
        param(&class.params, "PolicyArn"),
    ) else {
        return false;
    };
    let form = format!(
        "Action=ListAttachedRolePolicies&Version=2010-05-08&RoleName={}",
        percent_encoding::utf8_percent_encode(role, percent_encoding::NON_ALPHANUMERIC)
    );
    match ask_moto(state, parts, Method::POST, "/".into(), Some(form)).await {
        Some((200, body)) => String::from_utf8_lossy(&body)
            .contains(&format!("<PolicyArn>{}</PolicyArn>", xml_escape(policy))),
        _ => false,
    }
}

pub(super) fn attached_already() -> Response<Full<Bytes>> {
    let body = format!(
        "<AttachRolePolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AttachRolePolicyResponse>",
        request_id()
    );
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}
