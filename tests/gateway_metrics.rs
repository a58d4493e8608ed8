//! `/metrics` after real traffic through the real gateway process, parsed by a real
//! OpenMetrics parser (Python's `prometheus_client`, from `scripts/setup.sh`), with each
//! family's value checked against the traffic the test sent.

use std::path::Path;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use epinio_irsa::arn::Partition;
use serde_json::Value;
use testkit::gateway::{epinio_client, get, GatewayWorld, ACCESS_KEY, BUCKET, OTHER, SECRET_KEY};
use testkit::gateway_process::GatewayProcess;

/// The scrape, parsed by `prometheus_client.openmetrics.parser`: every sample as
/// `{"name", "labels", "value"}`.
fn parse(scrape: &str) -> Vec<Value> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(
        python.is_file(),
        "{} not found: run `scripts/setup.sh` (installs prometheus-client into .tools/venv)",
        python.display()
    );
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the parser");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("write the scrape");
    let out = child.wait_with_output().expect("the parser ends");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the scrape: {}\n{scrape}\n(missing module: run `scripts/setup.sh`)",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().expect("a number"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_traffic_and_parse_as_openmetrics() {
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    let world = GatewayWorld::start(&policy).await;
    world.create_bucket().await;
    let mut env = world.gateway_env();
    env.push(("EPINIO_IRSA_GATEWAY_LOG_FORMAT".into(), "json".into()));
    let gw = GatewayProcess::spawn(Path::new(env!("CARGO_BIN_EXE_epinio-irsa")), &env).await;
    gw.wait_credentials().await;
    let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    let wrong = epinio_client(&gw.s3_url(), ACCESS_KEY, "not-the-secret", 1);

    let body = vec![7u8; 100_000];
    s3.put_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("PutObject");
    for _ in 0..2 {
        let got = s3
            .get_object()
            .bucket(BUCKET)
            .key("apps/blob")
            .send()
            .await
            .expect("GetObject");
        assert_eq!(
            got.body.collect().await.expect("body").into_bytes().len(),
            body.len()
        );
    }
    let missing = s3
        .head_object()
        .bucket(BUCKET)
        .key("apps/none")
        .send()
        .await;
    assert!(missing.is_err(), "a missing object is 404");
    assert!(s3.head_bucket().bucket(OTHER).send().await.is_err());
    assert!(wrong.head_bucket().bucket(BUCKET).send().await.is_err());
    let sse_c = s3
        .put_object()
        .bucket(BUCKET)
        .key("apps/k")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert!(sse_c.is_err(), "a storage class is refused");

    let (status, scrape) = get(&format!("http://{}/metrics", gw.health))
        .await
        .expect("/metrics");
    assert_eq!(status, 200);
    let scrape = String::from_utf8(scrape.to_vec()).expect("UTF-8");
    let m = parse(&scrape);
    let p = "epinio_irsa_gateway_";
    let requests = |op: &str, status: &str| {
        value(
            &m,
            &format!("{p}requests_total"),
            &[("operation", op), ("status", status)],
        )
    };
    assert_eq!(requests("PutObject", "200"), 1.0, "{scrape}");
    assert_eq!(requests("GetObject", "200"), 2.0);
    assert_eq!(requests("HeadObject", "404"), 1.0);
    assert_eq!(requests("HeadBucket", "403"), 1.0, "the other bucket");
    let refusals = |reason: &str| value(&m, &format!("{p}refusals_total"), &[("reason", reason)]);
    assert_eq!(refusals("bucket"), 1.0);
    assert_eq!(refusals("authentication"), 1.0, "the wrong secret");
    assert_eq!(refusals("header"), 1.0, "the storage class");
    assert_eq!(
        value(
            &m,
            &format!("{p}backend_errors_total"),
            &[("code", "NotFound")]
        ),
        1.0,
        "S3's 404 for the missing object, by code: {scrape}"
    );
    assert!(value(&m, &format!("{p}received_bytes_total"), &[]) >= body.len() as f64);
    assert!(value(&m, &format!("{p}sent_bytes_total"), &[]) >= 2.0 * body.len() as f64);
    let gets = value(
        &m,
        &format!("{p}request_duration_seconds_count"),
        &[("operation", "GetObject")],
    );
    assert_eq!(gets, 2.0, "the duration histogram counts each GET");
    assert_eq!(value(&m, &format!("{p}credentials_ready"), &[]), 1.0);
    let expiry = value(&m, &format!("{p}credentials_expiry_seconds"), &[]);
    assert!(
        expiry > 60.0 && expiry <= 900.0,
        "the endpoint's 15 minutes: {expiry}"
    );
    assert!(value(&m, &format!("{p}connections_open"), &[]) >= 0.0);
    assert!(
        m.iter()
            .all(|s| s["name"] != format!("{p}certificate_expiry_seconds")),
        "no certificate gauge without TLS"
    );
}
