//! Which service, operation and resource a request is ([`classify`]): AWS Query (IAM, STS),
//! EKS REST and the Pod Identity stand-in's routes, S3 REST; Kubernetes is
//! [`super::classify_kube`].

use hyper::header::HeaderMap;
use hyper::{Method, Uri};

use super::classify_kube::classify_kube;
use super::parse::{
    host_service, is_form, json_str, param, parse_form, percent_decode, sigv4_service,
};

/// Wire protocol of a call, which decides the shape of injected errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS Query (form-encoded `Action=...`; IAM, STS), XML errors.
    AwsQuery,
    /// AWS REST-JSON (EKS), JSON errors with `x-amzn-ErrorType`.
    AwsRestJson,
    /// S3 REST-XML: `<Error><Code>` bodies (none for HEAD), throttling as 503 `SlowDown`.
    S3Rest,
    /// Kubernetes API, `Status` errors.
    Kubernetes,
}

/// What [`classify`] found out about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub protocol: Protocol,
    pub service: String,
    pub op: String,
    pub resource: Option<String>,
    pub is_write: bool,
    pub params: Vec<(String, String)>,
}

/// Classify a request into service / operation / resource.
///
/// * AWS Query (IAM, STS): op = the `Action` value; resource = first present
///   of `RoleName`, `PolicyArn`, `OpenIDConnectProviderArn`, `Url`,
///   `PolicyName`.
/// * EKS REST: `GET /clusters/{name}` → `DescribeCluster`, `POST /clusters`
///   → `CreateCluster`, `GET /clusters` → `ListClusters`, others
///   `EKS:{METHOD} {path}`.
/// * The service comes from the SigV4 credential scope
///   (`.../REGION/SERVICE/aws4_request`); unsigned Query calls fall back to
///   the Host name, then to the action (STS actions → `sts`, else `iam`).
/// * Anything without SigV4/`x-amz-*` headers and without a Query `Action`
///   is Kubernetes: op = `{verb} {resource}` with verb get, list, watch,
///   create, update, patch, apply (PATCH with
///   `application/apply-patch+yaml`), delete, deletecollection.
pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Classification {
    let scope_service = sigv4_service(headers);
    let has_amz =
        scope_service.is_some() || headers.keys().any(|k| k.as_str().starts_with("x-amz-"));

    if let Some(query) = classify_query(uri, headers, body, scope_service.as_deref()) {
        return query;
    }
    if has_amz && scope_service.as_deref() == Some("s3") {
        return classify_s3(method, uri);
    }
    if has_amz {
        return classify_rest(method, uri, headers, body, scope_service);
    }
    classify_kube(method, uri, headers, body)
}

/// AWS Query (IAM, STS): a call with an `Action`, in the form body (POST) or in the query
/// string (GET); `scope` is the service of its SigV4 credential scope.
fn classify_query(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    scope: Option<&str>,
) -> Option<Classification> {
    let form_body = is_form(headers) || body.starts_with(b"Action=");
    let mut params = if form_body {
        parse_form(body)
    } else {
        Vec::new()
    };
    if !params.iter().any(|(k, _)| k == "Action") {
        if let Some(q) = uri.query() {
            let qp = parse_form(q.as_bytes());
            if qp.iter().any(|(k, _)| k == "Action") {
                params = qp;
            }
        }
    }
    let action = param(&params, "Action")?;
    let service = scope
        .map(str::to_string)
        .or_else(|| host_service(headers))
        .unwrap_or_else(|| {
            if is_sts_action(action) {
                "sts".to_string()
            } else {
                "iam".to_string()
            }
        });
    let resource = [
        "RoleName",
        "RoleArn",
        "PolicyArn",
        "OpenIDConnectProviderArn",
        "Url",
        "PolicyName",
    ]
    .iter()
    .find_map(|k| param(&params, k))
    .map(str::to_string);
    Some(Classification {
        protocol: Protocol::AwsQuery,
        service,
        op: action.to_string(),
        resource,
        is_write: !is_read_op(action),
        params: params.clone(),
    })
}

/// AWS REST-JSON (EKS, and the Pod Identity stand-in's routes); `scope` is the service of its
/// SigV4 credential scope.
fn classify_rest(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    scope: Option<String>,
) -> Classification {
    let path = uri.path();
    let service = scope
        .or_else(|| host_service(headers))
        .unwrap_or_else(|| "aws".to_string());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let decoded: Vec<String> = segs.iter().map(|s| percent_decode(s)).collect();
    if let Some(route) = crate::pod_identity::Route::of(method.as_str(), &decoded) {
        return classify_pod_identity(&route, uri, body, service);
    }
    let (op, resource) = match (method, segs.as_slice()) {
        (&Method::GET, ["clusters", name]) => {
            ("DescribeCluster".to_string(), Some(percent_decode(name)))
        }
        (&Method::GET, ["clusters"]) => ("ListClusters".to_string(), None),
        (&Method::POST, ["clusters"]) => ("CreateCluster".to_string(), json_str(body, &["name"])),
        _ => (
            format!("{}:{} {}", service.to_ascii_uppercase(), method, path),
            segs.get(1).map(|s| percent_decode(s)),
        ),
    };
    let is_write = if op.contains(':') {
        !matches!(*method, Method::GET | Method::HEAD)
    } else {
        !is_read_op(&op)
    };
    Classification {
        protocol: Protocol::AwsRestJson,
        service,
        op,
        resource,
        is_write,
        params: Vec::new(),
    }
}

/// The Pod Identity stand-in's operations: resource = the association id (for create and list
/// `namespace/serviceAccount`, else the cluster; the add-on for `DescribeAddon`); params = the path's cluster and id, the
/// query and the body's scalar fields (`roleArn`, `namespace`, `serviceAccount`), and
/// `tagged=true` when the body carries tags.
fn classify_pod_identity(
    route: &crate::pod_identity::Route,
    uri: &Uri,
    body: &[u8],
    service: String,
) -> Classification {
    use crate::pod_identity::Route;
    let mut params = vec![("clusterName".to_string(), route.cluster().to_string())];
    let resource = match route {
        Route::Create { cluster } | Route::List { cluster } => cluster.clone(),
        Route::Describe { id, .. } | Route::Update { id, .. } | Route::Delete { id, .. } => {
            params.push(("associationId".into(), id.clone()));
            id.clone()
        }
        Route::DescribeAddon { addon, .. } => {
            params.push(("addonName".into(), addon.clone()));
            addon.clone()
        }
        Route::Tag { arn, .. } => {
            let id = arn.rsplit('/').next().unwrap_or_default().to_string();
            params.push(("associationId".into(), id.clone()));
            params.push(("resourceArn".into(), arn.clone()));
            id
        }
    };
    if let Some(q) = uri.query() {
        params.extend(parse_form(q.as_bytes()));
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for (k, v) in &map {
            match v {
                serde_json::Value::String(s) => params.push((k.clone(), s.clone())),
                serde_json::Value::Object(o) if k == "tags" && !o.is_empty() => {
                    params.push(("tagged".into(), "true".into()))
                }
                _ => {}
            }
        }
    }
    // Create and list name a ServiceAccount when they carry one, as the job's errors do.
    let subject = match (
        param(&params, "namespace"),
        param(&params, "serviceAccount"),
    ) {
        (Some(ns), Some(sa)) => Some(format!("{ns}/{sa}")),
        _ => None,
    };
    let resource = match route {
        Route::Create { .. } | Route::List { .. } => subject.unwrap_or(resource),
        _ => resource,
    };
    let op = route.operation();
    Classification {
        protocol: Protocol::AwsRestJson,
        service,
        op: op.to_string(),
        resource: Some(resource),
        is_write: !is_read_op(op),
        params,
    }
}

/// S3 REST (path-style): the operations `verify` and the tests make, by method and path.
fn classify_s3(method: &Method, uri: &Uri) -> Classification {
    let segs: Vec<String> = uri
        .path()
        .splitn(3, '/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = uri.query().unwrap_or("");
    let op = match (method, segs.len()) {
        (&Method::HEAD, 1) => "HeadBucket",
        (&Method::GET, 1) if query.contains("list-type=2") => "ListObjectsV2",
        (&Method::GET, 1) => "ListObjects",
        (&Method::PUT, 1) => "CreateBucket",
        (&Method::DELETE, 1) => "DeleteBucket",
        (&Method::PUT, 2) => "PutObject",
        (&Method::GET, 2) => "GetObject",
        (&Method::HEAD, 2) => "HeadObject",
        (&Method::DELETE, 2) => "DeleteObject",
        _ => "S3:other",
    };
    Classification {
        protocol: Protocol::S3Rest,
        service: "s3".to_string(),
        op: op.to_string(),
        resource: segs.first().cloned(),
        is_write: matches!(*method, Method::PUT | Method::POST | Method::DELETE),
        params: Vec::new(),
    }
}
/// Operations that change no state: reads, and STS's credential exchanges.
fn is_read_op(op: &str) -> bool {
    ["Get", "List", "Describe", "AssumeRole"]
        .iter()
        .any(|p| op.starts_with(p))
}

fn is_sts_action(action: &str) -> bool {
    action.starts_with("AssumeRole")
        || matches!(
            action,
            "GetCallerIdentity"
                | "GetSessionToken"
                | "GetFederationToken"
                | "GetAccessKeyInfo"
                | "DecodeAuthorizationMessage"
        )
}
