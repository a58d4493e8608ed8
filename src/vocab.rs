//! The shared vocabulary: words every part of the crate uses, defined by none of their users
//! (what happened to a resource, what `verify` proved, the Pod Identity agent's name).

use serde::Serialize;

/// The EKS Pod Identity agent add-on's name.
pub const AGENT_ADDON: &str = "eks-pod-identity-agent";

/// The outcome for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", content = "details", rename_all = "lowercase")]
pub enum Change {
    Create,
    /// What differed.
    Update(Vec<String>),
    Unchanged,
    Remove,
    /// Nothing there to remove.
    Absent,
    /// There, with nothing of this installation's on it to remove.
    #[serde(rename = "nothing-to-remove")]
    NothingToRemove,
    /// Left alone on purpose, with the reason.
    Kept(String),
}

impl Change {
    pub fn is_write(&self) -> bool {
        matches!(self, Change::Create | Change::Update(_) | Change::Remove)
    }

    /// Nothing of ours was there: the object is absent, or holds nothing this installation
    /// made.
    pub fn is_nothing(&self) -> bool {
        matches!(self, Change::Absent | Change::NothingToRemove)
    }

    pub(crate) fn verb(&self, planned: bool) -> String {
        let (present, past) = match self {
            Change::Create => ("create", "created"),
            Change::Update(_) => ("update", "updated"),
            Change::Unchanged => ("unchanged", "unchanged"),
            Change::Remove => ("delete", "deleted"),
            Change::Absent => ("absent", "absent"),
            Change::NothingToRemove => ("nothing to remove", "nothing to remove"),
            Change::Kept(_) => ("keep", "kept"),
        };
        let verb = if planned { present } else { past };
        match self {
            Change::Update(what) if !what.is_empty() => format!("{verb}: {}", what.join(", ")),
            Change::Kept(why) => format!("{verb} ({why})"),
            _ => verb.to_string(),
        }
    }
}

/// What the live chain found for one ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub bucket_exists: bool,
    /// Attempts the assume and the S3 calls needed while IAM propagated.
    pub attempts: u32,
    pub probe: Option<String>,
}

/// One ServiceAccount's result, for the summary.
#[derive(Debug, Clone)]
pub struct Verified {
    pub service_account: String,
    pub role_arn: String,
    pub proof: Proof,
}

/// How far a ServiceAccount was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// IRSA: the checklist and the live chain token -> STS -> S3.
    Live(Live),
    /// EKS Pod Identity: the checklist only, this association included (the live part runs in
    /// the agent, not here).
    Links { association: String },
}

/// What `verify` proved through the gateway (gateway mode): Epinio's own path, a request signed
/// with its cluster-local key pair to the gateway's Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThroughGateway {
    pub endpoint: String,
    /// Over `https://`: what the proof trusted for the gateway's certificate.
    pub tls: Option<String>,
    pub bucket_exists: bool,
    /// Attempts while the gateway's pods rolled out and IAM propagated.
    pub attempts: u32,
    pub probe: Option<String>,
}
