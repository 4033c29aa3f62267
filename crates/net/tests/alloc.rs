//! ARCHITECTURE house style 2: zero heap allocations per answered query on
//! the UDP path, proven with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;

use svcnet_dns::{Outcome, Transport};
use svcnet_index::{Index, IndexConfig};
use svcnet_manifest::control::ControlConfig;
use svcnet_manifest::watch::ManifestSource;
use svcnet_net::metrics::QueryLog;
use svcnet_net::{Shared, answer_and_count};
use svcnet_wire::{encode_name, rtype};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a const-initialised thread-local, which never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Answered queries of every kind, then an outside name (REFUSED without an
/// upstream), a packet too short for a header and one with two questions.
fn queries() -> [Vec<u8>; 16] {
    [
        packet("web-0.nginx.default.svc.cluster.local", rtype::A, None),
        packet("NGINX.default.svc.cluster.local", rtype::A, Some(1232)),
        packet(
            "_web._tcp.nginx.default.svc.cluster.local",
            rtype::SRV,
            Some(4096),
        ),
        packet("nginx-headless.test.svc.cluster.local", rtype::SRV, None),
        packet("backend.default.svc.cluster.local", rtype::A, None),
        packet("backend.default.svc.cluster.local", rtype::AAAA, None),
        packet("database.default.svc.cluster.local", rtype::A, None),
        packet("missing.default.svc.cluster.local", rtype::A, Some(1232)),
        packet("1.0.96.10.in-addr.arpa", rtype::PTR, None),
        packet("cluster.local", rtype::SOA, None),
        packet("cluster.local", rtype::NS, None),
        packet("dns-version.cluster.local", rtype::TXT, None),
        packet("nginx-headless.test.svc.clusterset.local", rtype::A, None),
        packet("example.com", rtype::A, None),
        vec![1, 2, 3],
        vec![0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0],
    ]
}

fn packet(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut p = vec![
        0x12,
        0x34,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(edns.is_some()),
    ];
    p.extend(encode_name(name).expect("test names are valid"));
    p.extend(qtype.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    if let Some(size) = edns {
        p.extend([0, 0, 41]);
        p.extend(size.to_be_bytes());
        p.extend([0, 0, 0, 0, 0, 0]);
    }
    p
}

/// The two example clusters, indexed as `serve` indexes them.
fn example_shared() -> Shared {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut index = Index::new(IndexConfig::default(), 1);
    for (id, dir) in [("local", "local"), ("west", "west")] {
        let control = ControlConfig {
            cluster: id.to_owned(),
            ..ControlConfig::default()
        };
        let mut source = ManifestSource::new(vec![root.join(dir)], control);
        for d in source.load().expect("examples load").deltas() {
            index.apply(id, d);
        }
    }
    // The query log is off (the default), as the zero-allocation promise
    // is made for it.
    let shared = Shared::new(index.build());
    assert_eq!(shared.query_log, QueryLog::default());
    shared
}

#[test]
fn udp_path_answers_cluster_names_without_allocating() {
    let shared = example_shared();
    let stats = shared.metrics.udp_worker();
    let peer = SocketAddr::from(([127, 0, 0, 1], 5353));
    // Answers and counts a query as the UDP worker does.
    let serve = |q: &[u8], rotation: u32, out: &mut Vec<u8>| {
        answer_and_count(&shared, &stats, q, rotation, peer, out)
    };
    let queries = queries();
    let mut out = Vec::with_capacity(65535);
    // Warm-up: the first snapshot load registers this thread with arc-swap.
    let mut warm = 0;
    for q in &queries {
        if matches!(serve(q, 0, &mut out), Outcome::Reply(_)) {
            warm += 1;
        }
    }
    let before = allocations();
    let mut answered = 0;
    for round in 0..200 {
        for q in &queries {
            if matches!(serve(q, round, &mut out), Outcome::Reply(_)) {
                answered += 1;
            }
        }
    }
    let allocated = allocations() - before;
    // The counter itself works: one deliberate allocation is seen.
    let probe = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    assert_eq!(allocations() - probe, 1, "the counting allocator counts");
    assert!(answered >= 200 * 14, "answered {answered}");
    assert_eq!(
        allocated, 0,
        "{allocated} allocations in {answered} answered queries"
    );
    // Every answered query was counted; the short packet was dropped.
    let totals = shared.metrics.totals(Transport::Udp);
    assert_eq!(totals.local.count, answered + warm);
    assert_eq!(totals.dropped, 201);
}

/// The whole batched worker round: datagrams in with one `recvmmsg`, answers,
/// replies out with one `sendmmsg` (those to the one client in segmented
/// sends), counted; nothing allocated, real sockets.
#[cfg(target_os = "linux")]
#[test]
fn batched_udp_round_trips_without_allocating() {
    use std::net::UdpSocket;
    use std::sync::Arc;
    use std::time::Duration;
    let shared = example_shared();
    let stats = shared.metrics.udp_worker();
    let server = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
    server
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let to = server.local_addr().expect("addr");
    let queries = queries();
    let mut batch = svcnet_net::batch::Batch::new();
    let segmenting = batch.segment_replies(server.as_ref(), true);
    assert_eq!(segmenting, svcnet_net::batch::segmenting_available());
    let mut rotation = 0;
    let mut buf = [0u8; 4096];
    let mut round = |expect_replies: usize| {
        for q in &queries {
            client.send_to(q, to).expect("send");
        }
        let mut got = 0;
        while got < queries.len() {
            got += svcnet_net::serve_batch(&server, &shared, &stats, &mut batch, &mut rotation)
                .expect("receive");
        }
        for _ in 0..expect_replies {
            client.recv_from(&mut buf).expect("a reply");
        }
    };
    // Warm-up (arc-swap registers the thread on its first load).
    round(15);
    let before = allocations();
    for _ in 0..50 {
        round(15);
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations in 50 batched rounds");
    let totals = shared.metrics.totals(Transport::Udp);
    assert_eq!(totals.dropped, 51);
    assert!(!segmenting || totals.segmented > 0, "no segmented send");
}
