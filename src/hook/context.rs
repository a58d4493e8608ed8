//! The context every hook command shares: the AWS clients, the Kubernetes client, the names,
//! and the Pod Identity edge of this run's cluster. It belongs to no single command.

use crate::aws::{self, eks, iam::Iam};
use crate::config::{Config, Mode};
use crate::k8s::{self, K8s};
use crate::plan::Names;
use crate::report::Report;
use crate::{Error, Result};

/// The AWS clients, sharing one configuration.
pub struct AwsClients {
    pub iam: Iam,
    pub eks: aws_sdk_eks::Client,
    pub sts: aws_sdk_sts::Client,
    /// STS without credentials: `AssumeRoleWithWebIdentity` is authorized by the token alone
    /// and goes out unsigned, as a pod's SDK sends it (the job's identity plays no part).
    pub sts_anonymous: aws_sdk_sts::Client,
    pub region: Option<String>,
    pub(super) sdk: aws_config::SdkConfig,
}

impl AwsClients {
    pub async fn new(config: &Config) -> AwsClients {
        let sdk = aws::sdk_config(config).await;
        AwsClients {
            iam: Iam {
                client: aws::iam_client(&sdk),
                attempts: config.max_attempts,
            },
            eks: aws_sdk_eks::Client::new(&sdk),
            sts: aws_sdk_sts::Client::new(&sdk),
            sts_anonymous: {
                let mut builder = aws_sdk_sts::config::Builder::from(&sdk);
                builder.set_credentials_provider(None);
                aws_sdk_sts::Client::from_conf(builder.build())
            },
            region: sdk.region().map(|r| r.to_string()),
            sdk,
        }
    }

    /// An S3 client with other credentials (`verify`'s assumed role). Path-style addressing
    /// when an endpoint override is set (S3-compatible test endpoints), virtual-hosted on AWS.
    pub fn s3_with(
        &self,
        credentials: aws_sdk_s3::config::Credentials,
        region: Option<String>,
    ) -> aws_sdk_s3::Client {
        let mut builder = aws_sdk_s3::config::Builder::from(&self.sdk)
            .credentials_provider(credentials)
            .force_path_style(self.sdk.endpoint_url().is_some());
        if let Some(region) = region {
            builder = builder.region(aws_sdk_s3::config::Region::new(region));
        }
        let config = builder.build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

pub async fn kube(config: &Config) -> Result<K8s> {
    Ok(K8s {
        client: k8s::client(config.call_timeout).await?,
        namespace: config.namespace.to_string(),
        attempts: config.max_attempts,
    })
}

pub(super) fn skipped(command: &'static str, mode: Mode) -> Option<Report> {
    mode.skip_reason().map(|why| Report {
        command,
        skipped: Some(why.to_string()),
        ..Report::default()
    })
}

/// Everything one command works with.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub cluster: &'a str,
    pub names: Names,
    pub aws: AwsClients,
    pub kube: K8s,
    pub owner: String,
}

pub(super) async fn context<'a>(config: &'a Config, cluster: &'a str) -> Result<Ctx<'a>> {
    let aws = AwsClients::new(config).await;
    if aws.region.is_none() {
        return Err(Error::NoRegion);
    }
    Ok(Ctx {
        names: Names::new(config, cluster),
        kube: kube(config).await?,
        owner: config.owner(),
        config,
        cluster,
        aws,
    })
}

/// The ServiceAccounts the job manages, server first.
pub(super) fn service_account_names(config: &Config) -> Vec<String> {
    managed_pairs(config, &Names::new(config, ""))
        .into_iter()
        .map(|(sa, _)| sa)
        .collect()
}

/// Each managed ServiceAccount with its role's name: the gateway's in gateway mode, else
/// Epinio's server and (when it has its own) staging.
pub(super) fn managed_pairs(config: &Config, names: &Names) -> Vec<(String, String)> {
    if config.gateway_mode() {
        gateway_pair(config, names)
    } else {
        epinio_pairs(config, names)
    }
}

/// The other arrangement's ServiceAccounts and roles, which a switch into or out of gateway
/// mode removes (and teardown removes with the managed ones).
pub(super) fn other_pairs(config: &Config, names: &Names) -> Vec<(String, String)> {
    if config.gateway_mode() {
        epinio_pairs(config, names)
    } else {
        gateway_pair(config, names)
    }
}

fn gateway_pair(config: &Config, names: &Names) -> Vec<(String, String)> {
    vec![(
        config.gateway.service_account.to_string(),
        names.gateway_role.clone(),
    )]
}

fn epinio_pairs(config: &Config, names: &Names) -> Vec<(String, String)> {
    let mut pairs = vec![(
        config.server_service_account.to_string(),
        names.server_role.clone(),
    )];
    if let Some(staging) = names
        .staging_role
        .as_ref()
        .filter(|_| !config.staging_is_shared())
    {
        pairs.push((config.staging_service_account.to_string(), staging.clone()));
    }
    pairs
}

/// The Pod Identity edge of this run's cluster.
pub(super) fn associations<'a>(ctx: &'a Ctx<'_>) -> eks::Associations<'a> {
    eks::Associations {
        client: &ctx.aws.eks,
        cluster: ctx.cluster,
        attempts: ctx.config.max_attempts,
    }
}
