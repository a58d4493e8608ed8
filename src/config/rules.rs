//! Validation rules. Each returns what is allowed when the value is not.

use crate::arn::{Arn, Partition};

fn all(s: &str, ok: impl Fn(char) -> bool) -> bool {
    s.chars().all(ok)
}

fn iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// EKS: 1-100 characters, starts with a letter or digit, then letters, digits, `-`, `_`.
pub fn cluster_name(s: &str) -> Result<(), String> {
    let ok = (1..=100).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && all(s, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some(()).ok_or_else(|| {
        "an EKS cluster name: 1-100 characters, letters, digits, '-' and '_', starting with a letter or digit".into()
    })
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && all(s, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        })
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Kubernetes namespace: an RFC 1123 label.
pub fn dns_label(s: &str) -> Result<(), String> {
    is_dns_label(s).then_some(()).ok_or_else(|| {
        "a Kubernetes namespace name: 1-63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit".into()
    })
}

/// Kubernetes object name (ServiceAccount): an RFC 1123 subdomain.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    let ok = (1..=253).contains(&s.len())
        && s.split('.').all(|part| {
            !part.is_empty()
                && all(part, |c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
                })
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    ok.then_some(()).ok_or_else(|| {
        "a Kubernetes ServiceAccount name: 1-253 characters, lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit".into()
    })
}

/// Helm release name.
pub fn release_name(s: &str) -> Result<(), String> {
    (is_dns_label(s) && s.len() <= 53)
        .then_some(())
        .ok_or_else(|| {
            "a Helm release name: 1-53 characters, lowercase letters, digits and '-', starting and ending with a letter or digit".into()
        })
}

pub fn role_name(s: &str) -> Result<(), String> {
    ((1..=64).contains(&s.len()) && all(s, iam_name_char))
        .then_some(())
        .ok_or_else(|| {
            "an IAM role name: 1-64 characters from letters, digits and + = , . @ _ -".into()
        })
}

pub fn policy_name(s: &str) -> Result<(), String> {
    ((1..=128).contains(&s.len()) && all(s, iam_name_char))
        .then_some(())
        .ok_or_else(|| {
            "an IAM policy name: 1-128 characters from letters, digits and + = , . @ _ -".into()
        })
}

/// IAM path: `/` or `/segment/.../`, at most 512 characters. IAM itself allows any printable
/// ASCII, but `*` or `?` would turn ARNs in the installer policy into wildcards and quotes
/// have no business in an ARN, so segments use the IAM name characters only.
pub fn iam_path(s: &str) -> Result<(), String> {
    let ok = s.len() <= 512
        && s.starts_with('/')
        && s.ends_with('/')
        && (s == "/"
            || s[1..s.len() - 1]
                .split('/')
                .all(|seg| !seg.is_empty() && all(seg, iam_name_char)));
    ok.then_some(()).ok_or_else(|| {
        "an IAM path: '/' or '/segment/.../' (at most 512 characters; segments of letters, digits and + = , . @ _ -)".into()
    })
}

/// A managed policy ARN: `arn:<partition>:iam::<account id or aws>:policy/<path/>name`.
pub fn policy_arn(s: &str) -> Result<(), String> {
    let allowed = || {
        "an IAM managed policy ARN such as arn:aws:iam::123456789012:policy/name or arn:aws:iam::aws:policy/ReadOnlyAccess".to_string()
    };
    let Ok(arn) = s.parse::<Arn>() else {
        return Err(allowed());
    };
    if arn.service != "iam" || !arn.region.is_empty() {
        return Err(allowed());
    }
    if arn.account != "aws" && account_id(&arn.account).is_err() {
        return Err(allowed());
    }
    let Some(rest) = arn.resource.strip_prefix("policy/") else {
        return Err(allowed());
    };
    let (path, name) = match rest.rfind('/') {
        Some(i) => (&rest[..=i], &rest[i + 1..]),
        None => ("", rest),
    };
    let path_ok = path.is_empty() || iam_path(&format!("/{path}")).is_ok();
    if path_ok && policy_name(name).is_ok() {
        Ok(())
    } else {
        Err(allowed())
    }
}

pub fn account_id(s: &str) -> Result<(), String> {
    crate::arn::is_account_id(s)
        .then_some(())
        .ok_or_else(|| "a 12-digit AWS account id".into())
}

fn tag_char(c: char) -> bool {
    // AWS: Unicode letters, digits, white space and _ . : / = + - @
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

pub fn tag_key(s: &str) -> Result<(), String> {
    if s.starts_with(super::tags::RESERVED_TAG_PREFIX) || s == super::tags::MANAGED_BY_KEY {
        return Err(format!(
            "tag keys '{}' and '{}*' are set by epinio-irsa itself; choose another key",
            super::tags::MANAGED_BY_KEY,
            super::tags::RESERVED_TAG_PREFIX
        ));
    }
    if s.to_ascii_lowercase().starts_with("aws:") {
        return Err("tag keys starting with 'aws:' are reserved by AWS".into());
    }
    ((1..=128).contains(&s.chars().count()) && all(s, tag_char))
        .then_some(())
        .ok_or_else(|| {
            "a tag key: 1-128 characters from letters, digits, spaces and _ . : / = + - @".into()
        })
}

pub fn tag_value(s: &str) -> Result<(), String> {
    (s.chars().count() <= 256 && all(s, tag_char))
        .then_some(())
        .ok_or_else(|| {
            "a tag value: at most 256 characters from letters, digits, spaces and _ . : / = + - @"
                .into()
        })
}

/// S3 general purpose bucket naming rules.
pub fn bucket(s: &str) -> Result<(), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let looks_like_ip = s.split('.').count() == 4 && s.split('.').all(|p| p.parse::<u8>().is_ok());
    let reserved = s.starts_with("xn--")
        || s.starts_with("sthree-")
        || s.starts_with("amzn-s3-demo-")
        || s.ends_with("-s3alias")
        || s.ends_with("--ol-s3")
        || s.ends_with(".mrap")
        || s.ends_with("--x-s3")
        || s.ends_with("--table-s3");
    let ok = (3..=63).contains(&s.len())
        && all(s, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
        })
        && edge(s.chars().next())
        && edge(s.chars().last())
        && !s.contains("..")
        && !looks_like_ip
        && !reserved;
    ok.then_some(()).ok_or_else(|| {
        "an S3 bucket name: 3-63 characters, lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not an IP address, no reserved prefix or suffix".into()
    })
}

/// AWS region: `<geo>-<direction>-<n>` in a known partition (see [`Partition::of_region`]).
pub fn region(s: &str) -> Result<(), String> {
    Partition::of_region(s).map(|_| ()).ok_or_else(|| {
        "an AWS region such as us-east-1, eu-central-1, ap-southeast-2, us-gov-west-1".into()
    })
}
