//! The Kubernetes API as a source (issue "Kubernetes API mode"; SPEC §1
//! "In Kubernetes API mode the same state comes from the API server").
//!
//! One kube-rs `watcher()` stream per kind (Service, discovery/v1
//! EndpointSlice, Namespace, Pod when pod records are verified,
//! multicluster.x-k8s.io ServiceImport when its CRD exists), per namespace
//! when `--namespace` filters. Every event is converted at once into the
//! compact model ([`convert`]) and handed on as a [`Delta`]; a relist (410
//! Gone, reconnect) arrives as `Init…InitDone` of that watcher's scope, which
//! the index applies atomically, so answers never have a gap. No
//! `reflector::Store` of full objects is kept.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config, Resource};
use serde_json as _;
use svcnet_model::{Delta, Kind, Meta, Object, ObjectKey, Scope};

pub mod convert;
mod throttle;

pub use throttle::ThrottleLayer;

/// How to reach and what to watch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubeSettings {
    /// A kubeconfig file; `None` = in-cluster service account, else the
    /// usual `KUBECONFIG`/`~/.kube/config` inference.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    pub context: Option<String>,
    /// Only these namespaces (empty = all), like CoreDNS's `namespaces`.
    pub namespaces: Vec<String>,
    /// Watch Pods (needed for verified pod records).
    pub pods: bool,
    /// List page size (0 = the watcher's default of 500).
    pub page_size: u32,
    /// Use streaming lists (`sendInitialEvents`, Kubernetes 1.32+) instead of paged lists.
    pub streaming_lists: bool,
    /// Client-side request rate: average requests per second and burst
    /// (`None`: unlimited).
    pub rate_limit: Option<(f64, u32)>,
}

/// Errors connecting to the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// The cause.
        source: kube::config::KubeconfigError,
    },
    /// No configuration could be inferred (not in a pod, no kubeconfig).
    #[error("no Kubernetes configuration (not in a pod, and no kubeconfig)")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("Kubernetes client")]
    Client(#[source] kube::Error),
}

/// What a source reports besides deltas.
// Deltas dominate and are moved once, into the index thread's channel:
// boxing them would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    /// A change to apply.
    Delta(Delta),
    /// The named watcher finished its first (or a new) complete list.
    Synced(String),
    /// The named watcher cannot reach or use the API (it retries with backoff).
    Failing {
        /// Watcher name.
        watcher: String,
        /// The error, in words.
        error: String,
    },
    /// The named watcher works again after failing.
    Recovered(String),
}

/// Where events go: a cheap, cloneable callback (the server forwards them to
/// the index thread).
pub type Emit = Arc<dyn Fn(SourceEvent) + Send + Sync>;

/// Connects with `settings` (kubeconfig, context, or in-cluster).
pub async fn connect(settings: &KubeSettings) -> Result<Client, KubeError> {
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &settings.kubeconfig {
        Some(path) => {
            let err = |source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(err)?
        }
        None => Config::infer().await.map_err(KubeError::Infer)?,
    };
    let builder = kube::client::ClientBuilder::try_from(config).map_err(KubeError::Client)?;
    Ok(match settings.rate_limit {
        Some((qps, burst)) => builder.with_layer(&ThrottleLayer::new(qps, burst)).build(),
        None => builder.build(),
    })
}

/// The names of the watchers [`spawn`] starts for `settings`: the source is
/// synced when each has reported [`SourceEvent::Synced`].
pub fn watcher_names(settings: &KubeSettings) -> Vec<String> {
    let mut kinds = vec!["services", "endpointslices"];
    if settings.pods {
        kinds.push("pods");
    }
    kinds.push("serviceimports");
    kinds.push("serviceexports");
    kinds.push("importedendpointslices");
    let mut names = Vec::new();
    if settings.namespaces.is_empty() {
        names.push("namespaces".to_owned());
        names.extend(kinds.iter().map(|k| (*k).to_owned()));
    } else {
        for ns in &settings.namespaces {
            names.extend(kinds.iter().map(|k| format!("{k}/{ns}")));
        }
    }
    names
}

fn config(settings: &KubeSettings, labels: Option<&str>) -> watcher::Config {
    let mut c = watcher::Config::default();
    if settings.page_size > 0 {
        c = c.page_size(settings.page_size);
    }
    if settings.streaming_lists {
        c = c.streaming_lists();
    }
    if let Some(l) = labels {
        c = c.labels(l);
    }
    c
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn scope(kind: Kind, ns: Option<&str>) -> Scope {
    match ns {
        Some(ns) => Scope::Namespaced(kind, ns.to_owned()),
        None => Scope::Kind(kind),
    }
}

/// Conversion of a CRD object the client sees untyped.
type DynamicConvert = fn(&DynamicObject) -> Option<Object>;

fn multicluster_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "multicluster.x-k8s.io".to_owned(),
        version: "v1alpha1".to_owned(),
        api_version: "multicluster.x-k8s.io/v1alpha1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// Starts every watcher on the current tokio runtime. Each runs until the
/// runtime stops, retrying with backoff while the API is unreachable.
pub fn spawn(
    client: &Client,
    settings: &KubeSettings,
    emit: &Emit,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let namespaces: Vec<Option<&str>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings
            .namespaces
            .iter()
            .map(|n| Some(n.as_str()))
            .collect()
    };
    if settings.namespaces.is_empty() {
        let api: Api<Namespace> = Api::all(client.clone());
        let w = Watch::new("namespaces", Scope::Kind(Kind::Namespace), emit);
        tasks.push(tokio::spawn(w.run(
            api,
            config(settings, None),
            convert::namespace,
            Kind::Namespace,
        )));
    } else {
        // A filtered source serves the named namespaces; it need not (and
        // with namespaced RBAC cannot) watch Namespace objects.
        emit(SourceEvent::Delta(Delta::Init(Scope::Kind(
            Kind::Namespace,
        ))));
        for ns in &settings.namespaces {
            let meta = Meta {
                namespace: String::new(),
                name: ns.clone(),
                labels: Default::default(),
                origin: None,
            };
            emit(SourceEvent::Delta(Delta::InitApply(Object::Namespace(
                meta,
            ))));
        }
        emit(SourceEvent::Delta(Delta::InitDone(Scope::Kind(
            Kind::Namespace,
        ))));
    }
    for ns in namespaces {
        let suffix = ns.map_or(String::new(), |n| format!("/{n}"));
        let w = Watch::new(&format!("services{suffix}"), scope(Kind::Service, ns), emit);
        tasks.push(tokio::spawn(w.run(
            api::<Service>(client, ns),
            config(settings, None),
            convert::service,
            Kind::Service,
        )));

        let w = Watch::new(
            &format!("endpointslices{suffix}"),
            scope(Kind::EndpointSlice, ns),
            emit,
        );
        let selector = format!(
            "{},!{}",
            convert::SERVICE_NAME_LABEL,
            convert::MC_SERVICE_NAME_LABEL
        );
        tasks.push(tokio::spawn(w.run(
            api::<EndpointSlice>(client, ns),
            config(settings, Some(&selector)),
            |s| convert::endpoint_slice(s, convert::SERVICE_NAME_LABEL),
            Kind::EndpointSlice,
        )));

        // Endpoints of imported multi-cluster services (KEP-1645), kept
        // apart from the local Services' slices.
        let w = Watch::new(
            &format!("importedendpointslices{suffix}"),
            scope(Kind::ImportedEndpointSlice, ns),
            emit,
        );
        tasks.push(tokio::spawn(w.run(
            api::<EndpointSlice>(client, ns),
            config(settings, Some(convert::MC_SERVICE_NAME_LABEL)),
            |s| convert::endpoint_slice(s, convert::MC_SERVICE_NAME_LABEL),
            Kind::ImportedEndpointSlice,
        )));

        if settings.pods {
            let w = Watch::new(&format!("pods{suffix}"), scope(Kind::Pod, ns), emit);
            tasks.push(tokio::spawn(w.run(
                api::<Pod>(client, ns),
                config(settings, None),
                convert::pod,
                Kind::Pod,
            )));
        }

        let multicluster: [(Kind, &str, DynamicConvert); 2] = [
            (
                Kind::ServiceImport,
                "serviceimports",
                convert::service_import,
            ),
            (
                Kind::ServiceExport,
                "serviceexports",
                convert::service_export,
            ),
        ];
        for (kind, plural, convert) in multicluster {
            let w = Watch::new(&format!("{plural}{suffix}"), scope(kind, ns), emit);
            let ar = multicluster_resource(kind.as_str(), plural);
            let api: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                None => Api::all_with(client.clone(), &ar),
            };
            tasks.push(tokio::spawn(w.run_optional(
                api,
                config(settings, None),
                convert,
                kind,
            )));
        }
    }
    tasks
}

/// The longest wait between two checks of whether a failing API answers again.
const RECOVERY_PROBE_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// One watcher's identity and reporting.
struct Watch {
    name: String,
    scope: Scope,
    emit: Emit,
}

impl Watch {
    /// Runs a watcher over a CRD that may not be installed: an absent CRD
    /// means the feature is off, which is not an error. Ask until the API
    /// answers, say it once.
    async fn run_optional(
        self,
        api: Api<DynamicObject>,
        config: watcher::Config,
        convert: DynamicConvert,
        kind: Kind,
    ) {
        // Only a definite answer decides: while the API is unreachable (a
        // replica started before it), ask again with backoff, or the
        // watcher below would fail on the 404 forever and never sync.
        let mut backoff = watcher::DefaultBackoff::default();
        let mut failing = false;
        loop {
            match api.list(&ListParams::default().limit(1)).await {
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.recovered(&mut failing);
                    tracing::info!(watcher = %self.name, "{kind} CRD not installed: that multi-cluster feature is off");
                    (self.emit)(SourceEvent::Delta(Delta::Init(self.scope.clone())));
                    (self.emit)(SourceEvent::Delta(Delta::InitDone(self.scope.clone())));
                    (self.emit)(SourceEvent::Synced(self.name));
                    return;
                }
                Ok(_) => break,
                Err(e) => {
                    self.failed(&mut failing, &e);
                    let wait = backoff.next().unwrap_or(RECOVERY_PROBE_MAX);
                    tokio::time::sleep(wait).await;
                }
            }
        }
        self.recovered(&mut failing);
        self.run(api, config, convert, kind).await;
    }

    /// Reports a failure (logged the first time in a row).
    fn failed(&self, failing: &mut bool, error: &dyn std::fmt::Display) {
        if !*failing {
            tracing::warn!(watcher = %self.name, "Kubernetes API: {error}; serving the last known state and retrying");
        }
        *failing = true;
        (self.emit)(SourceEvent::Failing {
            watcher: self.name.clone(),
            error: error.to_string(),
        });
    }

    /// Reports that the API answers again, if it had failed.
    fn recovered(&self, failing: &mut bool) {
        if *failing {
            *failing = false;
            tracing::info!(watcher = %self.name, "Kubernetes API reachable again");
            (self.emit)(SourceEvent::Recovered(self.name.clone()));
        }
    }

    fn new(name: &str, scope: Scope, emit: &Emit) -> Self {
        Self {
            name: name.to_owned(),
            scope,
            emit: Arc::clone(emit),
        }
    }

    async fn run<K>(
        self,
        api: Api<K>,
        config: watcher::Config,
        convert: impl Fn(&K) -> Option<Object>,
        kind: Kind,
    ) where
        K: Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
    {
        let key = |k: &K| convert::key(kind, k.meta());
        let probe = api.clone();
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut failing = false;
        let mut backoff = watcher::DefaultBackoff::default();
        let mut probe_at = tokio::time::Instant::now();
        loop {
            let item = if failing {
                // A watch that resumes after an outage yields nothing until
                // an object of its kind changes (bookmarks are not events):
                // ask the API directly, with backoff, whether it answers.
                tokio::select! {
                    item = stream.next() => item,
                    () = tokio::time::sleep_until(probe_at) => {
                        if probe.list(&ListParams::default().limit(1)).await.is_ok() {
                            self.recovered(&mut failing);
                        } else {
                            probe_at = tokio::time::Instant::now()
                                + backoff.next().unwrap_or(RECOVERY_PROBE_MAX);
                        }
                        continue;
                    }
                }
            } else {
                stream.next().await
            };
            let Some(item) = item else { break };
            let event = match item {
                Ok(event) => event,
                // Routine, not an outage: the watch fell behind the server's
                // history (compaction). The watcher relists, and the relist
                // replaces the state atomically.
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::debug!(watcher = %self.name, "watch expired (410 Gone), relisting");
                    continue;
                }
                Err(e) => {
                    if !failing {
                        backoff = watcher::DefaultBackoff::default();
                        probe_at = tokio::time::Instant::now()
                            + backoff.next().unwrap_or(RECOVERY_PROBE_MAX);
                    }
                    self.failed(&mut failing, &e);
                    continue;
                }
            };
            self.recovered(&mut failing);
            let delta = match event {
                Event::Init => Delta::Init(self.scope.clone()),
                Event::InitApply(obj) => match convert(&obj) {
                    Some(o) => Delta::InitApply(o),
                    None => continue,
                },
                Event::InitDone => {
                    (self.emit)(SourceEvent::Delta(Delta::InitDone(self.scope.clone())));
                    (self.emit)(SourceEvent::Synced(self.name.clone()));
                    continue;
                }
                // An object that no longer converts (a slice that lost its
                // service label) leaves, rather than lingering stale.
                Event::Apply(obj) => match (convert(&obj), key(&obj)) {
                    (Some(o), _) => Delta::Apply(o),
                    (None, Some(k)) => Delta::Delete(k),
                    (None, None) => continue,
                },
                Event::Delete(obj) => match key(&obj) {
                    Some(k) => Delta::Delete(k),
                    None => continue,
                },
            };
            (self.emit)(SourceEvent::Delta(delta));
        }
    }
}

/// The key of a deleted object, for callers converting by hand.
pub fn object_key(
    kind: Kind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectKey> {
    convert::key(kind, meta)
}
