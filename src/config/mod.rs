//! Configuration: the `EPINIO_IRSA_*` environment contract the chart renders.
//!
//! Everything is read once, from an iterator of `(name, value)` pairs (so tests never touch the
//! process environment), and validated before any network call. Every problem is reported
//! together, each naming the variable, the value (never a secret) and what is allowed.

mod model;
mod read;
pub mod rules;
mod tags;
mod types;
mod validator;
pub use model::*;
pub use read::from_pairs;
pub use tags::*;
pub use types::*;
pub(crate) use validator::Validator;

pub use crate::error::{ConfigError, ConfigErrors};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn defaults_satisfy_their_rules() {
        let c = from_pairs(Vec::<(String, String)>::new()).expect("defaults are valid");
        assert_eq!(c.namespace, "epinio");
        assert_eq!(c.release_name, "epinio");
        assert_eq!(c.bucket, "epinio");
        assert_eq!(c.server_service_account, "epinio-server");
        assert_eq!(c.role_path, "/");
    }

    #[test]
    fn mode_is_one_of_three() {
        let read = |m: &str| from_pairs([("EPINIO_IRSA_MODE".to_string(), m.to_string())]);
        assert_eq!(read("IRSA").unwrap().credential_mode, CredentialMode::Irsa);
        assert_eq!(
            read("pod-identity").unwrap().credential_mode,
            CredentialMode::PodIdentity
        );
        assert_eq!(read("auto").unwrap().credential_mode, CredentialMode::Auto);
        assert_eq!(
            from_pairs(Vec::<(String, String)>::new())
                .unwrap()
                .credential_mode,
            CredentialMode::Irsa
        );
        for m in ["podidentity", "oidc"] {
            let err = read(m).unwrap_err().to_string();
            assert!(
                err.contains("EPINIO_IRSA_MODE") && err.contains(m) && err.contains("pod-identity"),
                "{err}"
            );
        }
    }
}
