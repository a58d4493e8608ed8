//! Who may ask: exactly one access key pair, Epinio's own `s3.accessKeyID` /
//! `s3.secretAccessKey`, read once from the mounted Secret (see `config`). s3s checks the
//! SigV4 signature (headers, presigned URLs, chunked payloads) with the secret this returns;
//! an unknown key id gets `InvalidAccessKeyId`, a wrong signature `SignatureDoesNotMatch`,
//! and requests with no signature never reach [`super::access`] as anyone but anonymous.

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::config::Secret;

pub struct KeyPair {
    access_key_id: Secret,
    secret_access_key: Secret,
}

impl KeyPair {
    pub fn new(access_key_id: Secret, secret_access_key: Secret) -> Self {
        KeyPair {
            access_key_id,
            secret_access_key,
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyPair {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if constant_time_eq(
            access_key.as_bytes(),
            self.access_key_id.expose().as_bytes(),
        ) {
            Ok(SecretKey::from(self.secret_access_key.expose()))
        } else {
            Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ))
        }
    }
}

/// Equal without an early exit, so timing does not reveal how much of a key id matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_one_key_id_is_known() {
        let auth = KeyPair::new(Secret::new("AKID"), Secret::new("secret"));
        assert!(auth.get_secret_key("AKID").await.is_ok());
        for other in ["AKI", "AKIDX", "akid", ""] {
            let e = auth.get_secret_key(other).await.expect_err("refused");
            assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidAccessKeyId);
        }
    }
}
