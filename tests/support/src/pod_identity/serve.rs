//! The stand-in's operations: create, list, describe, update, delete and tag associations,
//! and describe the agent add-on, each as the real service answers it.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::checks::{role_name, tags_of, trust_admits_pod_identity, valid_id};
use super::{error, invalid, now, ok, Answer, Association, IamRole, Inner, World};

/// One request being served: its cluster (which exists: `cluster_arn`), what moto says of
/// its role, its query and its JSON body.
pub(super) struct Call<'a> {
    pub(super) cluster: &'a str,
    pub(super) cluster_arn: &'a str,
    pub(super) world: &'a World,
    pub(super) query: &'a [(String, String)],
    pub(super) body: Value,
}

impl Call<'_> {
    /// The body's `roleArn`: the whole ARN of an existing role whose trust admits Pod
    /// Identity (`None` when absent and not `required`).
    fn role_check(&self, required: bool) -> Result<Option<String>, Answer> {
        let cluster = self.cluster;
        match self.body.get("roleArn").and_then(Value::as_str) {
            None if required => Err(invalid("roleArn is required".into(), cluster)),
            None => Ok(None),
            Some(arn) if role_name(arn).is_none() => Err(invalid(
                format!("roleArn {arn} is not a valid IAM role ARN"),
                cluster,
            )),
            // EKS matches the whole ARN, account and path included, not just the name.
            Some(arn) => match &self.world.role {
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
    }

    fn find(&self, inner: &Inner, id: &str) -> Option<usize> {
        inner
            .associations
            .iter()
            .position(|a| a.cluster == self.cluster && a.id == id)
    }

    fn id_check(&self, id: &str) -> Result<(), Answer> {
        if valid_id(id) {
            Ok(())
        } else {
            Err(invalid(
                format!("Invalid association id {id}"),
                self.cluster,
            ))
        }
    }

    fn not_found(&self, id: &str) -> Answer {
        let cluster = self.cluster;
        error(
            404,
            "ResourceNotFoundException",
            format!("No Pod Identity Association found with id {id} in cluster {cluster}"),
            cluster,
        )
    }

    /// Update and delete: a well-formed id of an association no add-on manages.
    fn direct(&self, inner: &Inner, id: &str, verb: &str) -> Result<usize, Answer> {
        self.id_check(id)?;
        let i = self.find(inner, id).ok_or_else(|| self.not_found(id))?;
        match &inner.associations[i].owner_arn {
            Some(owner) => Err(error(
                400,
                "InvalidRequestException",
                format!("Association {id} is managed by {owner} and cannot be {verb} directly"),
                self.cluster,
            )),
            None => Ok(i),
        }
    }

    pub(super) fn create(&self, inner: &mut Inner) -> Result<Answer, Answer> {
        let cluster = self.cluster;
        let field = |k: &str| {
            self.body
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("{k} is required"), cluster))
        };
        let (namespace, sa) = (field("namespace")?, field("serviceAccount")?);
        let role = self.role_check(true)?.unwrap_or_default();
        let tags = tags_of(&self.body, cluster)?;
        if let Some(existing) = inner
            .associations
            .iter()
            .find(|a| a.cluster == cluster && a.namespace == namespace && a.service_account == sa)
        {
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
        let a = new_association(inner, self.cluster_arn, &namespace, &sa, &role, tags);
        inner.associations.push(a.clone());
        Ok(ok(json!({ "association": a.full() })))
    }

    pub(super) fn list(&self, inner: &Inner) -> Result<Answer, Answer> {
        let cluster = self.cluster;
        let q = |k: &str| {
            self.query
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
    }

    pub(super) fn describe(&self, inner: &Inner, id: &str) -> Result<Answer, Answer> {
        self.id_check(id)?;
        let i = self.find(inner, id).ok_or_else(|| self.not_found(id))?;
        Ok(ok(json!({ "association": inner.associations[i].full() })))
    }

    pub(super) fn update(&self, inner: &mut Inner, id: &str) -> Result<Answer, Answer> {
        let i = self.direct(inner, id, "updated")?;
        let role = self.role_check(false)?;
        let a = &mut inner.associations[i];
        if let Some(role) = role {
            a.role_arn = role;
        }
        a.modified_at = now();
        Ok(ok(json!({ "association": a.full() })))
    }

    pub(super) fn delete(&self, inner: &mut Inner, id: &str) -> Result<Answer, Answer> {
        let i = self.direct(inner, id, "deleted")?;
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
    }

    pub(super) fn tag(&self, inner: &mut Inner, arn: &str) -> Result<Answer, Answer> {
        let cluster = self.cluster;
        let tags = tags_of(&self.body, cluster).map_err(|mut e| {
            e.error_type = Some("BadRequestException");
            e
        })?;
        let a = inner
            .associations
            .iter_mut()
            .find(|a| a.arn == arn)
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
    }

    pub(super) fn describe_addon(&self, inner: &Inner, addon: &str) -> Result<Answer, Answer> {
        let cluster = self.cluster;
        let found = inner
            .addons
            .get(&(cluster.to_string(), addon.to_string()))
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
                self.cluster_arn.split(":cluster/").next().unwrap_or_default()
            ),
            "createdAt": found.created_at,
            "modifiedAt": found.created_at,
            "tags": {},
            "podIdentityAssociations": [],
        }})))
    }
}

pub(super) fn new_association(
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
