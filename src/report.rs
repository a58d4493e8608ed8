//! What a run did (or, for `plan`, would do), resource by resource.

use std::fmt;

use serde::Serialize;

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
    /// Left alone on purpose, with the reason.
    Kept(String),
}

impl Change {
    pub fn is_write(&self) -> bool {
        matches!(self, Change::Create | Change::Update(_) | Change::Remove)
    }

    fn verb(&self, planned: bool) -> String {
        let (present, past) = match self {
            Change::Create => ("create", "created"),
            Change::Update(_) => ("update", "updated"),
            Change::Unchanged => ("unchanged", "unchanged"),
            Change::Remove => ("delete", "deleted"),
            Change::Absent => ("absent", "absent"),
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

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.skipped {
            return writeln!(f, "epinio-irsa {}: nothing to do: {why}", self.command);
        }
        let header = if self.planned {
            "plan (nothing has been changed)".to_string()
        } else {
            format!("{} summary", self.command)
        };
        writeln!(f, "epinio-irsa {header}:")?;
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
        for (title, doc) in &self.documents {
            writeln!(f, "\n{title}:\n{doc}")?;
        }
        Ok(())
    }
}
