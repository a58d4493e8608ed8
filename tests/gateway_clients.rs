//! Real clients against the gateway (backend: moto with IAM enforcement, the role carrying
//! the job's S3 policy): the aws CLI v1 running staging's exact command, and boto3. The
//! tools come from `scripts/setup.sh` (`.tools/venv`); a missing one fails the test.

use std::path::PathBuf;
use std::process::Stdio;

use aws_sdk_s3::primitives::ByteStream;
use epinio_irsa::arn::Partition;
use epinio_irsa::gateway::{self, Gateway};
use sha2::{Digest, Sha256};
use testkit::gateway::{wait_for_credentials, GatewayWorld, ACCESS_KEY, BUCKET, SECRET_KEY};

const MIB: usize = 1024 * 1024;

/// `.tools/venv/bin/NAME` of this workspace; panics naming `scripts/setup.sh` when absent.
fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/venv/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} not found: run `scripts/setup.sh` (installs awscli 1.36.40 and boto3 1.35.49 into .tools/venv)",
        path.display()
    );
    path
}

/// The environment a client in Epinio's pods has: the gateway's key pair and a region, no
/// AWS files, no instance metadata.
fn client_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

async fn setup() -> (GatewayWorld, Gateway) {
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    let world = GatewayWorld::start(&policy).await;
    world.create_bucket().await;
    let gw = gateway::start(world.gateway_env())
        .await
        .expect("the gateway starts");
    wait_for_credentials(gw.health_addr()).await;
    (world, gw)
}

fn content(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_v1_downloads_like_staging() {
    let aws = tool("aws");
    let (world, gw) = setup().await;
    let endpoint = format!("http://{}", gw.s3_addr());
    let dir = world.dir().join("staging");
    std::fs::create_dir_all(&dir).expect("download dir");
    for (i, size) in [0, 1, 8 * MIB + 1, 64 * MIB].into_iter().enumerate() {
        // Epinio's server uploaded the blob (straight to the bucket here, to keep moto's
        // time for the download under test).
        let blob = format!("blob-{size}");
        let data = content(size, i as u8);
        world
            .admin_s3()
            .put_object()
            .bucket(BUCKET)
            .key(&blob)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("upload the blob");
        let file = dir.join(&blob);
        // Staging's init container: aws --endpoint-url URL s3 cp s3://BUCKET/BLOBID FILE
        let out = tokio::process::Command::new(&aws)
            .args(["--endpoint-url", &endpoint, "s3", "cp"])
            .arg(format!("s3://{BUCKET}/{blob}"))
            .arg(&file)
            .envs(client_env())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run the aws CLI");
        assert!(
            out.status.success(),
            "aws s3 cp of {size} B failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let got = std::fs::read(&file).expect("the downloaded file");
        assert_eq!(
            hex::encode(Sha256::digest(&got)),
            hex::encode(Sha256::digest(&data)),
            "aws s3 cp of {size} B wrote other bytes"
        );
    }
    // The 64 MiB download came as ranged parts, all through the role.
    let ranged = world
        .s3_calls()
        .iter()
        .filter(|c| c.op == "GetObject")
        .count();
    assert!(
        ranged >= 8,
        "expected ranged GETs for 64 MiB, saw {ranged} GETs"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_puts_gets_heads_ranges_and_uploads_in_parts() {
    let python = tool("python");
    let (world, gw) = setup().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/boto3_roundtrip.py");
    let sizes = [0, 1, 8 * MIB + 1].map(|s| s.to_string());
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}", gw.s3_addr()))
        .arg(BUCKET)
        .args(&sizes)
        .envs(client_env())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "boto3 failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), sizes.len(), "{stdout}");
    let big = &lines[2];
    assert_eq!(
        big["multipart"], true,
        "boto3 did not upload 8 MiB + 1 in parts: {big}"
    );
    let parts = world
        .s3_calls()
        .iter()
        .filter(|c| c.op == "PutObject")
        .count();
    assert!(
        parts >= 4,
        "PutObject and UploadPart calls through the gateway: {parts}"
    );
    gw.shutdown().await;
}
