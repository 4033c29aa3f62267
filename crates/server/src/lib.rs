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

use svcnet_index::{Index, IndexConfig, Snapshot};
use svcnet_manifest::control::ControlConfig;
use svcnet_manifest::watch::{Loaded, ManifestSource};
use svcnet_manifest::{Diagnostic, ManifestError, Severity};
pub use svcnet_net::TcpLimits;
use svcnet_net::{NetError, Shared};

/// Everything `svcnet serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Listen addresses (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads per address (0 = one per CPU).
    pub udp_workers: usize,
    /// Snapshot shaping.
    pub index: IndexConfig,
    /// The emulated control plane.
    pub control: ControlConfig,
    /// Clusters: id and manifest paths.
    pub clusters: Vec<(String, Vec<PathBuf>)>,
    /// TCP limits.
    pub tcp: TcpLimits,
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
}

/// The clusters' sources and the index they feed.
pub struct Pipeline {
    /// One manifest source per cluster.
    pub sources: Vec<(String, ManifestSource)>,
    /// The index.
    pub index: Index,
    /// The last load of each cluster (for explanations and lint).
    pub loads: Vec<(String, Loaded)>,
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

impl Pipeline {
    /// Loads every cluster once.
    pub fn load(
        clusters: &[(String, Vec<PathBuf>)],
        index: IndexConfig,
        control: &ControlConfig,
    ) -> Result<Self, ManifestError> {
        let mut p = Self {
            sources: Vec::new(),
            index: Index::new(index, now_secs()),
            loads: Vec::new(),
        };
        for (id, paths) in clusters {
            let control = ControlConfig {
                cluster: id.clone(),
                ..control.clone()
            };
            let mut source = ManifestSource::new(paths.clone(), control);
            let loaded = source.load()?;
            for d in loaded.deltas() {
                p.index.apply(id, d);
            }
            p.loads.push((id.clone(), loaded));
            p.sources.push((id.clone(), source));
        }
        Ok(p)
    }

    /// Every diagnostic of the last loads.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.loads.iter().flat_map(|(_, l)| &l.diagnostics)
    }

    /// Reloads the clusters whose files changed; returns whether the state changed.
    pub fn reload_changed(&mut self) -> bool {
        let mut changed = false;
        for (i, (id, source)) in self.sources.iter_mut().enumerate() {
            if !source.changed() {
                continue;
            }
            match source.load() {
                Ok(loaded) => {
                    log_diagnostics(id, &loaded);
                    for d in loaded.deltas() {
                        changed |= self.index.apply(id, d);
                    }
                    self.loads[i].1 = loaded;
                }
                Err(e) => {
                    tracing::error!(cluster = %id, "reload failed, keeping the current state: {e}")
                }
            }
        }
        changed
    }
}

fn summary(snap: &Snapshot) -> String {
    let records: usize = snap
        .nodes
        .values()
        .map(|n| {
            n.a.len() + n.aaaa.len() + n.srv.len() + n.ptr.len() + usize::from(n.cname.is_some())
        })
        .sum();
    format!(
        "{} names, {} records, serial {}",
        snap.nodes.len(),
        records,
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
/// client's ephemeral port): then another port is tried. TCP goes first
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
        match svcnet_net::spawn_udp(tcp_addr, workers, Arc::clone(shared), Arc::clone(stop)) {
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
    on_ready: impl FnOnce(&[SocketAddr]),
) -> Result<(), ServerError> {
    let mut pipeline = Pipeline::load(&config.clusters, config.index.clone(), &config.control)?;
    for (id, loaded) in &pipeline.loads {
        log_diagnostics(id, loaded);
        let services = loaded
            .view
            .objects
            .iter()
            .filter(|o| matches!(o, svcnet_model::Object::Service(_)))
            .count();
        tracing::info!(cluster = %id, files = loaded.files, services, "loaded manifests");
    }
    let snapshot = pipeline.index.build();
    tracing::info!(zones = ?config.index.zones, "snapshot: {}", summary(&snapshot));
    let shared = Arc::new(Shared::new(snapshot, false));

    let workers = if config.udp_workers == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        config.udp_workers
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tcp")
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
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

    let (tx, rx) = mpsc::channel();
    let _watchers: Vec<_> = pipeline
        .sources
        .iter()
        .filter_map(|(id, s)| match s.watch(tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(cluster = %id, "not watching for changes (rescanning every 2s instead): {e}");
                None
            }
        })
        .collect();
    on_ready(&bound);

    // The index thread: the only writer. Events are debounced briefly; a
    // periodic rescan catches changes a watch could miss.
    let rescan = Duration::from_secs(2);
    let mut last_scan = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let event = rx.recv_timeout(Duration::from_millis(250)).is_ok();
        if !event && last_scan.elapsed() < rescan {
            continue;
        }
        if event {
            std::thread::sleep(Duration::from_millis(50));
            while rx.try_recv().is_ok() {}
        }
        last_scan = Instant::now();
        if pipeline.reload_changed() {
            let snap = pipeline.index.build();
            tracing::info!("reloaded: {}", summary(&snap));
            shared.snapshot.store(Arc::new(snap));
        }
    }
    for t in threads {
        let _ = t.join();
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
