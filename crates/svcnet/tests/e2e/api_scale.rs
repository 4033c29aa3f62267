//! Scale in Kubernetes API mode (issue "Kubernetes API mode": "5,000
//! services syncing in seconds"; the note needs the figures): 5,000
//! Services with one EndpointSlice of 10 endpoints each (50,000 endpoints)
//! in a fake API server, and the binary under test (the test build, usually
//! a debug build, so the figures are an upper bound) from process start to
//! the first correct answer for the last service, then its resident memory.
//!
//! The figures are printed on lines starting with `MEASURE` (run with
//! `--nocapture` to see them); the only bound asserted is a generous one.
//! `SVCNET_SCALE_BIN=target/release/svcnet` measures another build.

use std::time::Duration;

use serde_json::{Value, json};
use svcnet_fakeapi::FakeApi;
use tempfile::TempDir;

use crate::harness::{Answer, BIN, Server, query, wait_until};

const SERVICES: usize = 5_000;
const ENDPOINTS_PER_SERVICE: usize = 10;
const NAMESPACES: usize = 50;

/// Pod IP of endpoint `k` of service `i`: 10.244.0.0/16, all distinct.
fn endpoint_ip(i: usize, k: usize) -> String {
    let n = i * ENDPOINTS_PER_SERVICE + k;
    format!("10.244.{}.{}", n / 256, n % 256)
}

fn namespace_of(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

/// Even services have a ClusterIP, odd ones are headless (their endpoints
/// get names and answer directly).
fn objects() -> Vec<Value> {
    let mut out: Vec<Value> = (0..NAMESPACES)
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}}))
        .collect();
    for i in 0..SERVICES {
        let (ns, name) = (namespace_of(i), format!("svc-{i}"));
        let headless = i % 2 == 1;
        let ip = if headless {
            "None".to_owned()
        } else {
            format!("10.96.{}.{}", (i + 10) / 256, (i + 10) % 256)
        };
        out.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "labels": {"app": name}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
        let endpoints: Vec<Value> = (0..ENDPOINTS_PER_SERVICE)
            .map(|k| {
                let pod = format!("{name}-{k}");
                let mut e = json!({"addresses": [endpoint_ip(i, k)],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": pod},
                    "nodeName": format!("node-{}", k % 3)});
                if headless {
                    e["hostname"] = json!(pod);
                }
                e
            })
            .collect();
        out.push(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": format!("{name}-abcde"),
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}),
        );
    }
    out
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
    let api = FakeApi::start();
    let load = std::time::Instant::now();
    api.apply_all(objects());
    let loaded = load.elapsed();
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig(dir.path());

    let bin = std::env::var("SVCNET_SCALE_BIN").unwrap_or_else(|_| BIN.to_owned());
    let s = Server::start_bin(
        &bin,
        &[
            "--kubeconfig",
            &kubeconfig.to_string_lossy(),
            "--pods",
            "disabled",
            "--no-admin",
            "--startup-timeout",
            "120s",
        ],
    );
    let listening = s.started().elapsed();
    let last = SERVICES - 1;
    let name = format!("svc-{last}.{}.svc.cluster.local", namespace_of(last));
    let mut want: Vec<String> = (0..ENDPOINTS_PER_SERVICE)
        .map(|k| endpoint_ip(last, k))
        .collect();
    want.sort();
    let correct = || {
        let a = Answer::from_message(
            "hickory-udp",
            &s.udp(&query(&name, hickory_proto::rr::RecordType::A)),
        );
        a.status == "NOERROR" && a.rdata("A") == want
    };
    let answered = wait_until(Duration::from_secs(60), correct);
    let first_answer = s.started().elapsed();
    assert!(
        answered.is_some(),
        "{name} not answered within 60 s\n{}",
        s.log_text()
    );
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
