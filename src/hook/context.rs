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

/// The clients one command uses, made once.
pub struct Clients {
    pub aws: AwsClients,
    pub kube: K8s,
}

impl Clients {
    pub(super) async fn new(config: &Config) -> Result<Clients> {
        let aws = AwsClients::new(config).await;
        if aws.region.is_none() {
            return Err(Error::NoRegion);
        }
        Ok(Clients {
            aws,
            kube: kube(config).await?,
        })
    }
}

/// Everything one command works with: the clients, and one configuration with its names.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub cluster: &'a str,
    pub names: Names,
    pub aws: &'a AwsClients,
    pub kube: &'a K8s,
    pub owner: String,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(clients: &'a Clients, config: &'a Config, cluster: &'a str) -> Ctx<'a> {
        Ctx {
            names: Names::new(config, cluster),
            owner: config.owner(),
            config,
            cluster,
            aws: &clients.aws,
            kube: &clients.kube,
        }
    }

    /// The same clients with the configuration discovery made effective (the ServiceAccounts
    /// Epinio really uses): every later step of the command reads this one.
    pub(super) fn with<'b>(&self, config: &'b Config) -> Ctx<'b>
    where
        'a: 'b,
    {
        Ctx {
            names: Names::new(config, self.cluster),
            owner: config.owner(),
            config,
            cluster: self.cluster,
            aws: self.aws,
            kube: self.kube,
        }
    }
}

/// The Pod Identity edge of this run's cluster.
pub(super) fn associations<'a>(ctx: &'a Ctx<'_>) -> eks::Associations<'a> {
    eks::Associations {
        client: &ctx.aws.eks,
        cluster: ctx.cluster,
        attempts: ctx.config.max_attempts,
    }
}
