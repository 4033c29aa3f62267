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

mod resolve;

#[derive(Parser)]
#[command(name = "svcnet", version, about = "Kubernetes Service DNS, from manifests or a cluster", long_about = None, after_help = TOP_HELP)]
struct Cli {
    /// Log filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, global = true, default_value = "info", env = "SVCNET_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS for the manifests, live as the files change.
    #[command(long_about = SERVE_HELP)]
    Serve(ServeArgs),
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
served, and --state-file lets a restarted replica answer before the API is back. /health, /ready and \
/metrics are on --admin. Settings marked [env: ...] can also come from the environment (a ConfigMap).

Examples:
  svcnet serve -f examples/local
  dig @127.0.0.1 -p 1053 web-0.nginx.default.svc.cluster.local
  svcnet serve --kubeconfig ~/.kube/config --listen 127.0.0.1:1053 --admin 127.0.0.1:8080

Names outside the served zones are forwarded to --upstream (default: the nameservers of \
/etc/resolv.conf); --no-upstream answers them REFUSED.";

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
    /// Upstream resolver for names outside our zones, ADDR or ADDR:PORT
    /// (repeatable; tried in order). Default: the nameservers of
    /// /etc/resolv.conf, never our own listen addresses.
    #[arg(long = "upstream", value_name = "ADDR[:PORT]", env = "SVCNET_UPSTREAM", value_delimiter = ',', value_parser = parse_upstream)]
    upstreams: Vec<SocketAddr>,
    /// Do not forward: names outside our zones get REFUSED.
    #[arg(long, conflicts_with = "upstreams")]
    no_upstream: bool,
    /// Bytes of forwarded answers to keep in the cache (0 = no cache).
    #[arg(long, default_value_t = 32 << 20, env = "SVCNET_CACHE_BYTES")]
    cache_bytes: usize,
    /// UDP worker threads per listen address (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    udp_workers: usize,
    /// Open TCP connections at most.
    #[arg(long, default_value_t = 4096)]
    tcp_max_connections: usize,
    /// Seconds a TCP connection may stay idle.
    #[arg(long, default_value_t = 10)]
    tcp_idle_timeout: u64,
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
    /// Admin listener: GET /health (liveness) and /ready (readiness). Default
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
}

/// `10.0.0.2`, `10.0.0.2:5353`, `[fd00::1]:53`, `fd00::1`.
fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("{s:?} is not an address (ADDR or ADDR:PORT)"))
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
    /// `--upstream`, else the nameservers of /etc/resolv.conf that are not
    /// this server itself (a forwarding loop).
    fn upstreams(&self) -> Vec<SocketAddr> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
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

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let (mut index, control) = args.state.configs(&args.listen);
            let kube = args.kube_clusters();
            let clusters = if kube.is_empty() {
                args.state.clusters()?
            } else {
                args.state.manifest_clusters()?
            };
            if kube.iter().any(|(id, _)| *id == args.state.cluster_id) {
                index.local_cluster = Some(args.state.cluster_id.clone());
            }
            let admin = match (args.no_admin, args.admin) {
                (true, _) => None,
                (false, Some(addr)) => Some((addr, true)),
                (false, None) => Some((SocketAddr::from(([127, 0, 0, 1], 8080)), false)),
            };
            let config = svcnet_server::ServeConfig {
                listen: args.listen.clone(),
                udp_workers: args.udp_workers,
                index,
                control,
                clusters,
                kube,
                startup_timeout: args.startup_timeout,
                state_file: args.state_file.clone(),
                upstreams: args.upstreams(),
                cache_bytes: args.cache_bytes,
                admin,
                tcp: svcnet_net_limits(args.tcp_max_connections, args.tcp_idle_timeout),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let on_signal = Arc::clone(&stop);
            ctrlc_stop(on_signal);
            svcnet_server::serve(config, stop, |_| {}).context("serve")?;
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

/// SIGINT/SIGTERM stop the server.
fn ctrlc_stop(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        });
        tracing::info!("stopping");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
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
