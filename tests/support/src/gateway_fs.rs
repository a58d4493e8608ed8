//! A fast S3 backend for the gateway's load test and benchmark: `s3s-fs` (a file-system S3
//! server of the same crate family as the gateway's s3s), served in-process on loopback with
//! one static key pair. moto is far too slow for these: it would hide the gateway's own cost.
//!
//! [`FsWorld`] adds what a gateway in front of it needs: Epinio's key pair in files and the
//! gateway's environment, with the backend's static keys as the gateway's AWS credentials
//! (aws-config's environment-variable provider; the role's credential path is covered by the
//! moto tests, not here).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aws_sdk_iam::config::Credentials;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::gateway::{ACCESS_KEY, SECRET_KEY};
use crate::gateway_pieces::Pieces;

/// The backend's own key pair (what the gateway signs with here).
pub const FS_ACCESS_KEY: &str = "FSBACKENDKEY00000001";
pub const FS_SECRET_KEY: &str = "fs-backend-secret-0123456789abcdefghij";

/// s3s-fs on `127.0.0.1`, with its files in a private directory removed on drop.
pub struct FsBackend {
    addr: SocketAddr,
    root: PathBuf,
    task: JoinHandle<()>,
}

impl FsBackend {
    /// Serves a new directory under the system's temp dir; `bucket` exists from the start.
    pub async fn start(bucket: &str) -> FsBackend {
        Self::start_with_pieces(bucket, None).await
    }

    /// As [`FsBackend::start`]; with `Some(n)`, every response body is written in pieces of at
    /// least `n` bytes ([`crate::gateway_pieces`]) instead of s3s-fs's 4 KiB reads.
    pub async fn start_with_pieces(bucket: &str, pieces: Option<usize>) -> FsBackend {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("epinio-irsa-s3s-fs-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(bucket)).expect("backend directory");
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs on the directory");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(FS_ACCESS_KEY, FS_SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the backend");
        let addr = listener.local_addr().expect("backend address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let service = service.clone();
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match pieces {
                        None => http.serve_connection(TokioIo::new(tcp), service).await,
                        Some(min) => {
                            let cut = hyper::service::service_fn(move |req| {
                                let service = service.clone();
                                async move {
                                    let res = hyper::service::Service::call(&service, req).await?;
                                    Ok::<_, s3s::HttpError>(res.map(|b| Pieces::new(b, min)))
                                }
                            });
                            http.serve_connection(TokioIo::new(tcp), cut).await
                        }
                    };
                });
            }
        });
        FsBackend { addr, root, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A client straight to the backend, configured as the Epinio client of
    /// [`crate::gateway::epinio_client`] except for the keys.
    pub fn client(&self) -> aws_sdk_s3::Client {
        crate::gateway::epinio_client(&self.url(), FS_ACCESS_KEY, FS_SECRET_KEY, 1)
    }

    /// The backend's credentials, for an SDK configuration of its own.
    pub fn credentials() -> Credentials {
        Credentials::new(FS_ACCESS_KEY, FS_SECRET_KEY, None, None, "s3s-fs")
    }
}

impl Drop for FsBackend {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The backend, Epinio's key pair in files, and the environment of a gateway in front.
pub struct FsWorld {
    pub backend: FsBackend,
    pub bucket: String,
    dir: PathBuf,
    /// The container credentials endpoint serving the backend's static keys.
    credentials: Vec<(String, String)>,
}

impl FsWorld {
    pub async fn start(bucket: &str) -> FsWorld {
        Self::start_with_pieces(bucket, None).await
    }

    /// With a backend that writes its bodies in pieces of at least `pieces` bytes.
    pub async fn start_with_pieces(bucket: &str, pieces: Option<usize>) -> FsWorld {
        let backend = FsBackend::start_with_pieces(bucket, pieces).await;
        let dir = backend
            .root()
            .with_file_name(format!("{}-keys", backend.addr.port()));
        let credentials = crate::gateway_agent::serve_static(&dir, FS_ACCESS_KEY, FS_SECRET_KEY);
        FsWorld {
            backend,
            bucket: bucket.to_string(),
            dir,
            credentials,
        }
    }

    /// The gateway's whole environment (JSON logs, loopback ports chosen by the OS), signing
    /// for the backend with its static keys, served by a container credentials endpoint.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        let mut env =
            crate::gateway::gateway_settings(&self.dir, &self.bucket, (ACCESS_KEY, SECRET_KEY));
        env.extend(
            [
                ("EPINIO_IRSA_GATEWAY_REGION", "us-east-1"),
                ("EPINIO_IRSA_GATEWAY_LOG_FORMAT", "json"),
                ("AWS_ENDPOINT_URL", &self.backend.url()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_CONFIG_FILE", "/dev/null"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.extend(self.credentials.iter().cloned());
        env
    }
}

impl Drop for FsWorld {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
