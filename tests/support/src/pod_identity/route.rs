//! Which Pod Identity operation an EKS REST request is ([`Route`]).

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
