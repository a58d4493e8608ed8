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
//!
//! Its parts: the state and its direct access here, the request routes (`route.rs`), the
//! checks of roles, trust policies, ids and tags (`checks.rs`) and the operations
//! (`serve.rs`).

mod checks;
mod route;
mod serve;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub use checks::{role_name, trust_admits_pod_identity};
pub use route::Route;
use serve::{new_association, Call};

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
        let call = Call {
            cluster,
            cluster_arn,
            world,
            query,
            body,
        };
        let result = match route {
            Route::Create { .. } => call.create(&mut inner),
            Route::List { .. } => call.list(&inner),
            Route::Describe { id, .. } => call.describe(&inner, id),
            Route::Update { id, .. } => call.update(&mut inner, id),
            Route::Delete { id, .. } => call.delete(&mut inner, id),
            Route::Tag { arn, .. } => call.tag(&mut inner, arn),
            Route::DescribeAddon { addon, .. } => call.describe_addon(&inner, addon),
        };
        result.unwrap_or_else(|e| e)
    }
}
