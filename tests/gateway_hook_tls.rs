//! The hook's proof of Epinio's path over TLS (issue 26): `provision` and `verify` send
//! HeadBucket, ListObjectsV2 and the refused request for another bucket to the gateway over
//! `https://`, trusting exactly what Epinio trusts: the certificates of `s3.certificateSecret`
//! (`EPINIO_IRSA_GATEWAY_CA_FILES`, `ca.crt` and `tls.crt` as the chart mounts them), and say
//! so in the summary. A gateway whose certificate another CA signed fails the proof, naming
//! the endpoint; a CA file that holds no certificate is refused before anything is written.
//!
//! World as in `gateway_hook.rs`: moto, the Kubernetes stand-in with Epinio 1.14.1's objects
//! and the gateway's, and the real gateway in-process, here serving HTTPS with a certificate
//! for 127.0.0.1 signed by a CA made in the test (`rcgen`).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use testkit::epinio::Chart;
use testkit::world::{RunOutput, World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const KEY_ID: &str = "EPINIOCLUSTERLOCAL01";
const SECRET: &str = "cluster-local-secret-0123456789abcdefghij";
const BUCKET: &str = "epinio";

/// A CA and a leaf for 127.0.0.1 it signed, written as the certificate Secret's files into
/// `dir`: (`ca.crt`, `tls.crt`, `tls.key`).
fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("leaf parameters")
        .signed_by(&key, &ca)
        .expect("leaf");
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |file: &str, content: String| {
        let path = dir.join(file);
        std::fs::write(&path, content).expect("write");
        path
    };
    (
        write("ca.crt", ca.pem()),
        write("tls.crt", format!("{}{}", leaf.pem(), ca.pem())),
        write("tls.key", key.serialize_pem()),
    )
}

async fn world() -> World {
    let mut objects = Chart::new("1.14.1").objects();
    objects.extend(testkit::gateway::helm_objects(NAMESPACE));
    let w = World::with_objects(BIN, objects).await;
    w.kube.enable_rollouts(std::time::Duration::from_secs(2));
    w
}

async fn run(w: &World, command: &str, env: &[(&str, String)]) -> RunOutput {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.run(command, &pairs).await
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_and_verify_prove_epinios_path_over_tls_trusting_only_its_ca() {
    let w = world().await;
    let (ca, cert, key) = issue(&w.dir, "epinio-ca");
    let mut env = testkit::gateway::env_beside(&w.moto, &w.dir, BUCKET, (KEY_ID, SECRET));
    env.push((
        "EPINIO_IRSA_GATEWAY_TLS_CERT_FILE".into(),
        cert.display().to_string(),
    ));
    env.push((
        "EPINIO_IRSA_GATEWAY_TLS_KEY_FILE".into(),
        key.display().to_string(),
    ));
    let gateway = epinio_irsa::gateway::start(env).await.expect("gateway");
    let endpoint = format!("https://127.0.0.1:{}", gateway.s3_addr().port());
    let trust = format!("{},{}", ca.display(), cert.display());
    let hook = |trust: &str| {
        vec![
            ("EPINIO_IRSA_GATEWAY", "true".to_string()),
            ("EPINIO_IRSA_S3_ACCESS_KEY_ID", KEY_ID.into()),
            ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", SECRET.into()),
            ("EPINIO_IRSA_GATEWAY_ENDPOINT", endpoint.clone()),
            ("EPINIO_IRSA_GATEWAY_CA_FILES", trust.to_string()),
            // one summary line per fact, so the paths can be read whole
            ("EPINIO_IRSA_OUTPUT_WIDTH", "0".to_string()),
        ]
    };

    let out = run(&w, "provision", &hook(&trust)).await;
    out.assert_ok();
    let said = format!(
        "Epinio's path: s3.accessKeyID -> gateway {endpoint} (over TLS, trusting only {} and {})",
        ca.display(),
        cert.display()
    );
    assert!(out.stdout.contains(&said), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("a request for another bucket was refused (AccessDenied)"),
        "{}",
        out.stdout
    );
    let verify = run(&w, "verify", &hook(&trust)).await;
    verify.assert_ok();
    assert!(verify.stdout.contains(&said), "{}", verify.stdout);

    // Another CA signed the gateway's certificate: the proof fails, naming the endpoint.
    let (other_ca, _, _) = issue(&w.dir, "another-ca");
    let mut untrusting = hook(&other_ca.display().to_string());
    untrusting.push(("EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS", "30".into()));
    let started = std::time::Instant::now();
    let wrong = run(&w, "verify", &untrusting).await;
    assert!(!wrong.success(), "trusted a certificate another CA signed");
    assert!(
        wrong.stderr.contains(&endpoint) && wrong.stderr.contains("certificate"),
        "{}",
        wrong.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "an untrusted certificate is not a rollout to wait for: {:?}",
        started.elapsed()
    );

    // A file with no certificate in it: refused before any call, naming the variable.
    let empty = w.dir.join("empty.crt");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let refused = run(&w, "provision", &hook(&empty.display().to_string())).await;
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("EPINIO_IRSA_GATEWAY_CA_FILES")
            && refused.stderr.contains("holds no PEM certificate"),
        "{}",
        refused.stderr
    );
    assert!(refused.aws_calls.is_empty() && refused.kube_calls.iter().all(|c| !c.is_write));

    run(&w, "teardown", &hook(&trust)).await.assert_ok();
    gateway.shutdown().await;
}
