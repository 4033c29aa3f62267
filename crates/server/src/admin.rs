//! The admin listener (`--admin`): `/health` (liveness), `/ready`
//! (readiness: the first complete state is being served), `/metrics`
//! (Prometheus text: readiness, API source health, snapshot, objects,
//! queries, TCP connections, cache) and `/services` (what is served, JSON
//! or HTML). A deliberately small HTTP/1.1 responder: one request per
//! connection, nothing on the DNS path depends on it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use svcnet_dns::Transport;
use svcnet_net::metrics::{QTYPE_LABELS, QueryTotals, RCODE_LABELS, ZONE_SLOTS, proto_label};
use svcnet_stats::label_value;

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
    /// When the served snapshot was published.
    pub published: Option<Instant>,
    /// Snapshots built whole, and updated in place.
    pub builds: (u64, u64),
    /// Objects in the index: `(cluster, kind, count)`.
    pub objects: Vec<(String, &'static str, u64)>,
    /// Per manifest cluster: files that failed to load, over all (re)loads.
    pub load_failures: Vec<(String, u64)>,
    /// Per API cluster: errors its watchers reported.
    pub watch_errors: Vec<(String, u64)>,
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

/// Prometheus text exposition (format 0.0.4) being written: each family
/// once with its `# HELP` and `# TYPE`, then its samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; `labels` is empty or `k="v",…` without braces.
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }

    /// A family with one sample per cluster.
    fn per_cluster<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        rows: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, kind, help);
        for (cluster, v) in rows {
            self.sample(name, &format!("cluster=\"{}\"", label_value(cluster)), v);
        }
    }
}

/// Everything `/metrics` shows.
fn render_metrics(report: &Report, shared: &svcnet_net::Shared) -> String {
    let mut m = Exposition { out: String::new() };
    let flag = |b: bool| u8::from(b);
    m.single(
        "svcnet_ready",
        "gauge",
        "1 when the served state is complete (/ready is 200).",
        flag(report.ready),
    );
    m.single(
        "svcnet_state_stale",
        "gauge",
        "1 while answering from the saved state file until the API is synced.",
        flag(report.stale),
    );
    m.single(
        "svcnet_snapshot_generation",
        "gauge",
        "Generation of the served snapshot (the SOA serial).",
        report.generation,
    );
    m.single(
        "svcnet_snapshot_names",
        "gauge",
        "Owner names in the served snapshot.",
        report.names,
    );
    m.family(
        "svcnet_snapshot_builds_total",
        "counter",
        "Snapshots published, by how: built whole, or updated in place from the last one (only the changed services' names rebuilt).",
    );
    m.sample(
        "svcnet_snapshot_builds_total",
        "kind=\"full\"",
        report.builds.0,
    );
    m.sample(
        "svcnet_snapshot_builds_total",
        "kind=\"update\"",
        report.builds.1,
    );
    let age = report.published.map_or(0.0, |t| t.elapsed().as_secs_f64());
    m.single(
        "svcnet_snapshot_age_seconds",
        "gauge",
        "Seconds since the served snapshot was published.",
        format!("{age:.3}"),
    );
    m.family(
        "svcnet_objects",
        "gauge",
        "Objects in the index, by cluster and kind (emulated pods and endpoints included).",
    );
    for (cluster, kind, n) in &report.objects {
        let labels = format!("cluster=\"{}\",kind=\"{kind}\"", label_value(cluster));
        m.sample("svcnet_objects", &labels, n);
    }
    m.per_cluster(
        "svcnet_manifest_load_failures_total",
        "counter",
        "Manifest files that failed to load (parse or validation errors), counted at every load and reload, and reloads that failed as a whole.",
        report.load_failures.iter().map(|(c, n)| (c.as_str(), *n)),
    );
    m.per_cluster(
        "svcnet_kubernetes_watch_errors_total",
        "counter",
        "Errors reported by the Kubernetes API watchers (failed lists and watches).",
        report.watch_errors.iter().map(|(c, n)| (c.as_str(), *n)),
    );
    m.per_cluster(
        "svcnet_kubernetes_watchers_failing",
        "gauge",
        "Kubernetes API watchers failing now (the last known state is served).",
        report.api.iter().map(|(c, f, _)| (c.as_str(), *f as u64)),
    );
    m.per_cluster(
        "svcnet_kubernetes_watchers_unsynced",
        "gauge",
        "Kubernetes API watchers that have not completed their first list.",
        report.api.iter().map(|(c, _, u)| (c.as_str(), *u as u64)),
    );
    if let Some(rrl) = &shared.rrl {
        let (slipped, dropped) = rrl.limited();
        m.single(
            "svcnet_rrl_slipped_total",
            "counter",
            "UDP responses over --rrl sent as empty truncated replies.",
            slipped,
        );
        m.single(
            "svcnet_rrl_dropped_total",
            "counter",
            "UDP responses over --rrl not sent.",
            dropped,
        );
    }
    query_metrics(&mut m, shared);
    tcp_metrics(&mut m, &shared.metrics.tcp_connections);
    if let Some(forwarder) = shared.forwarder.load_full() {
        if let Some(cache) = forwarder.cache() {
            cache_metrics(&mut m, cache.stats());
        }
        upstream_metrics(&mut m, &forwarder);
    }
    m.out
}

/// Queries by zone, type, rcode and protocol, their latencies, and dropped
/// packets: the workers' counters summed.
fn query_metrics(m: &mut Exposition, shared: &svcnet_net::Shared) {
    let zones = svcnet_net::metrics::zone_labels(&shared.snapshot.load());
    let protos = [Transport::Udp, Transport::Tcp];
    let totals: Vec<(&str, QueryTotals)> = protos
        .iter()
        .map(|&p| (proto_label(p), shared.metrics.totals(p)))
        .collect();
    let mut all = 0u64;
    m.family(
        "svcnet_dns_requests_total",
        "counter",
        "DNS queries answered, by zone (a served zone, reverse, forwarded or other), query type, response code and protocol.",
    );
    for (proto, t) in &totals {
        for (z, zone) in zones.iter().enumerate().take(ZONE_SLOTS) {
            let Some(zone) = zone else { continue };
            for (q, qtype) in QTYPE_LABELS.iter().enumerate() {
                for (r, rcode) in RCODE_LABELS.iter().enumerate() {
                    let n = t.requests(z, q, r);
                    if n == 0 {
                        continue;
                    }
                    all += n;
                    let labels = format!(
                        "zone=\"{}\",type=\"{qtype}\",rcode=\"{rcode}\",proto=\"{proto}\"",
                        label_value(zone)
                    );
                    m.sample("svcnet_dns_requests_total", &labels, n);
                }
            }
        }
    }
    m.single(
        "svcnet_queries_total",
        "counter",
        "DNS queries answered (UDP and TCP): the sum of svcnet_dns_requests_total.",
        all,
    );
    m.family(
        "svcnet_dns_request_duration_seconds",
        "histogram",
        "Time from receiving a query to sending its answer, for queries answered locally (our zones, REFUSED, FORMERR).",
    );
    for (proto, t) in &totals {
        t.local.render(
            &mut m.out,
            "svcnet_dns_request_duration_seconds",
            &format!("proto=\"{proto}\""),
        );
    }
    m.family(
        "svcnet_forward_request_duration_seconds",
        "histogram",
        "Time from receiving a query for a name outside our zones to sending the relayed answer (cache hits included).",
    );
    for (proto, t) in &totals {
        t.forwarded.render(
            &mut m.out,
            "svcnet_forward_request_duration_seconds",
            &format!("proto=\"{proto}\""),
        );
    }
    m.family(
        "svcnet_dns_dropped_packets_total",
        "counter",
        "Packets dropped without an answer: shorter than a header, responses, oversized TCP length prefixes.",
    );
    for (proto, t) in &totals {
        m.sample(
            "svcnet_dns_dropped_packets_total",
            &format!("proto=\"{proto}\""),
            t.dropped,
        );
    }
    let udp: [(&str, &str, &str, TotalOf); 4] = [
        (
            "svcnet_udp_coalesce_pauses_total",
            "counter",
            "Pauses of UDP workers between batches while at or above the --udp-coalesce rate, so that more queries are answered per wake-up.",
            |t| t.paused,
        ),
        (
            "svcnet_udp_segmented_replies_total",
            "counter",
            "UDP replies sent in one segmented send with other replies of the same batch to the same client (UDP_SEGMENT), routed and built once; --no-udp-segment turns it off.",
            |t| t.segmented,
        ),
        (
            "svcnet_udp_segment_refusals_total",
            "counter",
            "Segmented UDP sends the kernel refused for their path (small MTU, no checksum offload), their replies then sent one by one; 8 in a row stop a worker's segmented sends for 10 s.",
            |t| t.segment_refusals,
        ),
        (
            "svcnet_udp_workers_segmenting",
            "gauge",
            "UDP workers sending a batch's replies to one client in one segmented send now.",
            |t| t.segmenting,
        ),
    ];
    for (name, kind, help, value) in udp {
        m.single(
            name,
            kind,
            help,
            totals.iter().map(|(_, t)| value(t)).sum::<u64>(),
        );
    }
}

/// One figure of a worker's totals.
type TotalOf = fn(&QueryTotals) -> u64;

fn tcp_metrics(m: &mut Exposition, tcp: &svcnet_net::metrics::TcpStats) {
    for (name, kind, help, v) in [
        (
            "svcnet_tcp_connections_open",
            "gauge",
            "DNS-over-TCP connections open now.",
            &tcp.open,
        ),
        (
            "svcnet_tcp_connections_accepted_total",
            "counter",
            "DNS-over-TCP connections accepted and served.",
            &tcp.accepted,
        ),
        (
            "svcnet_tcp_connections_idle_closed_total",
            "counter",
            "DNS-over-TCP connections closed after --tcp-idle-timeout without a query.",
            &tcp.idle_closed,
        ),
        (
            "svcnet_tcp_connections_refused_total",
            "counter",
            "DNS-over-TCP connections closed at once because --tcp-max-connections were open.",
            &tcp.refused,
        ),
    ] {
        m.single(name, kind, help, v.load(Ordering::Relaxed));
    }
}

/// The forward cache's counters.
fn cache_metrics(m: &mut Exposition, stats: svcnet_forward::cache::CacheStats) {
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
        m.single(name, "counter", help, v);
    }
}

/// Per-upstream forwarding metrics: queries, failures, health and latency
/// by upstream as configured, and the forwarder's coalescing and overload.
fn upstream_metrics(m: &mut Exposition, forwarder: &svcnet_forward::Forwarder) {
    let stats = forwarder.upstream_stats();
    let label = |addr: &str| format!("upstream=\"{}\"", label_value(addr));
    type Pick = fn(&svcnet_forward::UpstreamStats) -> u64;
    let families: [(&str, &str, &str, Pick); 5] = [
        (
            "svcnet_forward_upstream_queries_total",
            "counter",
            "Queries sent to the upstream (health and loop probes included).",
            |u| u.queries,
        ),
        (
            "svcnet_forward_upstream_errors_total",
            "counter",
            "Failed exchanges with the upstream (timeouts included).",
            |u| u.errors,
        ),
        (
            "svcnet_forward_upstream_timeouts_total",
            "counter",
            "Exchanges with the upstream that timed out.",
            |u| u.timeouts,
        ),
        (
            "svcnet_forward_upstream_healthy",
            "gauge",
            "1 while the upstream answers; 0 after 2 failures in a row, until a health probe is answered.",
            |u| u64::from(u.healthy),
        ),
        (
            "svcnet_forward_upstream_looping",
            "gauge",
            "1 when the upstream sent our loop probe back to us (it is no longer used).",
            |u| u64::from(u.looping),
        ),
    ];
    for (name, kind, help, pick) in families {
        m.family(name, kind, help);
        for u in &stats {
            m.sample(name, &label(&u.addr), pick(u));
        }
    }
    let name = "svcnet_forward_upstream_duration_seconds";
    m.family(
        name,
        "histogram",
        "Round trips of successful exchanges with the upstream.",
    );
    for u in &stats {
        u.latency.render(&mut m.out, name, &label(&u.addr));
    }
    m.single(
        "svcnet_forward_coalesced_total",
        "counter",
        "Queries answered by an identical query already in flight upstream.",
        forwarder.coalesced(),
    );
    m.single(
        "svcnet_forward_refused_total",
        "counter",
        "Queries answered SERVFAIL at once because the forwarded queries in flight were at their bound.",
        forwarder.refused_full(),
    );
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

/// Admin connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// The largest request head read; anything beyond is ignored.
const MAX_REQUEST: usize = 8192;
/// How long `/services` waits for the index thread.
const SERVICES_WAIT: Duration = Duration::from_secs(5);

/// Reads a request head (up to the blank line, at most [`MAX_REQUEST`]
/// bytes, within 5 s); whatever came when either runs out.
async fn read_head(conn: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_REQUEST && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, conn.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    buf
}

/// Serves `/health`, `/ready`, `/metrics` and `/services` until the
/// runtime stops.
pub async fn serve(
    listener: TcpListener,
    status: Arc<Status>,
    shared: Arc<svcnet_net::Shared>,
    services: crate::ServicesSource,
) {
    // A scraper or probe needs one connection; a flood of them must not
    // take memory, descriptors or the index thread's time.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                // Out of descriptors, say: wait instead of spinning.
                tracing::debug!(error = %e, "admin accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = Arc::clone(&status);
        let shared = Arc::clone(&shared);
        let services = services.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let head = read_head(&mut conn).await;
            if head.is_empty() {
                return;
            }
            let request = String::from_utf8_lossy(&head);
            let target = request.split_whitespace().nth(1).unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let accept = request.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("accept").then_some(v.trim())
            });
            let (code, kind, body) = match path {
                "/health" | "/healthz" => ("200 OK", TEXT, "ok\n".to_owned()),
                "/ready" | "/readyz" => match status.json() {
                    (true, body) => ("200 OK", JSON, body),
                    (false, body) => ("503 Service Unavailable", JSON, body),
                },
                "/metrics" => (
                    "200 OK",
                    PROMETHEUS,
                    render_metrics(&status.report(), &shared),
                ),
                "/services" => {
                    let q = crate::services::ServicesQuery::parse(query, accept);
                    let html = q.html;
                    match services.ask(q, SERVICES_WAIT).await {
                        Some(view) if html => ("200 OK", HTML, view.html()),
                        Some(view) => ("200 OK", JSON, view.json()),
                        None => (
                            "503 Service Unavailable",
                            TEXT,
                            "the index is busy; try again\n".to_owned(),
                        ),
                    }
                }
                _ => ("404 Not Found", TEXT, "not found\n".to_owned()),
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

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
