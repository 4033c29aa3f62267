//! Forwarding of names outside our zones (SPEC §2) to an upstream started by
//! the test on loopback: relay, random IDs, answer matching, TC → TCP,
//! failover and SERVFAIL.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::harness::{Answer, Server, encode, example, query};

/// A scripted upstream: answers A of any name with 192.0.2.1, except
/// `big.example.` which is truncated over UDP and has 100 records over TCP.
/// First sends a forged answer (wrong ID) that a correct relay ignores.
struct Upstream {
    addr: SocketAddr,
    seen_ids: Arc<Mutex<Vec<u16>>>,
    /// While set, the upstream stays silent (an outage).
    silent: Arc<AtomicBool>,
}

fn answer_for(q: &Message, udp: bool) -> Message {
    let mut m = q.clone();
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    m.metadata.recursion_available = true;
    let Some(question) = q.queries.first() else {
        return m;
    };
    let name = question.name().clone();
    let n = if name.to_ascii().eq_ignore_ascii_case("big.example.") {
        100
    } else {
        1
    };
    // `short.*` names live one second (for expiry and serve-stale).
    let ttl = if name.to_ascii().starts_with("short.") {
        1
    } else {
        60
    };
    if udp && n > 1 {
        m.metadata.truncation = true;
        return m;
    }
    for i in 0..n {
        m.answers.push(Record::from_rdata(
            name.clone(),
            ttl,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, (i % 250 + 1) as u8).into()),
        ));
    }
    m
}

/// svcnet's own health (`. NS`) and loop (`*.svcnet-loop-probe.`) probes,
/// which the scripted upstreams answer but do not count.
fn is_probe(q: &Message) -> bool {
    q.queries.first().is_some_and(|q| {
        let name = q.name().to_ascii().to_ascii_lowercase();
        name == "." || name.ends_with(".svcnet-loop-probe.")
    })
}

impl Upstream {
    fn start() -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
        let addr = udp.local_addr().expect("addr");
        let tcp = TcpListener::bind(addr).expect("bind upstream tcp");
        let seen_ids = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&seen_ids);
        let silent = Arc::new(AtomicBool::new(false));
        let quiet = Arc::clone(&silent);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                if quiet.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if !is_probe(&q) {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(q.metadata.id);
                }
                let mut forged = answer_for(&q, true);
                forged.metadata.id = q.metadata.id.wrapping_add(1);
                forged.answers.clear();
                forged.answers.push(Record::from_rdata(
                    q.queries[0].name().clone(),
                    60,
                    RData::A(std::net::Ipv4Addr::new(6, 6, 6, 6).into()),
                ));
                let _ = udp.send_to(&encode(&forged), peer);
                let _ = udp.send_to(&encode(&answer_for(&q, true)), peer);
            }
        });
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut msg).is_err() {
                    continue;
                }
                let Ok(q) = Message::from_vec(&msg) else {
                    continue;
                };
                let reply = encode(&answer_for(&q, false));
                let _ = conn.write_all(&u16::try_from(reply.len()).unwrap_or(0).to_be_bytes());
                let _ = conn.write_all(&reply);
            }
        });
        Self {
            addr,
            seen_ids,
            silent,
        }
    }

    fn queries(&self) -> usize {
        self.seen_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[test]
fn spec_2_outside_names_are_relayed_with_random_ids_and_forged_answers_ignored() {
    let up = Upstream::start();
    let s = Server::start(&["-f", &example("local"), "--upstream", &up.addr.to_string()]);
    let mut ids = Vec::new();
    for i in 0..5u16 {
        let mut q = query(&format!("n{i}.example.com"), RecordType::A);
        q.metadata.id = 0x1000 + i;
        let reply = s.udp(&q);
        ids.push(q.metadata.id);
        let a = Answer::from_message("hickory-udp", &reply);
        assert_eq!(a.status, "NOERROR", "{a}");
        assert_eq!(
            a.rdata("A"),
            ["192.0.2.1"],
            "the forged 6.6.6.6 answer was taken: {a}"
        );
    }
    let seen = up
        .seen_ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(
        seen.iter().all(|id| !ids.contains(id)),
        "client IDs leaked upstream: {seen:?}"
    );
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 4, "upstream IDs are not random: {seen:?}");
    // Our own zones are still answered by us.
    let a = Answer::from_message(
        "hickory-udp",
        &s.udp(&query(
            "web-0.nginx.default.svc.cluster.local",
            RecordType::A,
        )),
    );
    assert!(a.has_flag("aa"), "{a}");
}

#[test]
fn spec_2_truncated_upstream_answers_are_fetched_over_tcp() {
    let up = Upstream::start();
    let s = Server::start(&["-f", &example("local"), "--upstream", &up.addr.to_string()]);
    // Over TCP the client gets all 100 records.
    let a = Answer::from_message("hickory-tcp", &s.tcp(&query("big.example", RecordType::A)));
    assert_eq!(a.rdata("A").len(), 100, "{a}");
    // Over UDP without EDNS it cannot fit: TC, and the client retries over TCP.
    let a = Answer::from_message("hickory-udp", &s.udp(&query("big.example", RecordType::A)));
    assert!(a.has_flag("tc"), "{a}");
    let dig = s.dig(&["big.example", "A"]);
    assert_eq!(dig.rdata("A").len(), 100, "dig's TCP retry: {dig}");
}

#[test]
fn spec_2_a_dead_upstream_fails_over_and_no_upstream_is_servfail() {
    let up = Upstream::start();
    // Nothing listens on this one (bound, then dropped).
    let dead = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port");
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &dead.to_string(),
        "--upstream",
        &up.addr.to_string(),
    ]);
    let a = Answer::from_message("hickory-udp", &s.udp(&query("example.org", RecordType::A)));
    assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    let s = Server::start(&["-f", &example("local"), "--upstream", &dead.to_string()]);
    let reply = crate::harness::udp_exchange(
        s.addr(),
        &encode(&query("example.org", RecordType::A)),
        Duration::from_secs(5),
    )
    .expect("a reply, not silence");
    let a = Answer::from_message("hickory-udp", &crate::harness::parse(&reply));
    assert_eq!(a.status, "SERVFAIL", "{a}");
}

/// Forwarded answers are cached with their TTL counting down; when the
/// upstream goes silent, an expired answer is served stale (RFC 8767).
#[test]
fn spec_2_forwarded_answers_are_cached_and_served_stale_when_upstreams_fail() {
    let up = Upstream::start();
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &up.addr.to_string(),
        "--admin",
        "127.0.0.1:0",
    ]);
    let ttl = |m: &Message| m.answers.first().map(|r| r.ttl).unwrap_or_default();
    let first = s.udp(&query("cached.example.com", RecordType::A));
    assert_eq!(ttl(&first), 60);
    std::thread::sleep(Duration::from_millis(1100));
    let second = s.udp(&query("CACHED.example.com", RecordType::A));
    assert_eq!(up.queries(), 1, "the second query went upstream");
    assert!(ttl(&second) < 60, "TTL not decremented: {second}");
    assert_eq!(
        second.queries[0].name().to_ascii(),
        "CACHED.example.com.",
        "question case echoed"
    );

    let fresh = s.udp(&query("short.example.com", RecordType::A));
    assert_eq!(ttl(&fresh), 1);
    up.silent.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    let stale = s.udp(&query("short.example.com", RecordType::A));
    let a = Answer::from_message("hickory-udp", &stale);
    assert_eq!(a.status, "NOERROR", "{a}");
    assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    assert_eq!(ttl(&stale), 30, "served stale with the RFC 8767 TTL");
    let (code, metrics) = crate::harness::http_get(s.admin_addr(), "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("svcnet_cache_hits_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("svcnet_cache_stale_total 1\n"),
        "{metrics}"
    );
}
