//! `installer-policy`: the least-privilege IAM policy the job itself needs.

use super::context::AwsClients;
use crate::arn::Account;
use crate::aws::sts;
use crate::config::Config;
use crate::plan::{self, Names};
use crate::Result;

/// `installer-policy`: the least-privilege IAM policy the job itself needs.
pub async fn installer_policy(config: &Config) -> Result<String> {
    let cluster = config.require_cluster()?;
    let names = Names::new(config, cluster);
    let account = match &config.account_id {
        Some(id) => Account::new(config.partition(), id.as_str()),
        None => sts::caller_account(&AwsClients::new(config).await.sts).await?,
    };
    let doc = plan::installer_policy(config, &names, &account, config.region.as_deref(), cluster);
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default())
}
