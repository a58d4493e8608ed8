//! A stateful stand-in for the EKS Pod Identity API, which moto does not implement (checked in
//! moto 5.2.5): the five association operations and `DescribeAddon`, served by the test proxy
//! at the EKS endpoint beside moto (everything else still goes to moto).
//!
//! Faithful to the AWS service model (`eks` 2017-11-01): request and response shapes,
//! REST-JSON errors with `x-amzn-ErrorType`, and these behaviours of the real service:
//! - the cluster must exist (asked of moto: `DescribeCluster`), else
//!   `ResourceNotFoundException`; its ARN gives the association ARNs' region and account;
//! - one association per cluster, namespace and ServiceAccount: a second create is
//!   `ResourceInUseException` (409), and so is a create within the settle window after a
//!   delete of the same one (`set_delete_settle`), as EKS answers while a delete completes;
//! - the role of a create or update must be the full ARN (account and path) of an existing
//!   role (asked of moto: `GetRole`), else `InvalidParameterException` "does not exist or is
//!   not accessible"; and its trust policy must let `pods.eks.amazonaws.com` call
//!   `sts:AssumeRole` and `sts:TagSession`, else `InvalidParameterException` "Trust policy of
//!   the role provided is invalid";
//! - association ids look like `a-` and 17 lower-case letters and digits; another shape is
//!   `InvalidParameterException`, an unknown one `ResourceNotFoundException`;
//! - associations an EKS add-on made carry `ownerArn`; updating or deleting them directly is
//!   `InvalidRequestException`;
//! - `ListPodIdentityAssociations` filters by namespace and ServiceAccount and pages with
//!   `maxResults` (1-100, default 100) and an opaque `nextToken`;
//! - tags: at most 50, no `aws:` prefix; `TagResource` on an association's ARN adds tags
//!   (`NotFoundException`, `BadRequestException` as that operation models them).
//!
//! Not modelled: the agent itself (no pod ever gets credentials from it), `clientRequestToken`
//! idempotency, session-tag and target-role options of newer API versions, IAM authorization
//! of the calls (judged by `iam_eval` on the call log instead).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The agent add-on's name.
pub const AGENT_ADDON: &str = "eks-pod-identity-agent";

/// One association, as the stand-in holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Association {
    pub cluster: String,
    pub id: String,
    pub arn: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub tags: BTreeMap<String, String>,
    pub owner_arn: Option<String>,
    created_at: f64,
    modified_at: f64,
}

impl Association {
    fn full(&self) -> Value {
        let mut v = json!({
            "clusterName": self.cluster,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "roleArn": self.role_arn,
            "associationArn": self.arn,
            "associationId": self.id,
            "tags": self.tags,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
        });
        if let Some(o) = &self.owner_arn {
            v["ownerArn"] = json!(o);
        }
        v
    }

    fn summary(&self) -> Value {
        let mut v = json!({
            "clusterName": self.cluster,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "associationArn": self.arn,
            "associationId": self.id,
        });
        if let Some(o) = &self.owner_arn {
            v["ownerArn"] = json!(o);
        }
        v
    }
}

#[derive(Debug, Clone)]
struct Addon {
    status: String,
    version: String,
    created_at: f64,
}

#[derive(Default)]
struct Inner {
    associations: Vec<Association>,
    addons: BTreeMap<(String, String), Addon>,
    /// Deletes still settling: (cluster, namespace, ServiceAccount) -> when they settle.
    settling: Vec<((String, String, String), Instant)>,
    settle: Duration,
    counter: u64,
}

/// The stand-in's state, shared by every connection of one proxy.
#[derive(Default)]
pub struct PodIdentity {
    inner: Mutex<Inner>,
}

/// Which operation a request is, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Create {
        cluster: String,
    },
    List {
        cluster: String,
    },
    Describe {
        cluster: String,
        id: String,
    },
    Update {
        cluster: String,
        id: String,
    },
    Delete {
        cluster: String,
        id: String,
    },
    DescribeAddon {
        cluster: String,
        addon: String,
    },
    /// `TagResource` of an association's ARN (other ARNs go to moto).
    Tag {
        cluster: String,
        arn: String,
    },
}

impl Route {
    /// The route of an EKS REST request, if it is one the stand-in serves.
    pub fn of(method: &str, segments: &[String]) -> Option<Route> {
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        Some(match (method, s.as_slice()) {
            ("POST", ["clusters", c, "pod-identity-associations"]) => Route::Create {
                cluster: c.to_string(),
            },
            ("GET", ["clusters", c, "pod-identity-associations"]) => Route::List {
                cluster: c.to_string(),
            },
            ("GET", ["clusters", c, "pod-identity-associations", id]) => Route::Describe {
                cluster: c.to_string(),
                id: id.to_string(),
            },
            ("POST", ["clusters", c, "pod-identity-associations", id]) => Route::Update {
                cluster: c.to_string(),
                id: id.to_string(),
            },
            ("DELETE", ["clusters", c, "pod-identity-associations", id]) => Route::Delete {
                cluster: c.to_string(),
                id: id.to_string(),
            },
            ("GET", ["clusters", c, "addons", a]) => Route::DescribeAddon {
                cluster: c.to_string(),
                addon: a.to_string(),
            },
            ("POST", ["tags", arn]) if arn.contains(":podidentityassociation/") => Route::Tag {
                cluster: arn
                    .split(":podidentityassociation/")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .unwrap_or_default()
                    .to_string(),
                arn: arn.to_string(),
            },
            _ => return None,
        })
    }

    /// The operation name, as the service model and IAM name it.
    pub fn operation(&self) -> &'static str {
        match self {
            Route::Create { .. } => "CreatePodIdentityAssociation",
            Route::List { .. } => "ListPodIdentityAssociations",
            Route::Describe { .. } => "DescribePodIdentityAssociation",
            Route::Update { .. } => "UpdatePodIdentityAssociation",
            Route::Delete { .. } => "DeletePodIdentityAssociation",
            Route::DescribeAddon { .. } => "DescribeAddon",
            Route::Tag { .. } => "TagResource",
        }
    }

    pub fn cluster(&self) -> &str {
        match self {
            Route::Create { cluster }
            | Route::List { cluster }
            | Route::Describe { cluster, .. }
            | Route::Update { cluster, .. }
            | Route::Delete { cluster, .. }
            | Route::DescribeAddon { cluster, .. }
            | Route::Tag { cluster, .. } => cluster,
        }
    }
}

/// What the stand-in needs to know of the rest of AWS (moto), asked by the proxy.
pub struct World {
    /// The cluster's ARN, `None` when moto has no such cluster.
    pub cluster_arn: Option<String>,
    /// The role the request names, as IAM holds it (`None`: no role in the request).
    pub role: Option<IamRole>,
}

/// What IAM says of a role EKS is handed.
#[derive(Debug, Clone, PartialEq)]
pub enum IamRole {
    /// No role of that name.
    Missing,
    /// The role's full ARN (with its path) and its trust policy.
    Found { arn: String, trust: Value },
}

/// Whether a trust policy lets EKS Pod Identity assume the role: an `Allow` for the service
/// principal `pods.eks.amazonaws.com` with both `sts:AssumeRole` and `sts:TagSession`.
pub fn trust_admits_pod_identity(trust: &Value) -> bool {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match &trust["Statement"] {
        Value::Array(a) => a.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements.iter().any(|st| {
        let actions = list(&st["Action"]);
        let has = |a: &str| {
            actions
                .iter()
                .any(|x| x.eq_ignore_ascii_case(a) || x == "sts:*" || x == "*")
        };
        st["Effect"] == "Allow"
            && list(&st["Principal"]["Service"])
                .iter()
                .any(|p| p == "pods.eks.amazonaws.com")
            && has("sts:AssumeRole")
            && has("sts:TagSession")
    })
}

/// An answer: HTTP status, error type (for `x-amzn-ErrorType`) and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub error_type: Option<&'static str>,
    pub body: Value,
}

fn ok(body: Value) -> Answer {
    Answer {
        status: 200,
        error_type: None,
        body,
    }
}

fn error(status: u16, code: &'static str, message: String, cluster: &str) -> Answer {
    Answer {
        status,
        error_type: Some(code),
        body: json!({ "message": message, "clusterName": cluster }),
    }
}

fn invalid(message: String, cluster: &str) -> Answer {
    error(400, "InvalidParameterException", message, cluster)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

fn valid_id(id: &str) -> bool {
    id.strip_prefix("a-").is_some_and(|rest| {
        rest.len() == 17
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    })
}

/// `arn:<partition>:iam::<12 digits>:role/<path/>name` -> the role name.
pub fn role_name(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource]
            if account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) =>
        {
            resource
                .strip_prefix("role/")
                .and_then(|r| r.rsplit('/').next())
                .filter(|n| !n.is_empty())
        }
        _ => None,
    }
}

fn tags_of(body: &Value, cluster: &str) -> Result<BTreeMap<String, String>, Answer> {
    let Some(tags) = body.get("tags") else {
        return Ok(BTreeMap::new());
    };
    let map = tags
        .as_object()
        .ok_or_else(|| invalid("tags must be a map".into(), cluster))?;
    if map.len() > 50 {
        return Err(invalid(
            format!("at most 50 tags are allowed, got {}", map.len()),
            cluster,
        ));
    }
    map.iter()
        .map(|(k, v)| {
            if k.to_ascii_lowercase().starts_with("aws:") {
                return Err(invalid(
                    format!("tag keys may not start with aws: ({k})"),
                    cluster,
                ));
            }
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .ok_or_else(|| invalid(format!("tag {k} must be a string"), cluster))
        })
        .collect()
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PodIdentity {
    /// Install the agent add-on on the cluster of ARN `cluster_arn` with this status.
    pub fn install_agent(&self, cluster_arn: &str, status: &str, version: &str) {
        let cluster = cluster_arn.rsplit('/').next().unwrap_or_default();
        self.install_agent_on(cluster, status, version);
    }

    /// Install the agent add-on on the cluster named `cluster` with this status.
    pub fn install_agent_on(&self, cluster: &str, status: &str, version: &str) {
        lock(&self.inner).addons.insert(
            (cluster.to_string(), AGENT_ADDON.to_string()),
            Addon {
                status: status.to_string(),
                version: version.to_string(),
                created_at: now(),
            },
        );
    }

    /// How long a deleted association keeps blocking a create of the same one.
    pub fn set_delete_settle(&self, d: Duration) {
        lock(&self.inner).settle = d;
    }

    /// Add an association as someone else (a person, another tool, an add-on with
    /// `owner_arn`) would have made it; returns its id.
    pub fn seed(
        &self,
        cluster_arn: &str,
        namespace: &str,
        service_account: &str,
        role_arn: &str,
        tags: BTreeMap<String, String>,
        owner_arn: Option<&str>,
    ) -> String {
        let mut inner = lock(&self.inner);
        let a = new_association(
            &mut inner,
            cluster_arn,
            namespace,
            service_account,
            role_arn,
            tags,
        );
        let id = a.id.clone();
        inner.associations.push(Association {
            owner_arn: owner_arn.map(str::to_string),
            ..a
        });
        id
    }

    /// Point an association at another role, as a person with the console might.
    pub fn set_role(&self, id: &str, role_arn: &str) {
        let mut inner = lock(&self.inner);
        if let Some(a) = inner.associations.iter_mut().find(|a| a.id == id) {
            a.role_arn = role_arn.to_string();
            a.modified_at = now();
        }
    }

    /// Mark the association of `namespace/service_account` on `cluster` as still being
    /// deleted for `d` from now: creates of it get `ResourceInUseException` until then.
    pub fn still_deleting(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        d: Duration,
    ) {
        lock(&self.inner).settling.push((
            (
                cluster.to_string(),
                namespace.to_string(),
                service_account.to_string(),
            ),
            Instant::now() + d,
        ));
    }

    /// Delete an association behind the job's back (no settle time).
    pub fn remove(&self, id: &str) {
        lock(&self.inner).associations.retain(|a| a.id != id);
    }

    /// Replace an association's tags, as a person might.
    pub fn set_tags(&self, id: &str, tags: BTreeMap<String, String>) {
        if let Some(a) = lock(&self.inner)
            .associations
            .iter_mut()
            .find(|a| a.id == id)
        {
            a.tags = tags;
        }
    }

    /// Every association, in creation order.
    pub fn associations(&self) -> Vec<Association> {
        lock(&self.inner).associations.clone()
    }

    /// Serve one request. `world` is what moto says of the cluster and the role.
    pub fn serve(
        &self,
        route: &Route,
        query: &[(String, String)],
        body: &[u8],
        world: &World,
    ) -> Answer {
        let cluster = route.cluster();
        let Some(cluster_arn) = world.cluster_arn.as_deref() else {
            return error(
                404,
                "ResourceNotFoundException",
                format!("No cluster found for name: {cluster}."),
                cluster,
            );
        };
        let body: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return invalid("the request body is not a JSON object".into(), cluster),
            }
        };
        let mut inner = lock(&self.inner);
        let t = Instant::now();
        inner.settling.retain(|(_, until)| *until > t);
        let role_check = |body: &Value, required: bool| -> Result<Option<String>, Answer> {
            match body.get("roleArn").and_then(Value::as_str) {
                None if required => Err(invalid("roleArn is required".into(), cluster)),
                None => Ok(None),
                Some(arn) if role_name(arn).is_none() => Err(invalid(
                    format!("roleArn {arn} is not a valid IAM role ARN"),
                    cluster,
                )),
                // EKS matches the whole ARN, account and path included, not just the name.
                Some(arn) => match &world.role {
                    Some(IamRole::Found { arn: real, trust }) if real == arn => {
                        if trust_admits_pod_identity(trust) {
                            Ok(Some(arn.to_string()))
                        } else {
                            Err(invalid(
                                "Trust policy of the role provided is invalid".into(),
                                cluster,
                            ))
                        }
                    }
                    _ => Err(invalid(
                        format!("Role {arn} does not exist or is not accessible"),
                        cluster,
                    )),
                },
            }
        };
        let find = |inner: &Inner, id: &str| {
            inner
                .associations
                .iter()
                .position(|a| a.cluster == cluster && a.id == id)
        };
        let id_check = |id: &str| -> Result<(), Answer> {
            if valid_id(id) {
                Ok(())
            } else {
                Err(invalid(format!("Invalid association id {id}"), cluster))
            }
        };
        let not_found = |id: &str| {
            error(
                404,
                "ResourceNotFoundException",
                format!("No Pod Identity Association found with id {id} in cluster {cluster}"),
                cluster,
            )
        };
        // Update and delete: a well-formed id of an association no add-on manages.
        let direct = |inner: &Inner, id: &str, verb: &str| -> Result<usize, Answer> {
            id_check(id)?;
            let i = find(inner, id).ok_or_else(|| not_found(id))?;
            match &inner.associations[i].owner_arn {
                Some(owner) => Err(error(
                    400,
                    "InvalidRequestException",
                    format!("Association {id} is managed by {owner} and cannot be {verb} directly"),
                    cluster,
                )),
                None => Ok(i),
            }
        };
        let result = match route {
            Route::Create { .. } => (|| {
                let field = |k: &str| {
                    body.get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| invalid(format!("{k} is required"), cluster))
                };
                let (namespace, sa) = (field("namespace")?, field("serviceAccount")?);
                let role = role_check(&body, true)?.unwrap_or_default();
                let tags = tags_of(&body, cluster)?;
                if let Some(existing) = inner.associations.iter().find(|a| {
                    a.cluster == cluster && a.namespace == namespace && a.service_account == sa
                }) {
                    return Err(error(
                        409,
                        "ResourceInUseException",
                        format!("Association already exists: {}", existing.id),
                        cluster,
                    ));
                }
                let key = (cluster.to_string(), namespace.clone(), sa.clone());
                if inner.settling.iter().any(|(k, _)| *k == key) {
                    return Err(error(
                        409,
                        "ResourceInUseException",
                        format!("An association for {namespace}/{sa} is being deleted"),
                        cluster,
                    ));
                }
                let a = new_association(&mut inner, cluster_arn, &namespace, &sa, &role, tags);
                inner.associations.push(a.clone());
                Ok(ok(json!({ "association": a.full() })))
            })(),
            Route::List { .. } => (|| {
                let q = |k: &str| {
                    query
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.as_str())
                };
                let max = match q("maxResults") {
                    None => 100,
                    Some(m) => match m.parse::<usize>() {
                        Ok(n) if (1..=100).contains(&n) => n,
                        _ => {
                            return Err(invalid(
                                format!("maxResults must be between 1 and 100, got {m}"),
                                cluster,
                            ))
                        }
                    },
                };
                let start = match q("nextToken") {
                    None => 0,
                    Some(t) => t
                        .strip_prefix("pia-page-")
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or_else(|| invalid("The nextToken is invalid".into(), cluster))?,
                };
                let matching: Vec<&Association> = inner
                    .associations
                    .iter()
                    .filter(|a| a.cluster == cluster)
                    .filter(|a| q("namespace").is_none_or(|n| a.namespace == n))
                    .filter(|a| q("serviceAccount").is_none_or(|s| a.service_account == s))
                    .collect();
                let page: Vec<Value> = matching
                    .iter()
                    .skip(start)
                    .take(max)
                    .map(|a| a.summary())
                    .collect();
                let mut out = Map::new();
                out.insert("associations".into(), Value::Array(page));
                if start + max < matching.len() {
                    out.insert(
                        "nextToken".into(),
                        json!(format!("pia-page-{}", start + max)),
                    );
                }
                Ok(ok(Value::Object(out)))
            })(),
            Route::Describe { id, .. } => (|| {
                id_check(id)?;
                let i = find(&inner, id).ok_or_else(|| not_found(id))?;
                Ok(ok(json!({ "association": inner.associations[i].full() })))
            })(),
            Route::Update { id, .. } => (|| {
                let i = direct(&inner, id, "updated")?;
                let role = role_check(&body, false)?;
                let a = &mut inner.associations[i];
                if let Some(role) = role {
                    a.role_arn = role;
                }
                a.modified_at = now();
                Ok(ok(json!({ "association": a.full() })))
            })(),
            Route::Delete { id, .. } => (|| {
                let i = direct(&inner, id, "deleted")?;
                let a = inner.associations.remove(i);
                let until = Instant::now() + inner.settle;
                if !inner.settle.is_zero() {
                    inner.settling.push((
                        (
                            a.cluster.clone(),
                            a.namespace.clone(),
                            a.service_account.clone(),
                        ),
                        until,
                    ));
                }
                Ok(ok(json!({ "association": a.full() })))
            })(),
            Route::Tag { arn, .. } => (|| {
                let tags = tags_of(&body, cluster).map_err(|mut e| {
                    e.error_type = Some("BadRequestException");
                    e
                })?;
                let a = inner
                    .associations
                    .iter_mut()
                    .find(|a| &a.arn == arn)
                    .ok_or_else(|| {
                        error(
                            404,
                            "NotFoundException",
                            format!("Resource {arn} not found"),
                            cluster,
                        )
                    })?;
                if tags.is_empty() {
                    return Err(error(
                        400,
                        "BadRequestException",
                        "tags must not be empty".into(),
                        cluster,
                    ));
                }
                a.tags.extend(tags);
                Ok(ok(json!({})))
            })(),
            Route::DescribeAddon { addon, .. } => (|| {
                let found = inner
                    .addons
                    .get(&(cluster.to_string(), addon.clone()))
                    .ok_or_else(|| {
                        error(
                            404,
                            "ResourceNotFoundException",
                            format!("No addon: {addon} found in cluster: {cluster}"),
                            cluster,
                        )
                    })?;
                Ok(ok(json!({ "addon": {
                    "addonName": addon,
                    "clusterName": cluster,
                    "status": found.status,
                    "addonVersion": found.version,
                    "health": { "issues": [] },
                    "addonArn": format!(
                        "{}:addon/{cluster}/{addon}/c2c4a1b0-1111-2222-3333-444455556666",
                        cluster_arn.split(":cluster/").next().unwrap_or_default()
                    ),
                    "createdAt": found.created_at,
                    "modifiedAt": found.created_at,
                    "tags": {},
                    "podIdentityAssociations": [],
                }})))
            })(),
        };
        result.unwrap_or_else(|e| e)
    }
}

fn new_association(
    inner: &mut Inner,
    cluster_arn: &str,
    namespace: &str,
    service_account: &str,
    role_arn: &str,
    tags: BTreeMap<String, String>,
) -> Association {
    inner.counter += 1;
    // 17 lower-case hex digits, unique per stand-in.
    let id = format!(
        "a-{:017x}",
        inner.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 4
    );
    let cluster = cluster_arn
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let prefix = cluster_arn.split(":cluster/").next().unwrap_or_default();
    let t = now();
    Association {
        arn: format!("{prefix}:podidentityassociation/{cluster}/{id}"),
        cluster,
        id,
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        role_arn: role_arn.to_string(),
        tags,
        owner_arn: None,
        created_at: t,
        modified_at: t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:eks:eu-west-1:123456789012:cluster/demo";
    const ROLE: &str = "arn:aws:iam::123456789012:role/epinio/r";

    fn world() -> World {
        World {
            cluster_arn: Some(ARN.into()),
            role: Some(IamRole::Found {
                arn: ROLE.into(),
                trust: json!({"Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
            }),
        }
    }

    #[test]
    fn the_role_must_be_the_whole_arn_of_a_role_whose_trust_admits_pod_identity() {
        let p = PodIdentity::default();
        let attempt = |role: &str, iam: Option<IamRole>| {
            let body = json!({"namespace": "ns", "serviceAccount": "sa", "roleArn": role});
            let w = World {
                cluster_arn: Some(ARN.into()),
                role: iam,
            };
            p.serve(
                &Route::Create {
                    cluster: "demo".into(),
                },
                &[],
                body.to_string().as_bytes(),
                &w,
            )
        };
        let found = |arn: &str, trust: Value| {
            Some(IamRole::Found {
                arn: arn.into(),
                trust,
            })
        };
        let good = json!({"Statement": {"Effect": "Allow",
            "Principal": {"Service": ["pods.eks.amazonaws.com"]},
            "Action": ["sts:AssumeRole", "sts:TagSession"]}});
        // Same name, other path or other account: not that role.
        for asked in [
            "arn:aws:iam::123456789012:role/r",
            "arn:aws:iam::210987654321:role/epinio/r",
        ] {
            let a = attempt(asked, found(ROLE, good.clone()));
            assert_eq!(a.error_type, Some("InvalidParameterException"), "{asked}");
            assert!(a.body["message"]
                .as_str()
                .unwrap()
                .contains("does not exist"));
        }
        assert_eq!(attempt(ROLE, Some(IamRole::Missing)).status, 400);
        // A trust for IRSA only, or without sts:TagSession: refused.
        for trust in [
            json!({"Statement": [{"Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
                "Action": "sts:AssumeRoleWithWebIdentity"}]}),
            json!({"Statement": [{"Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            json!({"Statement": [{"Effect": "Deny",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
        ] {
            let a = attempt(ROLE, found(ROLE, trust.clone()));
            assert_eq!(
                a.body["message"], "Trust policy of the role provided is invalid",
                "{trust}"
            );
        }
        assert_eq!(attempt(ROLE, found(ROLE, good)).status, 200);
    }

    fn create(p: &PodIdentity, sa: &str) -> Answer {
        let body =
            json!({"namespace": "ns", "serviceAccount": sa, "roleArn": ROLE, "tags": {"k": "v"}});
        p.serve(
            &Route::Create {
                cluster: "demo".into(),
            },
            &[],
            body.to_string().as_bytes(),
            &world(),
        )
    }

    #[test]
    fn ids_are_well_formed_and_unique() {
        let p = PodIdentity::default();
        let a = create(&p, "a").body["association"]["associationId"].clone();
        let b = create(&p, "b").body["association"]["associationId"].clone();
        assert!(valid_id(a.as_str().unwrap()), "{a}");
        assert_ne!(a, b);
        assert_eq!(role_name(ROLE), Some("r"));
        assert_eq!(role_name("arn:aws:iam::1:role/r"), None);
    }

    #[test]
    fn second_create_and_create_while_a_delete_settles_are_in_use() {
        let p = PodIdentity::default();
        p.set_delete_settle(Duration::from_secs(60));
        let first = create(&p, "sa");
        assert_eq!(first.status, 200);
        assert_eq!(create(&p, "sa").error_type, Some("ResourceInUseException"));
        let id = first.body["association"]["associationId"]
            .as_str()
            .unwrap()
            .to_string();
        let del = p.serve(
            &Route::Delete {
                cluster: "demo".into(),
                id,
            },
            &[],
            b"",
            &world(),
        );
        assert_eq!(del.status, 200);
        assert_eq!(create(&p, "sa").status, 409);
    }
}
