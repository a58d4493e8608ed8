//! Orchestration of the commands. Reads run concurrently, no call is made twice, and every
//! ownership check happens before the first write that depends on it.
//!
//! Fresh `provision`, in dependent AWS round trips:
//! 1. `DescribeCluster` | `ListOpenIDConnectProviders` | `GetRole` + `ListAttachedRolePolicies` per role
//! 2. `CreateOpenIDConnectProvider` (or `GetOpenIDConnectProvider`) | `GetPolicy`
//! 3. `CreateRole` per role | `CreatePolicy`
//! 4. `AttachRolePolicy` per role and policy
//!
//! A re-run with nothing to change stops after round 2 with reads only.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use tokio::sync::oneshot;

use crate::aws::iam::{
    check_owner, ownership as iam_ownership, Iam, Ownership, RoleDiff, RoleState,
};
use crate::aws::{self, arn_account, eks, sts};
use crate::config::{Config, Mode};
use crate::k8s::{self, K8s, SaState};
use crate::plan::{self, Facts, Names};
use crate::{Change, Error, Report, Result};

/// The AWS clients, sharing one configuration.
pub struct AwsClients {
    pub iam: Iam,
    pub eks: aws_sdk_eks::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: Option<String>,
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
            region: sdk.region().map(|r| r.to_string()),
        }
    }
}

pub async fn kube(config: &Config) -> Result<K8s> {
    Ok(K8s {
        client: k8s::client(config.call_timeout).await?,
        namespace: config.namespace.clone(),
        attempts: config.max_attempts,
        owner: config.owner(),
    })
}

fn skipped(command: &'static str, mode: Mode) -> Option<Report> {
    mode.skip_reason().map(|why| Report {
        command,
        skipped: Some(why.to_string()),
        ..Report::default()
    })
}

/// `provision` (or `plan` with `dry_run`).
pub async fn provision(config: &Config, dry_run: bool) -> Result<Report> {
    let command = if dry_run { "plan" } else { "provision" };
    if let Some(report) = skipped(command, config.mode) {
        tracing::info!(reason = report.skipped.as_deref(), "nothing to provision");
        return Ok(report);
    }
    let cluster = config.require_cluster()?;
    let names = Names::new(config, cluster);
    let clients = AwsClients::new(config).await;
    if clients.region.is_none() {
        return Err(Error::NoRegion);
    }
    let kube = kube(config).await?;
    match converge(config, cluster, &names, &clients, &kube, dry_run).await {
        // Another run created a role between our read and our create: converge from the new
        // state, once.
        Err(Error::Raced { what }) => {
            tracing::info!(%what, "created concurrently by another run; converging again");
            converge(config, cluster, &names, &clients, &kube, dry_run).await
        }
        other => other,
    }
}

fn facts_from(cluster_arn: &str, issuer_url: String, cluster: &str) -> Result<Facts> {
    let (partition, account_id) = arn_account(cluster_arn).ok_or_else(|| aws::AwsError {
        op: "eks:DescribeCluster",
        resource: cluster.to_string(),
        code: None,
        message: format!("unexpected cluster ARN {cluster_arn:?}"),
    })?;
    Ok(Facts {
        partition,
        account_id,
        issuer_url,
    })
}

/// The ServiceAccounts the job manages, server first.
fn service_account_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.server_service_account.clone()];
    if !config.staging_is_shared() {
        names.push(config.staging_service_account.clone());
    }
    names
}

async fn converge(
    config: &Config,
    cluster: &str,
    names: &Names,
    clients: &AwsClients,
    kube: &K8s,
    dry_run: bool,
) -> Result<Report> {
    let iam = &clients.iam;
    let owner = config.owner();
    let role_names: Vec<&str> = names.roles().collect();
    let sa_names = service_account_names(config);

    // Round 1: everything that needs no discovered fact.
    let (cluster_info, providers, roles, sas, workloads) = tokio::join!(
        eks::describe_cluster(&clients.eks, cluster),
        iam.list_providers(),
        try_join_all(role_names.iter().map(|n| iam.read_role(n, false))),
        try_join_all(sa_names.iter().map(|n| kube.read_service_account(n))),
        async {
            if config.restart_workloads {
                kube.list_workloads().await
            } else {
                Ok(Vec::new())
            }
        },
    );
    let cluster_info = cluster_info?.ok_or_else(|| Error::ClusterNotFound {
        cluster: cluster.to_string(),
        region: clients.region.clone(),
    })?;
    let facts = facts_from(&cluster_info.arn, cluster_info.issuer_url, cluster)?;
    let desired = plan::desired(config, names, &facts)?;
    let (providers, roles, sas, workloads) = (providers?, roles?, sas?, workloads?);
    let sas: BTreeMap<&str, Option<SaState>> =
        sa_names.iter().map(String::as_str).zip(sas).collect();

    // Checks that need no further call: roles we may not touch, ServiceAccounts missing or
    // annotated by someone else.
    let mut diffs: Vec<Option<RoleDiff>> = Vec::new();
    for (spec, state) in desired.roles.iter().zip(&roles) {
        diffs.push(match state {
            Some(s) => {
                let adopt =
                    check_owner("role", &spec.name, &s.tags, &owner, config.adopt_existing)?;
                Some(RoleDiff::between(spec, s, adopt))
            }
            None => None,
        });
    }
    for spec in &desired.service_accounts {
        let state = sas.get(spec.name.as_str()).and_then(Option::as_ref);
        k8s::precheck(&config.namespace, spec, state)?;
        k8s::precheck_creator(&config.namespace, &spec.name, state, &owner)?;
    }

    // Rounds 2 and 3, in two branches that wait for each other's checks before writing.
    // The OIDC provider is the exception: shared, tagged and needed whatever else happens,
    // it is created as soon as it is known to be missing, so roles can trust it in round 3.
    let (provider_checked, provider_checked_rx) = oneshot::channel::<()>();
    let (policy_checked, policy_checked_rx) = oneshot::channel::<()>();
    let provider_branch =
        async {
            let known = if providers.contains(&desired.provider.arn) {
                iam.read_provider(&desired.provider.arn).await?
            } else {
                None
            };
            crate::aws::iam::check_provider(
                &desired.provider,
                known.as_ref(),
                config.create_oidc_provider,
            )?;
            let _ = provider_checked.send(());
            let change = iam
                .ensure_provider(&desired.provider, known.as_ref(), dry_run)
                .await?;
            policy_checked_rx.await.map_err(|_| Error::Stopped)?;
            try_join_all(desired.roles.iter().zip(&roles).zip(&diffs).map(
                |((spec, state), diff)| {
                    iam.ensure_role(spec, state.as_ref(), diff.as_ref(), dry_run)
                },
            ))
            .await?;
            Ok::<_, Error>(change)
        };
    let policy_branch = async {
        let known = iam.read_policy(&desired.policy.arn).await?;
        if let Some(state) = &known {
            check_owner(
                "policy",
                &desired.policy.arn,
                &state.tags,
                &owner,
                config.adopt_existing,
            )?;
        }
        let _ = policy_checked.send(());
        provider_checked_rx.await.map_err(|_| Error::Stopped)?;
        iam.ensure_policy(
            &desired.policy,
            known.as_ref(),
            &owner,
            config.adopt_existing,
            dry_run,
        )
        .await
    };
    let (provider_change, policy_change) = match tokio::join!(provider_branch, policy_branch) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(Error::Stopped), Err(e)) | (Err(e), _) | (_, Err(e)) => return Err(e),
    };

    // Round 4: attachments, once both the roles and the policy exist.
    if !dry_run {
        try_join_all(
            desired
                .roles
                .iter()
                .zip(&diffs)
                .map(|(spec, diff)| async move {
                    let (attach, detach) = match diff {
                        Some(d) => (d.attach.clone(), d.detach.clone()),
                        None => (spec.attachments.clone(), Vec::new()),
                    };
                    if attach.is_empty() && detach.is_empty() {
                        return Ok(());
                    }
                    iam.ensure_attachments(spec, &attach, &detach).await
                }),
        )
        .await?;
    }

    // Kubernetes, once the roles exist: annotations, then restarts.
    let sa_changes = try_join_all(desired.service_accounts.iter().map(|spec| {
        let state = sas.get(spec.name.as_str()).and_then(Option::as_ref);
        kube.ensure_service_account(spec, state, dry_run)
    }))
    .await?;
    let mut restarts = Vec::new();
    for (spec, change) in desired.service_accounts.iter().zip(&sa_changes) {
        for w in workloads.iter().filter(|w| w.service_account == spec.name) {
            if change.is_write() || w.restarted_for.as_deref() != Some(spec.role_arn.as_str()) {
                restarts.push((w, spec.role_arn.as_str()));
            }
        }
    }
    if !dry_run {
        try_join_all(restarts.iter().map(|(w, arn)| kube.restart(w, arn))).await?;
    }
    if !config.restart_workloads && sa_changes.iter().any(Change::is_write) {
        tracing::warn!("EPINIO_IRSA_RESTART_WORKLOADS=false: pods started before the role annotation get no IAM credentials until they are restarted");
    }

    let mut report = Report {
        command: if dry_run { "plan" } else { "provision" },
        planned: dry_run,
        ..Report::default()
    };
    report.push("oidc-provider", &desired.provider.arn, provider_change);
    report.push("policy", &desired.policy.arn, policy_change);
    for (spec, diff) in desired.roles.iter().zip(&diffs) {
        let change = match diff {
            None => Change::Create,
            Some(d) if d.is_empty() => Change::Unchanged,
            Some(d) => Change::Update(d.describe()),
        };
        report.push(
            "role",
            format!("{} ({})", spec.name, spec.kind.as_str()),
            change,
        );
        report
            .roles
            .push((spec.kind.as_str().to_string(), spec.arn.clone()));
    }
    for (spec, change) in desired.service_accounts.iter().zip(sa_changes) {
        report.push(
            "serviceaccount",
            format!("{}/{}", config.namespace, spec.name),
            change,
        );
    }
    for (w, _) in &restarts {
        report.push(
            kind_label(w.kind),
            format!("{}/{}", config.namespace, w.name),
            Change::Update(vec![format!("restart (pods run as {})", w.service_account)]),
        );
    }
    if dry_run {
        for spec in &desired.roles {
            report.documents.push((
                format!("Trust policy of role {}", spec.name),
                pretty(&spec.trust),
            ));
        }
        report.documents.push((
            format!("Permission policy {}", desired.policy.name),
            pretty(&desired.policy.document),
        ));
    }
    Ok(report)
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployment",
        "StatefulSet" => "statefulset",
        _ => "daemonset",
    }
}

fn pretty(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| doc.to_string())
}

/// `teardown`: remove what this installation owns, leave everything else.
pub async fn teardown(config: &Config) -> Result<Report> {
    let Some(cluster) = config.cluster_name.as_deref() else {
        if let Some(report) = skipped("teardown", config.mode) {
            return Ok(report);
        }
        return Err(config.require_cluster().unwrap_err().into());
    };
    let names = Names::new(config, cluster);
    let clients = AwsClients::new(config).await;
    if clients.region.is_none() {
        return Err(Error::NoRegion);
    }
    let kube = kube(config).await?;
    let iam = &clients.iam;
    let owner = config.owner();
    let role_names: Vec<&str> = names.roles().collect();

    // Round 1.
    let (cluster_info, roles) = tokio::join!(
        eks::describe_cluster(&clients.eks, cluster),
        try_join_all(role_names.iter().map(|n| iam.read_role(n, true))),
    );
    let roles = roles?;
    let (partition, account_id, issuer) = match cluster_info? {
        Some(info) => {
            let facts = facts_from(&info.arn, info.issuer_url, cluster)?;
            (facts.partition, facts.account_id, Some(facts.issuer_url))
        }
        // The cluster is gone already: the account still has our IAM objects.
        None => match roles.iter().flatten().find_map(|r| arn_account(&r.arn)) {
            Some((p, a)) => (p, a, None),
            None => {
                let (p, a) = sts::caller_account(&clients.sts).await?;
                (p, a, None)
            }
        },
    };
    let path = &config.role_path;
    let policy_arn = plan::policy_arn(&partition, &account_id, path, &names.policy);

    // Roles: strip (detach, inline policies), signal, delete. Policy: read, delete spare
    // versions, wait for the detachments, delete. Kubernetes meanwhile.
    let (detached, detached_rx) = oneshot::channel::<()>();
    let roles_branch = async {
        let owned: Vec<(&str, &RoleState)> = role_names
            .iter()
            .zip(&roles)
            .filter_map(|(n, s)| Some((*n, s.as_ref()?)))
            .filter(|(_, s)| iam_ownership(&s.tags, &owner) == Ownership::Ours)
            .collect();
        try_join_all(owned.iter().map(|(n, s)| iam.strip_role(n, s))).await?;
        let _ = detached.send(());
        let deleted = try_join_all(owned.iter().map(|(n, _)| iam.delete_role(n))).await?;
        let mut changes = Vec::new();
        for (name, state) in role_names.iter().zip(&roles) {
            let change = match state {
                None => Change::Absent,
                Some(s) if iam_ownership(&s.tags, &owner) != Ownership::Ours => {
                    Change::Kept("not owned by this installation".into())
                }
                Some(_) => deleted
                    .iter()
                    .zip(&owned)
                    .find(|(_, (n, _))| n == name)
                    .map(|(c, _)| c.clone())
                    .unwrap_or(Change::Absent),
            };
            changes.push((name.to_string(), change));
        }
        Ok::<_, Error>(changes)
    };
    let policy_branch = async {
        let (state, versions) =
            tokio::join!(iam.read_policy(&policy_arn), iam.list_versions(&policy_arn));
        let state = state?;
        let versions = match versions {
            Err(e) if e.not_found() => Vec::new(),
            other => other?,
        };
        iam.remove_policy(&policy_arn, state.as_ref(), &versions, &owner, detached_rx)
            .await
    };
    let provider_branch = async {
        match (&issuer, config.delete_oidc_provider) {
            (Some(issuer), true) => {
                let facts = Facts {
                    partition: partition.clone(),
                    account_id: account_id.clone(),
                    issuer_url: issuer.clone(),
                };
                let arn = plan::provider_arn(&facts);
                let change = iam.remove_provider(&arn, &owner).await?;
                Ok::<_, Error>(Some((arn, change)))
            }
            (None, true) => Ok(Some((
                "(cluster gone: issuer unknown)".to_string(),
                Change::Kept("the cluster no longer exists, so its issuer is unknown".into()),
            ))),
            _ => Ok(None),
        }
    };
    let kube_branch = async {
        let mut pairs = vec![(
            config.server_service_account.clone(),
            names.server_role.clone(),
        )];
        if let Some(staging) = &names.staging_role {
            pairs.push((config.staging_service_account.clone(), staging.clone()));
        }
        let (partition, account_id, owner, kube) = (&partition, &account_id, &owner, &kube);
        let changes = try_join_all(pairs.iter().zip(&roles).map(
            |((sa, role), state)| async move {
                // A role of the same name that another installation owns means the ServiceAccount
                // annotation is theirs too.
                if state
                    .as_ref()
                    .is_some_and(|s| iam_ownership(&s.tags, owner) != Ownership::Ours)
                {
                    return Ok(Change::Kept(format!(
                        "role {role} is not owned by this installation"
                    )));
                }
                kube.remove_service_account(sa, &plan::role_arn(partition, account_id, path, role))
                    .await
            },
        ))
        .await?;
        Ok::<_, Error>(
            pairs
                .iter()
                .map(|(sa, _)| format!("{}/{sa}", config.namespace))
                .zip(changes)
                .collect::<Vec<_>>(),
        )
    };
    let (roles_r, policy_r, provider_r, kube_r) =
        tokio::join!(roles_branch, policy_branch, provider_branch, kube_branch);
    let (role_changes, policy_change, provider_change, sa_changes) =
        (roles_r?, policy_r?, provider_r?, kube_r?);

    let mut report = Report {
        command: "teardown",
        ..Report::default()
    };
    for (name, change) in role_changes {
        report.push("role", name, change);
    }
    report.push("policy", policy_arn, policy_change);
    match provider_change {
        Some((arn, change)) => report.push("oidc-provider", arn, change),
        None => report.push(
            "oidc-provider",
            "(shared)",
            Change::Kept("EPINIO_IRSA_DELETE_OIDC_PROVIDER=false".into()),
        ),
    }
    for (name, change) in sa_changes {
        report.push("serviceaccount", name, change);
    }
    Ok(report)
}

/// `installer-policy`: the least-privilege IAM policy the job itself needs.
pub async fn installer_policy(config: &Config) -> Result<String> {
    let cluster = config.require_cluster()?;
    let names = Names::new(config, cluster);
    let region = config.region.clone();
    let (partition, account) = match &config.account_id {
        Some(account) => (partition_of(region.as_deref()), account.clone()),
        None => {
            let clients = AwsClients::new(config).await;
            sts::caller_account(&clients.sts).await?
        }
    };
    let doc = plan::installer_policy(
        config,
        &names,
        &partition,
        &account,
        region.as_deref(),
        cluster,
    );
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default())
}

fn partition_of(region: Option<&str>) -> String {
    match region {
        Some(r) if r.starts_with("cn-") => "aws-cn",
        Some(r) if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
    .to_string()
}
