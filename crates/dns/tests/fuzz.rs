//! Property tests of the engine's robustness (SPEC §2 "Protocol": a
//! malformed packet never crashes or stalls the server; FORMERR when a header
//! can be read, otherwise dropped).
//!
//! Against the snapshot of `examples/` (clusters `local` and `west`), for
//! random bytes, mutated valid queries and random valid queries: `answer`
//! never panics, and every reply is parsed by hickory-proto, carries the
//! query's ID and fits the UDP limit (512, or the EDNS size within
//! 512..=1232). Truncated replies parse too. cargo-fuzz goes deeper; this
//! keeps the contract in every `cargo test`.

use std::sync::LazyLock;

use proptest::prelude::*;
use svcnet_dns::{Context, Outcome, Transport, answer, warm};
use svcnet_index::Snapshot;
use svcnet_testkit::{EdnsSpec, QuerySpec, Response, Setup};
use svcnet_wire::{labels, parse_query, rtype};

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    Setup::dir("examples/local")
        .cluster_dir("west", "examples/west")
        .snapshot()
});

/// Every label the snapshot knows, plus a few that reach other branches.
static LABELS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut all: Vec<String> = SNAPSHOT
        .nodes
        .keys()
        .flat_map(|k| labels(k).map(|l| String::from_utf8_lossy(l).into_owned()))
        .collect();
    all.extend(
        [
            "1-2-3-4",
            "fd00--1",
            "10-244-1-1",
            "pod",
            "svc",
            "local",
            "west",
            "x",
            "_udp",
            "version",
            "bind",
            "com",
            "example",
            "ip6",
            "arpa",
            "in-addr",
            "0",
            "255",
        ]
        .map(str::to_owned),
    );
    all.sort();
    all.dedup();
    all
});

/// The owner names of the snapshot, as text.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names: Vec<String> = SNAPSHOT
        .nodes
        .keys()
        .map(svcnet_wire::name_to_string)
        .collect();
    names.sort();
    names
});

const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs one packet and checks every reply property; returns the outcome.
fn exercise(packet: &[u8], transport: Transport, rotation: u32, forward: bool) -> Outcome {
    let ctx = Context {
        transport,
        rotation,
        forward,
    };
    let mut out = Vec::with_capacity(65535);
    // A worker warms its batch first: the warm-up reads the same packets.
    warm(&SNAPSHOT, [packet]);
    let outcome = answer(&SNAPSHOT, packet, &ctx, &mut out);
    match outcome {
        Outcome::Reply(n) | Outcome::Chase(n) => {
            assert!(n <= out.len(), "reply length {n} beyond the buffer");
            let reply = &out[..n];
            let decoded =
                Response::decode(reply).unwrap_or_else(|e| panic!("query {packet:02x?}\n{e}"));
            assert_eq!(reply[..2], packet[..2], "ID not echoed");
            assert!(decoded.flags.qr, "QR clear");
            if transport == Transport::Udp {
                let limit = parse_query(packet).map_or(512, |q| q.udp_limit());
                assert!(n <= limit, "{n} bytes over UDP, limit {limit}\n{decoded}");
            }
        }
        Outcome::Forward => assert!(forward, "Forward without an upstream"),
        Outcome::Drop => {
            // Only what has no readable header, or is a response, is dropped.
            assert!(
                packet.len() < 12 || packet[2] & 0x80 != 0,
                "dropped a query: {packet:02x?}"
            );
        }
    }
    outcome
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)]
}

fn qtype() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![
            rtype::A,
            rtype::NS,
            rtype::CNAME,
            rtype::SOA,
            rtype::PTR,
            rtype::TXT,
            rtype::AAAA,
            rtype::SRV,
            rtype::OPT,
            rtype::IXFR,
            rtype::AXFR,
            rtype::ANY,
            0,
            65,
        ]),
        1 => any::<u16>(),
    ]
}

fn qclass() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => Just(1u16),
        1 => prop::sample::select(vec![3u16, 4, 254, 255]),
        1 => any::<u16>(),
    ]
}

fn edns() -> impl Strategy<Value = Option<EdnsSpec>> {
    prop::option::of(
        (
            prop_oneof![Just(512u16), Just(1232), Just(4096), any::<u16>()],
            prop_oneof![8 => Just(0u8), 1 => any::<u8>()],
            any::<bool>(),
        )
            .prop_map(|(payload, version, dnssec_ok)| EdnsSpec {
                payload,
                version,
                dnssec_ok,
            }),
    )
}

/// Mixes the case of a name, as clients (and 0x20 resolvers) do.
fn recase(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Names around the snapshot's: existing owners, with labels added in
/// front, or random sequences of known labels.
fn name() -> impl Strategy<Value = String> {
    let existing = (
        prop::sample::select(NAMES.clone()),
        prop::collection::vec(prop::sample::select(LABELS.clone()), 0..3),
        any::<u64>(),
    )
        .prop_map(|(base, prefix, mask)| {
            let mut labels = prefix;
            labels.push(base);
            recase(&labels.join("."), mask)
        });
    let random = (
        prop::collection::vec(prop::sample::select(LABELS.clone()), 0..9),
        any::<u64>(),
    )
        .prop_map(|(labels, mask)| recase(&format!("{}.", labels.join(".")), mask));
    prop_oneof![3 => existing, 1 => random]
        .prop_filter("a valid DNS name", |n| svcnet_wire::encode_name(n).is_ok())
}

fn query() -> impl Strategy<Value = QuerySpec> {
    (
        name(),
        qtype(),
        qclass(),
        any::<u16>(),
        any::<bool>(),
        edns(),
        prop_oneof![9 => Just(0u8), 1 => 0u8..16],
    )
        .prop_map(|(name, qtype, qclass, id, rd, edns, opcode)| QuerySpec {
            qclass,
            id,
            rd,
            edns,
            opcode,
            ..QuerySpec::new(&name, qtype)
        })
}

/// Ways to break a valid query.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize),
    Truncate(usize),
    Count(usize, u16),
    Insert(usize, u8),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<usize>().prop_map(Mutation::FlipBit),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (0usize..4, any::<u16>()).prop_map(|(i, v)| Mutation::Count(i, v)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::Append),
    ]
}

fn mutate(packet: &mut Vec<u8>, m: &Mutation) {
    let len = packet.len().max(1);
    match m {
        Mutation::FlipBit(i) => {
            let bit = i % (len * 8);
            if let Some(b) = packet.get_mut(bit / 8) {
                *b ^= 1 << (bit % 8);
            }
        }
        Mutation::Truncate(i) => packet.truncate(i % len),
        Mutation::Count(field, v) => {
            let at = 4 + 2 * field;
            if packet.len() >= at + 2 {
                packet[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        Mutation::Insert(i, b) => packet.insert(i % (packet.len() + 1), *b),
        Mutation::Append(tail) => packet.extend_from_slice(tail),
    }
}

proptest! {
    #![proptest_config(config())]

    /// A batch warmed at once (more packets than one round of the
    /// warm-up takes), of random bytes and queries for names we hold.
    #[test]
    fn a_batch_of_anything_is_warmed_without_harm(
        junk in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..80),
        names in prop::collection::vec(prop::sample::select(NAMES.clone()), 0..40),
    ) {
        let mut batch = junk;
        batch.extend(names.iter().map(|n| QuerySpec::new(n, rtype::A).packet()));
        warm(&SNAPSHOT, batch.iter().map(Vec::as_slice));
    }

    /// (a) Random bytes.
    #[test]
    fn spec_2_protocol_random_bytes_never_crash(
        packet in prop::collection::vec(any::<u8>(), 0..600),
        transport in transport(),
        rotation in any::<u32>(),
        forward in any::<bool>(),
    ) {
        exercise(&packet, transport, rotation, forward);
    }

    /// (b) Valid queries with bits flipped, cut short, counts changed,
    /// bytes inserted or appended.
    #[test]
    fn spec_2_protocol_mutated_queries_never_crash(
        q in query(),
        mutations in prop::collection::vec(mutation(), 1..4),
        transport in transport(),
        rotation in any::<u32>(),
    ) {
        let mut packet = q.packet();
        for m in &mutations {
            mutate(&mut packet, m);
        }
        exercise(&packet, transport, rotation, false);
    }

    /// (c) Well-formed queries of every kind: always a reply (or a forward
    /// when an upstream is on), the question echoed as asked.
    #[test]
    fn spec_2_protocol_random_queries_answered(
        q in query(),
        transport in transport(),
        rotation in any::<u32>(),
        forward in prop::bool::weighted(0.2),
    ) {
        let packet = q.packet();
        match exercise(&packet, transport, rotation, forward) {
            Outcome::Reply(_) => {}
            Outcome::Forward | Outcome::Chase(_) => prop_assert!(forward),
            Outcome::Drop => prop_assert!(false, "a query was dropped: {q}"),
        }
        let ctx = Context { transport, rotation, forward };
        let mut out = Vec::with_capacity(65535);
        if let Outcome::Reply(n) = answer(&SNAPSHOT, &packet, &ctx, &mut out) {
            let r = Response::decode(&out[..n]).map_err(TestCaseError::fail)?;
            prop_assert_eq!(r.id, q.id);
            if q.opcode == 0 {
                prop_assert_eq!(&r.question, &vec![(q.fqdn(), q.qtype, q.qclass)]);
            }
            if transport == Transport::Tcp && q.opcode == 0 {
                prop_assert!(!r.flags.tc, "TC over TCP: {}", r);
            }
        }
    }
}
