//! `svcnet`: Kubernetes Service DNS from manifests (SPEC §4). The binary is
//! thin: flags → configuration, tracing setup, and the four commands.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use svcnet_index::{IndexConfig, PodMode};
use svcnet_manifest::control::ControlConfig;
use svcnet_model::Cidr;

mod config;
mod resolve;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

#[derive(Parser)]
#[command(name = "svcnet", version, about = "Kubernetes Service DNS, from manifests or a cluster", long_about = None, after_help = TOP_HELP)]
struct Cli {
    /// Log filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, global = true, default_value = "info", env = "SVCNET_LOG")]
    log: String,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SVCNET_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Settings file (TOML): every flag is a key of the same name, e.g.
    /// `upstream = ["10.0.0.2"]`, `ttl = 30`. Flags and SVCNET_* variables
    /// override it. `serve` rereads it when it changes or on SIGHUP.
    #[arg(long, global = true, value_name = "FILE", env = "SVCNET_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve DNS for the manifests, live as the files change.
    #[command(long_about = SERVE_HELP)]
    Serve(Box<ServeArgs>),
    /// Answer one query from the manifests, dig style, and say why.
    #[command(long_about = RESOLVE_HELP)]
    Resolve(ResolveArgs),
    /// Print every record as an RFC 1035 zone file.
    #[command(long_about = ZONE_HELP)]
    Zone(StateArgs),
    /// Check manifests for the mistakes that break service discovery.
    #[command(long_about = LINT_HELP)]
    Lint(LintArgs),
}

// The top-level help is where a new user lands first: show the whole loop
// (serve, ask, explain, check) before the per-command details.
const TOP_HELP: &str = "Examples:
  svcnet serve -f examples/local
  dig @127.0.0.1 -p 1053 web-0.nginx.default.svc.cluster.local
  svcnet resolve -f examples/local web-0.nginx
  svcnet lint -f k8s/ --strict

See `svcnet <COMMAND> --help` for each command's options and examples.";

const SERVE_HELP: &str = "Serve the DNS names Kubernetes promises for the Services in the manifests \
(no cluster needed), over UDP and TCP on every --listen address. Files and directories given with -f \
are watched: a change is served within a second; a file that turns invalid keeps serving its last good \
objects (the error is logged); a deleted file's objects go away.

With --kubeconfig (or, inside a pod, with no -f and no --kubeconfig: the in-cluster service account) \
it serves a real cluster from the Kubernetes API instead: names in its zones answer SERVFAIL until the \
first complete list (at most --startup-timeout), an unreachable API leaves the last known state \
served, and --state-file lets a restarted replica answer before the API is back. /health, /ready, \
/metrics and /services are on --admin; --log-queries logs each query (or a sampled share). Settings marked [env: ...] can also come from the environment (a ConfigMap).

Examples:
  svcnet serve -f examples/local
  dig @127.0.0.1 -p 1053 web-0.nginx.default.svc.cluster.local
  svcnet serve --kubeconfig ~/.kube/config --listen 127.0.0.1:1053 --admin 127.0.0.1:8080

Names outside the served zones are forwarded to --upstream (default: the nameservers of \
/etc/resolv.conf); --no-upstream answers them REFUSED. Upstreams are tried in order; one that fails \
twice in a row is tried last until it answers a health probe. Identical queries in flight share one \
upstream exchange. An upstream that sends queries back to this server (a forwarding loop, found with \
a probe query at start) is logged and no longer used. tls://ADDR[#NAME] upstreams are asked over \
DNS over TLS on one kept-open connection; --upstream-ca trusts a private CA for them.

  svcnet serve -f examples/local --upstream tls://1.1.1.1#cloudflare-dns.com --upstream 10.0.0.10";

const RESOLVE_HELP: &str = "Answer one query from the manifests without a server, exactly as `serve` \
would, and explain which Service, selector, pods and readiness decided it. A NAME with fewer than 5 dots \
is expanded with the search path of a pod in --namespace (ndots:5), so `web-0.nginx` works.

Examples:
  svcnet resolve -f examples/local web-0.nginx
  svcnet resolve -f examples/local _http._tcp.nginx.default.svc.cluster.local SRV";

const ZONE_HELP: &str =
    "Print every record of the served zones (cluster zones, clusterset.local and the \
reverse zones) as RFC 1035 master files: the same records `serve` answers.

Example:
  svcnet zone -f examples/local > cluster.local.zone";

const LINT_HELP: &str = "Report parse and validation errors, and the mistakes that bite in production: \
a selector that matches no pod, a headless Service whose port differs from its targetPort, a StatefulSet \
whose serviceName is missing or not headless, a pod subdomain with no headless Service, duplicate \
hostnames in one Service, names longer than DNS allows. Errors exit 1; warnings exit 0 unless --strict.

Example:
  svcnet lint -f k8s/ --strict";

#[derive(Clone, Copy, ValueEnum)]
enum PodsArg {
    Verified,
    Insecure,
    Disabled,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum PtrArg {
    Canonical,
    All,
}

#[derive(Args, Clone)]
struct StateArgs {
    /// Manifests: a file, a directory (recursive) or - for standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    filename: Vec<PathBuf>,
    /// Another cluster's manifests for clusterset.local, as NAME=PATH. Repeatable.
    #[arg(long = "cluster", value_name = "NAME=PATH")]
    cluster: Vec<String>,
    /// The id of the -f cluster; with several clusters, the one cluster.local answers for.
    #[arg(long, default_value = "local", env = "SVCNET_CLUSTER_ID")]
    cluster_id: String,
    /// Cluster zone. Repeatable.
    #[arg(
        long = "zone",
        default_value = "cluster.local",
        env = "SVCNET_ZONE",
        value_delimiter = ','
    )]
    zone: Vec<String>,
    /// TTL of the records, 0-3600 seconds.
    #[arg(long, default_value_t = 5, env = "SVCNET_TTL", value_parser = clap::value_parser!(u32).range(0..=3600))]
    ttl: u32,
    /// Pod records <a-b-c-d>.<ns>.pod.<zone>.
    #[arg(long, value_enum, default_value = "verified", env = "SVCNET_PODS")]
    pods: PodsArg,
    /// One canonical PTR per address, or all of them.
    #[arg(long, value_enum, default_value = "canonical")]
    ptr: PtrArg,
    /// Pod CIDR for emulated pod IPs. Repeatable (one per family for dual-stack).
    #[arg(long = "pod-cidr", default_value = "10.244.0.0/16")]
    pod_cidr: Vec<Cidr>,
    /// Service CIDR for ClusterIPs; its first address is kubernetes.default.
    #[arg(long = "service-cidr", default_value = "10.96.0.0/12")]
    service_cidr: Vec<Cidr>,
    /// ClusterSetIP range for clusterset.local.
    #[arg(long, default_value = "10.112.0.0/12")]
    clusterset_cidr: Cidr,
    /// Node names (one DaemonSet pod each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "node-1")]
    nodes: Vec<String>,
    /// Turn off <clusterid>.<svc>.<ns>.svc.clusterset.local names.
    #[arg(long)]
    no_cluster_names: bool,
    /// Name endpoints without a hostname by their pod's name instead of their
    /// dashed IP (CoreDNS endpoint_pod_names): web-7d4f-x2k9p.nginx.default.svc...
    #[arg(long, env = "SVCNET_ENDPOINT_POD_NAMES")]
    endpoint_pod_names: bool,
    /// Answer a pod's first search-path expansion that does not exist
    /// (api.example.com.<ns>.svc.cluster.local) with a CNAME to the first
    /// expansion that does, or to the bare name resolved upstream, saving the
    /// pod its remaining queries. Assumes the asker lives in the namespace the
    /// name carries (no pod watch needed); see the README for the trade-off.
    #[arg(long, env = "SVCNET_AUTOPATH")]
    autopath: bool,
    /// Addresses of ns.dns.<zone> (default: the listen addresses).
    #[arg(long, value_name = "IP")]
    advertise: Vec<std::net::IpAddr>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Listen address (UDP and TCP). Repeatable.
    #[arg(
        long = "listen",
        default_value = "127.0.0.1:1053",
        env = "SVCNET_LISTEN",
        value_delimiter = ','
    )]
    listen: Vec<SocketAddr>,
    /// Upstream resolver for names outside our zones: ADDR[:PORT] (plain DNS,
    /// port 53) or tls://ADDR[:PORT][#NAME] (DNS over TLS, port 853, the
    /// certificate checked for NAME, else for ADDR). Repeatable; tried in
    /// order, an upstream that failed twice in a row last. Default: the
    /// nameservers of /etc/resolv.conf, never our own listen addresses.
    #[arg(long = "upstream", value_name = "[tls://]ADDR[:PORT][#NAME]", env = "SVCNET_UPSTREAM", value_delimiter = ',', value_parser = parse_upstream)]
    upstreams: Vec<svcnet_forward::Upstream>,
    /// PEM file of CA certificates to trust for tls:// upstreams, besides
    /// the system's.
    #[arg(long, value_name = "FILE", env = "SVCNET_UPSTREAM_CA")]
    upstream_ca: Option<PathBuf>,
    /// Do not forward: names outside our zones get REFUSED.
    #[arg(long, conflicts_with = "upstreams")]
    no_upstream: bool,
    /// Bytes of forwarded answers to keep in the cache (0 = no cache).
    #[arg(long, default_value_t = 32 << 20, env = "SVCNET_CACHE_BYTES")]
    cache_bytes: usize,
    /// UDP worker threads per listen address (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    udp_workers: usize,
    /// Receive coalescing: a UDP worker receiving at least RATE queries per
    /// second pauses --udp-coalesce-pause after each batch, so that it is
    /// woken less often and answers more per wake-up (less CPU per query,
    /// up to that pause more latency); below RATE it never pauses. 0 turns
    /// it off.
    #[arg(long, value_name = "RATE", default_value_t = svcnet_server::Coalesce::DEFAULT.above, env = "SVCNET_UDP_COALESCE")]
    udp_coalesce: u32,
    /// How long each --udp-coalesce pause lasts, in microseconds.
    #[arg(long, value_name = "MICROS", default_value_t = svcnet_server::Coalesce::DEFAULT_PAUSE_MICROS,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    udp_coalesce_pause: u64,
    /// Send each UDP reply on its own. By default, a batch's replies to one
    /// client (a resolver asking A and AAAA at once, a node cache) go out in
    /// one segmented send (UDP_SEGMENT), which the kernel routes and builds
    /// once; the client receives the same datagrams either way.
    #[arg(long, env = "SVCNET_NO_UDP_SEGMENT")]
    no_udp_segment: bool,
    /// Open TCP connections at most. One more is accepted and closed at once
    /// (svcnet_tcp_connections_refused_total), so clients retry instead of
    /// waiting in the listen backlog; UDP is never slowed by TCP.
    #[arg(long, default_value_t = 4096, env = "SVCNET_TCP_MAX_CONNECTIONS")]
    tcp_max_connections: usize,
    /// Seconds a TCP connection may stay idle (no query, or a reply not read)
    /// before it is closed.
    #[arg(long, default_value_t = 10, env = "SVCNET_TCP_IDLE_TIMEOUT")]
    tcp_idle_timeout: u64,
    /// Log queries at info level, one event each: client, protocol, name,
    /// type, rcode, answers, latency, forwarded. Alone: every query; with a
    /// RATE between 0 and 1, about that share (0.01 logs every 100th query).
    #[arg(long, value_name = "RATE", env = "SVCNET_LOG_QUERIES", num_args = 0..=1, default_missing_value = "1", value_parser = parse_rate)]
    log_queries: Option<f64>,
    /// Serve a real cluster: a kubeconfig file, or NAME=FILE for one of several
    /// clusters (clusterset.local). Repeatable. Without -f, --cluster and
    /// --kubeconfig, inside a pod the in-cluster service account is used.
    #[arg(long, value_name = "[NAME=]FILE")]
    kubeconfig: Vec<String>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Serve only these namespaces of the API (repeatable; default all).
    #[arg(
        long = "namespace",
        value_name = "NS",
        env = "SVCNET_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Objects per list page when (re)listing from the API.
    #[arg(long, default_value_t = 500)]
    api_page_size: u32,
    /// Use streaming lists (sendInitialEvents, Kubernetes 1.32+) instead of pages.
    #[arg(long)]
    api_streaming_lists: bool,
    /// Requests per second to the API server, on average (0 = unlimited).
    #[arg(long, default_value_t = 20.0, env = "SVCNET_API_QPS")]
    api_qps: f64,
    /// Requests allowed at once above --api-qps.
    #[arg(long, default_value_t = 50, env = "SVCNET_API_BURST")]
    api_burst: u32,
    /// How long names in our zones answer SERVFAIL while waiting for the first
    /// complete list from the API (e.g. 5s, 500ms); then serve anyway.
    #[arg(long, default_value = "5s", env = "SVCNET_STARTUP_TIMEOUT", value_parser = parse_duration)]
    startup_timeout: std::time::Duration,
    /// Admin listener: GET /health (liveness), /ready (readiness), /metrics
    /// (Prometheus) and /services (what is served; JSON, or HTML with
    /// ?format=html; ?namespace=, ?cluster=, ?limit= narrow it). Default
    /// 127.0.0.1:8080 when that port is free.
    #[arg(long, value_name = "ADDR:PORT", env = "SVCNET_ADMIN")]
    admin: Option<SocketAddr>,
    /// No admin listener.
    #[arg(long, conflicts_with = "admin")]
    no_admin: bool,
    /// Keep the last good API state in FILE and answer from it (flagged stale)
    /// after a restart until the API is synced.
    #[arg(long, value_name = "FILE", env = "SVCNET_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Response-rate limit: at most N UDP responses per second to one client
    /// network (/24, IPv6 /56); beyond it every other response is an empty
    /// truncated one (the client retries over TCP) and the rest are dropped.
    /// 0 (the default) turns it off: a node's pods may share one address.
    #[arg(long, value_name = "N", default_value_t = 0, env = "SVCNET_RRL",
          value_parser = clap::value_parser!(u32).range(0..=65534))]
    rrl: u32,
    /// On SIGTERM/SIGINT, keep answering this long with /ready at 503 (so
    /// endpoints drop this replica first), then stop. A second signal stops
    /// at once.
    #[arg(long, default_value = "0s", env = "SVCNET_LAMEDUCK", value_parser = parse_duration)]
    lameduck: std::time::Duration,
}

/// `10.0.0.2`, `10.0.0.2:5353`, `[fd00::1]:53`, `fd00::1`,
/// `tls://1.1.1.1#cloudflare-dns.com`.
fn parse_upstream(s: &str) -> Result<svcnet_forward::Upstream, String> {
    s.parse()
        .map_err(|e: svcnet_forward::ForwardError| e.to_string())
}

/// A share of queries, 0 to 1; `true` and `false` (from a config file's
/// `log-queries = true`) mean 1 and 0.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s {
        "true" => return Ok(1.0),
        "false" => return Ok(0.0),
        _ => {}
    }
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a rate between 0 and 1 (e.g. 0.01)")),
    }
}

/// `5s`, `500ms`, `2m` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 5s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

impl ServeArgs {
    /// The index and control-plane settings; an API cluster named like
    /// `--cluster-id` is the one `cluster.local` answers for.
    fn index_config(&self) -> (IndexConfig, ControlConfig) {
        let (mut index, control) = self.state.configs(&self.listen);
        if self
            .kube_clusters()
            .iter()
            .any(|(id, _)| *id == self.state.cluster_id)
        {
            index.local_cluster = Some(self.state.cluster_id.clone());
        }
        (index, control)
    }

    /// The settings a reload cannot change (sockets, sources, the emulated
    /// control plane), named by their keys, to warn when they differ.
    fn restart_only(&self) -> Vec<(&'static str, String)> {
        let s = &self.state;
        // In API mode the Pod watch is started or not by `pods` at start.
        let pods = if self.kube_clusters().is_empty() {
            String::new()
        } else {
            format!("{:?}", self.index_config().0.pods)
        };
        vec![
            ("pods (with the Kubernetes API)", pods),
            ("startup-timeout", format!("{:?}", self.startup_timeout)),
            ("listen", format!("{:?}", self.listen)),
            ("udp-workers", self.udp_workers.to_string()),
            (
                "udp-coalesce",
                format!("{} {}", self.udp_coalesce, self.udp_coalesce_pause),
            ),
            ("udp-segment", (!self.no_udp_segment).to_string()),
            ("tcp-max-connections", self.tcp_max_connections.to_string()),
            ("tcp-idle-timeout", self.tcp_idle_timeout.to_string()),
            ("log-queries", format!("{:?}", self.log_queries)),
            ("admin", format!("{:?} {}", self.admin, self.no_admin)),
            ("filename", format!("{:?}", s.filename)),
            ("cluster", format!("{:?}", s.cluster)),
            ("cluster-id", s.cluster_id.clone()),
            (
                "kubeconfig",
                format!("{:?} {:?}", self.kubeconfig, self.context),
            ),
            ("namespace", format!("{:?}", self.namespaces)),
            (
                "api",
                format!(
                    "{} {} {} {}",
                    self.api_page_size, self.api_streaming_lists, self.api_qps, self.api_burst
                ),
            ),
            ("state-file", format!("{:?}", self.state_file)),
            ("pod-cidr", format!("{:?}", s.pod_cidr)),
            ("service-cidr", format!("{:?}", s.service_cidr)),
            ("nodes", format!("{:?}", s.nodes)),
            ("lameduck", format!("{:?}", self.lameduck)),
            ("rrl", self.rrl.to_string()),
        ]
    }

    /// `--upstream`, else the nameservers of /etc/resolv.conf that are not
    /// this server itself (a forwarding loop).
    fn upstreams(&self) -> Vec<svcnet_forward::Upstream> {
        if self.no_upstream {
            return Vec::new();
        }
        if !self.upstreams.is_empty() {
            return self.upstreams.clone();
        }
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let ourselves = |u: &SocketAddr| {
            self.listen.iter().any(|l| {
                l.port() == u.port()
                    && (l.ip() == u.ip() || (l.ip().is_unspecified() && u.ip().is_loopback()))
            })
        };
        svcnet_forward::parse_resolv_conf(&text)
            .into_iter()
            .filter(|u| !ourselves(u))
            .map(svcnet_forward::Upstream::from)
            .collect()
    }

    /// The API clusters: `--kubeconfig [NAME=]FILE`, or the in-cluster
    /// account when nothing else names a source.
    fn kube_clusters(&self) -> Vec<(String, svcnet_kube::KubeSettings)> {
        let settings = |kubeconfig: Option<PathBuf>| svcnet_kube::KubeSettings {
            kubeconfig,
            context: self.context.clone(),
            namespaces: self.namespaces.clone(),
            pods: matches!(self.state.pods, PodsArg::Verified),
            page_size: self.api_page_size,
            streaming_lists: self.api_streaming_lists,
            rate_limit: (self.api_qps > 0.0).then_some((self.api_qps, self.api_burst)),
        };
        let mut out: Vec<(String, svcnet_kube::KubeSettings)> = self
            .kubeconfig
            .iter()
            .map(|k| match k.split_once('=') {
                Some((name, file)) => (name.to_owned(), settings(Some(PathBuf::from(file)))),
                None => (
                    self.state.cluster_id.clone(),
                    settings(Some(PathBuf::from(k))),
                ),
            })
            .collect();
        let nothing_else =
            out.is_empty() && self.state.filename.is_empty() && self.state.cluster.is_empty();
        if nothing_else && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            out.push((self.state.cluster_id.clone(), settings(None)));
        }
        out
    }
}

#[derive(Args)]
struct ResolveArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Namespace of the asking pod (for the search path).
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// The name to look up.
    name: String,
    /// The record type.
    #[arg(default_value = "A")]
    rtype: String,
}

#[derive(Args)]
struct LintArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Warnings fail too (exit 1).
    #[arg(long)]
    strict: bool,
}

impl StateArgs {
    fn clusters(&self) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
        let clusters = self.manifest_clusters()?;
        if clusters.is_empty() {
            bail!("no manifests: give -f PATH (a file, a directory or -) or --cluster NAME=PATH");
        }
        Ok(clusters)
    }

    /// The manifest clusters (possibly none).
    fn manifest_clusters(&self) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
        let mut clusters = Vec::new();
        if !self.filename.is_empty() {
            clusters.push((self.cluster_id.clone(), self.filename.clone()));
        }
        for c in &self.cluster {
            let Some((name, path)) = c.split_once('=') else {
                bail!("--cluster {c:?}: expected NAME=PATH");
            };
            match clusters.iter_mut().find(|(n, _)| n == name) {
                Some((_, paths)) => paths.push(PathBuf::from(path)),
                None => clusters.push((name.to_owned(), vec![PathBuf::from(path)])),
            }
        }
        Ok(clusters)
    }

    fn configs(&self, listen: &[SocketAddr]) -> (IndexConfig, ControlConfig) {
        let advertise = if self.advertise.is_empty() {
            listen
                .iter()
                .map(SocketAddr::ip)
                .filter(|ip| !ip.is_unspecified())
                .collect()
        } else {
            self.advertise.clone()
        };
        let mut reverse_cidrs = self.service_cidr.clone();
        reverse_cidrs.extend(&self.pod_cidr);
        let index = IndexConfig {
            zones: self
                .zone
                .iter()
                .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            ttl: self.ttl,
            pods: match self.pods {
                PodsArg::Verified => PodMode::Verified,
                PodsArg::Insecure => PodMode::Insecure,
                PodsArg::Disabled => PodMode::Disabled,
            },
            ptr_all: self.ptr == PtrArg::All,
            advertise,
            cluster_names: !self.no_cluster_names,
            endpoint_pod_names: self.endpoint_pod_names,
            autopath: self.autopath,
            clusterset_cidr: self.clusterset_cidr,
            reverse_cidrs,
            local_cluster: Some(self.cluster_id.clone()).filter(|_| {
                !self.filename.is_empty()
                    || self
                        .cluster
                        .iter()
                        .any(|c| c.starts_with(&format!("{}=", self.cluster_id)))
            }),
            ..IndexConfig::default()
        };
        let control = ControlConfig {
            pod_cidrs: self.pod_cidr.clone(),
            service_cidrs: self.service_cidr.clone(),
            nodes: self.nodes.clone(),
            cluster: self.cluster_id.clone(),
        };
        (index, control)
    }

    fn pipeline(&self) -> anyhow::Result<svcnet_server::Pipeline> {
        let (index, control) = self.configs(&["127.0.0.1:1053".parse()?]);
        Ok(svcnet_server::Pipeline::load(
            &self.clusters()?,
            index,
            &control,
        )?)
    }
}

/// The log filter, reloadable while serving.
type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

fn init_logging(filter: &str, format: LogFormat) -> FilterHandle {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    handle
}

/// The command line with the config file's settings merged in.
fn command_line(argv: &[std::ffi::OsString]) -> anyhow::Result<Vec<std::ffi::OsString>> {
    match config::path_in(argv) {
        Some(path) => config::merge(argv, &config::ConfigFile::load(&path)?),
        None => Ok(argv.to_vec()),
    }
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let merged = match command_line(&argv) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("svcnet: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(merged);
    let logs = init_logging(&cli.log, cli.log_format);
    match run(cli.command, &argv, logs, cli.log_format) {
        Ok(code) => code,
        Err(e) => {
            // Our errors name their cause in their own message; print each
            // further cause only when it adds something.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            eprintln!("svcnet: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(
    command: Command,
    argv: &[std::ffi::OsString],
    logs: FilterHandle,
    log_format: LogFormat,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let (index, control) = args.index_config();
            let pods = index.pods;
            let kube = args.kube_clusters();
            let clusters = if kube.is_empty() {
                args.state.clusters()?
            } else {
                args.state.manifest_clusters()?
            };
            let admin = match (args.no_admin, args.admin) {
                (true, _) => None,
                (false, Some(addr)) => Some((addr, true)),
                (false, None) => Some((SocketAddr::from(([127, 0, 0, 1], 8080)), false)),
            };
            let config = svcnet_server::ServeConfig {
                listen: args.listen.clone(),
                udp_workers: args.udp_workers,
                coalesce: svcnet_server::Coalesce {
                    above: args.udp_coalesce,
                    nap: std::time::Duration::from_micros(args.udp_coalesce_pause),
                },
                segment: !args.no_udp_segment,
                index,
                control,
                clusters,
                kube,
                startup_timeout: args.startup_timeout,
                state_file: args.state_file.clone(),
                upstreams: args.upstreams(),
                upstream_ca: args.upstream_ca.clone(),
                cache_bytes: args.cache_bytes,
                admin,
                tcp: svcnet_net_limits(args.tcp_max_connections, args.tcp_idle_timeout),
                rrl: args.rrl,
                query_log: svcnet_server::QueryLog::with_rate(args.log_queries.unwrap_or(0.0)),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let handle = Arc::new(std::sync::OnceLock::new());
            signals(Arc::clone(&stop), Arc::clone(&handle), args.lameduck);
            let reload = Reload {
                argv: argv.to_vec(),
                logs,
                started: args.restart_only(),
                file: config::path_in(argv),
                log_format,
                pods,
            };
            svcnet_server::serve(config, stop, move |_, h| {
                let _ = handle.set(h.clone());
                reload.spawn(h);
            })
            .context("serve")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolve(args) => resolve::run(
            &args.state.pipeline()?,
            &args.state,
            &args.namespace,
            &args.name,
            &args.rtype,
        ),
        Command::Zone(state) => {
            let mut p = state.pipeline()?;
            print_errors(&p);
            let snap = p.index.build();
            write_stdout(&svcnet_dns::render_zones(&snap));
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint(args) => lint(&args),
    }
}

fn svcnet_net_limits(max: usize, idle: u64) -> svcnet_server::TcpLimits {
    svcnet_server::TcpLimits {
        max_connections: max,
        idle_timeout: std::time::Duration::from_secs(idle),
    }
}

/// SIGINT/SIGTERM stop the server, after the lame-duck period (during which
/// `/ready` is 503 and DNS is still answered); a second signal stops it at
/// once.
fn signals(
    stop: Arc<AtomicBool>,
    handle: Arc<std::sync::OnceLock<svcnet_server::ServerHandle>>,
    lameduck: std::time::Duration,
) {
    std::thread::spawn(move || {
        on_own_runtime(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if !lameduck.is_zero() {
                if let Some(h) = handle.get() {
                    h.drain();
                }
                tracing::info!(
                    ?lameduck,
                    "stopping after the lame-duck period (/ready is 503)"
                );
                tokio::select! {
                    () = tokio::time::sleep(lameduck) => {}
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
        });
        tracing::info!("stopping");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// Rereads the config file when it changes (checked every 2 s, which also
/// catches a ConfigMap's symlink swap) or on SIGHUP, and applies what can
/// change while serving: answers' shape, upstreams, cache size, log filter.
/// Other changes are logged as needing a restart.
struct Reload {
    argv: Vec<std::ffi::OsString>,
    logs: FilterHandle,
    /// The restart-only settings the server started with.
    started: Vec<(&'static str, String)>,
    file: Option<PathBuf>,
    log_format: LogFormat,
    pods: PodMode,
}

impl Reload {
    fn spawn(self, server: svcnet_server::ServerHandle) {
        let Some(file) = self.file.clone() else {
            // Without a file SIGHUP has nothing to reread; keep its default
            // action from killing the server anyway.
            std::thread::spawn(move || {
                hangups(|| tracing::info!("SIGHUP: no --config file to reload"))
            });
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            hangups(|| {
                let _ = tx.send(());
            })
        });
        std::thread::spawn(move || {
            let stamp = |p: &std::path::Path| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().ok(), m.len()))
            };
            let mut seen = stamp(&file);
            loop {
                let signalled = match rx.recv_timeout(std::time::Duration::from_secs(2)) {
                    Ok(()) => true,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        // No SIGHUP handler: keep watching the file.
                        std::thread::sleep(std::time::Duration::from_secs(2));
                        false
                    }
                };
                let now = stamp(&file);
                if !signalled && now == seen {
                    continue;
                }
                seen = now;
                self.apply(&server);
            }
        });
    }

    fn apply(&self, server: &svcnet_server::ServerHandle) {
        let args = match command_line(&self.argv)
            .and_then(|m| Cli::try_parse_from(m).map_err(|e| anyhow::anyhow!("{e}")))
        {
            Ok(Cli {
                command: Command::Serve(args),
                log,
                log_format,
                ..
            }) => {
                if log_format != self.log_format {
                    tracing::warn!(
                        keys = ?["log-format"],
                        "these settings change only when svcnet restarts"
                    );
                }
                match tracing_subscriber::EnvFilter::try_new(&log) {
                    Ok(f) => {
                        let _ = self.logs.reload(f);
                    }
                    Err(e) => tracing::warn!("log filter {log:?} ignored: {e}"),
                }
                args
            }
            Ok(_) => return,
            Err(e) => {
                tracing::error!("configuration not reloaded (the served one stays): {e}");
                return;
            }
        };
        let restart: Vec<&str> = args
            .restart_only()
            .iter()
            .zip(&self.started)
            .filter(|(now, then)| now != then)
            .map(|(now, _)| now.0)
            .collect();
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "these settings change only when svcnet restarts");
        }
        let mut index = args.index_config().0;
        if !args.kube_clusters().is_empty() {
            // Pod records follow the Pod watch chosen at start.
            index.pods = self.pods;
        }
        server.reconfigure(svcnet_server::Reconfig {
            index,
            upstreams: args.upstreams(),
            cache_bytes: args.cache_bytes,
            upstream_ca: args.upstream_ca.clone(),
        });
    }
}

/// Runs `work` on a small runtime of the calling thread (signal waiting,
/// away from the serving runtime).
fn on_own_runtime(work: impl Future<Output = ()>) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(work),
        Err(e) => tracing::warn!("no signal handling: {e}"),
    }
}

/// Calls `each` on every SIGHUP (and so keeps SIGHUP from ending the process).
fn hangups(mut each: impl FnMut()) {
    on_own_runtime(async {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            each();
        }
    });
}

/// Writes command output; a closed pipe (`svcnet zone | head`) ends the
/// output quietly instead of panicking as `print!` would.
pub(crate) fn write_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn print_errors(p: &svcnet_server::Pipeline) {
    for d in p
        .diagnostics()
        .filter(|d| d.severity == svcnet_manifest::Severity::Error)
    {
        eprintln!("{d}");
    }
}

fn lint(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let p = args.state.pipeline()?;
    let zone = args
        .state
        .zone
        .first()
        .map_or("cluster.local", String::as_str);
    let mut all: Vec<svcnet_manifest::Diagnostic> = Vec::new();
    for (_, loaded) in &p.loads {
        all.extend(loaded.diagnostics.iter().cloned());
        all.extend(svcnet_manifest::lint::lint(
            &loaded.objects,
            &loaded.view,
            zone,
        ));
    }
    all.sort();
    all.dedup();
    let (mut errors, mut warnings) = (0, 0);
    let mut out = String::new();
    for d in &all {
        match d.severity {
            svcnet_manifest::Severity::Error => {
                errors += 1;
                let _ = writeln!(out, "{d}");
            }
            svcnet_manifest::Severity::Warning => {
                warnings += 1;
                // SPEC §1.2's `file:line:column: kind ns/name: problem`, with
                // the severity in front of the problem.
                let mut w = d.clone();
                w.problem = format!("warning: {}", d.problem);
                let _ = writeln!(out, "{w}");
            }
        }
    }
    let files: usize = p.loads.iter().map(|(_, l)| l.files).sum();
    write_stdout(&out);
    eprintln!("{files} files: {errors} errors, {warnings} warnings");
    Ok(if errors > 0 || (args.strict && warnings > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
