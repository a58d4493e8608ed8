//! List selectors: equality-based label and field selectors.

use super::super::status::ApiError;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SelectorKind {
    Label,
    Field,
}

pub(super) enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::Exists(k)
            | Requirement::Absent(k) => k,
        }
    }

    pub(super) fn matches<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Requirement::Equals(k, v) => lookup(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => lookup(k) != Some(v.as_str()),
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::Absent(k) => lookup(k).is_none(),
        }
    }
}

/// Equality-based selectors (`a=b,c==d,e!=f`, and for labels `g`, `!h`).
/// Set-based label selectors (`in`, `notin`) are refused rather than
/// misread.
pub(super) fn parse_selector(s: &str, kind: SelectorKind) -> Result<Vec<Requirement>, ApiError> {
    let mut reqs = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let req = if let Some((k, v)) = term.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if kind == SelectorKind::Label && !term.contains([' ', '(']) {
            match term.strip_prefix('!') {
                Some(k) => Requirement::Absent(k.trim().into()),
                None => Requirement::Exists(term.into()),
            }
        } else {
            return Err(ApiError::bad_request(format!(
                "unable to parse requirement {term:?}: the stand-in supports only equality-based selectors"
            )));
        };
        if kind == SelectorKind::Field {
            let k = req.key();
            if k != "metadata.name" && k != "metadata.namespace" {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
        }
        reqs.push(req);
    }
    Ok(reqs)
}
