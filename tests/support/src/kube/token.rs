//! TokenRequest (`POST .../serviceaccounts/NAME/token`): the stand-in's service-account
//! tokens.

use serde_json::Value;

use super::serve::{Reply, Served};
use super::status::ApiError;
use super::validate::FieldError;
use super::{lock, resources, store, RecordedRequest, Shared};

impl Shared {
    /// TokenRequest (`POST .../serviceaccounts/NAME/token`): a JWT-shaped token (unsigned:
    /// nothing here verifies signatures) whose `iss` is the cluster's issuer
    /// ([`KubeStandIn::set_issuer`]), `sub` is `system:serviceaccount:NS:NAME`, `aud` the
    /// requested audiences and `exp` now plus `expirationSeconds` (default 3600), as the
    /// kube-apiserver issues them; `status.expirationTimestamp` is that `exp`. 422 for
    /// `expirationSeconds` under 600 or over 2^32, 404 when the ServiceAccount does not exist.
    /// Creates no object.
    pub(super) fn token_request(
        &self,
        rec: &RecordedRequest,
        ns: &str,
        name: &str,
    ) -> Result<Served, ApiError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let rt =
            resources::by_plural("", "v1", "serviceaccounts").ok_or_else(ApiError::no_such_path)?;
        if rec.method != "POST" {
            return Err(ApiError::method_not_allowed());
        }
        let sa = lock(&self.store).get_direct("v1", "ServiceAccount", ns, name);
        let Some(sa) = sa else {
            return Err(ApiError::not_found(rt, name));
        };
        let spec = rec
            .body
            .as_ref()
            .and_then(|b| b.get("spec"))
            .cloned()
            .unwrap_or_default();
        let audiences = spec
            .get("audiences")
            .cloned()
            .unwrap_or_else(|| serde_json::json!(["https://kubernetes.default.svc"]));
        // The apiserver's ValidateTokenRequest: at least 10 minutes, at most 2^32 seconds.
        let seconds = spec
            .get("expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let bound = match seconds {
            s if s < 600 => Some("may not specify a duration less than 10 minutes"),
            s if s > 1 << 32 => Some("may not specify a duration larger than 2^32 seconds"),
            _ => None,
        };
        if let Some(detail) = bound {
            let error = FieldError::invalid_number("spec.expirationSeconds", seconds, detail);
            return Err(ApiError::invalid_kind(
                "TokenRequest.authentication.k8s.io",
                "authentication.k8s.io",
                name,
                &[error],
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let exp = now + seconds.unsigned_abs();
        let claims = serde_json::json!({
            "iss": lock(&self.issuer).clone(),
            "sub": format!("system:serviceaccount:{ns}:{name}"),
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}},
        });
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.{}",
            part(&serde_json::json!({"alg": "RS256", "kid": "stand-in"})),
            part(&claims),
            URL_SAFE_NO_PAD.encode(b"stand-in-signature")
        );
        lock(&self.tokens).push(token.clone());
        Ok(Served {
            status: 201,
            reply: Reply::Json(serde_json::json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"audiences": claims["aud"], "expirationSeconds": seconds},
                "status": {"token": token, "expirationTimestamp": store::format_time(exp)},
            })),
            changed: false,
        })
    }
}
