//! Wires the parts into a running server (ARCHITECTURE "Binary" and
//! "Net"): manifest sources → index (one writer thread) → `ArcSwap`
//! snapshot → UDP workers and the TCP listener. Also the one-shot
//! pipeline `svcnet resolve`/`zone`/`lint` use, so they answer exactly what
//! `serve` would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use std::collections::{BTreeMap, BTreeSet};

use svcnet_index::{Index, IndexConfig, Snapshot};
use svcnet_kube::{KubeSettings, SourceEvent};
use svcnet_manifest::control::ControlConfig;
use svcnet_manifest::watch::{Loaded, ManifestSource};
use svcnet_manifest::{Diagnostic, ManifestError, Severity};
use svcnet_model::{Delta, Scope};

pub mod admin;
pub mod services;
pub mod state;
pub use svcnet_net::metrics::QueryLog;
pub use svcnet_net::{Coalesce, TcpLimits};
use svcnet_net::{NetError, Shared};

/// Everything `svcnet serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Listen addresses (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads per address (0 = one per CPU).
    pub udp_workers: usize,
    /// When UDP workers pause between batches under load.
    pub coalesce: Coalesce,
    /// Whether a batch's replies to one client go out in one segmented send.
    pub segment: bool,
    /// Snapshot shaping.
    pub index: IndexConfig,
    /// The emulated control plane.
    pub control: ControlConfig,
    /// Clusters: id and manifest paths.
    pub clusters: Vec<(String, Vec<PathBuf>)>,
    /// Clusters read from a Kubernetes API server: id and settings.
    pub kube: Vec<(String, KubeSettings)>,
    /// How long to answer SERVFAIL while the API sources have not synced.
    pub startup_timeout: Duration,
    /// Upstream resolvers for names outside our zones (empty: REFUSED).
    pub upstreams: Vec<svcnet_forward::Upstream>,
    /// Extra CA certificates (PEM) trusted for DNS-over-TLS upstreams.
    pub upstream_ca: Option<PathBuf>,
    /// Bytes of forwarded answers to cache (0: no cache).
    pub cache_bytes: usize,
    /// Where the last good API state is kept across restarts.
    pub state_file: Option<PathBuf>,
    /// The admin listener (`/health`, `/ready`); `true` when the address was
    /// asked for (failing to bind it is then an error, not a warning).
    pub admin: Option<(SocketAddr, bool)>,
    /// TCP limits.
    pub tcp: TcpLimits,
    /// UDP responses per second per client network (`--rrl`; 0: no limit).
    pub rrl: u32,
    /// Which queries are logged (`--log-queries`).
    pub query_log: QueryLog,
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The manifests could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A listener could not be started.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The async runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    /// A Kubernetes API source could not be set up.
    #[error("cluster {cluster}")]
    Kube {
        /// The cluster id.
        cluster: String,
        /// The cause.
        source: svcnet_kube::KubeError,
    },
    /// Forwarding could not be set up (the TLS CA file).
    #[error(transparent)]
    Forward(#[from] svcnet_forward::ForwardError),
    /// The admin listener could not be bound.
    #[error("cannot listen on admin {addr}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// What wakes the index thread.
// Moved once through the channel; boxing would add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Event {
    /// Something changed under a watched manifest directory.
    Files,
    /// A Kubernetes API source reported.
    Kube(String, SourceEvent),
    /// New settings from a reloaded configuration.
    Reconfigure(Box<Reconfig>),
    /// The admin listener asks for the `/services` rows.
    Services(
        services::ServicesQuery,
        // A channel, not a oneshot: events must be `Clone`.
        tokio::sync::mpsc::Sender<services::ServicesView>,
    ),
}

/// The settings that change without a restart (a reloaded `--config` file
/// or SIGHUP): the shape of the answers and the upstreams.
#[derive(Clone, Debug)]
pub struct Reconfig {
    /// Zones, TTL, pod records, PTR mode, autopath…
    pub index: IndexConfig,
    /// Upstream resolvers (empty: names outside our zones get REFUSED).
    pub upstreams: Vec<svcnet_forward::Upstream>,
    /// Bytes of forwarded answers to cache.
    pub cache_bytes: usize,
    /// Extra CA certificates (PEM) trusted for DNS-over-TLS upstreams.
    pub upstream_ca: Option<PathBuf>,
}

/// Talks to a running server from outside its threads.
#[derive(Clone)]
pub struct ServerHandle {
    tx: mpsc::Sender<Event>,
    status: Arc<admin::Status>,
}

impl ServerHandle {
    /// Applies new settings; queries keep being answered throughout (the
    /// new snapshot and forwarder are swapped in whole).
    pub fn reconfigure(&self, settings: Reconfig) {
        let _ = self.tx.send(Event::Reconfigure(Box::new(settings)));
    }

    /// Lame duck: `/ready` answers 503 ("shutting down") so that load
    /// balancers and Kubernetes stop sending traffic, while DNS is still
    /// answered.
    pub fn drain(&self) {
        self.status.set_draining();
    }
}

/// Asks the index thread (the owner of the cluster state) for the
/// `/services` rows.
#[derive(Clone)]
pub struct ServicesSource(mpsc::Sender<Event>);

impl ServicesSource {
    /// The rows `query` asks for; `None` when the index thread did not
    /// answer within `wait` (or is gone).
    pub async fn ask(
        &self,
        query: services::ServicesQuery,
        wait: Duration,
    ) -> Option<services::ServicesView> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        self.0.send(Event::Services(query, tx)).ok()?;
        tokio::time::timeout(wait, rx.recv()).await.ok()?
    }
}

/// Sync and health of one Kubernetes API cluster, for readiness.
#[derive(Debug, Default)]
struct KubeHealth {
    /// Watchers that have not delivered a complete list yet.
    unsynced: BTreeSet<String>,
    /// Watchers failing now, with their last error.
    failing: BTreeMap<String, String>,
    /// Errors reported by the watchers since the start.
    errors: u64,
}

/// The clusters' sources and the index they feed.
pub struct Pipeline {
    /// One manifest source per cluster.
    pub sources: Vec<(String, ManifestSource)>,
    /// The index.
    pub index: Index,
    /// The last load of each cluster (for explanations and lint).
    pub loads: Vec<(String, Loaded)>,
    /// Per cluster (as in `sources`): files that failed to load, summed
    /// over every load and reload.
    pub load_failures: Vec<u64>,
    /// The loads keep their objects (explanations, lint), or the index alone
    /// holds them (serving).
    keep_objects: bool,
}

/// Files of a load that did not load: those with errors (kept at their
/// last good objects or never loaded).
fn failed_files(loaded: &Loaded) -> u64 {
    let files: BTreeSet<&str> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| &*d.origin.file)
        .chain(loaded.kept.iter().map(String::as_str))
        .collect();
    files.len() as u64
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

fn log_diagnostics(cluster: &str, loaded: &Loaded) {
    for d in &loaded.diagnostics {
        match d.severity {
            Severity::Error => tracing::error!(cluster, "{d}"),
            Severity::Warning => tracing::warn!(cluster, "{d}"),
        }
    }
    for f in &loaded.kept {
        tracing::error!(cluster, file = %f, "file is invalid; still serving its last good objects");
    }
}

/// Loads one cluster's manifests into the index: all at once and kept
/// (`keep_objects`, for explanations and lint), or streamed as the
/// emulation makes them (serving). Returns the load and whether the state
/// changed.
fn load_source(
    source: &mut ManifestSource,
    index: &mut Index,
    id: &str,
    keep_objects: bool,
) -> Result<(Loaded, bool), ManifestError> {
    let mut changed = false;
    if keep_objects {
        let loaded = source.load()?;
        let started = Instant::now();
        for d in loaded.deltas() {
            changed |= index.apply(id, d);
        }
        tracing::debug!(cluster = %id, took = ?started.elapsed(), "objects indexed");
        Ok((loaded, changed))
    } else {
        // The replacement is built when its last delta comes.
        let loaded = source.load_into(&mut |d| {
            let last = matches!(d, Delta::InitDone(_));
            let started = Instant::now();
            changed |= index.apply(id, d);
            if last {
                tracing::debug!(cluster = %id, took = ?started.elapsed(), "objects indexed");
            }
        })?;
        Ok((loaded, changed))
    }
}

impl Pipeline {
    /// Loads every cluster once, keeping each load's objects for
    /// explanations and lint.
    pub fn load(
        clusters: &[(String, Vec<PathBuf>)],
        index: IndexConfig,
        control: &ControlConfig,
    ) -> Result<Self, ManifestError> {
        Self::load_with(clusters, index, control, true)
    }

    /// Loads every cluster for serving: the objects live in the index only
    /// (the loads keep their diagnostics, not a second copy of the state).
    pub fn load_for_serving(
        clusters: &[(String, Vec<PathBuf>)],
        index: IndexConfig,
        control: &ControlConfig,
    ) -> Result<Self, ManifestError> {
        Self::load_with(clusters, index, control, false)
    }

    fn load_with(
        clusters: &[(String, Vec<PathBuf>)],
        index: IndexConfig,
        control: &ControlConfig,
        keep_objects: bool,
    ) -> Result<Self, ManifestError> {
        let mut p = Self {
            sources: Vec::new(),
            index: Index::new(index, now_secs()),
            loads: Vec::new(),
            load_failures: Vec::new(),
            keep_objects,
        };
        for (id, paths) in clusters {
            let control = ControlConfig {
                cluster: id.clone(),
                ..control.clone()
            };
            let mut source = ManifestSource::new(paths.clone(), control);
            let (loaded, _) = load_source(&mut source, &mut p.index, id, keep_objects)?;
            p.load_failures.push(failed_files(&loaded));
            p.loads.push((id.clone(), loaded));
            p.sources.push((id.clone(), source));
        }
        Ok(p)
    }

    /// Every diagnostic of the last loads.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.loads.iter().flat_map(|(_, l)| &l.diagnostics)
    }

    /// Reloads the clusters whose files changed; returns whether any was
    /// reloaded (its state replaced) and whether the state changed.
    pub fn reload_changed(&mut self) -> (bool, bool) {
        let (mut reloaded, mut changed) = (false, false);
        for (i, (id, source)) in self.sources.iter_mut().enumerate() {
            if !source.changed() {
                continue;
            }
            match load_source(source, &mut self.index, id, self.keep_objects) {
                Ok((loaded, state_changed)) => {
                    reloaded = true;
                    log_diagnostics(id, &loaded);
                    self.load_failures[i] += failed_files(&loaded);
                    changed |= state_changed;
                    self.loads[i].1 = loaded;
                }
                Err(e) => {
                    self.load_failures[i] += 1;
                    tracing::error!(cluster = %id, "reload failed, keeping the current state: {e}")
                }
            }
        }
        (reloaded, changed)
    }
}

/// The index's next snapshot, its build time logged: an update of `prev`
/// (the last one it built) when there is one.
fn build_snapshot(index: &mut Index, prev: Option<&Snapshot>) -> Snapshot {
    let started = Instant::now();
    let snapshot = match prev {
        Some(prev) => index.update(prev),
        None => index.build(),
    };
    let stats = index.last_update();
    tracing::debug!(
        took = ?started.elapsed(),
        incremental = stats.incremental,
        services = stats.services,
        pods = stats.pods,
        addresses = stats.addresses,
        built_whole_because = stats.built_whole_because.unwrap_or(""),
        "snapshot built"
    );
    snapshot
}

fn summary(snap: &Snapshot) -> String {
    format!(
        "{} names, {} records, serial {}",
        snap.names(),
        snap.records(),
        snap.serial()
    )
}

/// How many ports to try for a `--listen` address with port 0.
const PORT_ZERO_ATTEMPTS: usize = 16;

/// One listen address, bound for both transports on one port.
struct Listening {
    tcp: tokio::net::TcpListener,
    addr: SocketAddr,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
}

/// Binds TCP, then UDP on the same port. With port 0 the kernel picks a port
/// free for TCP, but that port may be held for UDP by another socket (a
/// client's ephemeral port, or another svcnet stopping, whose UDP sockets
/// ours would otherwise join): then another port is tried. TCP goes first
/// because the other order fails far more often: client TCP sockets in
/// TIME_WAIT hold ephemeral ports for a minute.
async fn bind_listen_addr(
    addr: SocketAddr,
    workers: usize,
    shared: &Arc<Shared>,
    stop: &Arc<AtomicBool>,
) -> Result<Listening, NetError> {
    let mut attempt = 1;
    loop {
        let tcp = svcnet_net::bind_tcp(addr).await?;
        let tcp_addr = tcp.local_addr().map_err(|source| NetError::Bind {
            proto: "tcp",
            addr,
            source,
        })?;
        // A port we picked must be free of UDP sockets, ours included.
        let free = if addr.port() == 0 {
            svcnet_net::udp_port_unused(tcp_addr)
        } else {
            Ok(())
        };
        match free.and_then(|()| {
            svcnet_net::spawn_udp(tcp_addr, workers, Arc::clone(shared), Arc::clone(stop))
        }) {
            Ok((addr, udp_threads)) => {
                return Ok(Listening {
                    tcp,
                    addr,
                    udp_threads,
                });
            }
            Err(NetError::Bind { source, .. })
                if addr.port() == 0
                    && source.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < PORT_ZERO_ATTEMPTS =>
            {
                tracing::debug!(port = tcp_addr.port(), "UDP port taken, trying another");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs the server until `stop` is set (or forever). `on_ready` gets the
/// bound addresses once every listener is up.
pub fn serve(
    config: ServeConfig,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&[SocketAddr], ServerHandle),
) -> Result<(), ServerError> {
    svcnet_net::cap_allocator_arenas();
    let mut pipeline =
        Pipeline::load_for_serving(&config.clusters, config.index.clone(), &config.control)?;
    for (id, loaded) in &pipeline.loads {
        log_diagnostics(id, loaded);
        let services = pipeline
            .index
            .clusters()
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, store)| {
                store
                    .object_counts()
                    .find(|(kind, _)| *kind == svcnet_model::Kind::Service)
                    .map_or(0, |(_, n)| n)
            });
        tracing::info!(cluster = %id, files = loaded.files, services, "loaded manifests");
    }
    let mut health: BTreeMap<String, KubeHealth> = config
        .kube
        .iter()
        .map(|(id, settings)| {
            let unsynced = svcnet_kube::watcher_names(settings).into_iter().collect();
            (
                id.clone(),
                KubeHealth {
                    unsynced,
                    failing: BTreeMap::new(),
                    errors: 0,
                },
            )
        })
        .collect();
    // Until every API source has listed once, answers would come from a
    // partial state: SERVFAIL instead of a false NXDOMAIN. A state file from
    // an earlier run is a complete (if stale) state: answer from it.
    let kube_ids: Vec<String> = config.kube.iter().map(|(id, _)| id.clone()).collect();
    let mut stale = false;
    if let Some(path) = config
        .state_file
        .as_deref()
        .filter(|_| !kube_ids.is_empty())
        && let Some(saved) = state::load(path).filter(|saved| {
            // Only a file with every API cluster in it is a complete state;
            // one missing a cluster (renamed, added) would answer false
            // NXDOMAINs for it until the API is synced.
            let complete = kube_ids
                .iter()
                .all(|id| saved.clusters.iter().any(|(c, _)| c == id));
            if !complete {
                tracing::warn!(file = %path.display(), "the state file lacks some clusters; not used");
            }
            complete
        })
    {
        for (id, objects) in saved
            .clusters
            .into_iter()
            .filter(|(id, _)| kube_ids.contains(id))
        {
            pipeline.index.apply(&id, Delta::Init(Scope::All));
            for o in objects {
                pipeline.index.apply(&id, Delta::InitApply(o));
            }
            pipeline.index.apply(&id, Delta::InitDone(Scope::All));
        }
        stale = true;
        tracing::warn!(file = %path.display(), written = saved.written, "answering from the saved state (stale) until the Kubernetes API is synced");
    }
    pipeline.index.set_complete(health.is_empty() || stale);
    // The load's objects are gone (the store keeps its own): their pages
    // go back before the build takes new ones.
    svcnet_net::release_free_memory();
    let snapshot = build_snapshot(&mut pipeline.index, None);
    svcnet_net::release_free_memory();
    tracing::info!(zones = ?config.index.zones, "snapshot: {}", summary(&snapshot));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("svcnet-io")
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    match svcnet_net::raise_nofile_limit() {
        Ok((before, after)) => tracing::debug!(before, after, "open files limit"),
        Err(e) => tracing::debug!("cannot raise the open files limit: {e}"),
    }
    if config.query_log.every != 0 {
        tracing::info!(every = config.query_log.every, "logging queries");
    }
    let shared = Arc::new(
        Shared::new(snapshot)
            .with_runtime(runtime.handle().clone())
            .with_query_log(config.query_log)
            .with_rrl(config.rrl)
            .with_coalesce(config.coalesce)
            .with_segment(config.segment),
    );
    let mut forwarding = Forwarding {
        upstreams: config.upstreams.clone(),
        cache_bytes: config.cache_bytes,
        ca_file: config.upstream_ca.clone(),
    };
    shared.set_forwarder(forwarder(&forwarding)?);
    let status = Arc::new(admin::Status::default());
    // Before the admin listener answers: a replica serving a saved state is
    // ready from its first request on.
    let mut published = Instant::now();
    update_status(
        &status,
        &pipeline,
        shared.snapshot.load().names(),
        &health,
        (stale, published),
    );
    let (tx, rx) = mpsc::channel();

    let workers = if config.udp_workers == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        config.udp_workers
    };
    let mut bound = Vec::new();
    let mut threads = Vec::new();
    for addr in &config.listen {
        let Listening {
            tcp,
            addr: udp_addr,
            udp_threads,
        } = runtime.block_on(bind_listen_addr(*addr, workers, &shared, &stop))?;
        threads.extend(udp_threads);
        runtime.spawn(svcnet_net::serve_tcp(tcp, Arc::clone(&shared), config.tcp));
        tracing::info!(workers, "serving DNS on udp+tcp {udp_addr}");
        bound.push(udp_addr);
    }
    // Loop probes go out once we can see them come back.
    if let Some(forwarder) = shared.forwarder.load_full() {
        forwarder.start(runtime.handle());
    }
    if let Some((addr, required)) = config.admin {
        match runtime.block_on(admin::bind(addr)) {
            Ok(listener) => {
                let local = listener.local_addr().unwrap_or(addr);
                runtime.spawn(admin::serve(
                    listener,
                    Arc::clone(&status),
                    Arc::clone(&shared),
                    ServicesSource(tx.clone()),
                ));
                tracing::info!("admin (health, readiness) on http://{local}");
            }
            Err(source) if required => return Err(ServerError::Admin { addr, source }),
            Err(e) => tracing::warn!("no admin listener on {addr} ({e}); give --admin ADDR:PORT"),
        }
    }

    let _watchers: Vec<_> = pipeline
        .sources
        .iter()
        .filter_map(|(id, s)| match s.watch(tx.clone(), Event::Files) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(cluster = %id, "not watching for changes (rescanning every 2s instead): {e}");
                None
            }
        })
        .collect();
    for (id, settings) in &config.kube {
        let client = runtime
            .block_on(svcnet_kube::connect(settings))
            .map_err(|source| ServerError::Kube {
                cluster: id.clone(),
                source,
            })?;
        let tx = std::sync::Mutex::new(tx.clone());
        let cluster = id.clone();
        let emit: svcnet_kube::Emit = Arc::new(move |event| {
            let tx = tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = tx.send(Event::Kube(cluster.clone(), event));
        });
        let _guard = runtime.enter();
        svcnet_kube::spawn(&client, settings, &emit);
        tracing::info!(cluster = %id, namespaces = ?settings.namespaces, "watching the Kubernetes API");
    }
    on_ready(
        &bound,
        ServerHandle {
            tx,
            status: Arc::clone(&status),
        },
    );
    let mut last_save = Instant::now();
    let mut unsaved = false;
    let mut retired: Option<(Arc<Snapshot>, bool)> = None;

    // The index thread: the only writer. Events are drained in batches so a
    // burst (a relist, an editor's several writes) builds one snapshot; a
    // periodic rescan catches file changes a watch could miss.
    let rescan = Duration::from_secs(2);
    let started = Instant::now();
    let mut last_scan = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut files = false;
        let mut changed = false;
        // A cluster's state replaced whole (a reload, a relist): the old
        // one is freed.
        let mut replaced = false;
        let mut health_changed = false;
        let mut asked = Vec::new();
        let first = rx.recv_timeout(Duration::from_millis(250)).ok();
        let batch_end = Instant::now() + Duration::from_millis(50);
        let mut next = first;
        while let Some(event) = next {
            match event {
                Event::Files => files = true,
                Event::Reconfigure(new) => {
                    if pipeline.index.set_config(new.index) {
                        changed = true;
                    }
                    let wanted = Forwarding {
                        upstreams: new.upstreams,
                        cache_bytes: new.cache_bytes,
                        ca_file: new.upstream_ca,
                    };
                    if wanted != forwarding {
                        match forwarder(&wanted) {
                            Ok(f) => {
                                if let Some(f) = &f {
                                    f.start(runtime.handle());
                                }
                                shared.set_forwarder(f);
                                forwarding = wanted;
                            }
                            Err(e) => tracing::error!("keeping the running upstreams: {e}"),
                        }
                    }
                    tracing::info!("configuration reloaded");
                }
                Event::Services(query, reply) => asked.push((query, reply)),
                Event::Kube(cluster, event) => {
                    let h = health.entry(cluster.clone()).or_default();
                    match event {
                        SourceEvent::Delta(d) => {
                            replaced |= matches!(d, Delta::InitDone(_));
                            changed |= pipeline.index.apply(&cluster, d)
                        }
                        SourceEvent::Synced(w) => health_changed |= h.unsynced.remove(&w),
                        SourceEvent::Failing { watcher, error } => {
                            h.errors += 1;
                            health_changed = true;
                            h.failing.insert(watcher, error);
                        }
                        SourceEvent::Recovered(w) => {
                            health_changed |= h.failing.remove(&w).is_some()
                        }
                    }
                }
            }
            next = if Instant::now() < batch_end {
                rx.recv_timeout(Duration::from_millis(5)).ok()
            } else {
                None
            };
        }
        if files || last_scan.elapsed() >= rescan {
            last_scan = Instant::now();
            let (reloaded, state_changed) = pipeline.reload_changed();
            replaced |= reloaded;
            changed |= state_changed;
        }
        let synced = health.values().all(|h| h.unsynced.is_empty());
        if stale && synced {
            stale = false;
            health_changed = true;
            tracing::info!(after = ?started.elapsed(), "Kubernetes API state complete; the saved state is replaced");
        }
        if !pipeline.index.is_complete() && (synced || started.elapsed() >= config.startup_timeout)
        {
            if synced {
                tracing::info!(after = ?started.elapsed(), "Kubernetes API state complete");
            } else {
                tracing::warn!(timeout = ?config.startup_timeout, "startup timeout: answering from an incomplete Kubernetes state");
            }
            pipeline.index.set_complete(true);
            changed = true;
        }
        // The snapshot replaced last round: readers hold one for a batch
        // or a TCP message, so this thread is now almost surely the last
        // holder and frees it here, not a UDP worker mid-batch.
        if let Some((old, built_whole)) = retired.take() {
            drop(old);
            if built_whole {
                // A full build freed the most; an update frees a few shards
                // (trimming the heap then would cost more than it returns).
                svcnet_net::release_free_memory();
            }
        }
        if changed {
            // This thread is the only writer: the served snapshot is the
            // last one the index built, and the one it replaces.
            let old = shared.snapshot.load_full();
            let snap = build_snapshot(&mut pipeline.index, Some(&old));
            let said = summary(&snap);
            shared.snapshot.store(Arc::new(snap));
            retired = Some((old, !pipeline.index.last_update().incremental));
            published = Instant::now();
            // Said once true: tests and operators take it as "answered now".
            tracing::info!("serving: {said}");
        }
        if replaced {
            // The replaced state's memory lies among the new state's: the
            // allocator keeps it unless asked (a reload at 100k services
            // left ~500 MiB more resident).
            svcnet_net::release_free_memory();
        }
        if changed || health_changed {
            update_status(
                &status,
                &pipeline,
                shared.snapshot.load().names(),
                &health,
                (stale, published),
            );
        }
        for (query, reply) in asked {
            let _ = reply.try_send(services::view(&pipeline.index, &query));
        }
        unsaved |= changed && synced;
        if let Some(path) = config
            .state_file
            .as_deref()
            .filter(|_| unsaved && !kube_ids.is_empty())
            && (last_save.elapsed() >= STATE_SAVE_INTERVAL || stop.load(Ordering::Relaxed))
        {
            match state::save(path, &pipeline.index, &kube_ids) {
                Ok(()) => unsaved = false,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot write the state file: {e}")
                }
            }
            last_save = Instant::now();
        }
    }
    for t in threads {
        let _ = t.join();
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// What the forwarder is built from; a reload that changes it builds a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Forwarding {
    upstreams: Vec<svcnet_forward::Upstream>,
    cache_bytes: usize,
    ca_file: Option<PathBuf>,
}

/// A forwarder for `f` (none without upstreams: REFUSED outside our zones).
fn forwarder(
    f: &Forwarding,
) -> Result<Option<Arc<svcnet_forward::Forwarder>>, svcnet_forward::ForwardError> {
    if f.upstreams.is_empty() {
        tracing::info!("not forwarding: names outside our zones get REFUSED");
        return Ok(None);
    }
    let names: Vec<&str> = f.upstreams.iter().map(|u| u.text.as_str()).collect();
    tracing::info!(upstreams = ?names, "forwarding names outside our zones");
    let forwarder = svcnet_forward::Forwarder::new(svcnet_forward::ForwardConfig {
        upstreams: f.upstreams.clone(),
        timeout: FORWARD_TIMEOUT,
        max_in_flight: MAX_FORWARDS,
        cache_bytes: f.cache_bytes,
        ca_file: f.ca_file.clone(),
    })?;
    Ok(Some(Arc::new(forwarder)))
}

/// How long one upstream has to answer before the next is tried.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight at most; beyond, SERVFAIL at once.
const MAX_FORWARDS: usize = 1024;

/// How often at most the state file is rewritten.
const STATE_SAVE_INTERVAL: Duration = Duration::from_secs(5);

/// Readiness: the served state is complete. Details say what is missing or
/// failing; a failing API keeps the replica ready (it serves the last state).
fn update_status(
    status: &admin::Status,
    pipeline: &Pipeline,
    names: usize,
    health: &BTreeMap<String, KubeHealth>,
    (stale, published): (bool, Instant),
) {
    let index = &pipeline.index;
    let detail = health
        .iter()
        .map(|(cluster, h)| {
            let stale = stale && !h.unsynced.is_empty();
            let words = if !h.failing.is_empty() {
                let (w, e) = h
                    .failing
                    .iter()
                    .next()
                    .map_or(("", ""), |(w, e)| (w.as_str(), e.as_str()));
                // Stale stays said: it is why answers may be out of date.
                let state = if stale {
                    "serving the saved state (stale)"
                } else if !index.is_complete() {
                    "waiting for the first list"
                } else {
                    "serving the last known state"
                };
                format!("API unreachable ({w}: {e}); {state}")
            } else if stale {
                "stale: answering from the saved state until the API is synced".to_owned()
            } else if !h.unsynced.is_empty() {
                let names: Vec<&str> = h.unsynced.iter().map(String::as_str).collect();
                format!("waiting for the first list of {}", names.join(", "))
            } else {
                "synced".to_owned()
            };
            (cluster.clone(), words)
        })
        .collect();
    let api = health
        .iter()
        .map(|(c, h)| (c.clone(), h.failing.len(), h.unsynced.len()))
        .collect();
    let mut objects: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for (cluster, store) in index.clusters() {
        for (kind, n) in store.object_counts() {
            *objects
                .entry((cluster.clone(), kind_label(kind)))
                .or_default() += n;
        }
        if store.pod_count() > 0 {
            *objects
                .entry((cluster.clone(), kind_label(svcnet_model::Kind::Pod)))
                .or_default() += store.pod_count() as u64;
        }
    }
    status.set(admin::Report {
        ready: index.is_complete(),
        generation: index.generation(),
        names,
        stale,
        detail,
        api,
        published: Some(published),
        builds: index.build_counts(),
        objects: objects
            .into_iter()
            .map(|((cluster, kind), n)| (cluster, kind, n))
            .collect(),
        load_failures: pipeline
            .sources
            .iter()
            .map(|(id, _)| id.clone())
            .zip(pipeline.load_failures.iter().copied())
            .collect(),
        watch_errors: health.iter().map(|(c, h)| (c.clone(), h.errors)).collect(),
    });
}

/// The `kind` label of an object count (imported slices apart from the
/// cluster's own).
fn kind_label(kind: svcnet_model::Kind) -> &'static str {
    match kind {
        svcnet_model::Kind::ImportedEndpointSlice => "ImportedEndpointSlice",
        k => k.as_str(),
    }
}
