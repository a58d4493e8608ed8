//! What the gateway benchmarks (`gateway.rs`, `gateway_parity.rs`) share: timed PUT and
//! checked GET of one object, the median, the load average and where reports go.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;

pub const MIB: usize = 1024 * 1024;

/// `target/` (or `$CARGO_TARGET_DIR`), where `bench/` reports go.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The first three fields of /proc/loadavg (empty when unreadable).
pub fn loadavg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// PUTs `body` as `bucket/key`; panics when it fails.
pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Bytes) -> Duration {
    let t = Instant::now();
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
    t.elapsed()
}

/// GETs `bucket/key` and compares it with `want` as it streams; with `checksums`, asks for
/// the object's checksum (`x-amz-checksum-mode: ENABLED`). Panics when it fails or differs.
pub async fn get(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    want: &[u8],
    checksums: bool,
) -> Duration {
    let t = Instant::now();
    let mut req = s3.get_object().bucket(bucket).key(key);
    if checksums {
        req = req.checksum_mode(ChecksumMode::Enabled);
    }
    let out = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    let mut body = out.body;
    let mut at = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("GET {key} body: {e}"));
        assert_eq!(&want[at..at + chunk.len()], &chunk[..], "GET {key} differs");
        at += chunk.len();
    }
    assert_eq!(at, want.len(), "GET {key} is short");
    t.elapsed()
}

/// The upper median (the middle value of an odd count); panics on no values.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
