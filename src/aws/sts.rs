//! STS: who the job runs as, when no cluster ARN can tell the account.

use super::{call, AwsError};
use crate::access::GET_CALLER_IDENTITY;
use crate::arn::{Account, Arn};

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
