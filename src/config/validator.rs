//! The [`Validator`]: turns each raw string into its validated type and collects every problem,
//! each naming its variable and what is allowed. The hook's contract and the gateway's use it.

use std::collections::BTreeMap;

use super::model::*;
use super::rules;
use super::tags::*;
use crate::error::ConfigError;

/// Treat unset and empty alike: Helm renders unset values as empty strings.
pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Collects every problem while reading; nothing is reported until all was read.
#[derive(Default)]
pub(crate) struct Validator {
    pub(crate) errors: Vec<ConfigError>,
}

impl Validator {
    pub(crate) fn fail(&mut self, variable: &'static str, value: &str, allowed: impl Into<String>) {
        self.errors.push(ConfigError {
            variable,
            value: value.to_string(),
            allowed: allowed.into(),
        });
    }

    /// A validated value, `None` when unset, empty or invalid (then recorded).
    pub(crate) fn parse<T: std::str::FromStr<Err = String>>(
        &mut self,
        variable: &'static str,
        raw: Option<String>,
    ) -> Option<T> {
        let s = non_empty(raw)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(allowed) => {
                self.fail(variable, &s, allowed);
                None
            }
        }
    }

    pub(crate) fn boolean(
        &mut self,
        variable: &'static str,
        raw: Option<String>,
        default: bool,
    ) -> bool {
        match non_empty(raw) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.fail(variable, &v, "must be true or false (any case)");
                default
            }
        }
    }

    /// A whole number within `range` (inclusive), `default` when unset.
    pub(crate) fn number(
        &mut self,
        variable: &'static str,
        raw: Option<String>,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
        unit: &str,
    ) -> u64 {
        let Some(s) = non_empty(raw) else {
            return default;
        };
        match s.parse::<u64>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                let (lo, hi) = (range.start(), range.end());
                self.fail(
                    variable,
                    &s,
                    format!("must be a whole number{unit} from {lo} to {hi}"),
                );
                default
            }
        }
    }

    /// `text` or `json`, in any case; `text` when unset.
    pub(crate) fn log_format(&mut self, variable: &'static str, raw: Option<String>) -> LogFormat {
        match non_empty(raw).as_deref() {
            None => LogFormat::Text,
            Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
            Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(f) => {
                self.fail(variable, f, "must be text or json");
                LogFormat::Text
            }
        }
    }

    /// A comma-separated list of validated, distinct values.
    pub(crate) fn list<T>(&mut self, variable: &'static str, raw: Option<String>) -> Vec<T>
    where
        T: std::str::FromStr<Err = String> + PartialEq,
    {
        let mut out = Vec::new();
        for item in non_empty(raw)
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
        {
            match item.parse::<T>() {
                Err(allowed) => self.fail(variable, item, allowed),
                Ok(v) if out.contains(&v) => {
                    self.fail(variable, item, "is listed twice; list each value once")
                }
                Ok(v) => out.push(v),
            }
        }
        out
    }

    pub(crate) fn tags(&mut self, raw: Option<String>) -> BTreeMap<String, String> {
        const VAR: &str = "EPINIO_IRSA_TAGS";
        let mut tags = BTreeMap::new();
        let Some(list) = non_empty(raw) else {
            return tags;
        };
        for item in list.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                self.fail(
                    VAR,
                    item,
                    "each item must be key=value, items separated by commas",
                );
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let ok_key = self.rule(VAR, key, rules::tag_key);
            let ok_value = self.rule(VAR, value, rules::tag_value);
            if ok_key && ok_value && tags.insert(key.to_string(), value.to_string()).is_some() {
                self.fail(VAR, key, "tag key is given twice; give each key once");
            }
        }
        if tags.len() > MAX_USER_TAGS {
            self.fail(
                VAR,
                &list,
                format!(
                    "at most {MAX_USER_TAGS} tags (IAM allows 50 per object and the job uses 4)"
                ),
            );
        }
        tags
    }

    pub(crate) fn rule(
        &mut self,
        variable: &'static str,
        value: &str,
        rule: fn(&str) -> Result<(), String>,
    ) -> bool {
        rule(value)
            .map_err(|allowed| self.fail(variable, value, allowed))
            .is_ok()
    }
}
