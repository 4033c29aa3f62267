//! Scale in Kubernetes API mode (issue "Kubernetes API mode": "5,000
//! services syncing in seconds"; the note needs the figures): 5,000
//! Services with one EndpointSlice of 10 endpoints each (50,000 endpoints)
//! in a fake API server, and the binary under test (the test build, usually
//! a debug build, so the figures are an upper bound) from process start to
//! the first correct answer for the last service, then its resident memory.
//!
//! And the incremental index (issue "Performance" item 3): endpoint changes
//! of headless services while a load generator queries, each timed from
//! the change in the API to the first answer that has it, then a burst of
//! changes timed until the last is answered.
//!
//! The figures are printed on lines starting with `MEASURE` (run with
//! `--nocapture` to see them); the only bounds asserted are generous ones.
//! `SVCNET_SCALE_BIN=target/release/svcnet` measures another build,
//! `SVCNET_SCALE_SERVICES=N` another number of services for the churn test
//! and `SVCNET_CHURN_QPS` its query load (default 2,000 queries/s).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use svcnet_fakeapi::FakeApi;
use tempfile::TempDir;

use crate::harness::{Answer, BIN, Server, encode, parse, query, udp_exchange, wait_until};
use crate::metrics::{scrape, value};

const SERVICES: usize = 5_000;
const ENDPOINTS_PER_SERVICE: usize = 10;
const NAMESPACES: usize = 50;

/// The pod range the servers are started with: room for 8M endpoints.
const POD_CIDR: &str = "10.128.0.0/9";

/// Pod IP of endpoint `k` of service `i`: in 10.128.0.0/10, all distinct.
fn endpoint_ip(i: usize, k: usize) -> String {
    let n = i * ENDPOINTS_PER_SERVICE + k;
    format!("10.{}.{}.{}", 128 + n / 65536, n / 256 % 256, n % 256)
}

/// Pod IP of endpoint `k` after change `c`: in 10.192.0.0/10, all distinct.
fn changed_ip(c: usize, k: usize) -> String {
    let n = c * ENDPOINTS_PER_SERVICE + k;
    format!("10.{}.{}.{}", 192 + n / 65536, n / 256 % 256, n % 256)
}

fn namespace_of(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

/// `services` Services: even ones have a ClusterIP, odd ones are headless
/// (their endpoints get names and answer directly).
fn objects(services: usize) -> Vec<Value> {
    let mut out: Vec<Value> = (0..NAMESPACES)
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}}))
        .collect();
    for i in 0..services {
        let (ns, name) = (namespace_of(i), format!("svc-{i}"));
        let headless = i % 2 == 1;
        let ip = if headless {
            "None".to_owned()
        } else {
            let n = i + 10;
            format!("10.{}.{}.{}", 96 + n / 65536, n / 256 % 256, n % 256)
        };
        out.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "labels": {"app": name}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
        let ips: Vec<String> = (0..ENDPOINTS_PER_SERVICE)
            .map(|k| endpoint_ip(i, k))
            .collect();
        out.push(endpoint_slice(i, &ips));
    }
    out
}

/// The EndpointSlice of service `i` with endpoints at `ips`.
fn endpoint_slice(i: usize, ips: &[String]) -> Value {
    let (ns, name) = (namespace_of(i), format!("svc-{i}"));
    let endpoints: Vec<Value> = ips
        .iter()
        .enumerate()
        .map(|(k, ip)| {
            let pod = format!("{name}-{k}");
            let mut e = json!({"addresses": [ip],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pod},
                "nodeName": format!("node-{}", k % 3)});
            if i % 2 == 1 {
                e["hostname"] = json!(pod);
            }
            e
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": format!("{name}-abcde"),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints})
}

/// A fake API with `services` Services and svcnet serving them, synced:
/// the last service answers with its endpoints.
struct Synced {
    api: FakeApi,
    _dir: TempDir,
    server: Server,
    bin: String,
    loaded: Duration,
    listening: Duration,
    first_answer: Duration,
}

/// `admin`: with the admin listener (its metrics), else without.
fn synced(services: usize, admin: bool) -> Synced {
    let api = FakeApi::start();
    let load = Instant::now();
    api.apply_all(objects(services));
    let loaded = load.elapsed();
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig(dir.path());

    let bin = std::env::var("SVCNET_SCALE_BIN").unwrap_or_else(|_| BIN.to_owned());
    let kubeconfig = kubeconfig.to_string_lossy();
    let mut args = vec![
        "--kubeconfig",
        &kubeconfig,
        "--pods",
        "disabled",
        "--pod-cidr",
        POD_CIDR,
        "--startup-timeout",
        "300s",
        // The index's debug lines say why a snapshot was built whole.
        "--log",
        "info,svcnet_server=debug",
    ];
    args.extend(if admin {
        ["--admin", "127.0.0.1:0"].as_slice()
    } else {
        ["--no-admin"].as_slice()
    });
    let s = Server::start_bin(&bin, &args);
    let listening = s.started().elapsed();
    let last = services - 1;
    let name = format!("svc-{last}.{}.svc.cluster.local", namespace_of(last));
    let want: Vec<String> = (0..ENDPOINTS_PER_SERVICE)
        .map(|k| endpoint_ip(last, k))
        .collect();
    let answered = wait_until(Duration::from_secs(300), || {
        a_records(&s, &name) == sorted(&want)
    });
    assert!(
        answered.is_some(),
        "{name} not answered within 300 s\n{}",
        s.log_text()
    );
    let first_answer = s.started().elapsed();
    Synced {
        api,
        _dir: dir,
        server: s,
        bin,
        loaded,
        listening,
        first_answer,
    }
}

fn sorted(ips: &[String]) -> Vec<String> {
    let mut v = ips.to_vec();
    v.sort();
    v
}

/// The A records `name` answers with (sorted; none unless NOERROR, or
/// when the reply is lost: under a query load a datagram may be dropped,
/// and the callers ask again).
fn a_records(s: &Server, name: &str) -> Vec<String> {
    let q = query(name, hickory_proto::rr::RecordType::A);
    // A short wait: a lost reply must not add seconds to a timed poll.
    let Some(reply) = udp_exchange(s.addr(), &encode(&q), Duration::from_millis(100)) else {
        return Vec::new();
    };
    let a = Answer::from_message("hickory-udp", &parse(&reply));
    if a.status != "NOERROR" {
        return Vec::new();
    }
    let mut ips = a.rdata("A");
    ips.sort();
    ips
}

/// `VmRSS`, `VmHWM` and `RssAnon` (the heap, without the mapped binary)
/// of a process, in kB.
fn memory_kb(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

#[test]
fn five_thousand_services_and_fifty_thousand_endpoints_sync_in_seconds() {
    let Synced {
        api: _api,
        _dir,
        server: s,
        bin,
        loaded,
        listening,
        first_answer,
    } = synced(SERVICES, false);
    let (rss, hwm, anon) = memory_kb(s.pid());
    let synced = s
        .log_lines()
        .into_iter()
        .find_map(|l| {
            l.split_once("Kubernetes API state complete after=")
                .map(|(_, after)| after.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    // The size of the complete snapshot: the `serving:` line after the
    // sync (logged just after the snapshot is in place).
    let final_serving = || {
        let lines = s.log_lines();
        let synced = lines.iter().position(|l| l.contains("state complete"))?;
        lines[synced..]
            .iter()
            .find_map(|l| l.split_once("serving: ").map(|(_, rest)| rest.to_owned()))
    };
    wait_until(Duration::from_secs(5), || final_serving().is_some());
    let serving = final_serving().unwrap_or_default();
    // A spot check away from the last one: a ClusterIP service and a
    // headless endpoint's own name.
    let spot = Answer::from_message(
        "hickory-udp",
        &s.udp(&query(
            "svc-1234.ns-34.svc.cluster.local",
            hickory_proto::rr::RecordType::A,
        )),
    );
    assert_eq!(spot.rdata("A"), ["10.96.4.220"], "{spot}");
    let host = Answer::from_message(
        "hickory-udp",
        &s.udp(&query(
            "svc-4321-7.svc-4321.ns-21.svc.cluster.local",
            hickory_proto::rr::RecordType::A,
        )),
    );
    assert_eq!(host.rdata("A"), [endpoint_ip(4321, 7)], "{host}");

    println!(
        "MEASURE api-scale: {SERVICES} services, {} endpoints, {NAMESPACES} namespaces; binary {bin}",
        SERVICES * ENDPOINTS_PER_SERVICE
    );
    println!("MEASURE api-scale: fake API loaded in {loaded:?}");
    println!("MEASURE api-scale: process start -> listening: {listening:?}");
    println!("MEASURE api-scale: watchers started -> state complete (svcnet log): {synced}");
    println!(
        "MEASURE api-scale: process start -> first correct answer for the last service: {first_answer:?}"
    );
    println!("MEASURE api-scale: VmRSS {rss} kB (RssAnon {anon} kB), VmHWM {hwm} kB after sync");
    println!("MEASURE api-scale: serving {serving}");
}

/// A load generator: `qps` A queries per second for the services' names,
/// from one socket, until stopped; counts the replies.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(s: &Server, services: usize, qps: u64) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind load socket");
        socket.connect(s.addr()).expect("connect load socket");
        socket
            .set_read_timeout(Some(Duration::from_micros(200)))
            .expect("read timeout");
        let queries: Vec<Vec<u8>> = (0..256)
            .map(|n| {
                let i = n * 7919 % services;
                let name = format!("svc-{i}.{}.svc.cluster.local", namespace_of(i));
                encode(&query(&name, hickory_proto::rr::RecordType::A))
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let (st, se, an) = (stop.clone(), sent.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut buf = [0u8; 4096];
            let mut n: u64 = 0;
            while !st.load(Ordering::Relaxed) {
                // Queries due by now at the fixed rate.
                let due = (start.elapsed().as_secs_f64() * qps as f64) as u64;
                while n < due {
                    let _ = socket.send(&queries[(n % 256) as usize]);
                    n += 1;
                }
                se.store(n, Ordering::Relaxed);
                while socket.recv(&mut buf).is_ok() {
                    an.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            stop,
            sent,
            answered,
            thread: Some(thread),
        }
    }

    /// Stops it; returns (sent, answered).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
        )
    }
}

/// Polls `name` every millisecond until it answers `want`; the time taken.
fn until_answered(s: &Server, name: &str, want: &[String], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if a_records(s, name) == want {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[test]
fn endpoint_changes_reach_answers_under_query_load() {
    let services: usize = std::env::var("SVCNET_SCALE_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SERVICES);
    let qps: u64 = std::env::var("SVCNET_CHURN_QPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let synced = synced(services, true);
    let (api, s) = (&synced.api, &synced.server);
    let admin = s.admin_addr();
    let builds = |kind: &str| {
        value(
            &scrape(admin),
            "svcnet_snapshot_builds_total",
            &[("kind", kind)],
        )
    };
    let (full_before, updates_before) = (builds("full"), builds("update"));
    let load = Load::start(s, services, qps);
    let headless = |c: usize| (c * 7919 % services) | 1;

    // One change at a time: each replaces a headless service's endpoints
    // with new addresses, timed until the service's name answers them.
    const ONE_BY_ONE: usize = 40;
    let mut took = Vec::new();
    for c in 0..ONE_BY_ONE {
        let i = headless(c);
        let ips: Vec<String> = (0..ENDPOINTS_PER_SERVICE)
            .map(|k| changed_ip(c, k))
            .collect();
        let name = format!("svc-{i}.{}.svc.cluster.local", namespace_of(i));
        api.apply(endpoint_slice(i, &ips));
        let t = until_answered(s, &name, &sorted(&ips), Duration::from_secs(30));
        took.push(t.unwrap_or_else(|| panic!("change {c} of {name} not answered in 30 s")));
        // An endpoint's own name follows too.
        let host = format!("svc-{i}-3.svc-{i}.{}.svc.cluster.local", namespace_of(i));
        let own = [ips[3].clone()];
        assert!(
            until_answered(s, &host, &own, Duration::from_secs(5)).is_some(),
            "{host} does not answer {own:?}"
        );
    }
    took.sort();
    // Each change was an update in place, none a full build.
    assert_eq!(
        builds("full"),
        full_before,
        "a change was built whole:\n{}",
        s.log_lines()
            .iter()
            .filter(|l| l.contains("snapshot built"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        builds("update") >= updates_before + ONE_BY_ONE as f64,
        "fewer updates than changes"
    );

    // A burst: changes applied back to back, timed until the last answers
    // (and then every one of them does).
    const BURST: usize = 200;
    let start = Instant::now();
    let mut wanted = Vec::new();
    for c in ONE_BY_ONE..ONE_BY_ONE + BURST {
        let i = headless(c);
        let ips: Vec<String> = (0..ENDPOINTS_PER_SERVICE)
            .map(|k| changed_ip(c, k))
            .collect();
        api.apply(endpoint_slice(i, &ips));
        wanted.push((
            format!("svc-{i}.{}.svc.cluster.local", namespace_of(i)),
            sorted(&ips),
        ));
    }
    let applied = start.elapsed();
    let (last, last_ips) = wanted.last().cloned().unwrap_or_default();
    assert!(
        until_answered(s, &last, &last_ips, Duration::from_secs(60)).is_some(),
        "the burst's last change was not answered in 60 s"
    );
    let burst = start.elapsed();
    let (sent, answered) = load.finish();
    for (name, ips) in &wanted {
        // A service changed twice in the burst answers its later change.
        let later = wanted
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(ips, |(_, v)| v);
        assert!(
            until_answered(s, name, later, Duration::from_secs(5)).is_some(),
            "{name} does not answer {later:?}"
        );
    }
    let builds = s
        .log_lines()
        .iter()
        .filter(|l| l.contains("serving: "))
        .count();

    println!(
        "MEASURE churn: {services} services, {} endpoints; binary {}",
        services * ENDPOINTS_PER_SERVICE,
        synced.bin
    );
    println!(
        "MEASURE churn: change -> answer, {ONE_BY_ONE} changes one at a time: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.9).as_secs_f64() * 1e3,
        percentile(&took, 1.0).as_secs_f64() * 1e3,
    );
    println!(
        "MEASURE churn: burst of {BURST} changes applied in {:.0} ms, all answered after {:.0} ms: {:.0} changes/s end to end",
        applied.as_secs_f64() * 1e3,
        burst.as_secs_f64() * 1e3,
        BURST as f64 / burst.as_secs_f64()
    );
    println!(
        "MEASURE churn: query load {qps}/s: {sent} sent, {answered} answered ({:.2}% lost); {builds} snapshots published",
        100.0 * sent.saturating_sub(answered) as f64 / sent.max(1) as f64
    );
    // Generous: a change is answered within seconds even in a debug build.
    assert!(percentile(&took, 0.5) < Duration::from_secs(5));
}
