//! EKS: the one read the job needs, the cluster's ARN and OIDC issuer.

use super::{call, found, AwsError};
use crate::access::DESCRIBE_CLUSTER;
pub use crate::state::ClusterInfo;

pub async fn describe_cluster(
    client: &aws_sdk_eks::Client,
    name: &str,
) -> Result<Option<ClusterInfo>, AwsError> {
    let Some(out) = found(
        call(
            DESCRIBE_CLUSTER,
            name,
            client.describe_cluster().name(name).send(),
        )
        .await,
    )?
    else {
        return Ok(None);
    };
    let missing = |what: &str| AwsError::malformed(DESCRIBE_CLUSTER.name, name, what);
    let cluster = out.cluster().ok_or_else(|| missing("cluster"))?;
    let issuer_url = cluster
        .identity()
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .ok_or_else(|| missing("OIDC issuer (identity.oidc.issuer)"))?;
    Ok(Some(ClusterInfo {
        arn: cluster.arn().ok_or_else(|| missing("ARN"))?.to_string(),
        issuer_url: issuer_url.to_string(),
    }))
}
