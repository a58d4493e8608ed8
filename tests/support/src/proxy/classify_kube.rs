//! Which Kubernetes API call a request is: `{verb} {resource}` and `namespace/name`.

use hyper::header::{self, HeaderMap};
use hyper::{Method, Uri};

use super::parse::{json_str, param, parse_form, percent_decode};
use super::{Classification, Protocol, KUBE_SERVICE};

pub(super) fn classify_kube(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Classification {
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let rest: &[String] = match segs.first().map(String::as_str) {
        Some("api") if segs.len() >= 2 => &segs[2..],
        Some("apis") if segs.len() >= 3 => &segs[3..],
        _ => &[],
    };
    let query = parse_form(uri.query().unwrap_or("").as_bytes());
    let watch = matches!(param(&query, "watch"), Some("true" | "1"));

    let (ns, resource, name, sub) = split_path(rest);

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET | Method::HEAD if name.is_some() || resource.is_none() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    let op = match resource {
        Some(res) => match sub {
            Some(sub) => format!("{verb} {res}/{sub}"),
            None => format!("{verb} {res}"),
        },
        None => format!("{verb} {}", uri.path()),
    };
    let name = name.map(str::to_string).or_else(|| match *method {
        Method::POST if resource.is_some() => json_str(body, &["metadata", "name"]),
        _ => None,
    });
    let resource_name = match (ns, name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n),
        (Some(ns), None) => Some(format!("{ns}/*")),
        (None, None) => None,
    };
    Classification {
        protocol: Protocol::Kubernetes,
        service: KUBE_SERVICE.to_string(),
        op,
        resource: resource_name,
        // A TokenRequest creates no object: it changes no state.
        is_write: !(matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || (resource == Some("serviceaccounts") && sub == Some("token"))),
        params: Vec::new(),
    }
}

/// A resource path after `/api/VERSION` or `/apis/GROUP/VERSION`, split into (namespace,
/// resource, name, subresource).
fn split_path(rest: &[String]) -> (Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
    match rest {
        [] => (None, None, None, None),
        [ns_kw, ns] if ns_kw == "namespaces" => (None, Some("namespaces"), Some(ns), None),
        [ns_kw, ns, res, tail @ ..] if ns_kw == "namespaces" => (
            Some(ns),
            Some(res),
            tail.first().map(String::as_str),
            tail.get(1).map(String::as_str),
        ),
        [res, tail @ ..] => (
            None,
            Some(res),
            tail.first().map(String::as_str),
            tail.get(1).map(String::as_str),
        ),
    }
}
