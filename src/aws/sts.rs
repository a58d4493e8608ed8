//! STS: who the job runs as, when no cluster ARN can tell the account.

use super::{arn_account, call, AwsError};

/// The caller's partition and account id.
pub async fn caller_account(client: &aws_sdk_sts::Client) -> Result<(String, String), AwsError> {
    let out = call(
        "sts:GetCallerIdentity",
        "caller",
        client.get_caller_identity().send(),
    )
    .await?;
    out.arn().and_then(arn_account).ok_or_else(|| AwsError {
        op: "sts:GetCallerIdentity",
        resource: "caller".into(),
        code: None,
        message: "the response has no caller ARN".into(),
    })
}
