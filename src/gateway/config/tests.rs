//! Unit tests of the gateway's environment contract.

use super::*;

fn keys() -> (tempdir::Dir, Vec<(String, String)>) {
    let dir = tempdir::Dir::new();
    let ak = dir.write("ak", "AKEXAMPLE\n");
    let sk = dir.write("sk", "s3cr3t-value");
    let env = vec![
        (ACCESS_KEY_FILE.to_string(), ak),
        (SECRET_KEY_FILE.to_string(), sk),
        (BUCKET.to_string(), "epinio".to_string()),
    ];
    (dir, env)
}

/// A private directory removed on drop (the crate has no tempfile dependency).
mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("epinio-irsa-gw-config-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
        pub fn write(&self, name: &str, content: &str) -> String {
            let p = self.0.join(name);
            std::fs::write(&p, content).expect("write");
            p.display().to_string()
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn defaults_and_region_fallback() {
    let (_dir, mut env) = keys();
    env.push(("AWS_REGION".into(), "eu-west-1".into()));
    let c = from_pairs(env).expect("valid");
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.health_listen, "0.0.0.0:9090".parse().unwrap());
    assert_eq!(c.region, "eu-west-1");
    assert_eq!(c.access_key_id.expose(), "AKEXAMPLE");
    assert!(c.tls.is_none());
    assert!(!c.path_style);
    assert_eq!(c.header_read_timeout, Duration::from_secs(10));
}

#[test]
fn secrets_never_print() {
    let (_dir, mut env) = keys();
    env.push((REGION.into(), "us-east-1".into()));
    let c = from_pairs(env).expect("valid");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cr3t-value") && !shown.contains("AKEXAMPLE"),
        "{shown}"
    );
}

#[test]
fn every_problem_is_reported_together() {
    let env = vec![
        (LISTEN, "nine-thousand"),
        (BUCKET, "Not_A_Bucket"),
        (ACCESS_KEY_FILE, "/nonexistent/ak"),
        (SECRET_KEY_FILE, "/nonexistent/sk"),
        (TLS_CERT_FILE, "/tls/cert.pem"),
        (PATH_STYLE, "yes"),
        (DRAIN, "0"),
    ];
    let e = from_pairs(env).expect_err("invalid");
    let vars = e.variables();
    for v in [
        LISTEN,
        BUCKET,
        REGION,
        ACCESS_KEY_FILE,
        SECRET_KEY_FILE,
        TLS_KEY_FILE,
        PATH_STYLE,
        DRAIN,
    ] {
        assert!(vars.contains(&v), "{v} missing from {e}");
    }
}

#[test]
fn an_empty_key_file_is_refused() {
    let (dir, mut env) = keys();
    env.push((REGION.into(), "us-east-1".into()));
    let empty = dir.write("empty", "\n");
    env.push((SECRET_KEY_FILE.into(), empty));
    let e = from_pairs(env).expect_err("empty secret");
    assert_eq!(e.variables(), vec![SECRET_KEY_FILE]);
}
