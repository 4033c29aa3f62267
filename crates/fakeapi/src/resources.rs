//! The resources the fake serves and how request paths map onto them.

/// Index into [`RESOURCES`].
pub(crate) type Res = usize;

/// One served resource (a group/version/plural).
#[derive(Debug)]
pub(crate) struct ResourceDef {
    /// API group, `""` for the core group.
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    /// A custom resource (its CRD can be absent; list items keep their
    /// `apiVersion`/`kind` as the real server does for custom resources).
    pub(crate) crd: bool,
}

const fn def(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    crd: bool,
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        plural,
        kind,
        namespaced,
        crd,
    }
}

/// The multi-cluster services API group (ServiceImport, ServiceExport).
pub(crate) const MCS_GROUP: &str = "multicluster.x-k8s.io";

pub(crate) const RESOURCES: [ResourceDef; 8] = [
    def("", "v1", "services", "Service", true, false),
    def("", "v1", "endpoints", "Endpoints", true, false),
    def("", "v1", "pods", "Pod", true, false),
    def("", "v1", "namespaces", "Namespace", false, false),
    def("", "v1", "nodes", "Node", false, false),
    def(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
    ),
    def(
        MCS_GROUP,
        "v1alpha1",
        "serviceimports",
        "ServiceImport",
        true,
        true,
    ),
    def(
        MCS_GROUP,
        "v1alpha1",
        "serviceexports",
        "ServiceExport",
        true,
        true,
    ),
];

impl ResourceDef {
    /// `v1` or `group/version`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub(crate) fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The resource of an object, from its `apiVersion` and `kind`.
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<Res> {
    RESOURCES
        .iter()
        .position(|d| d.kind == kind && d.api_version() == api_version)
}

/// The resource named by a kind (`Service`, case-insensitive) or a plural
/// (`services`).
pub(crate) fn by_name(name: &str) -> Option<Res> {
    RESOURCES
        .iter()
        .position(|d| d.kind.eq_ignore_ascii_case(name) || d.plural.eq_ignore_ascii_case(name))
}

/// The resource at `group`/`version`/`plural`.
pub(crate) fn by_path(group: &str, version: &str, plural: &str) -> Option<Res> {
    RESOURCES
        .iter()
        .position(|d| d.group == group && d.version == version && d.plural == plural)
}

/// What a request path addresses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A collection: list or watch (`ns` `None` = all namespaces or a
    /// cluster-scoped resource).
    Collection {
        res: Res,
        ns: Option<String>,
    },
    /// One object: get.
    Object {
        res: Res,
        ns: Option<String>,
        name: String,
    },
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    Resources {
        group: String,
        version: String,
    },
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz`
    Health,
    NotFound,
}

/// Maps a path onto a [`Route`] (the CRD switch is applied by the caller).
pub(crate) fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "livez" | "readyz", ..] => return Route::Health,
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["apis", group] => return Route::Group((*group).to_string()),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::NotFound,
    };
    let lookup = |plural: &str| by_path(group, version, plural);
    match rest {
        [] => {
            let known = RESOURCES
                .iter()
                .any(|d| d.group == group && d.version == version);
            if known {
                Route::Resources {
                    group: group.to_string(),
                    version: version.to_string(),
                }
            } else {
                Route::NotFound
            }
        }
        ["namespaces", ns, plural, tail @ ..] => match lookup(plural) {
            Some(res) if RESOURCES[res].namespaced => match tail {
                [] => Route::Collection {
                    res,
                    ns: Some((*ns).to_string()),
                },
                [name] => Route::Object {
                    res,
                    ns: Some((*ns).to_string()),
                    name: (*name).to_string(),
                },
                _ => Route::NotFound,
            },
            _ => Route::NotFound,
        },
        [plural, tail @ ..] => match lookup(plural) {
            Some(res) => match tail {
                [] => Route::Collection { res, ns: None },
                [name] if !RESOURCES[res].namespaced => Route::Object {
                    res,
                    ns: None,
                    name: (*name).to_string(),
                },
                _ => Route::NotFound,
            },
            None => Route::NotFound,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let svc = by_name("Service").unwrap();
        let ns = by_name("namespaces").unwrap();
        let eps = by_name("endpointslice").unwrap();
        assert_eq!(
            route("/api/v1/services"),
            Route::Collection { res: svc, ns: None }
        );
        assert_eq!(
            route("/api/v1/namespaces/default/services"),
            Route::Collection {
                res: svc,
                ns: Some("default".into())
            }
        );
        assert_eq!(
            route("/api/v1/namespaces/default/services/web"),
            Route::Object {
                res: svc,
                ns: Some("default".into()),
                name: "web".into()
            }
        );
        assert_eq!(
            route("/api/v1/namespaces"),
            Route::Collection { res: ns, ns: None }
        );
        assert_eq!(
            route("/api/v1/namespaces/kube-system"),
            Route::Object {
                res: ns,
                ns: None,
                name: "kube-system".into()
            }
        );
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"),
            Route::Collection {
                res: eps,
                ns: Some("a".into())
            }
        );
        assert_eq!(route("/api/v1/services/web"), Route::NotFound);
        assert_eq!(route("/api/v1/namespaces/a/namespaces"), Route::NotFound);
        assert_eq!(route("/apis/apps/v1/deployments"), Route::NotFound);
        assert_eq!(route("/apis/discovery.k8s.io/v1beta1"), Route::NotFound);
        assert_eq!(route("/"), Route::NotFound);
        assert_eq!(
            route("/api/v1"),
            Route::Resources {
                group: String::new(),
                version: "v1".into()
            }
        );
    }
}
