//! STS: who the job runs as, when no cluster ARN can tell the account.

use super::{call, AwsError};
use crate::arn::{Account, Arn};
use crate::aws_actions::{ASSUME_ROLE_WITH_WEB_IDENTITY, GET_CALLER_IDENTITY};

/// The caller's partition and account id.
pub async fn caller_account(client: &aws_sdk_sts::Client) -> Result<Account, AwsError> {
    let out = call(
        GET_CALLER_IDENTITY,
        "caller",
        client.get_caller_identity().send(),
    )
    .await?;
    out.arn()
        .and_then(Arn::account_of)
        .map(|(p, id)| Account::new(p, id))
        .ok_or_else(|| AwsError::malformed(GET_CALLER_IDENTITY.name, "caller", "caller ARN"))
}

/// Temporary credentials of an assumed role. `Debug` redacts them.
pub struct Assumed {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl std::fmt::Debug for Assumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assumed(<redacted>)")
    }
}

/// `AssumeRoleWithWebIdentity` with a ServiceAccount token, as the pod's SDK does it (the
/// client's region: the regional STS endpoint). The token authorizes the call; the job's own
/// credentials are not used.
pub async fn assume_with_web_identity(
    client: &aws_sdk_sts::Client,
    role_arn: &str,
    token: &crate::config::Secret,
    session: &str,
) -> Result<Assumed, AwsError> {
    let out = call(
        ASSUME_ROLE_WITH_WEB_IDENTITY,
        role_arn,
        client
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session)
            .web_identity_token(token.expose())
            .duration_seconds(900)
            .send(),
    )
    .await?;
    let c = out.credentials().ok_or_else(|| {
        AwsError::malformed(ASSUME_ROLE_WITH_WEB_IDENTITY.name, role_arn, "credentials")
    })?;
    Ok(Assumed {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().to_string(),
    })
}
