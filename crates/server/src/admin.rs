//! The admin listener (`--admin`): `/health` (liveness), `/ready`
//! (readiness: the first complete state is being served) and `/metrics`
//! (Prometheus text: readiness, API source health, snapshot, queries). A
//! deliberately small HTTP/1.1 responder: one request per connection,
//! nothing on the DNS path depends on it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What `/ready` reports, kept current by the index thread.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    report: Report,
    /// Shutting down (lame duck): not ready, whatever the report says.
    draining: bool,
}

/// One report of the index thread.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The served state is complete.
    pub ready: bool,
    /// Snapshot generation (SOA serial).
    pub generation: u64,
    /// Names in the snapshot.
    pub names: usize,
    /// Answering from a saved state until the API is synced.
    pub stale: bool,
    /// Why not ready / what is degraded, per cluster: `(cluster, words)`.
    pub detail: Vec<(String, String)>,
    /// Per API cluster: watchers failing now, watchers not yet synced.
    pub api: Vec<(String, usize, usize)>,
}

impl Status {
    /// Records the index thread's latest report.
    pub fn set(&self, report: Report) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .report = report;
    }

    /// Marks the server as shutting down: `/ready` is 503 from now on.
    pub fn set_draining(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .draining = true;
    }

    /// The latest report, with readiness off while draining.
    fn report(&self) -> Report {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = inner.report.clone();
        if inner.draining {
            report.ready = false;
            report
                .detail
                .insert(0, ("svcnet".to_owned(), "shutting down".to_owned()));
        }
        report
    }

    /// Prometheus text exposition of the status and the query counter.
    fn metrics(&self, queries: u64) -> String {
        let s = self.report();
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, rows: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let flag = |b: bool| one(f64::from(u8::from(b)));
        metric(
            "svcnet_ready",
            "1 when the served state is complete (/ready is 200).",
            "gauge",
            &flag(s.ready),
        );
        metric(
            "svcnet_state_stale",
            "1 while answering from the saved state file until the API is synced.",
            "gauge",
            &flag(s.stale),
        );
        metric(
            "svcnet_snapshot_generation",
            "Generation of the served snapshot (the SOA serial).",
            "gauge",
            &one(s.generation as f64),
        );
        metric(
            "svcnet_snapshot_names",
            "Owner names in the served snapshot.",
            "gauge",
            &one(s.names as f64),
        );
        metric(
            "svcnet_queries_total",
            "DNS queries answered (UDP and TCP).",
            "counter",
            &one(queries as f64),
        );
        let label = |c: &str| format!("{{cluster=\"{}\"}}", escape(c));
        let failing: Vec<(String, f64)> = s
            .api
            .iter()
            .map(|(c, f, _)| (label(c), *f as f64))
            .collect();
        metric(
            "svcnet_kubernetes_watchers_failing",
            "Kubernetes API watchers failing now (the last known state is served).",
            "gauge",
            &failing,
        );
        let unsynced: Vec<(String, f64)> = s
            .api
            .iter()
            .map(|(c, _, u)| (label(c), *u as f64))
            .collect();
        metric(
            "svcnet_kubernetes_watchers_unsynced",
            "Kubernetes API watchers that have not completed their first list.",
            "gauge",
            &unsynced,
        );
        out
    }

    fn json(&self) -> (bool, String) {
        let s = self.report();
        let mut body = format!(
            "{{\"ready\":{},\"generation\":{},\"clusters\":{{",
            s.ready, s.generation
        );
        for (i, (cluster, words)) in s.detail.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(body, "{sep}\"{}\":\"{}\"", escape(cluster), escape(words));
        }
        body.push_str("}}\n");
        (s.ready, body)
    }
}

/// The forward cache's counters in Prometheus text.
fn cache_metrics(stats: svcnet_forward::cache::CacheStats) -> String {
    let mut out = String::new();
    for (name, help, v) in [
        (
            "svcnet_cache_hits_total",
            "Forwarded names answered from the cache.",
            stats.hits,
        ),
        (
            "svcnet_cache_misses_total",
            "Forwarded names not in the cache.",
            stats.misses,
        ),
        (
            "svcnet_cache_stale_total",
            "Answers served stale because upstreams failed.",
            stats.stale,
        ),
        (
            "svcnet_cache_evictions_total",
            "Answers dropped to keep the cache within its bytes.",
            stats.evictions,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/health`, `/ready` and `/metrics` until the runtime stops.
pub async fn serve(listener: TcpListener, status: Arc<Status>, shared: Arc<svcnet_net::Shared>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let status = Arc::clone(&status);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = match path {
                "/health" | "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/ready" | "/readyz" => match status.json() {
                    (true, body) => ("200 OK", body),
                    (false, body) => ("503 Service Unavailable", body),
                },
                "/metrics" => {
                    let queries = shared.queries.load(std::sync::atomic::Ordering::Relaxed);
                    let mut body = status.metrics(queries);
                    if let Some(cache) = shared.forwarder.load().as_ref().and_then(|f| f.cache()) {
                        body.push_str(&cache_metrics(cache.stats()));
                    }
                    ("200 OK", body)
                }
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let kind = if body.starts_with('{') {
                "application/json"
            } else {
                "text/plain"
            };
            let head = format!(
                "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}
