//! Tests of `testkit::proxy`: forwarding, classification, fault injection,
//! latency, crash-after-writes, analysis helpers, and the real aws-sdk-iam
//! parsing injected errors.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use testkit::proxy::{
    classify, critical_path_depth, duplicates, read_log, summarize, Call, CallRecord, CliOptions,
    Fault, Protocol, Proxy, Rule, KUBE_SERVICE,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Tiny upstream: answers every request with a JSON echo of method, path,
/// body and headers. `x-echo-status: N` selects the status. Counts hits.
struct Echo {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Echo {
    async fn start() -> Echo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let h = h.clone();
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let headers: serde_json::Map<String, serde_json::Value> = parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.to_string(), v.to_str().unwrap_or("?").to_string().into())
                                })
                                .collect();
                            let status: u16 = parts
                                .headers
                                .get("x-echo-status")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(200);
                            let echo = serde_json::json!({
                                "method": parts.method.as_str(),
                                "path": parts.uri.path_and_query().map(|p| p.as_str()),
                                "body": String::from_utf8_lossy(&body),
                                "headers": headers,
                            });
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .header("x-upstream", "echo")
                                    .body(Full::new(Bytes::from(echo.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Echo { addr, hits }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Resp, hyper_util::client::legacy::Error> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = client.request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20250101/us-east-1/{service}/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature=deadbeef"
    )
}

/// An IAM Query call through `base`.
async fn iam(base: &str, body: &str) -> Resp {
    let a = auth("iam");
    send(
        base,
        Method::POST,
        "/",
        &[
            ("content-type", FORM),
            ("authorization", &a),
            ("x-amz-date", "20250101T000000Z"),
        ],
        body,
    )
    .await
    .expect("IAM call answered")
}

async fn kube(base: &str, method: Method, path: &str, body: &str) -> Result<Resp, String> {
    send(
        base,
        method,
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
    .map_err(|e| format!("{e:?}"))
}

fn classify_req(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, String, Option<String>, bool, Protocol) {
    let uri: Uri = uri.parse().unwrap();
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let c = classify(&method, &uri, &h, body.as_bytes());
    (c.service, c.op, c.resource, c.is_write, c.protocol)
}

fn call(
    service: &str,
    op: &str,
    resource: Option<&str>,
    t0: Instant,
    start_ms: u64,
    end_ms: u64,
) -> Call {
    Call {
        service: service.to_string(),
        op: op.to_string(),
        resource: resource.map(str::to_string),
        start: t0 + Duration::from_millis(start_ms),
        end: t0 + Duration::from_millis(end_ms),
        status: 200,
        injected: None,
        is_write: !(op.starts_with("Get") || op.starts_with("List") || op.starts_with("get ")),
        params: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

#[test]
fn classifies_aws_query_requests() {
    let iam_auth = auth("iam");
    let sts_auth = auth("sts");
    let iam_h = [("content-type", FORM), ("authorization", iam_auth.as_str())];
    let sts_h = [("content-type", FORM), ("authorization", sts_auth.as_str())];

    let (svc, op, res, w, proto) = classify_req(
        Method::POST,
        "/",
        &iam_h,
        "Action=CreateRole&Version=2010-05-08&RoleName=epinio-server&AssumeRolePolicyDocument=%7B%7D",
    );
    assert_eq!(
        (svc.as_str(), op.as_str(), res.as_deref(), w, proto),
        (
            "iam",
            "CreateRole",
            Some("epinio-server"),
            true,
            Protocol::AwsQuery
        )
    );

    // RoleName wins over PolicyArn.
    let (_, op, res, w, _) = classify_req(
        Method::POST,
        "/",
        &iam_h,
        "Action=AttachRolePolicy&PolicyArn=arn%3Aaws%3Aiam%3A%3A1%3Apolicy%2Fp&RoleName=r1&Version=2010-05-08",
    );
    assert_eq!(
        (op.as_str(), res.as_deref(), w),
        ("AttachRolePolicy", Some("r1"), true)
    );

    let (_, op, res, w, _) = classify_req(
        Method::POST,
        "/",
        &iam_h,
        "Action=GetPolicy&PolicyArn=arn%3Aaws%3Aiam%3A%3A123%3Apolicy%2Fepinio+s3",
    );
    assert_eq!(
        (op.as_str(), res.as_deref(), w),
        (
            "GetPolicy",
            Some("arn:aws:iam::123:policy/epinio s3"),
            false
        )
    );

    let (_, op, res, _, _) = classify_req(
        Method::POST,
        "/",
        &iam_h,
        "Action=CreateOpenIDConnectProvider&Url=https%3A%2F%2Foidc.eks.us-east-1.amazonaws.com%2Fid%2FABC&ClientIDList.member.1=sts.amazonaws.com",
    );
    assert_eq!(
        (op.as_str(), res.as_deref()),
        (
            "CreateOpenIDConnectProvider",
            Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC")
        )
    );

    let (_, op, res, _, _) = classify_req(
        Method::POST,
        "/",
        &iam_h,
        "Action=GetOpenIDConnectProvider&OpenIDConnectProviderArn=arn%3Aaws%3Aiam%3A%3A1%3Aoidc-provider%2Fx",
    );
    assert_eq!(
        (op.as_str(), res.as_deref()),
        (
            "GetOpenIDConnectProvider",
            Some("arn:aws:iam::1:oidc-provider/x")
        )
    );

    let (_, op, res, w, _) = classify_req(
        Method::POST,
        "/",
        &iam_h,
        "Action=CreatePolicy&PolicyName=epinio-s3&PolicyDocument=%7B%7D",
    );
    assert_eq!(
        (op.as_str(), res.as_deref(), w),
        ("CreatePolicy", Some("epinio-s3"), true)
    );

    let (svc, op, res, w, _) = classify_req(
        Method::POST,
        "/",
        &sts_h,
        "Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(
        (svc.as_str(), op.as_str(), res, w),
        ("sts", "GetCallerIdentity", None, false)
    );

    // Unsigned STS call (AssumeRoleWithWebIdentity) falls back to the action; a credential
    // exchange changes no state, so it is not a write.
    let (svc, op, _, w, _) = classify_req(
        Method::POST,
        "/",
        &[("content-type", FORM)],
        "Action=AssumeRoleWithWebIdentity&RoleArn=x&WebIdentityToken=y",
    );
    assert_eq!(
        (svc.as_str(), op.as_str(), w),
        ("sts", "AssumeRoleWithWebIdentity", false)
    );

    // Action in the query string of a GET.
    let (svc, op, res, w, _) = classify_req(
        Method::GET,
        "/?Action=ListRoles&Version=2010-05-08",
        &[("authorization", iam_auth.as_str())],
        "",
    );
    assert_eq!(
        (svc.as_str(), op.as_str(), res, w),
        ("iam", "ListRoles", None, false)
    );
}

#[test]
fn classifies_eks_rest_requests() {
    let a = auth("eks");
    let h = [
        ("authorization", a.as_str()),
        ("content-type", "application/json"),
    ];
    let (svc, op, res, w, proto) = classify_req(Method::GET, "/clusters/my-cluster", &h, "");
    assert_eq!(
        (svc.as_str(), op.as_str(), res.as_deref(), w, proto),
        (
            "eks",
            "DescribeCluster",
            Some("my-cluster"),
            false,
            Protocol::AwsRestJson
        )
    );
    let (_, op, res, w, _) = classify_req(
        Method::POST,
        "/clusters",
        &h,
        r#"{"name":"new-one","roleArn":"x"}"#,
    );
    assert_eq!(
        (op.as_str(), res.as_deref(), w),
        ("CreateCluster", Some("new-one"), true)
    );
    let (_, op, _, w, _) = classify_req(Method::GET, "/clusters", &h, "");
    assert_eq!((op.as_str(), w), ("ListClusters", false));
    let (_, op, _, w, _) = classify_req(Method::GET, "/clusters/c1/addons?maxResults=10", &h, "");
    assert_eq!((op.as_str(), w), ("EKS:GET /clusters/c1/addons", false));
    let (_, op, _, w, _) = classify_req(Method::DELETE, "/clusters/c1", &h, "");
    assert_eq!((op.as_str(), w), ("EKS:DELETE /clusters/c1", true));
}

#[test]
fn classifies_kubernetes_requests() {
    let json = [("content-type", "application/json")];
    // (method, path, headers, body, expected op, expected resource, expected is_write)
    type Case<'a> = (
        Method,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
        Option<&'a str>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/api/v1/namespaces/epinio/serviceaccounts/epinio-server",
            &[],
            "",
            "get serviceaccounts",
            Some("epinio/epinio-server"),
            false,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/epinio/serviceaccounts?labelSelector=a%3Db",
            &[],
            "",
            "list serviceaccounts",
            Some("epinio/*"),
            false,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/epinio/serviceaccounts?watch=true",
            &[],
            "",
            "watch serviceaccounts",
            Some("epinio/*"),
            false,
        ),
        (
            Method::PATCH,
            "/api/v1/namespaces/epinio/serviceaccounts/epinio-server?fieldManager=epinio-irsa&force=true",
            &[("content-type", "application/apply-patch+yaml")],
            "{}",
            "apply serviceaccounts",
            Some("epinio/epinio-server"),
            true,
        ),
        (
            Method::PATCH,
            "/apis/apps/v1/namespaces/epinio/deployments/epinio-server",
            &[("content-type", "application/strategic-merge-patch+json")],
            "{}",
            "patch deployments",
            Some("epinio/epinio-server"),
            true,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/epinio/serviceaccounts",
            &json,
            r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa1"}}"#,
            "create serviceaccounts",
            Some("epinio/sa1"),
            true,
        ),
        (
            Method::PUT,
            "/api/v1/namespaces/epinio/configmaps/cm",
            &json,
            "{}",
            "update configmaps",
            Some("epinio/cm"),
            true,
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/epinio/secrets/s",
            &[],
            "",
            "delete secrets",
            Some("epinio/s"),
            true,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/epinio",
            &[],
            "",
            "get namespaces",
            Some("epinio"),
            false,
        ),
        (
            Method::GET,
            "/apis/apps/v1/namespaces/epinio/deployments/d/status",
            &[],
            "",
            "get deployments/status",
            Some("epinio/d"),
            false,
        ),
        (
            Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            &[],
            "",
            "get clusterroles",
            Some("admin"),
            false,
        ),
        (Method::GET, "/version", &[], "", "get /version", None, false),
    ];
    for (method, path, headers, body, op, res, w) in cases {
        let (svc, got_op, got_res, got_w, proto) =
            classify_req(method.clone(), path, headers, body);
        assert_eq!(svc, KUBE_SERVICE, "{method} {path}");
        assert_eq!(proto, Protocol::Kubernetes, "{method} {path}");
        assert_eq!(
            (got_op.as_str(), got_res.as_deref(), got_w),
            (op, res, w),
            "{method} {path}"
        );
    }
}

// ---------------------------------------------------------------------------
// Forwarding
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forwards_requests_unchanged_and_logs_calls() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    let body =
        "Action=CreateRole&RoleName=epinio-server&AssumeRolePolicyDocument=%7B%22a%22%3A1%7D";
    let a = auth("iam");
    let r = send(
        &proxy.url(),
        Method::POST,
        "/some/path?x=1&y=%2F",
        &[
            ("content-type", FORM),
            ("authorization", &a),
            ("x-amz-date", "20250101T000000Z"),
            ("x-custom", "kept"),
            ("proxy-authorization", "dropped"),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("echo"));
    let echoed = r.json();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/some/path?x=1&y=%2F");
    assert_eq!(echoed["body"], body);
    let h = &echoed["headers"];
    // Host is kept as the client sent it (the proxy's address): SigV4 signs it.
    assert_eq!(h["host"], proxy.addr().to_string());
    assert_eq!(h["authorization"], a.as_str());
    assert_eq!(h["x-amz-date"], "20250101T000000Z");
    assert_eq!(h["x-custom"], "kept");
    assert!(h.get("proxy-authorization").is_none());
    assert_eq!(h["content-length"], body.len().to_string());

    // Upstream non-2xx statuses pass through.
    let r = kube(&proxy.url(), Method::GET, "/api/v1/namespaces/x/pods/p", "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = send(
        &proxy.url(),
        Method::GET,
        "/api/v1/namespaces/x/pods/q",
        &[("x-echo-status", "404")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);

    let calls = proxy.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (
            calls[0].service.as_str(),
            calls[0].op.as_str(),
            calls[0].resource.as_deref()
        ),
        ("iam", "CreateRole", Some("epinio-server"))
    );
    assert!(calls[0].is_write);
    assert_eq!(calls[0].status, 200);
    assert_eq!(calls[0].injected, None);
    assert!(calls[0].end >= calls[0].start);
    assert_eq!(calls[1].op, "get pods");
    assert_eq!(calls[1].resource.as_deref(), Some("x/p"));
    assert!(!calls[1].is_write);
    assert_eq!(calls[2].status, 404);
    assert_eq!(echo.hits(), 3);

    proxy.clear_calls();
    assert!(proxy.calls().is_empty());
}

#[tokio::test]
async fn upstream_with_base_path_and_unreachable_upstream() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&format!("{}/base/", echo.url())).await;
    let r = kube(&proxy.url(), Method::GET, "/api/v1/namespaces", "")
        .await
        .unwrap();
    assert_eq!(r.json()["path"], "/base/api/v1/namespaces");

    // Nothing listens there: 502 from the proxy, recorded.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(&format!("http://{dead}")).await;
    let r = kube(&proxy.url(), Method::GET, "/api/v1/namespaces", "")
        .await
        .unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(proxy.calls()[0].status, 502);
}

// ---------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn n_times_then_pass() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.add_rule(Rule::new("CreateRole", Fault::Throttling, 2));
    let body = "Action=CreateRole&RoleName=r1";
    for _ in 0..2 {
        let r = iam(&proxy.url(), body).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.header("content-type"), Some("text/xml"));
        let text = r.text();
        assert!(text.starts_with(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>"
        ), "{text}");
    }
    // Other operations are not affected.
    assert_eq!(
        iam(&proxy.url(), "Action=GetRole&RoleName=r1").await.status,
        200
    );
    assert_eq!(iam(&proxy.url(), body).await.status, 200);
    assert_eq!(iam(&proxy.url(), body).await.status, 200);
    assert_eq!(echo.hits(), 3, "injected faults never reach upstream");

    let injected: Vec<Option<String>> = proxy.calls().into_iter().map(|c| c.injected).collect();
    assert_eq!(
        injected,
        vec![
            Some("Throttling".into()),
            Some("Throttling".into()),
            None,
            None,
            None
        ]
    );
    let statuses: Vec<u16> = proxy.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![400, 400, 200, 200, 200]);
}

#[tokio::test]
async fn persistent_wildcard_rule_until_cleared() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.add_rule(Rule::always("*", Fault::ServiceUnavailable));
    for body in [
        "Action=GetRole&RoleName=a",
        "Action=ListRoles",
        "Action=CreateRole&RoleName=b",
    ] {
        for _ in 0..3 {
            let r = iam(&proxy.url(), body).await;
            assert_eq!(r.status, 503);
            assert!(r.text().contains("<Code>ServiceUnavailable</Code>"));
            assert!(r.text().contains("<Type>Receiver</Type>"));
        }
    }
    let r = kube(
        &proxy.url(),
        Method::GET,
        "/api/v1/namespaces/e/serviceaccounts/s",
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "ServiceUnavailable");
    assert_eq!(echo.hits(), 0);

    proxy.clear_rules();
    assert_eq!(
        iam(&proxy.url(), "Action=GetRole&RoleName=a").await.status,
        200
    );
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn after_skips_first_matching_calls() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.add_rule(Rule::once("GetRole", Fault::NoSuchEntity).after(2));
    let statuses = {
        let mut v = Vec::new();
        for i in 0..3 {
            // Non-matching calls in between do not count.
            iam(&proxy.url(), "Action=ListRoles").await;
            v.push(iam(&proxy.url(), &format!("Action=GetRole&RoleName=role-{i}")).await);
        }
        v.push(iam(&proxy.url(), "Action=GetRole&RoleName=role-3").await);
        v
    };
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(codes, vec![200, 200, 404, 200]);
    let text = statuses[2].text();
    assert!(text.contains("<Code>NoSuchEntity</Code>"), "{text}");
    assert!(
        text.contains("The role with name role-2 cannot be found."),
        "{text}"
    );
}

#[tokio::test]
async fn rules_apply_in_order_and_count_independently() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.add_rule(Rule::once("CreateRole", Fault::Throttling));
    proxy.add_rule(Rule::new("*", Fault::Conflict, 1).after(1));
    let a = iam(&proxy.url(), "Action=CreateRole&RoleName=x").await; // rule 1
    let b = iam(&proxy.url(), "Action=CreateRole&RoleName=x").await; // rule 2 (its 2nd match)
    let c = iam(&proxy.url(), "Action=CreateRole&RoleName=x").await; // pass
    assert_eq!((a.status, b.status, c.status), (400, 409, 200));
    assert!(b.text().contains("<Code>ConcurrentModification</Code>"));
}

#[tokio::test]
async fn fault_response_shapes_per_protocol() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    let eks = auth("eks");
    let eks_h = [("authorization", eks.as_str())];

    // EKS (REST-JSON).
    proxy.add_rule(Rule::once("DescribeCluster", Fault::Throttling));
    let r = send(&proxy.url(), Method::GET, "/clusters/c1", &eks_h, "")
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("ThrottlingException"));
    assert!(r.json()["message"].is_string());
    proxy.add_rule(Rule::once("DescribeCluster", Fault::NoSuchEntity));
    let r = send(&proxy.url(), Method::GET, "/clusters/c1", &eks_h, "")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("ResourceNotFoundException")
    );
    assert!(r.json()["message"].as_str().unwrap().contains("c1"));
    proxy.add_rule(Rule::once("DescribeCluster", Fault::InternalFailure));
    let r = send(&proxy.url(), Method::GET, "/clusters/c1", &eks_h, "")
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("InternalFailure"));
    proxy.add_rule(Rule::once("DescribeCluster", Fault::ServiceUnavailable));
    let r = send(&proxy.url(), Method::GET, "/clusters/c1", &eks_h, "")
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("ServiceUnavailableException")
    );

    // IAM / STS (Query XML).
    proxy.add_rule(Rule::once("CreateRole", Fault::InternalFailure));
    let r = iam(&proxy.url(), "Action=CreateRole&RoleName=x").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("<Code>InternalFailure</Code>"));
    proxy.add_rule(Rule::once("GetPolicy", Fault::NoSuchEntity));
    let r = iam(
        &proxy.url(),
        "Action=GetPolicy&PolicyArn=arn%3Aaws%3Aiam%3A%3A1%3Apolicy%2Fp",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r
        .text()
        .contains("Policy arn:aws:iam::1:policy/p was not found."));
    proxy.add_rule(Rule::once("GetCallerIdentity", Fault::Throttling));
    let sts = auth("sts");
    let r = send(
        &proxy.url(),
        Method::POST,
        "/",
        &[("content-type", FORM), ("authorization", &sts)],
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .contains("xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""));

    // Kubernetes Status.
    let sa = "/api/v1/namespaces/epinio/serviceaccounts/epinio-server";
    proxy.add_rule(Rule::once("apply serviceaccounts", Fault::Conflict));
    let r = send(
        &proxy.url(),
        Method::PATCH,
        sa,
        &[("content-type", "application/apply-patch+yaml")],
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 409);
    let s = r.json();
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["status"], "Failure");
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(s["code"], 409);
    assert_eq!(s["details"]["name"], "epinio-server");
    proxy.add_rule(Rule::once("get serviceaccounts", Fault::Throttling));
    let r = kube(&proxy.url(), Method::GET, sa, "").await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["reason"], "TooManyRequests");
    proxy.add_rule(Rule::once("get serviceaccounts", Fault::InternalFailure));
    let r = kube(&proxy.url(), Method::GET, sa, "").await.unwrap();
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (500, Some("InternalError"))
    );
    proxy.add_rule(Rule::once("get serviceaccounts", Fault::NoSuchEntity));
    let r = kube(&proxy.url(), Method::GET, sa, "").await.unwrap();
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (404, Some("NotFound"))
    );
    assert_eq!(
        r.json()["message"],
        "serviceaccounts \"epinio-server\" not found"
    );

    assert_eq!(echo.hits(), 0);
}

/// Raw HTTP over a std socket, to see exactly what the proxy sends back.
fn raw_request(addr: SocketAddr, request: &str) -> std::io::Result<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(buf)
}

#[tokio::test]
async fn reset_connection_drops_without_response() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.add_rule(Rule::once("get pods", Fault::ResetConnection));
    let addr = proxy.addr();
    let req = format!(
        "GET /api/v1/namespaces/a/pods/p HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n"
    );
    let r = {
        let req = req.clone();
        tokio::task::spawn_blocking(move || raw_request(addr, &req))
            .await
            .unwrap()
    };
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(bytes) => panic!(
            "expected a reset, got {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
    // Through a hyper client it is an error, not a response.
    proxy.add_rule(Rule::once("get pods", Fault::ResetConnection));
    let e = kube(&proxy.url(), Method::GET, "/api/v1/namespaces/a/pods/p", "").await;
    assert!(e.is_err(), "expected an error");
    // Then it passes again.
    let ok = kube(&proxy.url(), Method::GET, "/api/v1/namespaces/a/pods/p", "")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);

    let calls = proxy.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].status, 0);
    assert_eq!(calls[0].injected.as_deref(), Some("ResetConnection"));
    assert_eq!(calls[1].status, 0);
    assert_eq!(calls[2].status, 200);
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn slow_waits_then_forwards() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    let slow = Duration::from_millis(400);
    proxy.add_rule(Rule::new("GetRole", Fault::Slow(slow), 2));

    // A client with a shorter timeout gives up.
    let t = tokio::time::timeout(
        Duration::from_millis(100),
        iam(&proxy.url(), "Action=GetRole&RoleName=a"),
    )
    .await;
    assert!(t.is_err(), "client should time out");

    // A patient client gets the forwarded answer after the wait.
    let t0 = Instant::now();
    let r = iam(&proxy.url(), "Action=GetRole&RoleName=a").await;
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= slow, "{:?}", t0.elapsed());

    // Rule exhausted: fast again.
    let t0 = Instant::now();
    assert_eq!(
        iam(&proxy.url(), "Action=GetRole&RoleName=a").await.status,
        200
    );
    assert!(t0.elapsed() < slow, "{:?}", t0.elapsed());

    let patient = proxy
        .calls()
        .into_iter()
        .find(|c| c.status == 200 && c.injected.as_deref() == Some("Slow"))
        .expect("slow call recorded");
    assert!(patient.duration() >= slow);
}

#[tokio::test]
async fn delay_applies_to_every_call() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    let d = Duration::from_millis(150);
    proxy.set_delay(d);
    for _ in 0..2 {
        let t0 = Instant::now();
        assert_eq!(iam(&proxy.url(), "Action=ListRoles").await.status, 200);
        assert!(t0.elapsed() >= d);
        let t0 = Instant::now();
        kube(&proxy.url(), Method::GET, "/api/v1/namespaces/a/pods/p", "")
            .await
            .unwrap();
        assert!(t0.elapsed() >= d);
    }
    assert!(proxy.calls().iter().all(|c| c.duration() >= d));

    // Also before injected answers.
    proxy.add_rule(Rule::once("ListRoles", Fault::Throttling));
    let t0 = Instant::now();
    assert_eq!(iam(&proxy.url(), "Action=ListRoles").await.status, 400);
    assert!(t0.elapsed() >= d);

    proxy.set_delay(Duration::ZERO);
    let t0 = Instant::now();
    assert_eq!(iam(&proxy.url(), "Action=ListRoles").await.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn crash_after_writes_resets_later_writes_only() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.crash_after_writes(Some(2));
    let url = proxy.url();
    let sa = r#"{"metadata":{"name":"x"}}"#;
    let path = "/api/v1/namespaces/e/serviceaccounts";

    assert_eq!(
        kube(&url, Method::POST, path, sa).await.unwrap().status,
        200
    );
    // A failed write (upstream 409) does not count.
    let r = send(
        &url,
        Method::POST,
        path,
        &[
            ("content-type", "application/json"),
            ("x-echo-status", "409"),
        ],
        sa,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(iam(&url, "Action=CreateRole&RoleName=r").await.status, 200);
    // Two successful writes: from now on writes are reset, reads pass.
    assert!(kube(&url, Method::POST, path, sa).await.is_err());
    assert!(kube(&url, Method::PATCH, &format!("{path}/x"), "{}")
        .await
        .is_err());
    assert!(send(
        &url,
        Method::POST,
        "/",
        &[("content-type", FORM), ("authorization", &auth("iam"))],
        "Action=AttachRolePolicy&RoleName=r&PolicyArn=p",
    )
    .await
    .is_err());
    assert_eq!(
        kube(&url, Method::GET, &format!("{path}/x"), "")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(iam(&url, "Action=GetRole&RoleName=r").await.status, 200);
    assert_eq!(
        iam(&url, "Action=ListAttachedRolePolicies&RoleName=r")
            .await
            .status,
        200
    );
    assert_eq!(echo.hits(), 6);

    let crashed: Vec<String> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.injected.as_deref() == Some("CrashAfterWrites"))
        .map(|c| {
            assert_eq!(c.status, 0);
            assert!(c.is_write);
            c.op
        })
        .collect();
    assert_eq!(
        crashed,
        vec![
            "create serviceaccounts",
            "patch serviceaccounts",
            "AttachRolePolicy"
        ]
    );

    // Turning it off lets writes through again; re-arming counts from zero.
    proxy.crash_after_writes(None);
    assert_eq!(
        kube(&url, Method::POST, path, sa).await.unwrap().status,
        200
    );
    proxy.crash_after_writes(Some(0));
    assert!(kube(&url, Method::POST, path, sa).await.is_err());
    assert_eq!(
        kube(&url, Method::GET, &format!("{path}/x"), "")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_writes_is_exact_under_concurrency() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.set_delay(Duration::from_millis(30));
    proxy.crash_after_writes(Some(3));
    let url = proxy.url();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            kube(
                &url,
                Method::POST,
                "/api/v1/namespaces/e/configmaps",
                &format!(r#"{{"metadata":{{"name":"cm{i}"}}}}"#),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(r) = t.await.unwrap() {
            assert_eq!(r.status, 200);
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(echo.hits(), 3);
}

// ---------------------------------------------------------------------------
// Real SDK against injected errors
// ---------------------------------------------------------------------------

async fn iam_client(endpoint: &str) -> aws_sdk_iam::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_iam::config::Credentials;
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_iam::Client::new(&conf)
}

#[tokio::test]
async fn aws_sdk_iam_parses_injected_errors() {
    use aws_sdk_iam::error::ProvideErrorMetadata;

    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    let client = iam_client(&proxy.url()).await;

    proxy.add_rule(Rule::once("GetRole", Fault::NoSuchEntity));
    let err = client
        .get_role()
        .role_name("epinio-server")
        .send()
        .await
        .expect_err("injected NoSuchEntity");
    let svc = err.into_service_error();
    assert!(svc.is_no_such_entity_exception(), "{svc:?}");
    assert_eq!(svc.code(), Some("NoSuchEntity"));
    assert_eq!(
        svc.message(),
        Some("The role with name epinio-server cannot be found.")
    );

    proxy.add_rule(Rule::once("CreateRole", Fault::Throttling));
    let err = client
        .create_role()
        .role_name("epinio-server")
        .assume_role_policy_document("{}")
        .send()
        .await
        .expect_err("injected Throttling");
    assert_eq!(err.code(), Some("Throttling"), "{err:?}");
    assert_eq!(err.message(), Some("Rate exceeded"));

    proxy.add_rule(Rule::once("CreatePolicy", Fault::Conflict));
    let err = client
        .create_policy()
        .policy_name("epinio-s3")
        .policy_document("{}")
        .send()
        .await
        .expect_err("injected ConcurrentModification");
    let svc = err.into_service_error();
    assert!(svc.is_concurrent_modification_exception(), "{svc:?}");

    proxy.add_rule(Rule::once("ListRoles", Fault::ServiceUnavailable));
    let err = client.list_roles().send().await.expect_err("503");
    assert_eq!(err.code(), Some("ServiceUnavailable"), "{err:?}");

    proxy.add_rule(Rule::once("ListRoles", Fault::ResetConnection));
    let err = client.list_roles().send().await.expect_err("reset");
    assert!(
        matches!(err, aws_sdk_iam::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );

    let calls = proxy.calls();
    let ops: Vec<(&str, &str, Option<&str>)> = calls
        .iter()
        .map(|c| (c.service.as_str(), c.op.as_str(), c.resource.as_deref()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("iam", "GetRole", Some("epinio-server")),
            ("iam", "CreateRole", Some("epinio-server")),
            ("iam", "CreatePolicy", Some("epinio-s3")),
            ("iam", "ListRoles", None),
            ("iam", "ListRoles", None),
        ]
    );
    assert_eq!(echo.hits(), 0);
}

// ---------------------------------------------------------------------------
// Analysis helpers
// ---------------------------------------------------------------------------

#[test]
fn critical_path_depth_on_hand_built_logs() {
    let t0 = Instant::now();
    assert_eq!(critical_path_depth(&[]), 0);

    // Sequential chain of 5 (touching ends count as "after").
    let chain: Vec<Call> = (0..5)
        .map(|i| call("iam", "GetRole", None, t0, i * 10, i * 10 + 10))
        .collect();
    assert_eq!(critical_path_depth(&chain), 5);

    // Fully parallel.
    let parallel: Vec<Call> = (0..5)
        .map(|i| call("iam", "GetRole", None, t0, i, 100 + i))
        .collect();
    assert_eq!(critical_path_depth(&parallel), 1);

    // Diamond: A, then B and C in parallel, then D.
    let mut diamond = vec![
        call("iam", "D", None, t0, 30, 40),
        call("iam", "B", None, t0, 10, 20),
        call("iam", "A", None, t0, 0, 10),
        call("iam", "C", None, t0, 11, 25),
    ];
    assert_eq!(critical_path_depth(&diamond), 3);
    // A long call overlapping everything does not lengthen the path.
    diamond.push(call("eks", "DescribeCluster", None, t0, 1, 39));
    assert_eq!(critical_path_depth(&diamond), 3);
    // Two chains of 2 (AWS) and 4 (Kubernetes); b1..b3 then a2 is also 4.
    let mixed = vec![
        call("iam", "a1", None, t0, 0, 50),
        call("iam", "a2", None, t0, 50, 100),
        call("kube", "b1", None, t0, 0, 10),
        call("kube", "b2", None, t0, 10, 20),
        call("kube", "b3", None, t0, 20, 30),
        call("kube", "b4", None, t0, 45, 60),
    ];
    assert_eq!(critical_path_depth(&mixed), 4);
    let s = summarize(&mixed);
    assert_eq!((s.depth_aws, s.depth_kube, s.depth_all), (2, 4, 4));
}

#[tokio::test]
async fn critical_path_depth_from_measured_calls() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    proxy.set_delay(Duration::from_millis(20));
    for i in 0..4 {
        iam(&proxy.url(), &format!("Action=GetRole&RoleName=r{i}")).await;
    }
    assert_eq!(critical_path_depth(&proxy.calls()), 4);
    proxy.clear_calls();

    let url = proxy.url();
    let bodies: Vec<String> = (0..3)
        .map(|i| format!("Action=GetRole&RoleName=p{i}"))
        .collect();
    let (a, b, c) = tokio::join!(
        iam(&url, &bodies[0]),
        iam(&url, &bodies[1]),
        iam(&url, &bodies[2])
    );
    assert_eq!((a.status, b.status, c.status), (200, 200, 200));
    let calls = proxy.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(critical_path_depth(&calls), 1);
}

#[test]
fn duplicates_ignore_retries_and_writes() {
    let t0 = Instant::now();
    let mut failed = call("iam", "GetRole", Some("r2"), t0, 10, 11);
    failed.injected = Some("Throttling".into());
    failed.status = 400;
    let mut not_found = call("kube", "get serviceaccounts", Some("e/sa"), t0, 40, 41);
    not_found.status = 404;
    let calls = vec![
        call("iam", "GetRole", Some("r1"), t0, 0, 1),
        failed,
        call("iam", "GetRole", Some("r2"), t0, 12, 13), // retry after injected fault
        call("iam", "GetRole", Some("r1"), t0, 20, 21), // duplicate
        call("iam", "CreateRole", Some("r3"), t0, 22, 23), // write
        call("iam", "CreateRole", Some("r3"), t0, 24, 25), // write again: ignored
        call("sts", "GetCallerIdentity", None, t0, 26, 27),
        call("sts", "GetCallerIdentity", None, t0, 28, 29), // duplicate
        call("iam", "GetRole", Some("r1"), t0, 30, 31),     // duplicate (3rd)
        not_found,
        call("kube", "get serviceaccounts", Some("e/sa"), t0, 42, 43), // after non-2xx
        call("sts", "GetRole", Some("r1"), t0, 50, 51), // different service: distinct
    ];
    assert_eq!(
        duplicates(&calls),
        vec![
            ("GetRole".to_string(), Some("r1".to_string()), 3),
            ("GetCallerIdentity".to_string(), None, 2),
        ]
    );

    let s = summarize(&calls);
    assert_eq!(s.total, 12);
    assert_eq!(
        (s.aws_reads, s.aws_writes, s.kube_reads, s.kube_writes),
        (8, 2, 2, 0)
    );
    assert_eq!(s.duplicate_reads, 3);
    assert_eq!(s.injected, 1);
    assert_eq!(s.failed, 2);
    assert_eq!(s.resets, 0);
    assert_eq!(s.by_op["iam:GetRole"], 5);
    assert_eq!(s.depth_aws, 10);
    assert!((s.wall_ms - 51.0).abs() < 1.0);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["aws_reads"], 8);
    assert_eq!(v["depth_aws"], 10);
}

// ---------------------------------------------------------------------------
// Log file and CLI options
// ---------------------------------------------------------------------------

#[tokio::test]
async fn log_file_gets_one_json_line_per_call() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url()).await;
    let path = std::env::temp_dir().join(format!("fault-proxy-test-{}.jsonl", std::process::id()));
    proxy.set_log_file(&path).unwrap();
    proxy.add_rule(Rule::once("GetRole", Fault::Throttling));
    iam(&proxy.url(), "Action=GetRole&RoleName=r").await;
    iam(&proxy.url(), "Action=GetRole&RoleName=r").await;
    kube(
        &proxy.url(),
        Method::DELETE,
        "/api/v1/namespaces/e/secrets/s",
        "",
    )
    .await
    .unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<CallRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].op, "GetRole");
    assert_eq!(records[0].injected.as_deref(), Some("Throttling"));
    assert_eq!(records[0].status, 400);
    assert_eq!(records[2].op, "delete secrets");
    assert!(records[2].is_write);
    assert!(records
        .iter()
        .all(|r| r.end_ms >= r.start_ms && r.start_ms >= 0.0));

    let back = read_log(&path, proxy.origin()).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(
        critical_path_depth(&back),
        critical_path_depth(&proxy.calls())
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn cli_options_and_rule_specs() {
    let o = CliOptions::parse([
        "--upstream",
        "http://127.0.0.1:5000",
        "--port=8080",
        "--delay-ms",
        "50",
        "--log",
        "/tmp/x.jsonl",
        "--fault",
        "CreateRole=throttling*2",
        "--fault",
        "*=unavailable*inf@3",
        "--fault",
        "DescribeCluster=slow:5000",
        "--crash-after-writes",
        "4",
    ])
    .unwrap();
    assert_eq!(o.upstream, "http://127.0.0.1:5000");
    assert_eq!(o.port, 8080);
    assert_eq!(o.delay, Duration::from_millis(50));
    assert_eq!(o.log.as_deref(), Some(std::path::Path::new("/tmp/x.jsonl")));
    assert_eq!(o.crash_after_writes, Some(4));
    assert_eq!(
        o.rules,
        vec![
            Rule::new("CreateRole", Fault::Throttling, 2),
            Rule::always("*", Fault::ServiceUnavailable).after(3),
            Rule::once("DescribeCluster", Fault::Slow(Duration::from_secs(5))),
        ]
    );
    assert_eq!(
        Rule::parse("apply serviceaccounts=conflict").unwrap(),
        Rule::once("apply serviceaccounts", Fault::Conflict)
    );
    assert_eq!(Rule::parse("GetRole=reset@1").unwrap().after, 1);
    assert!(Rule::parse("GetRole=bogus").is_err());
    assert!(CliOptions::parse(["--port", "1"]).is_err());
    assert!(CliOptions::parse(["--upstream", "http://x", "--what"]).is_err());
}
