//! Authentication and RBAC authorization, as the kube-apiserver does them for a subject bound
//! only by Roles: a bearer token names a user; the user's rules are those of the Roles its
//! RoleBindings in the request's namespace grant; a request is allowed when one rule matches its
//! verb, API group, resource (with `/subresource`) and, where the request names an object,
//! `resourceNames`. Request attributes follow the apiserver's `RequestInfo`: a path
//! `/api/v1/namespaces/NS` is the object `namespaces "NS"` *in* namespace NS (so a Role in NS
//! could grant it; ours do not). Refused, with the apiserver's 403 messages:
//! - any other request outside a namespace (`/api/v1/nodes`, `/api/v1/serviceaccounts`,
//!   `/apis/apps/v1/deployments`): "at the cluster scope", since no ClusterRole is modelled;
//! - any non-resource path except discovery (`/api`, `/api/v1`, `/apis`, `/apis/G`, `/apis/G/V`,
//!   `/version`, `/openapi`, `/openapi/*`) and health (`/healthz`, `/livez`, `/readyz`), which
//!   the `system:discovery` and `system:public-info-viewer` ClusterRoles open to every
//!   authenticated user.
//!
//! No or an unknown token is 401. ClusterRoles, aggregation and impersonation are not modelled;
//! the job needs none.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// A request's authorization attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    /// `serviceaccounts`, or `serviceaccounts/token` for a subresource.
    pub resource: String,
    pub namespace: String,
    /// Empty for collections and for a create without a name in the URL.
    pub name: String,
}

/// One rule of a Role, as rendered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub names: Vec<String>,
    pub verbs: Vec<String>,
}

impl Rule {
    fn from(v: &Value) -> Rule {
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Rule {
            groups: list("apiGroups"),
            resources: list("resources"),
            names: list("resourceNames"),
            verbs: list("verbs"),
        }
    }

    fn allows(&self, a: &Attributes) -> bool {
        let has = |l: &[String], v: &str| l.iter().any(|x| x == "*" || x == v);
        has(&self.verbs, &a.verb)
            && has(&self.groups, &a.group)
            && has(&self.resources, &a.resource)
            && (self.names.is_empty() || (!a.name.is_empty() && self.names.contains(&a.name)))
    }
}

/// Users by token, and the namespaced rules each user is bound to.
#[derive(Debug, Default)]
pub struct Rbac {
    users: BTreeMap<String, String>,
    /// (namespace, user) -> rules
    rules: BTreeMap<(String, String), Vec<Rule>>,
    /// Which rule (by namespace, user, index) allowed which attributes.
    used: BTreeMap<(String, String, usize), BTreeSet<Attributes>>,
    /// Every denied request.
    denied: Vec<(String, Attributes)>,
}

impl Rbac {
    pub fn add_token(&mut self, token: &str, user: &str) {
        self.users.insert(token.to_string(), user.to_string());
    }

    /// Load Roles and RoleBindings (as `helm template` renders them); subjects of kind
    /// ServiceAccount become `system:serviceaccount:NS:NAME`.
    pub fn load(&mut self, docs: &[Value]) {
        let roles: BTreeMap<(String, String), Vec<Rule>> = docs
            .iter()
            .filter(|d| d["kind"] == "Role")
            .map(|d| {
                let key = (
                    d["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                let rules = d["rules"]
                    .as_array()
                    .map(|r| r.iter().map(Rule::from).collect())
                    .unwrap_or_default();
                (key, rules)
            })
            .collect();
        for b in docs.iter().filter(|d| d["kind"] == "RoleBinding") {
            let ns = b["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let role = b["roleRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let Some(rules) = roles.get(&(ns.clone(), role)) else {
                continue;
            };
            for s in b["subjects"].as_array().into_iter().flatten() {
                if s["kind"] != "ServiceAccount" {
                    continue;
                }
                let user = format!(
                    "system:serviceaccount:{}:{}",
                    s["namespace"].as_str().unwrap_or(&ns),
                    s["name"].as_str().unwrap_or_default()
                );
                self.rules
                    .entry((ns.clone(), user))
                    .or_default()
                    .extend(rules.iter().cloned());
            }
        }
    }

    /// `Err((status, Status body))` when the request must be refused.
    pub fn check(&mut self, token: Option<&str>, target: Target) -> Result<(), (u16, Value)> {
        let Some(user) = token.and_then(|t| self.users.get(t)).cloned() else {
            return Err((
                401,
                status(401, "Unauthorized", "Unauthorized".into(), None),
            ));
        };
        let a = match target {
            Target::Open => return Ok(()),
            Target::Path { verb, path } => {
                let message = format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"");
                self.denied.push((
                    user,
                    Attributes {
                        verb,
                        group: String::new(),
                        resource: path,
                        namespace: String::new(),
                        name: String::new(),
                    },
                ));
                return Err((403, status(403, "Forbidden", message, None)));
            }
            Target::Resource(a) => a,
        };
        // Cluster-scoped requests: no ClusterRoleBinding is modelled, so nothing grants them.
        let rules = if a.namespace.is_empty() {
            Vec::new()
        } else {
            self.rules
                .get(&(a.namespace.clone(), user.clone()))
                .cloned()
                .unwrap_or_default()
        };
        if let Some(i) = rules.iter().position(|r| r.allows(&a)) {
            self.used
                .entry((a.namespace.clone(), user, i))
                .or_default()
                .insert(a);
            return Ok(());
        }
        let message = forbidden_message(&user, &a);
        let (res, _) = a.resource.split_once('/').unwrap_or((&a.resource, ""));
        let details = json!({"name": a.name, "kind": res});
        self.denied.push((user, a));
        Err((403, status(403, "Forbidden", message, Some(details))))
    }

    /// Every request refused so far, with its user.
    pub fn denied(&self) -> Vec<(String, Attributes)> {
        self.denied.clone()
    }

    /// For each rule of `user`, the (verb, resource, name) triples it allowed.
    pub fn used(&self, namespace: &str, user: &str) -> Vec<(Rule, BTreeSet<Attributes>)> {
        let rules = self
            .rules
            .get(&(namespace.to_string(), user.to_string()))
            .cloned()
            .unwrap_or_default();
        rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let used = self
                    .used
                    .get(&(namespace.to_string(), user.to_string(), i))
                    .cloned()
                    .unwrap_or_default();
                (r, used)
            })
            .collect()
    }
}

fn status(code: u16, reason: &str, message: String, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

/// What a request asks for, as the apiserver's `RequestInfo` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Discovery and health: open to every authenticated user.
    Open,
    /// Any other non-resource path: nothing here grants it.
    Path { verb: String, path: String },
    /// A resource request; `namespace` is empty at the cluster scope.
    Resource(Attributes),
}

fn forbidden_message(user: &str, a: &Attributes) -> String {
    let (res, sub) = a.resource.split_once('/').unwrap_or((&a.resource, ""));
    let what = if a.name.is_empty() {
        res.to_string()
    } else {
        format!("{res} \"{}\"", a.name)
    };
    let sub_text = if sub.is_empty() {
        String::new()
    } else {
        format!("/{sub}")
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "{what} is forbidden: User \"{user}\" cannot {} resource \"{res}{sub_text}\" in API group \"{}\" {scope}",
        a.verb, a.group
    )
}

/// Whether a non-resource path is discovery or health (`system:discovery`,
/// `system:public-info-viewer`).
fn open_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        [] | ["api"]
            | ["api", _]
            | ["apis"]
            | ["apis", _]
            | ["apis", _, _]
            | ["version"]
            | ["healthz"]
            | ["livez"]
            | ["readyz"]
    ) || segs.first() == Some(&"openapi")
}

/// The target of a request path and method, as the apiserver's `RequestInfo` resolves it.
pub fn attributes(method: &str, path: &str, query: &BTreeMap<String, String>) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let verb_of = |named: bool| {
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        match method {
            "GET" | "HEAD" if watch => "watch",
            "GET" | "HEAD" if !named => "list",
            "GET" | "HEAD" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if !named => "deletecollection",
            "DELETE" => "delete",
            _ => "unknown",
        }
        .to_string()
    };
    let (group, rest) = match segs.as_slice() {
        ["api", _v, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", g, _v, rest @ ..] if !rest.is_empty() => (*g, rest),
        s if open_path(s) => return Target::Open,
        _ => {
            let verb = match method {
                "GET" | "HEAD" => "get",
                "POST" => "post",
                "PUT" => "put",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "unknown",
            };
            return Target::Path {
                verb: verb.to_string(),
                path: path.to_string(),
            };
        }
    };
    // `/namespaces/NS/...` moves into NS, except the namespace object itself and its `status`
    // and `finalize` subresources, which are the object `namespaces "NS"` in NS.
    let (namespace, rest) = match rest {
        ["namespaces", ns, next, ..] if !matches!(*next, "status" | "finalize") => {
            (*ns, &rest[2..])
        }
        ["namespaces", ns, ..] => (*ns, rest),
        _ => ("", rest),
    };
    let (resource, name, sub) = match rest {
        [res] => (*res, "", ""),
        [res, name] => (*res, *name, ""),
        [res, name, sub, ..] => (*res, *name, *sub),
        [] => unreachable!("a resource path has a resource"),
    };
    Target::Resource(Attributes {
        verb: verb_of(!name.is_empty()),
        group: group.to_string(),
        resource: if sub.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{sub}")
        },
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}
