//! Pod Identity calls, answered by the stand-in ([`crate::pod_identity`]) after asking moto
//! for the cluster and the role.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header;
use hyper::{Method, Response};

use super::forward::ask_moto;
use super::inject::request_id;
use super::parse::{parse_form, percent_decode};
use super::state::State;

/// The role's ARN and trust policy from IAM's `GetRole` XML (the document URL-encoded, as IAM
/// returns it).
fn iam_role(xml: &[u8]) -> Option<crate::pod_identity::IamRole> {
    let xml = String::from_utf8_lossy(xml);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(
            xml[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    let arn = element("Arn")?;
    let trust =
        serde_json::from_str(&percent_decode(&element("AssumeRolePolicyDocument")?)).ok()?;
    Some(crate::pod_identity::IamRole::Found { arn, trust })
}

/// Answer a Pod Identity call from the stand-in, after asking moto what it needs: the cluster
/// (`DescribeCluster`) and, when the body names a role, whether it exists (`GetRole`). Both go
/// with the caller's own headers, so they pass wherever the call itself would.
pub(super) async fn serve_pod_identity(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    route: &crate::pod_identity::Route,
) -> Response<Full<Bytes>> {
    let ask = |method: Method, path: String, body: Option<String>| {
        ask_moto(state, parts, method, path, body)
    };
    let cluster = route.cluster().to_string();
    let cluster_path = format!(
        "/clusters/{}",
        percent_encoding::utf8_percent_encode(&cluster, percent_encoding::NON_ALPHANUMERIC)
    );
    let failure = |what: &str| {
        let body = serde_json::json!({ "message": format!("stand-in: could not ask moto {what}") });
        Response::builder()
            .status(500)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-amzn-ErrorType", "ServerException")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("valid response")
    };
    let cluster_arn = match ask(Method::GET, cluster_path, None).await {
        Some((200, bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["cluster"]["arn"].as_str().map(str::to_string)),
        Some((404, _)) => None,
        _ => return failure("for the cluster"),
    };
    let role = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["roleArn"].as_str().map(str::to_string));
    let role = match role.as_deref().and_then(crate::pod_identity::role_name) {
        None => None,
        Some(name) => {
            let form = format!(
                "Action=GetRole&Version=2010-05-08&RoleName={}",
                percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
            );
            match ask(Method::POST, "/".into(), Some(form)).await {
                Some((200, xml)) => match iam_role(&xml) {
                    Some(found) => Some(found),
                    None => return failure("for the role (unreadable GetRole answer)"),
                },
                Some((404, _)) => Some(crate::pod_identity::IamRole::Missing),
                _ => return failure("for the role"),
            }
        }
    };
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| parse_form(q.as_bytes()))
        .unwrap_or_default();
    let answer = state.pod_identity.serve(
        route,
        &query,
        body,
        &crate::pod_identity::World { cluster_arn, role },
    );
    let mut b = Response::builder()
        .status(answer.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-amzn-RequestId", request_id());
    if let Some(t) = answer.error_type {
        b = b.header("x-amzn-ErrorType", t);
    }
    b.body(Full::new(Bytes::from(answer.body.to_string())))
        .expect("valid response")
}
