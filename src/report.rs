//! What a run did (or, for `plan`, would do), resource by resource.

use std::fmt;

use serde::Serialize;

use crate::config::{LogFormat, Mechanism};
use crate::plan::Desired;
use crate::state::Workload;
use crate::vocab::{Change, Proof, ThroughGateway, Verified};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: &'static str,
    pub name: String,
    #[serde(flatten)]
    pub change: Change,
}

/// The summary of one command.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub command: &'static str,
    /// `plan`: nothing was written; verbs are in the future.
    pub planned: bool,
    /// Why there was nothing to do, when there was nothing to do.
    pub skipped: Option<String>,
    pub items: Vec<Item>,
    /// Role ARNs by role kind (server / staging).
    pub roles: Vec<(String, String)>,
    /// Full documents (`plan` only): title and pretty JSON.
    pub documents: Vec<(String, String)>,
    /// What discovery found of Epinio: version, its source, the compatibility row.
    pub epinio: Option<String>,
    /// The mechanism the run converged to (IRSA or EKS Pod Identity) and why.
    pub mode: Option<String>,
    /// What the user must know although the run succeeded.
    pub warnings: Vec<String>,
    /// One line per ServiceAccount `verify` proved live (and Epinio's path through the gateway).
    pub verified: Vec<String>,
    /// One line per ServiceAccount whose links `verify` checked without a live exchange (EKS Pod
    /// Identity: the agent's exchange runs in the pod): never called verified.
    pub checked: Vec<String>,
}

impl Report {
    pub fn push(&mut self, kind: &'static str, name: impl Into<String>, change: Change) {
        self.items.push(Item {
            kind,
            name: name.into(),
            change,
        });
    }
}

impl Report {
    /// Pod Identity associations, listed where they were applied: after the roles and the
    /// policy, before the ServiceAccounts.
    pub fn add_associations(&mut self, associations: impl IntoIterator<Item = (String, Change)>) {
        let at = self
            .items
            .iter()
            .position(|i| i.kind == "serviceaccount")
            .unwrap_or(self.items.len());
        self.items.splice(
            at..at,
            associations.into_iter().map(|(name, change)| Item {
                kind: "pod-identity-association",
                name,
                change,
            }),
        );
    }

    pub fn add_verified(&mut self, verified: &[Verified], namespace: &str, bucket: &str) {
        for v in verified {
            let line = describe(v, namespace, bucket);
            match v.proof {
                Proof::Live(_) => self.verified.push(line),
                Proof::Links { .. } => self.checked.push(line),
            }
            let missing = format!("bucket {bucket} does not exist yet: Epinio creates it when it starts (its role grants s3:CreateBucket); verify then proves only the assume step");
            if matches!(&v.proof, Proof::Live(l) if !l.bucket_exists)
                && !self.warnings.contains(&missing)
            {
                self.warnings.push(missing);
            }
        }
    }

    /// The gateway's client path, after the ServiceAccounts' proofs.
    pub fn add_gateway(&mut self, through: &ThroughGateway, bucket: &str) {
        let tls = through
            .tls
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let mut s = format!(
            "Epinio's path: s3.accessKeyID -> gateway {}{tls} -> s3://{bucket}: ",
            through.endpoint
        );
        s.push_str(if through.bucket_exists {
            "HeadBucket and ListObjectsV2 succeeded"
        } else {
            "signed and forwarded; the bucket does not exist yet (Epinio creates it through the gateway)"
        });
        if let Some(key) = &through.probe {
            s.push_str(&format!("; write probe put/get/delete {key} succeeded"));
        }
        s.push_str("; a request for another bucket was refused (AccessDenied)");
        if through.attempts > 2 {
            s.push_str(&format!(
                " ({} attempts while the gateway rolled out)",
                through.attempts
            ));
        }
        self.verified.push(s);
    }

    /// The summary of `provision` (or `plan`): provider and policy, then roles,
    /// ServiceAccounts and restarts, in the order they were applied.
    pub fn provision(
        namespace: &str,
        desired: &Desired,
        planned: bool,
        [provider, policy]: [Change; 2],
        roles: Vec<Change>,
        service_accounts: Vec<Change>,
        restarts: &[(&Workload, &str)],
    ) -> Report {
        let mut report = Report {
            command: if planned { "plan" } else { "provision" },
            planned,
            ..Report::default()
        };
        // Under Pod Identity with no provider there is nothing to say about one.
        if !(desired.mechanism == Mechanism::PodIdentity && provider == Change::Absent) {
            report.push("oidc-provider", &desired.provider.arn, provider);
        }
        report.push("policy", &desired.policy.arn, policy);
        for (spec, change) in desired.roles.iter().zip(roles) {
            report.push(
                "role",
                format!("{} ({})", spec.name, spec.kind.as_str()),
                change,
            );
            report
                .roles
                .push((spec.kind.as_str().to_string(), spec.arn.clone()));
        }
        for (spec, change) in desired.service_accounts.iter().zip(service_accounts) {
            report.push(
                "serviceaccount",
                format!("{namespace}/{}", spec.name),
                change,
            );
        }
        for (w, _) in restarts {
            let kind = match w.kind {
                "Deployment" => "deployment",
                "StatefulSet" => "statefulset",
                _ => "daemonset",
            };
            report.push(
                kind,
                format!("{namespace}/{}", w.name),
                Change::Update(vec![format!("restart (pods run as {})", w.service_account)]),
            );
        }
        if planned {
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
        report
    }

    /// The summary of `teardown`: roles, policy, provider, ServiceAccounts.
    pub fn teardown(
        roles: impl IntoIterator<Item = (String, Change)>,
        (policy_arn, policy): (String, Change),
        provider: Option<(String, Change)>,
        service_accounts: Vec<(String, Change)>,
    ) -> Report {
        let mut report = Report {
            command: "teardown",
            ..Report::default()
        };
        for (name, change) in roles {
            report.push("role", name, change);
        }
        report.push("policy", policy_arn, policy);
        if let Some((arn, change)) = provider {
            report.push("oidc-provider", arn, change);
        }
        for (name, change) in service_accounts {
            report.push("serviceaccount", name, change);
        }
        report
    }
}

fn pretty(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| doc.to_string())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_summary(f)?;
        self.write_documents(f)
    }
}

impl Report {
    /// Everything but the JSON documents.
    fn write_summary(&self, f: &mut impl fmt::Write) -> fmt::Result {
        if let Some(why) = &self.skipped {
            return writeln!(f, "epinio-irsa {}: nothing to do: {why}", self.command);
        }
        let header = if self.planned {
            format!("{} (nothing has been changed)", self.command)
        } else {
            format!("{} summary", self.command)
        };
        writeln!(f, "epinio-irsa {header}:")?;
        // The version line, then one line per column of the compatibility table.
        if let Some(epinio) = &self.epinio {
            for (i, line) in epinio.lines().enumerate() {
                writeln!(f, "{}{line}", if i == 0 { "  " } else { "    " })?;
            }
        }
        if let Some(mode) = &self.mode {
            writeln!(f, "  mode: {mode}")?;
        }
        let width = self.items.iter().map(|i| i.kind.len()).max().unwrap_or(0);
        for item in &self.items {
            writeln!(
                f,
                "  {:width$}  {}  {}",
                item.kind,
                item.name,
                item.change.verb(self.planned)
            )?;
        }
        for (kind, arn) in &self.roles {
            writeln!(f, "{kind} role ARN: {arn}")?;
        }
        for v in &self.verified {
            writeln!(f, "verified: {v}")?;
        }
        for c in &self.checked {
            writeln!(f, "checked: {c}")?;
        }
        for w in &self.warnings {
            writeln!(f, "WARNING: {w}")?;
        }
        Ok(())
    }

    fn write_documents(&self, f: &mut impl fmt::Write) -> fmt::Result {
        for (title, doc) in &self.documents {
            writeln!(f, "\n{title}:\n{doc}")?;
        }
        Ok(())
    }

    /// The summary as printed: every line but the JSON documents wrapped at `width` columns
    /// (0: not wrapped), at spaces only so that no ARN or name is split, continuation lines
    /// indented under their first.
    pub fn render(&self, width: usize) -> String {
        let mut text = String::new();
        let _ = self.write_summary(&mut text);
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            if width == 0 || line.len() <= width {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            let lead = &line[..line.len() - line.trim_start().len()];
            let indent = format!("{lead}    ");
            let options = textwrap::Options::new(width)
                .subsequent_indent(&indent)
                .word_separator(textwrap::WordSeparator::AsciiSpace)
                .word_splitter(textwrap::WordSplitter::NoHyphenation)
                .break_words(false);
            for part in textwrap::wrap(line, options) {
                out.push_str(&part);
                out.push('\n');
            }
        }
        let _ = self.write_documents(&mut out);
        out
    }
}

/// One line of progress while the hook waits (a rollout, IAM propagating, the gateway taking
/// up the role). With text logs it goes to stderr as the summary writes, `epinio-irsa: ...`,
/// never in the log format between the summary's lines; with JSON logs it is one info event,
/// like every other line of that stream.
pub fn progress(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("epinio-irsa: {message}"),
        LogFormat::Json => tracing::info!(progress = true, "{message}"),
    }
}

/// Progress for a poll that may say the same thing many times: once per distinct `key`, in a row.
#[derive(Debug)]
pub struct Progress {
    format: LogFormat,
    last: std::sync::Mutex<Option<String>>,
}

impl Progress {
    pub fn new(format: LogFormat) -> Progress {
        Progress {
            format,
            last: std::sync::Mutex::new(None),
        }
    }

    /// Says `message` unless the last one said had the same `key`.
    pub fn say(&self, key: &str, message: impl FnOnce() -> String) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != Some(key) {
            *last = Some(key.to_string());
            progress(self.format, &message());
        }
    }
}

/// The summary line of one ServiceAccount: what the live chain did (`verified:`), or, for EKS
/// Pod Identity, which links were read (`checked:`).
pub fn describe(v: &Verified, namespace: &str, bucket: &str) -> String {
    let live = match &v.proof {
        Proof::Live(live) => live,
        Proof::Links { association } => return format!(
            "ServiceAccount {namespace}/{} -> Pod Identity association {association} -> {} -> s3://{bucket}: agent add-on ACTIVE; association, trust, policy and its document hold; S3 access is not proven live: the agent's credential exchange cannot be made from the hook",
            v.service_account, v.role_arn
        ),
    };
    let mut s = format!(
        "ServiceAccount {namespace}/{} -> token -> {} -> s3://{bucket}: ",
        v.service_account, v.role_arn
    );
    if live.bucket_exists {
        s.push_str("AssumeRoleWithWebIdentity, HeadBucket and ListObjectsV2 succeeded");
    } else {
        s.push_str("AssumeRoleWithWebIdentity succeeded; the bucket does not exist yet (Epinio creates it at start)");
    }
    if let Some(key) = &live.probe {
        s.push_str(&format!("; write probe put/get/delete {key} succeeded"));
    }
    if live.attempts > 2 {
        s.push_str(&format!(
            " ({} attempts while IAM propagated)",
            live.attempts
        ));
    }
    s
}
