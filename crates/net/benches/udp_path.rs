//! The UDP answer path for one kind of query, repeated: `udp_path KIND N`.
//! Natively (`cargo bench -p svcnet-net --bench udp_path -- clusterip
//! 1000000`) it prints nanoseconds per query; under callgrind
//! (`bench/instructions.sh`) the instruction count per query, which does
//! not depend on the machine's load.
//!
//! Each query goes through what a UDP worker does for it apart from the
//! system calls: the engine on the served snapshot, the metrics, the reply
//! written into a reused buffer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use svcnet_index::{Index, IndexConfig};
use svcnet_manifest::control::ControlConfig;
use svcnet_manifest::watch::ManifestSource;
use svcnet_net::{Shared, answer_and_count};
use svcnet_wire::{encode_name, rtype};

/// The query kinds of the mix, plus PTR.
const KINDS: [(&str, &str, u16); 5] = [
    ("clusterip", "backend.default.svc.cluster.local", rtype::A),
    ("headless", "nginx.default.svc.cluster.local", rtype::A),
    (
        "srv",
        "_web._tcp.nginx.default.svc.cluster.local",
        rtype::SRV,
    ),
    (
        "nxdomain",
        "api.example.com.default.svc.cluster.local",
        rtype::A,
    ),
    ("ptr", "1.0.96.10.in-addr.arpa", rtype::PTR),
];

fn packet(name: &str, qtype: u16) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    p.extend(encode_name(name).expect("bench names are valid"));
    p.extend(qtype.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    // EDNS, 1232 octets, as resolvers send today.
    p.extend([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    p
}

fn shared() -> Shared {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut index = Index::new(IndexConfig::default(), 1);
    let control = ControlConfig {
        cluster: "local".to_owned(),
        ..ControlConfig::default()
    };
    let mut source = ManifestSource::new(vec![root.join("local")], control);
    for d in source.load().expect("examples load").deltas() {
        index.apply("local", d);
    }
    Shared::new(index.build())
}

fn main() {
    // `cargo bench` adds `--bench`; only the words count.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let kind = words.first().map_or("all", String::as_str);
    let n: u64 = words
        .get(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or(1_000_000);
    let shared = shared();
    let stats = shared.metrics.udp_worker();
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let mut out = Vec::with_capacity(65535);
    for (name, qname, qtype) in KINDS {
        if kind != "all" && kind != name {
            continue;
        }
        let q = packet(qname, qtype);
        let start = Instant::now();
        for i in 0..n {
            answer_and_count(&shared, &stats, &q, i as u32, peer, &mut out);
        }
        if n > 0 {
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            println!("{name:<10} {n:>9} queries  {ns:>8.1} ns/query");
        }
    }
}
