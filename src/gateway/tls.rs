//! The gateway's certificate, renewed in place. cert-manager renews a certificate before it
//! expires and Kubernetes updates the mounted Secret's files in place; the gateway reads them
//! again every [`POLL`] and serves a new pair to new connections (connections already open
//! keep theirs, so requests in flight are not dropped). A pair that cannot be used (an
//! unreadable file, no certificate, a key that does not match the certificate) keeps the old
//! pair serving and is logged as an error naming the file, once per change of the files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::config::TlsFiles;
use super::credentials::rfc3339;
use super::error::GatewayError;

/// How often the files are read again. A Secret volume changes within a minute or so of the
/// Secret; this adds at most two seconds.
pub const POLL: Duration = Duration::from_secs(2);

/// One usable pair, with what the log and the metrics say of it.
#[derive(Debug, Clone)]
pub struct Loaded {
    key: Arc<CertifiedKey>,
    /// The end-entity certificate's serial number, in hex.
    pub serial: String,
    pub not_after: SystemTime,
    /// The files' bytes, to notice a change.
    source: (Vec<u8>, Vec<u8>),
}

/// The current pair, which every new TLS handshake asks for.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Loaded>,
}

impl Reloading {
    pub fn current(&self) -> Loaded {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key)
    }
}

/// Reads and checks the pair; the error names the file at fault.
pub fn load(files: &TlsFiles) -> Result<Loaded, GatewayError> {
    let err = |what: &'static str, path: &Path, reason: String| GatewayError::Tls {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem =
        std::fs::read(&files.cert).map_err(|e| err("certificate", &files.cert, e.to_string()))?;
    let key_pem = std::fs::read(&files.key).map_err(|e| err("key", &files.key, e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err("certificate", &files.cert, e.to_string()))?;
    let Some(leaf) = certs.first() else {
        return Err(err(
            "certificate",
            &files.cert,
            "no PEM certificate in the file".into(),
        ));
    };
    let (serial, not_after) = describe(leaf).map_err(|e| err("certificate", &files.cert, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| err("key", &files.key, e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        err(
            "key",
            &files.key,
            format!(
                "{e} (the key must belong to the certificate in {})",
                files.cert.display()
            ),
        )
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        serial,
        not_after,
        source: (cert_pem, key_pem),
    })
}

/// The serial number (hex) and expiry of a DER certificate.
fn describe(der: &CertificateDer<'_>) -> Result<(String, SystemTime), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after =
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).unwrap_or_default());
    Ok((cert.raw_serial_as_string().replace(':', ""), not_after))
}

/// The acceptor for the pair in `files`, and the resolver behind it (for [`watch_files`]).
pub fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<Reloading>), GatewayError> {
    let loaded = load(files)?;
    let resolver = Arc::new(Reloading {
        current: RwLock::new(loaded),
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls {
            what: "certificate",
            path: files.cert.clone(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), resolver))
}

/// Reads the files every [`POLL`] until `shutdown`, and serves a changed pair once it is
/// usable. A Secret volume swaps both files at once, so a read that falls between the two can
/// see a mismatch that the next poll no longer sees: a pair is reported only when the same
/// bytes fail on two polls in a row, and then once.
pub async fn watch_files(
    files: TlsFiles,
    resolver: Arc<Reloading>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut suspect: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut reported: Option<(Vec<u8>, Vec<u8>)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
        let now = (read(&files.cert), read(&files.key));
        if now == resolver.current().source || reported.as_ref() == Some(&now) {
            continue;
        }
        match load(&files) {
            Ok(loaded) => {
                tracing::info!(
                    serial = %loaded.serial,
                    not_after = %rfc3339(Some(loaded.not_after)),
                    "TLS certificate reloaded; new connections get it"
                );
                resolver.replace(loaded);
                (suspect, reported) = (None, None);
            }
            Err(e) if suspect.as_ref() == Some(&now) => {
                tracing::error!(
                    error = %e,
                    serving_serial = %resolver.current().serial,
                    "cannot use the renewed TLS certificate; the previous one keeps serving"
                );
                (suspect, reported) = (None, Some(now));
            }
            Err(_) => suspect = Some(now),
        }
    }
}

fn read(path: &PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}
