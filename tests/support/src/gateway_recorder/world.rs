//! The strict tests' world: [`GatewayWorld`] (moto with IAM enforcement, the role, the Pod
//! Identity-style credentials endpoint), Epinio's bucket holding `blob` = `original`, a
//! [`Recorder`] in front of moto, and the real `epinio-irsa gateway` process pointed at it.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;

use super::Recorder;
use crate::gateway::{GatewayWorld, ACCESS_KEY, BUCKET, SECRET_KEY};
use crate::gateway_process::GatewayProcess;
use crate::gateway_wire::{Answer, Wire};

/// The seeded object's key and content.
pub const BLOB: &str = "blob";
pub const ORIGINAL: &[u8] = b"original";

pub struct StrictWorld {
    pub world: GatewayWorld,
    pub recorder: Recorder,
    pub gw: GatewayProcess,
}

/// The gateway's environment of [`GatewayWorld::gateway_env`], with AWS pointed at
/// `recorder` instead of the world's counting proxy, and a JSON log.
pub fn env_through(world: &GatewayWorld, recorder: &Recorder) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = world
        .gateway_env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
        .collect();
    env.push(("AWS_ENDPOINT_URL".into(), recorder.url()));
    env.push(("EPINIO_IRSA_GATEWAY_LOG_FORMAT".into(), "json".into()));
    env
}

impl StrictWorld {
    /// The world (its role carrying `policy`, the job's S3 policy), and `bin gateway` started
    /// with `extra` added to its environment (replacing a variable of the same name), its
    /// credentials obtained.
    pub async fn start(bin: &Path, policy: &str, extra: &[(&str, &str)]) -> StrictWorld {
        let world = world(policy).await;
        let recorder = Recorder::start(&world.moto.endpoint()).await;
        let mut env = env_through(&world, &recorder);
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let gw = GatewayProcess::spawn(bin, &env).await;
        gw.wait_credentials().await;
        StrictWorld {
            world,
            recorder,
            gw,
        }
    }

    /// `http://gateway{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.s3_url())
    }

    /// Sends `wire` signed with Epinio's key pair.
    pub async fn send(&self, wire: &Wire<'_>) -> Answer {
        wire.send_signed(ACCESS_KEY, SECRET_KEY).await
    }

    /// Panics unless no request reached AWS.
    pub fn assert_nothing_forwarded(&self, case: &str) {
        let seen: Vec<String> = self
            .recorder
            .requests()
            .iter()
            .map(|r| r.summary())
            .collect();
        assert!(seen.is_empty(), "{case}: reached AWS: {seen:#?}");
    }

    /// What is wrong with a refusal, or `None`: `a` must be `status` with S3 code `code` and
    /// a message naming `naming` (any case; "" names nothing), and no request may have
    /// reached AWS. Clears the recorder for the next case.
    pub fn refusal(
        &self,
        case: &str,
        a: &Answer,
        (status, code): (u16, &str),
        naming: &str,
    ) -> Option<String> {
        let message = super::raw::message(a);
        let seen: Vec<String> = self
            .recorder
            .requests()
            .iter()
            .map(|r| r.summary())
            .collect();
        self.recorder.clear();
        let mut wrong = Vec::new();
        if (a.status, a.code().as_deref()) != (status, Some(code)) {
            let body = String::from_utf8_lossy(&a.body);
            wrong.push(format!("answered {} {:?} ({body})", a.status, a.code()));
        } else if !message.to_lowercase().contains(&naming.to_lowercase()) {
            wrong.push(format!("the message does not name {naming}: {message:?}"));
        }
        if !seen.is_empty() {
            wrong.push(format!("reached AWS: {seen:?}"));
        }
        (!wrong.is_empty()).then(|| format!("{case}: {}", wrong.join("; ")))
    }

    /// The object's content as an administrator reads it from moto (`None`: no such key).
    pub async fn stored(&self, key: &str) -> Option<Vec<u8>> {
        let got = self
            .world
            .admin_s3()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(got.body.collect().await.expect("object body").to_vec())
    }

    /// Deletes `key` as an administrator, straight from moto.
    pub async fn remove(&self, key: &str) {
        let admin = self.world.admin_s3();
        let deleted = admin.delete_object().bucket(BUCKET).key(key).send().await;
        deleted.expect("DeleteObject as the administrator");
    }

    /// Panics unless `blob` still holds `original`.
    pub async fn assert_blob_intact(&self, case: &str) {
        let got = self.stored(BLOB).await;
        assert_eq!(
            got.as_deref(),
            Some(ORIGINAL),
            "{case}: {BUCKET}/{BLOB} changed"
        );
    }
}

/// A [`GatewayWorld`] whose role carries `policy`, with Epinio's bucket and `blob` in it.
pub async fn world(policy: &str) -> GatewayWorld {
    let world = GatewayWorld::start(policy).await;
    world.create_bucket().await;
    world
        .admin_s3()
        .put_object()
        .bucket(BUCKET)
        .key(BLOB)
        .body(ByteStream::from_static(ORIGINAL))
        .send()
        .await
        .expect("seed the blob");
    world
}
