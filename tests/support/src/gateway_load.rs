//! The load the gateway's load test and benchmark put on it: N concurrent clients, each
//! mixing PutObject and GetObject of 1 MiB - 64 MiB objects for a while, every GET checked
//! byte for byte against what was put (stronger than a hash, and cheap in a debug build).
//!
//! Object contents are slices of one shared pseudo-random pool at random offsets, so the
//! clients hold no copies, and two objects of the same size still differ. Each client keeps
//! its last four objects and deletes older ones, so the backend's disk stays bounded.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

const MIB: usize = 1024 * 1024;

/// What a load run did.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub clients: usize,
    pub elapsed: Duration,
    pub puts: u64,
    pub gets: u64,
    pub deletes: u64,
    pub bytes_put: u64,
    pub bytes_got: u64,
    /// Requests that failed, with the error (the first 20).
    pub errors: Vec<String>,
    pub error_count: u64,
    /// GETs whose body differed from what was put (length or content).
    pub mismatches: u64,
    pub slowest: Duration,
}

impl LoadReport {
    pub fn mib_per_s(&self) -> f64 {
        (self.bytes_put + self.bytes_got) as f64 / MIB as f64 / self.elapsed.as_secs_f64()
    }

    fn merge(&mut self, other: LoadReport) {
        self.puts += other.puts;
        self.gets += other.gets;
        self.deletes += other.deletes;
        self.bytes_put += other.bytes_put;
        self.bytes_got += other.bytes_got;
        self.error_count += other.error_count;
        self.mismatches += other.mismatches;
        self.slowest = self.slowest.max(other.slowest);
        for e in other.errors {
            if self.errors.len() < 20 {
                self.errors.push(e);
            }
        }
    }
}

/// `len` pseudo-random bytes (xorshift64, 8 bytes per step).
pub fn pool(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The shape of a load run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub clients: usize,
    pub duration: Duration,
    /// Object sizes, uniform in `min..=max` bytes.
    pub sizes: (usize, usize),
    /// PutObject with `UNSIGNED-PAYLOAD` (the SDK's `disable_payload_signing`) instead of the
    /// signed SHA-256 of the body: in a debug build SHA-256 runs at ~10 MiB/s on each side,
    /// which would leave the clients waiting on hashing instead of on the gateway.
    pub unsigned_payload: bool,
}

/// Runs `load.clients` clients against `bucket` through `s3` for `load.duration` (each
/// finishes the request it is in).
pub async fn run(s3: aws_sdk_s3::Client, bucket: &str, load: Load) -> LoadReport {
    let Load {
        clients,
        duration,
        sizes: (min, max),
        unsigned_payload,
    } = load;
    let data = pool(max + 16 * MIB, 0x5eed);
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (s3, data, bucket) = (s3.clone(), data.clone(), bucket.to_string());
        tasks.push(tokio::spawn(async move {
            one_client(
                s3,
                &bucket,
                client,
                data,
                until,
                (min, max),
                unsigned_payload,
            )
            .await
        }));
    }
    let mut report = LoadReport {
        clients,
        ..LoadReport::default()
    };
    for t in tasks {
        match t.await {
            Ok(r) => report.merge(r),
            Err(e) => {
                report.error_count += 1;
                report.errors.push(format!("client task: {e}"));
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

async fn one_client(
    s3: aws_sdk_s3::Client,
    bucket: &str,
    client: usize,
    data: Bytes,
    until: Instant,
    (min, max): (usize, usize),
    unsigned_payload: bool,
) -> LoadReport {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1).wrapping_mul(0x1000_0001));
    let mut mine: Vec<(String, usize, usize)> = Vec::new();
    let mut r = LoadReport::default();
    let mut n = 0;
    let fail = |r: &mut LoadReport, what: String| {
        r.error_count += 1;
        if r.errors.len() < 20 {
            r.errors.push(what);
        }
    };
    while Instant::now() < until {
        let t0 = Instant::now();
        if mine.is_empty() || rng.below(2) == 0 {
            let size = min + rng.below(max - min + 1);
            let offset = rng.below(data.len() - size + 1);
            let key = format!("load/{client}/{n}");
            n += 1;
            let body = ByteStream::from(data.slice(offset..offset + size));
            let put = s3.put_object().bucket(bucket).key(&key).body(body);
            let put = if unsigned_payload {
                put.customize().disable_payload_signing().send().await
            } else {
                put.send().await
            };
            match put {
                Ok(_) => {
                    r.puts += 1;
                    r.bytes_put += size as u64;
                    mine.push((key, offset, size));
                }
                Err(e) => fail(&mut r, format!("PUT {key} ({size} B): {e:?}")),
            }
            if mine.len() > 4 {
                let (old, _, _) = mine.remove(0);
                match s3.delete_object().bucket(bucket).key(&old).send().await {
                    Ok(_) => r.deletes += 1,
                    Err(e) => fail(&mut r, format!("DELETE {old}: {e:?}")),
                }
            }
        } else {
            let (key, offset, size) = mine[rng.below(mine.len())].clone();
            let want = data.slice(offset..offset + size);
            match s3.get_object().bucket(bucket).key(&key).send().await {
                Ok(out) => {
                    let (got, same) = compare(out.body, &want).await;
                    match got {
                        Ok(len) => {
                            r.gets += 1;
                            r.bytes_got += len as u64;
                            if !same || len != size {
                                r.mismatches += 1;
                                fail(&mut r, format!("GET {key}: {len} B, want {size} B, same bytes so far: {same}"));
                            }
                        }
                        Err(e) => fail(&mut r, format!("GET {key} body: {e}")),
                    }
                }
                Err(e) => fail(&mut r, format!("GET {key}: {e:?}")),
            }
        }
        r.slowest = r.slowest.max(t0.elapsed());
    }
    r
}

/// Streams `body`, comparing it with `want` as it comes: (bytes read or the stream's error,
/// whether every byte read so far matched).
async fn compare(mut body: ByteStream, want: &[u8]) -> (Result<usize, String>, bool) {
    let mut at = 0;
    let mut same = true;
    loop {
        match body.next().await {
            None => return (Ok(at), same),
            Some(Err(e)) => return (Err(format!("{e} after {at} B")), same),
            Some(Ok(chunk)) => {
                let end = at + chunk.len();
                same &= end <= want.len() && want[at..end] == chunk[..];
                at = end;
            }
        }
    }
}

/// The report as one line of Markdown-ish text.
pub fn summary(r: &LoadReport) -> String {
    format!(
        "{} clients, {:.1} s: {} PUT ({} MiB), {} GET ({} MiB), {} DELETE, {:.0} MiB/s, {} errors, {} mismatches, slowest request {:.1} s",
        r.clients,
        r.elapsed.as_secs_f64(),
        r.puts,
        r.bytes_put / MIB as u64,
        r.gets,
        r.bytes_got / MIB as u64,
        r.deletes,
        r.mib_per_s(),
        r.error_count,
        r.mismatches,
        r.slowest.as_secs_f64()
    )
}
