//! EKS: the one read the job needs, the cluster's ARN and OIDC issuer.

use super::{call, AwsError};

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub arn: String,
    pub issuer_url: String,
}

pub async fn describe_cluster(
    client: &aws_sdk_eks::Client,
    name: &str,
) -> Result<Option<ClusterInfo>, AwsError> {
    let out = match call(
        "eks:DescribeCluster",
        name,
        client.describe_cluster().name(name).send(),
    )
    .await
    {
        Ok(out) => out,
        Err(e) if e.not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let missing = |what: &str| AwsError {
        op: "eks:DescribeCluster",
        resource: name.to_string(),
        code: None,
        message: format!("the response has no {what}"),
    };
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
