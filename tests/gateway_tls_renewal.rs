//! A renewed certificate is served without a restart (issue 26): the real gateway process
//! serves HTTPS from files that the test replaces as Kubernetes replaces a Secret volume's
//! (written aside, then renamed over), while a long download is running over TLS.
//!
//! What it proves:
//! - the download that started on the old certificate completes, byte-exact;
//! - a new connection gets the new certificate's serial within 10 s;
//! - a pair whose key does not belong to its certificate, and a certificate file with no
//!   certificate in it, are refused: the previous certificate keeps serving new connections,
//!   each is logged as an error naming the file, and `/readyz` stays 200.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use epinio_irsa::arn::Partition;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, Issuer, KeyPair, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use testkit::gateway::{epinio_config, get, GatewayWorld, ACCESS_KEY, BUCKET, SECRET_KEY};
use testkit::gateway_process::GatewayProcess;
use tokio_rustls::rustls;

const MIB: usize = 1024 * 1024;

/// A leaf certificate for 127.0.0.1 with `serial`, signed by `ca`, with `key`: chain PEM.
fn leaf(ca: &Issuer<'_, KeyPair>, ca_pem: &str, key: &KeyPair, serial: u8) -> String {
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf parameters");
    params.serial_number = Some(SerialNumber::from(vec![0x7e, serial]));
    let cert = params.signed_by(key, ca).expect("leaf certificate");
    format!("{}{ca_pem}", cert.pem())
}

/// Replaces `path` as a Secret volume update does: the new content appears at once.
fn replace(path: &Path, content: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, content).expect("write aside");
    std::fs::rename(&aside, path).expect("rename over");
}

/// The serial (hex) of the certificate a new TLS connection to `addr` is served.
async fn served_serial(addr: SocketAddr, ca_pem: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .expect("trust the CA");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let leaf = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("X.509");
    cert.raw_serial_as_string().replace(':', "")
}

/// Polls new connections for up to `limit` until they are served `serial`; the time it took.
async fn wait_for_serial(addr: SocketAddr, ca: &str, serial: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let seen = served_serial(addr, ca).await;
        if seen == serial {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still served {seen} after {limit:?}, not {serial}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_refused() {
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    let world = GatewayWorld::start(&policy).await;
    world.create_bucket().await;
    let data: Vec<u8> = (0..48 * MIB).map(|i| (i % 251) as u8).collect();
    world
        .admin_s3()
        .put_object()
        .bucket(BUCKET)
        .key("apps/large")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("seed the object");

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");
    let ca_pem = ca.pem();
    let (key1, key2) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
    let cert_file = world.dir().join("tls.crt");
    let key_file = world.dir().join("tls.key");
    replace(&cert_file, &leaf(&ca, &ca_pem, &key1, 1));
    replace(&key_file, &key1.serialize_pem());

    let mut env = world.gateway_env();
    for (k, v) in [
        ("EPINIO_IRSA_GATEWAY_TLS_CERT_FILE", &cert_file),
        ("EPINIO_IRSA_GATEWAY_TLS_KEY_FILE", &key_file),
    ] {
        env.push((k.into(), v.display().to_string()));
    }
    env.push(("EPINIO_IRSA_GATEWAY_LOG_FORMAT".into(), "json".into()));
    let gw = GatewayProcess::spawn(Path::new(env!("CARGO_BIN_EXE_epinio-irsa")), &env).await;
    gw.wait_credentials().await;
    assert_eq!(served_serial(gw.s3, &ca_pem).await, "7e01");

    // A long download on the first certificate.
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(
                    TrustStore::empty()
                        .with_native_roots(false)
                        .with_pem_certificate(ca_pem.clone().into_bytes()),
                )
                .build()
                .expect("TLS context"),
        )
        .build_https();
    let endpoint = format!("https://127.0.0.1:{}", gw.s3.port());
    let s3 = aws_sdk_s3::Client::from_conf(
        epinio_config(&endpoint, ACCESS_KEY, SECRET_KEY, 1)
            .http_client(https)
            .build(),
    );
    let mut body = s3
        .get_object()
        .bucket(BUCKET)
        .key("apps/large")
        .send()
        .await
        .expect("GET on the first certificate")
        .body;
    let mut hash = Sha256::new();
    let mut received = 0;
    while received < MIB {
        let chunk = body.next().await.expect("more").expect("a piece");
        received += chunk.len();
        hash.update(&chunk);
    }

    // Renewal: a new key and certificate, while the download is paused mid-way.
    replace(&key_file, &key2.serialize_pem());
    replace(&cert_file, &leaf(&ca, &ca_pem, &key2, 2));
    let took = wait_for_serial(gw.s3, &ca_pem, "7e02", Duration::from_secs(10)).await;
    eprintln!("renewed certificate served to new connections after {took:?}");
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("the download keeps going on the old certificate");
        received += chunk.len();
        hash.update(&chunk);
    }
    assert_eq!(received, data.len());
    assert_eq!(hash.finalize().to_vec(), Sha256::digest(&data).to_vec());

    // Broken pairs: the key of another certificate, then a file with no certificate.
    replace(&cert_file, &leaf(&ca, &ca_pem, &key1, 3));
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        served_serial(gw.s3, &ca_pem).await,
        "7e02",
        "mismatched pair refused"
    );
    replace(&cert_file, "not a certificate\n");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        served_serial(gw.s3, &ca_pem).await,
        "7e02",
        "empty certificate refused"
    );
    let ready = get(&format!("http://{}/readyz", gw.health))
        .await
        .expect("/readyz");
    assert_eq!(ready.0, 200, "/readyz stays ready");
    let log = gw.log().all;
    let errors: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("cannot use the renewed TLS certificate"))
        .collect();
    assert_eq!(errors.len(), 2, "one error per broken pair: {errors:#?}");
    assert!(
        errors[0].contains(&key_file.display().to_string()),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains(&cert_file.display().to_string()),
        "{}",
        errors[1]
    );
    assert!(
        log.iter()
            .any(|l| l.contains("TLS certificate reloaded") && l.contains("7e02")),
        "the reload is logged with the new serial"
    );
    s3.head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("a request on the renewed certificate");
}
