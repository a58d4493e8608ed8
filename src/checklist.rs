//! The IRSA tutorial's checklist, run on what is there: for each managed ServiceAccount, every
//! link from the ServiceAccount to the bucket, each broken one named with its fix. Pure: `verify`
//! reads, this judges. A broken link fails `verify` even when the live calls succeed (an S3
//! endpoint that does not enforce policies must not hide a detached policy).

use serde_json::Value;

use crate::arn::{self, Partition};
use crate::aws_actions::POD_IDENTITY_SERVICE;
use crate::plan::{ROLE_ARN_ANNOTATION, STS_AUDIENCE};
use crate::state::{AssociationState, ProviderState, RoleState, SaState};
use crate::vocab::AGENT_ADDON;

pub use crate::error::Broken;

/// What the checklist looks at for one ServiceAccount.
#[derive(Debug, Clone)]
pub struct Links<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub sa: Option<&'a SaState>,
    pub role_name: &'a str,
    pub role_arn: &'a str,
    pub role: Option<&'a RoleState>,
    pub provider_arn: &'a str,
    /// The issuer without `https://`.
    pub issuer: &'a str,
    pub provider: Option<&'a ProviderState>,
    pub policy_arn: &'a str,
    /// The policy's default version document, `None` when the policy does not exist.
    pub policy_document: Option<&'a str>,
    pub partition: Partition,
    pub bucket: &'a str,
}

const RERUN: &str = "re-run provision (helm upgrade of the epinio-irsa release)";

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// `*` and `?` as IAM matches them (actions case-insensitively).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Does some `Allow` statement without conditions grant `action` on `resource`?
pub fn grants(doc: &Value, action: &str, resource: &str) -> bool {
    statements(doc).into_iter().any(|st| {
        st.get("Effect").and_then(Value::as_str) == Some("Allow")
            && st.get("Condition").is_none()
            && strings(st.get("Action"))
                .iter()
                .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && strings(st.get("Resource"))
                .iter()
                .any(|r| glob(r, resource))
    })
}

/// Does the trust let exactly this ServiceAccount's tokens for the STS audience in, through
/// this provider?
fn trust_admits(trust: &Value, provider_arn: &str, issuer: &str, subject: &str) -> bool {
    statements(trust).into_iter().any(|st| {
        let federated = st.get("Principal").and_then(|p| p.get("Federated"));
        let condition = |key: &str| {
            ["StringEquals", "StringLike"].iter().find_map(|op| {
                let v = st.get("Condition")?.get(op)?.get(key)?;
                Some(
                    strings(Some(v))
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
            })
        };
        st.get("Effect").and_then(Value::as_str) == Some("Allow")
            && strings(federated).contains(&provider_arn)
            && strings(st.get("Action")).contains(&"sts:AssumeRoleWithWebIdentity")
            && condition(&format!("{issuer}:sub"))
                .is_some_and(|v| v.iter().any(|s| glob(s, subject)))
            && condition(&format!("{issuer}:aud"))
                .is_some_and(|v| v.iter().any(|s| s == STS_AUDIENCE))
    })
}

/// Every broken link, in the order the tutorial checks them. Empty: all links hold. One
/// function on purpose (about 100 lines): it reads as the checklist itself, link by link, each
/// with its message and fix.
pub fn check(l: &Links) -> Vec<Broken> {
    let mut out = Vec::new();
    let mut broken = |link, detail: String, fix: String| out.push(Broken { link, detail, fix });
    let (ns, sa) = (l.namespace, l.service_account);
    match l.sa.map(|s| s.annotations.get(ROLE_ARN_ANNOTATION)) {
        None => broken("ServiceAccount", format!("ServiceAccount {ns}/{sa} does not exist"), RERUN.into()),
        Some(None) => broken(
            "annotation",
            format!("ServiceAccount {ns}/{sa} has no {ROLE_ARN_ANNOTATION} annotation"),
            format!("{RERUN}, or kubectl annotate serviceaccount -n {ns} {sa} {ROLE_ARN_ANNOTATION}={}", l.role_arn),
        ),
        Some(Some(v)) if v != l.role_arn => broken(
            "annotation",
            format!("ServiceAccount {ns}/{sa} is annotated {ROLE_ARN_ANNOTATION}={v}, not {}", l.role_arn),
            format!("remove the other value (kubectl annotate serviceaccount -n {ns} {sa} {ROLE_ARN_ANNOTATION}-) and {RERUN}"),
        ),
        _ => {}
    }
    match l.provider {
        None => broken(
            "OIDC provider",
            format!("the IAM OIDC provider {} does not exist", l.provider_arn),
            format!("{RERUN} (EPINIO_IRSA_CREATE_OIDC_PROVIDER=true), or eksctl utils associate-iam-oidc-provider --approve"),
        ),
        Some(p) if !p.client_ids.iter().any(|c| c == STS_AUDIENCE) => broken(
            "OIDC provider",
            format!("the IAM OIDC provider {} does not list the audience {STS_AUDIENCE}", l.provider_arn),
            format!("aws iam add-client-id-to-open-id-connect-provider --client-id {STS_AUDIENCE} --open-id-connect-provider-arn {}", l.provider_arn),
        ),
        _ => {}
    }
    out.extend(role_links(l, &|trust| {
        let subject = format!("system:serviceaccount:{ns}:{sa}");
        (!trust_admits(trust, l.provider_arn, l.issuer, &subject)).then(|| {
            format!(
                "the trust policy of role {} does not admit {subject} with audience {STS_AUDIENCE} through {}",
                l.role_name, l.provider_arn
            )
        })
    }));
    out
}

/// The links from the role on, shared by both mechanisms; `trust` judges the trust policy and
/// says what is wrong with it.
fn role_links(l: &Links, trust: &dyn Fn(&Value) -> Option<String>) -> Vec<Broken> {
    let mut out = Vec::new();
    let mut broken = |link, detail: String, fix: String| out.push(Broken { link, detail, fix });
    let Some(role) = l.role else {
        broken(
            "role",
            format!("the IAM role {} does not exist", l.role_name),
            RERUN.into(),
        );
        return out;
    };
    let document: Value = serde_json::from_str(&role.trust).unwrap_or(Value::Null);
    if let Some(detail) = trust(&document) {
        broken(
            "trust",
            detail,
            format!("{RERUN}: it restores the trust policy in place"),
        );
    }
    if !role.attached.iter().any(|a| a == l.policy_arn) {
        broken(
            "policy attachment",
            format!(
                "the policy {} is not attached to role {}",
                l.policy_arn, l.role_name
            ),
            format!(
                "{RERUN}, or aws iam attach-role-policy --role-name {} --policy-arn {}",
                l.role_name, l.policy_arn
            ),
        );
    }
    let bucket = arn::s3(l.partition, l.bucket);
    let objects = arn::s3(l.partition, &format!("{}/*", l.bucket));
    match l
        .policy_document
        .map(|d| serde_json::from_str::<Value>(d).unwrap_or(Value::Null))
    {
        None => broken(
            "policy",
            format!("the policy {} does not exist", l.policy_arn),
            RERUN.into(),
        ),
        Some(doc) => {
            let missing: Vec<String> = [
                ("s3:ListBucket", bucket.as_str()),
                ("s3:GetObject", objects.as_str()),
                ("s3:PutObject", objects.as_str()),
            ]
            .iter()
            .filter(|(a, r)| !grants(&doc, a, r))
            .map(|(a, r)| format!("{a} on {r}"))
            .collect();
            if !missing.is_empty() {
                broken(
                    "policy document",
                    format!(
                        "the default version of policy {} does not grant {}",
                        l.policy_arn,
                        missing.join(", ")
                    ),
                    format!(
                        "{RERUN} with EPINIO_IRSA_S3_BUCKET={} (s3.bucket)",
                        l.bucket
                    ),
                );
            }
        }
    }
    out
}

/// What the Pod Identity checklist looks at for one ServiceAccount, beyond the shared links.
#[derive(Debug, Clone)]
pub struct PodLinks<'a> {
    pub links: Links<'a>,
    pub cluster: &'a str,
    pub cluster_arn: &'a str,
    /// `DescribeAddon` of the agent: its status, `None` when missing.
    pub agent: Option<&'a str>,
    pub association: Option<&'a AssociationState>,
}

/// Does the trust let EKS Pod Identity assume the role and tag the session, for this cluster,
/// namespace and ServiceAccount only?
fn pod_trust_admits(trust: &Value, cluster_arn: &str, namespace: &str, sa: &str) -> bool {
    statements(trust).into_iter().any(|st| {
        let service = st.get("Principal").and_then(|p| p.get("Service"));
        let tag = |key: &str, want: &str| {
            ["StringEquals", "StringLike"].iter().any(|op| {
                st.get("Condition")
                    .and_then(|c| c.get(op))
                    .and_then(|c| c.get(format!("aws:RequestTag/{key}")))
                    .is_some_and(|v| strings(Some(v)).iter().any(|s| glob(s, want)))
            })
        };
        let actions = strings(st.get("Action"));
        st.get("Effect").and_then(Value::as_str) == Some("Allow")
            && strings(service).contains(&POD_IDENTITY_SERVICE)
            && actions.contains(&"sts:AssumeRole")
            && actions.contains(&"sts:TagSession")
            && tag("eks-cluster-arn", cluster_arn)
            && tag("kubernetes-namespace", namespace)
            && tag("kubernetes-service-account", sa)
    })
}

/// The Pod Identity checklist: the agent add-on ACTIVE, the association of this ServiceAccount
/// pointing at the role, no role annotation on the ServiceAccount (the web identity it makes
/// the pod's SDK use comes before the agent in every AWS SDK's chain), then the role, its
/// trust, its policy. The agent's own credential exchange cannot be made from the hook.
pub fn check_pod_identity(p: &PodLinks) -> Vec<Broken> {
    let l = &p.links;
    let (ns, sa) = (l.namespace, l.service_account);
    let mut out = Vec::new();
    let mut broken = |link, detail: String, fix: String| out.push(Broken { link, detail, fix });
    let install = format!(
        "aws eks create-addon --cluster-name {} --addon-name {AGENT_ADDON}",
        p.cluster
    );
    match p.agent {
        None => broken("agent add-on", format!("the add-on {AGENT_ADDON} is not installed on cluster {}", p.cluster), install),
        Some(status) if status != "ACTIVE" => broken("agent add-on", format!("the add-on {AGENT_ADDON} is {status}, not ACTIVE"), format!("wait for it or repair it (aws eks describe-addon --cluster-name {} --addon-name {AGENT_ADDON})", p.cluster)),
        _ => {}
    }
    match p.association {
        None => broken(
            "association",
            format!(
                "ServiceAccount {ns}/{sa} has no Pod Identity association on cluster {}",
                p.cluster
            ),
            RERUN.into(),
        ),
        Some(a) if a.role_arn != l.role_arn => broken(
            "association",
            format!(
                "the Pod Identity association {} of {ns}/{sa} points at {}, not {}",
                a.id, a.role_arn, l.role_arn
            ),
            RERUN.into(),
        ),
        _ => {}
    }
    match l.sa {
        None => broken(
            "ServiceAccount",
            format!("ServiceAccount {ns}/{sa} does not exist"),
            RERUN.into(),
        ),
        Some(s) => {
            if let Some(v) = s.annotations.get(ROLE_ARN_ANNOTATION) {
                broken("annotation", format!("ServiceAccount {ns}/{sa} is annotated {ROLE_ARN_ANNOTATION}={v}: its pods' SDKs use that web identity before Pod Identity"), format!("kubectl annotate serviceaccount -n {ns} {sa} {ROLE_ARN_ANNOTATION}- (and remove it from the values that set it), then restart Epinio"));
            }
        }
    }
    out.extend(role_links(l, &|trust| {
        (!pod_trust_admits(trust, p.cluster_arn, ns, sa)).then(|| {
            format!(
                "the trust policy of role {} does not let {POD_IDENTITY_SERVICE} assume it (sts:AssumeRole and sts:TagSession) for cluster {}, namespace {ns}, ServiceAccount {sa}",
                l.role_name, p.cluster_arn
            )
        })
    }));
    out
}

#[cfg(test)]
mod tests;
