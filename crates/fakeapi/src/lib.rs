//! An HTTP fake of the Kubernetes API server, for tests that drive the real
//! kube-rs client (dev-only; nothing ships it).
//!
//! [`FakeApi::start`] binds `127.0.0.1:0` and serves on a tokio runtime of its
//! own thread, so synchronous and async tests alike can use it; every control
//! is a plain thread-safe method. Point a client at it with
//! [`FakeApi::write_kubeconfig`] (plain HTTP, a dummy bearer token).
//!
//! What it serves, read-only, as the real API server does:
//! - Services, Endpoints, Pods, Namespaces, Nodes (`/api/v1/...`),
//!   `discovery.k8s.io/v1` EndpointSlices and `multicluster.x-k8s.io/v1alpha1`
//!   ServiceImports and ServiceExports (cluster-wide and namespaced paths, and
//!   get by name); the multi-cluster CRDs can be switched off
//!   ([`FakeApi::set_serviceimport_crd`]): their paths then answer 404 with a
//!   `Status` body, as when the CRD is not installed. Unknown paths: 404.
//! - Discovery (`/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`, not the
//!   aggregated form), `/version`, `/healthz`, `/readyz`, `/livez`.
//! - Lists: `{apiVersion, kind: <Kind>List, metadata: {resourceVersion,
//!   continue?, remainingItemCount?}, items}`, items without
//!   `apiVersion`/`kind` for built-in types (the real server omits them).
//!   `limit` + opaque `continue` pages through a consistent snapshot (the
//!   state at the first page's resourceVersion, rebuilt from the history);
//!   `resourceVersion` with `resourceVersionMatch=Exact|NotOlderThan`;
//!   `labelSelector` (`k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (..)`,
//!   `k notin (..)`, `k>n`, `k<n`) and `fieldSelector` (`a.b=v`, `a.b!=v` on
//!   any dotted path). A `continue` or exact resourceVersion older than the
//!   retained history answers HTTP 410 Expired.
//! - Watches (`watch=true`): newline-delimited `{"type", "object"}` events in a
//!   chunked response, from the history after `resourceVersion` then live;
//!   `resourceVersion` unset or `0` starts with synthetic ADDED events for the
//!   current objects; `sendInitialEvents=true` (streaming lists) sends ADDED
//!   for every current object then a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`; BOOKMARKs every second (configurable)
//!   and on demand when `allowWatchBookmarks=true`; objects moving in or out
//!   of a selector arrive as ADDED / DELETED; `timeoutSeconds` ends the
//!   stream; a resourceVersion older than the retained history gets a
//!   `410 Expired` ERROR event and the end of the stream.
//! - `Accept: application/json;as=PartialObjectMetadata[List];...` (kube's
//!   `metadata_watcher`, `list_metadata`) gets `PartialObjectMetadata` objects.
//!
//! The resourceVersion is global and increases by one per change, starting
//! above 100; the fake sets every object's `metadata.resourceVersion`, `uid`
//! (kept across updates; a `uid` given at creation is kept) and
//! `creationTimestamp`. Applying an unchanged object is a no-op, as on the
//! real server.
//!
//! Not emulated: writes over HTTP (405), the aggregated discovery form,
//! namespace deletion cascading to its contents, admission/defaulting (what
//! you apply is what is served), authentication (any token is accepted and
//! logged), HTTP/2, TLS.

mod resources;
mod selector;
mod server;
mod store;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::resources::{MCS_GROUP, RESOURCES, Res, by_name};
use crate::store::{State, WatchMsg};

/// How the fake behaves while an outage is on ([`FakeApi::set_outage`]).
/// In every mode, connections open when the outage starts (and so every
/// open watch stream) are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutageMode {
    /// Accept connections and close them at once, before any response: the
    /// client sees a connection error. The default.
    #[default]
    Reset,
    /// Stop listening: connections are refused. The port is bound again when
    /// the outage ends.
    Refuse,
    /// Answer every request `503 ServiceUnavailable` with a `Status` body.
    /// Note that kube's client retries 429/503/504 by default (up to 15 times
    /// with exponential backoff from 5 ms), so a short outage in this mode
    /// looks like a slow server rather than an error.
    Unavailable,
}

/// One HTTP request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, ...
    pub method: String,
    /// The path, e.g. `/api/v1/services`.
    pub path: String,
    /// The raw query string without `?` (kube's starts with `&`).
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// The response status (200 for a watch that started streaming).
    pub status: u16,
}

impl RequestRecord {
    /// The decoded value of query parameter `name` (the first one).
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether this was a watch (`watch=true`).
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }

    /// Whether this was a list request carrying a `continue` token.
    pub fn is_continue(&self) -> bool {
        self.param("continue").is_some_and(|c| !c.is_empty())
    }
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        write!(f, " -> {}", self.status)
    }
}

/// Why [`FakeApi::try_apply`] refused an object.
#[derive(Debug, thiserror::Error)]
pub enum FakeApiError {
    /// Not an object with `apiVersion`, `kind` and `metadata.name`.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// The fake does not serve this apiVersion/kind.
    #[error("no resource for apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind {
        /// As given.
        api_version: String,
        /// As given.
        kind: String,
    },
    /// The kind's CRD is switched off ([`FakeApi::set_serviceimport_crd`]).
    #[error("no matches for kind {0:?}: the CRD is not installed")]
    CrdAbsent(String),
}

/// State shared between the control handle and the server.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped whenever the outage state changes; connections and the accept
    /// loop re-check it.
    pub(crate) outage_changed: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake API server; stopped when dropped.
#[derive(Debug)]
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// The context [`FakeApi::write_kubeconfig`] makes current.
pub const DEFAULT_CONTEXT: &str = "fake";
/// The bearer token in the kubeconfigs the fake writes.
pub const TOKEN: &str = "fake-token";

impl FakeApi {
    /// Starts a fake API server on `127.0.0.1:<ephemeral port>`, serving on a
    /// runtime of its own thread. It starts empty (no Namespaces either) with
    /// the multi-cluster CRDs installed.
    ///
    /// # Panics
    /// If the port cannot be bound or the runtime cannot be built.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            outage_changed: tokio::sync::watch::Sender::new(0),
        });
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let server_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fakeapi-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake API runtime");
                rt.block_on(server::run(server_shared, listener, shutdown_rx));
                rt.shutdown_background();
            })
            .expect("spawn the fake API thread");
        Self {
            shared,
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context `context` reaches this server
    /// (cluster and user named `context` too; token [`TOKEN`]; namespace
    /// `default`).
    pub fn kubeconfig_yaml(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {url}\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\n\
             current-context: {context}\nusers:\n- name: {context}\n  user:\n    token: {TOKEN}\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes `dir/kubeconfig`, whose current context ([`DEFAULT_CONTEXT`])
    /// reaches this server, and returns its path.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml(DEFAULT_CONTEXT)).expect("write kubeconfig");
        path
    }

    /// Writes `dir/kubeconfig-<context>` with two contexts: `context`, which
    /// reaches this server, and the *current* one, `unreachable`, which points
    /// at `http://127.0.0.1:1` (nothing listens there). So only a client that
    /// selects `context` (`--context`) gets through.
    ///
    /// # Panics
    /// If the file cannot be written, or `context` is `unreachable`.
    pub fn write_kubeconfig_with_context(&self, dir: &Path, context: &str) -> PathBuf {
        assert_ne!(context, "unreachable", "pick another context name");
        let path = dir.join(format!("kubeconfig-{context}"));
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {url}\n\
             - name: unreachable\n  cluster:\n    server: http://127.0.0.1:1\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n\
             - name: unreachable\n  context:\n    cluster: unreachable\n    user: {context}\n\
             current-context: unreachable\nusers:\n- name: {context}\n  user:\n    token: {TOKEN}\npreferences: {{}}\n",
            url = self.url()
        );
        std::fs::write(&path, yaml).expect("write kubeconfig");
        path
    }

    /// Creates or updates an object (by `apiVersion`/`kind`, namespace and
    /// name; a namespaced object without a namespace goes to `default`) and
    /// returns it as stored, with its new `resourceVersion`. Open watches see
    /// ADDED or MODIFIED; an unchanged object is a no-op.
    ///
    /// # Panics
    /// If the object is refused (see [`FakeApi::try_apply`]).
    pub fn apply(&self, obj: Value) -> Value {
        self.try_apply(obj)
            .unwrap_or_else(|e| panic!("FakeApi::apply: {e}"))
    }

    /// [`FakeApi::apply`] that reports refusals.
    ///
    /// # Errors
    /// Not an object with `apiVersion`, `kind`, `metadata.name`; a kind the
    /// fake does not serve; a ServiceImport/ServiceExport while the CRDs are
    /// off.
    pub fn try_apply(&self, obj: Value) -> Result<Value, FakeApiError> {
        self.shared.lock().apply(obj)
    }

    /// Applies many objects under one lock (fast for thousands); returns the
    /// resourceVersion after the last.
    ///
    /// # Panics
    /// If an object is refused (those before it stay applied).
    pub fn apply_all(&self, objs: impl IntoIterator<Item = Value>) -> u64 {
        let mut state = self.shared.lock();
        for obj in objs {
            if let Err(e) = state.apply(obj) {
                drop(state);
                panic!("FakeApi::apply_all: {e}");
            }
        }
        state.rv
    }

    /// Deletes an object; `kind` is a kind (`Service`, any case) or a plural
    /// (`services`); `ns` is ignored for cluster-scoped kinds (pass `""`).
    /// Returns the object as it was, `None` if absent. Open watches see
    /// DELETED (the object stamped with the deletion's resourceVersion).
    ///
    /// # Panics
    /// If the kind is not served by the fake.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let res = resolve(kind);
        let key = key_of(res, ns, name);
        self.shared.lock().delete(res, &key)
    }

    /// The stored object, if any (same naming as [`FakeApi::delete`]).
    ///
    /// # Panics
    /// If the kind is not served by the fake.
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let res = resolve(kind);
        let key = key_of(res, ns, name);
        self.shared.lock().objects[res]
            .get(&key)
            .map(|v| (**v).clone())
    }

    /// Every stored object of a kind, sorted by namespace and name.
    ///
    /// # Panics
    /// If the kind is not served by the fake.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        let res = resolve(kind);
        self.shared.lock().objects[res]
            .values()
            .map(|v| (**v).clone())
            .collect()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Turns an outage on or off (see [`OutageMode`], default
    /// [`OutageMode::Reset`]). Turning it on cuts every open connection,
    /// watch streams included, abruptly.
    pub fn set_outage(&self, on: bool) {
        let mut state = self.shared.lock();
        if on && !state.outage {
            state.outage_epoch += 1;
        }
        state.outage = on;
        drop(state);
        self.shared.outage_changed.send_modify(|v| *v += 1);
    }

    /// Whether an outage is on.
    pub fn outage(&self) -> bool {
        self.shared.lock().outage
    }

    /// How outages behave (takes effect for the next connections).
    pub fn set_outage_mode(&self, mode: OutageMode) {
        self.shared.lock().outage_mode = mode;
        self.shared.outage_changed.send_modify(|v| *v += 1);
    }

    /// Installs (`true`, the default) or removes the `multicluster.x-k8s.io`
    /// CRDs (ServiceImport, ServiceExport). Removing them deletes their
    /// objects (open watches see DELETED, then their streams end) and makes
    /// their paths and API group answer 404, as on a cluster without the CRDs.
    pub fn set_serviceimport_crd(&self, installed: bool) {
        let mut state = self.shared.lock();
        if state.mcs_crds == installed {
            return;
        }
        if !installed {
            for res in crd_resources() {
                let keys: Vec<_> = state.objects[res].keys().cloned().collect();
                for key in keys {
                    state.delete(res, &key);
                }
            }
            state.tell_watchers(|res| RESOURCES[res].crd, || WatchMsg::Close);
        }
        state.mcs_crds = installed;
    }

    /// Drops the retained history: a watch or exact list from any older
    /// resourceVersion, or a `continue` token issued before, gets 410.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// Retains at most `limit` changes (older ones are compacted away as new
    /// ones come); `None` (the default) retains everything.
    pub fn set_history_limit(&self, limit: Option<usize>) {
        self.shared.lock().set_history_limit(limit);
    }

    /// Sends every open watch a `410 Expired` ERROR event and ends it.
    pub fn expire_watches(&self) {
        self.shared
            .lock()
            .tell_watchers(|_| true, || WatchMsg::Expire);
    }

    /// [`FakeApi::compact`] then [`FakeApi::expire_watches`]: every watcher
    /// must relist.
    pub fn force_gone(&self) {
        let mut state = self.shared.lock();
        state.compact();
        state.tell_watchers(|_| true, || WatchMsg::Expire);
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch
    /// that allowed bookmarks.
    pub fn send_bookmarks(&self) {
        let mut state = self.shared.lock();
        let rv = state.rv;
        state.tell_watchers(|_| true, || WatchMsg::Bookmark(rv));
    }

    /// How often open watches get a BOOKMARK (default every second; `None`:
    /// only on [`FakeApi::send_bookmarks`]).
    pub fn set_bookmark_interval(&self, interval: Option<Duration>) {
        self.shared.lock().bookmark_interval = interval;
    }

    /// Caps the server-side duration of watches below the client's
    /// `timeoutSeconds` (`None`, the default: honour the client's).
    pub fn set_watch_timeout_cap(&self, cap: Option<Duration>) {
        self.shared.lock().watch_timeout_cap = cap;
    }

    /// A server-side cap on list page sizes, applied even to lists without
    /// `limit` (which then get a `continue` token); `None` (the default): no
    /// cap.
    pub fn set_page_limit(&self, limit: Option<usize>) {
        self.shared.lock().page_limit = limit.filter(|&n| n > 0);
    }

    /// Delays every response (watches: before the stream starts) by `delay`.
    pub fn set_response_delay(&self, delay: Duration) {
        self.shared.lock().response_delay = delay;
    }

    /// Answers lists, watches and gets of `kind` (kind or plural) with `403
    /// Forbidden`, as when RBAC does not grant them.
    ///
    /// # Panics
    /// If the kind is not served by the fake.
    pub fn set_forbidden(&self, kind: &str, forbidden: bool) {
        let res = resolve(kind);
        let mut state = self.shared.lock();
        if forbidden {
            state.forbidden.insert(res);
        } else {
            state.forbidden.remove(&res);
        }
    }

    /// Every request received so far, in order (those dropped by a
    /// [`OutageMode::Reset`] or refused connection are not requests).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.shared.lock().log.clear();
    }

    /// How many watch streams are open (of `kind`, or all with `None`).
    ///
    /// # Panics
    /// If the kind is not served by the fake.
    pub fn open_watches(&self, kind: Option<&str>) -> usize {
        let res = kind.map(resolve);
        self.shared
            .lock()
            .watchers
            .iter()
            .filter(|w| res.is_none_or(|r| w.res == r))
            .count()
    }

    /// Waits until at least `n` watches (of `kind`, or all) are open; false
    /// on timeout. Blocks the thread: from an async test whose runtime also
    /// drives the client, use [`FakeApi::wait_for_watches_async`].
    pub fn wait_for_watches(&self, kind: Option<&str>, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.open_watches(kind) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`FakeApi::wait_for_watches`] for async tests (needs a tokio runtime
    /// with time enabled).
    pub async fn wait_for_watches_async(
        &self,
        kind: Option<&str>,
        n: usize,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.open_watches(kind) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn resolve(kind: &str) -> Res {
    by_name(kind).unwrap_or_else(|| panic!("the fake API does not serve {kind:?}"))
}

fn key_of(res: Res, ns: &str, name: &str) -> store::Key {
    let ns = if RESOURCES[res].namespaced { ns } else { "" };
    (ns.to_string(), name.to_string())
}

fn crd_resources() -> impl Iterator<Item = Res> {
    RESOURCES
        .iter()
        .enumerate()
        .filter(|(_, d)| d.group == MCS_GROUP)
        .map(|(i, _)| i)
}
