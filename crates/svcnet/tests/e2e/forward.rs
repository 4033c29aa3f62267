//! Forwarding of names outside our zones (SPEC §2) to upstreams started by
//! the test on loopback: relay, random IDs and source ports, answer
//! matching, TC → TCP, caching (positive and negative), coalescing,
//! failover and recovery by health probe, loop detection, DNS over TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::harness::{Answer, Server, encode, example, parse, query, udp_exchange};

/// One query as a scripted upstream saw it.
#[derive(Clone, Debug)]
struct Seen {
    id: u16,
    port: u16,
    name: String,
}

/// A scripted upstream: answers A of any name with 192.0.2.1, except
/// `big.example.` which is truncated over UDP and has 100 records over TCP,
/// `nx.*` names (NXDOMAIN with an SOA, negative TTL 30) and `slow.*` names
/// (answered after 300 ms). Before each real answer it sends two forged
/// ones (wrong ID; right ID but another question) that a correct relay
/// ignores.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
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
    let text = name.to_ascii().to_ascii_lowercase();
    if text.starts_with("nx.") {
        m.metadata.response_code = ResponseCode::NXDomain;
        let zone = Name::from_ascii("example.com.").unwrap_or_else(|_| Name::root());
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 7200, 1800, 86400, 30);
        m.authorities
            .push(Record::from_rdata(zone, 30, RData::SOA(soa)));
        return m;
    }
    let n = if text == "big.example." { 100 } else { 1 };
    // `short.*` names live one second (for expiry and serve-stale).
    let ttl = if text.starts_with("short.") { 1 } else { 60 };
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

/// Answers length-prefixed queries (RFC 1035 §4.2.2) on `conn`, pipelined
/// ones in turn, until it closes; `seen` hears of each.
fn answer_framed(conn: &mut (impl Read + Write), mut seen: impl FnMut(&Message)) {
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let Ok(q) = Message::from_vec(&msg) else {
            return;
        };
        seen(&q);
        let reply = encode(&answer_for(&q, false));
        let mut frame = u16::try_from(reply.len())
            .unwrap_or(0)
            .to_be_bytes()
            .to_vec();
        frame.extend(reply);
        if conn.write_all(&frame).and_then(|()| conn.flush()).is_err() {
            return;
        }
    }
}

/// The two forgeries sent ahead of the real answer to `q`.
fn forgeries(q: &Message) -> [Vec<u8>; 2] {
    let mut wrong_id = answer_for(q, true);
    wrong_id.metadata.id = q.metadata.id.wrapping_add(1);
    wrong_id.answers.clear();
    wrong_id.answers.push(Record::from_rdata(
        q.queries[0].name().clone(),
        60,
        RData::A(std::net::Ipv4Addr::new(6, 6, 6, 6).into()),
    ));
    let mut wrong_question = wrong_id.clone();
    wrong_question.metadata.id = q.metadata.id;
    let forged = Name::from_ascii("forged.invalid.").unwrap_or_else(|_| Name::root());
    wrong_question.queries[0].set_name(forged.clone());
    wrong_question.answers[0].name = forged;
    [encode(&wrong_id), encode(&wrong_question)]
}

impl Upstream {
    pub(crate) fn start() -> Self {
        // The kernel's free UDP port may be taken for TCP (another test's
        // connection): try again with another.
        let (udp, addr, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
                let addr = udp.local_addr().expect("addr");
                let tcp = TcpListener::bind(addr).ok()?;
                Some((udp, addr, tcp))
            })
            .expect("no port free for both UDP and TCP");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
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
                let name = q.queries[0].name().to_ascii().to_ascii_lowercase();
                if !is_probe(&q) {
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Seen {
                            id: q.metadata.id,
                            port: peer.port(),
                            name: name.clone(),
                        });
                }
                let Ok(udp) = udp.try_clone() else { continue };
                let reply = move || {
                    for forged in forgeries(&q) {
                        let _ = udp.send_to(&forged, peer);
                    }
                    let _ = udp.send_to(&encode(&answer_for(&q, true)), peer);
                };
                if name.starts_with("slow.") {
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        reply();
                    });
                } else {
                    reply();
                }
            }
        });
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || answer_framed(&mut conn, |_| {}));
            }
        });
        Self { addr, seen, silent }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Queries seen, probes aside.
    fn queries(&self) -> usize {
        self.seen().len()
    }

    /// Queries seen for names starting with `prefix`.
    fn queries_for(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
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
    let seen: Vec<u16> = up.seen().iter().map(|s| s.id).collect();
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

/// A UDP port nothing listens on (bound, then dropped), below Linux's
/// ephemeral range (32768 and up): svcnet keeps sending health probes
/// there, and a client socket of another test, which the kernel binds in
/// that range, must not receive them.
fn dead_port() -> SocketAddr {
    let offset = std::process::id() % 10_000;
    (0..10_000u32)
        .map(|i| 20_000 + (offset + i) % 10_000)
        .find_map(|port| {
            let port = u16::try_from(port).ok()?;
            UdpSocket::bind(("127.0.0.1", port))
                .and_then(|s| s.local_addr())
                .ok()
        })
        .expect("a free port below the ephemeral range")
}

#[test]
fn spec_2_a_dead_upstream_fails_over_and_no_upstream_is_servfail() {
    let up = Upstream::start();
    let dead = dead_port();
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
    let a = Answer::from_message("hickory-udp", &slow_udp(&s, "example.org"));
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
    // The upstream's 2 s timeout comes first: wait longer than that.
    let stale = slow_udp(&s, "short.example.com");
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

/// A query whose answer may come only after an upstream timed out (2 s).
fn slow_udp(s: &Server, name: &str) -> Message {
    let reply = udp_exchange(
        s.addr(),
        &encode(&query(name, RecordType::A)),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no reply for {name}:\n{}", s.log_text()));
    parse(&reply)
}

/// RFC 2308: an NXDOMAIN with an SOA is cached for the SOA minimum, and
/// served from the cache with the SOA's TTL counting down.
#[test]
fn rfc2308_negative_answers_are_cached_with_the_soa_ttl_counting_down() {
    let up = Upstream::start();
    let s = Server::start(&["-f", &example("local"), "--upstream", &up.addr.to_string()]);
    let first = s.udp(&query("nx.example.com", RecordType::A));
    assert_eq!(
        first.metadata.response_code,
        ResponseCode::NXDomain,
        "{first}"
    );
    assert_eq!(
        first.authorities.first().map(|r| r.ttl),
        Some(30),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let second = s.udp(&query("NX.example.com", RecordType::A));
    assert_eq!(second.metadata.response_code, ResponseCode::NXDomain);
    let ttl = second.authorities.first().map_or(0, |r| r.ttl);
    assert!((27..30).contains(&ttl), "SOA TTL not decremented: {second}");
    assert_eq!(
        up.queries_for("nx.").len(),
        1,
        "the second query went upstream"
    );
    assert_eq!(second.queries[0].name().to_ascii(), "NX.example.com.");
}

/// Identical queries in flight at once share one upstream exchange; every
/// client gets the answer under its own ID.
#[test]
fn spec_2_identical_queries_in_flight_are_coalesced() {
    let up = Upstream::start();
    let s = Server::start(&["-f", &example("local"), "--upstream", &up.addr.to_string()]);
    const CLIENTS: u16 = 20;
    let barrier = Arc::new(Barrier::new(usize::from(CLIENTS)));
    let addr = s.addr();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut q = query("slow.example.com", RecordType::A);
                q.metadata.id = 0x2000 + i;
                let bytes = encode(&q);
                barrier.wait();
                let reply = udp_exchange(addr, &bytes, Duration::from_secs(3))
                    .unwrap_or_else(|| panic!("client {i}: no reply"));
                (q.metadata.id, parse(&reply))
            })
        })
        .collect();
    for c in clients {
        let (id, reply) = c.join().expect("client thread");
        assert_eq!(reply.metadata.id, id);
        let a = Answer::from_message("hickory-udp", &reply);
        assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    }
    let took = started.elapsed();
    let upstream = up.queries_for("slow.").len();
    eprintln!("{CLIENTS} identical queries: {upstream} upstream exchange(s), {took:?}");
    assert_eq!(upstream, 1, "{:?}", up.seen());
}

/// Relayed queries carry unpredictable IDs and come from many source ports
/// (RFC 5452 §9.2).
#[test]
fn rfc5452_relayed_ids_and_source_ports_are_random() {
    let up = Upstream::start();
    let s = Server::start(&["-f", &example("local"), "--upstream", &up.addr.to_string()]);
    for i in 0..50u16 {
        let mut q = query(&format!("r{i}.example.com"), RecordType::A);
        q.metadata.id = i;
        s.udp(&q);
    }
    let seen = up.queries_for("r");
    assert_eq!(seen.len(), 50);
    let mut ids: Vec<u16> = seen.iter().map(|s| s.id).collect();
    let sequential = ids
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) == 1)
        .count();
    assert!(sequential <= 1, "sequential IDs: {ids:?}");
    ids.sort_unstable();
    ids.dedup();
    let mut ports: Vec<u16> = seen.iter().map(|s| s.port).collect();
    ports.sort_unstable();
    ports.dedup();
    eprintln!(
        "50 relayed queries: {} distinct IDs, {} distinct source ports",
        ids.len(),
        ports.len()
    );
    assert!(ids.len() >= 48, "IDs repeat: {ids:?}");
    assert!(ports.len() >= 40, "source ports repeat: {ports:?}");
}

/// The first upstream goes silent: after two timeouts it is down (logged
/// once) and queries go straight to the second; when it answers again, the
/// health probe brings it back and it is asked first again.
#[test]
fn spec_2_a_failing_upstream_is_skipped_until_a_health_probe_brings_it_back() {
    let first = Upstream::start();
    let second = Upstream::start();
    first.silent.store(true, Ordering::Relaxed);
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &first.addr.to_string(),
        "--upstream",
        &second.addr.to_string(),
    ]);
    for name in ["f1.example.com", "f2.example.com"] {
        let a = Answer::from_message("hickory-udp", &slow_udp(&s, name));
        assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    }
    s.wait_for_log(Duration::from_secs(2), |l| l.contains("upstream down"))
        .unwrap_or_else(|| panic!("no down line:\n{}", s.log_text()));
    let started = Instant::now();
    let a = Answer::from_message(
        "hickory-udp",
        &s.udp(&query("f3.example.com", RecordType::A)),
    );
    assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the down upstream was asked first: {:?}",
        started.elapsed()
    );
    assert_eq!(second.queries_for("f").len(), 3);

    first.silent.store(false, Ordering::Relaxed);
    s.wait_for_log(Duration::from_secs(15), |l| l.contains("upstream up again"))
        .unwrap_or_else(|| panic!("no recovery:\n{}", s.log_text()));
    s.udp(&query("f4.example.com", RecordType::A));
    assert_eq!(first.queries_for("f4.").len(), 1, "back in first place");
    assert_eq!(second.queries_for("f4.").len(), 0);
    let log = s.log_text();
    assert_eq!(log.matches("upstream down").count(), 1, "{log}");
    assert_eq!(log.matches("upstream up again").count(), 1, "{log}");
}

/// An upstream that forwards everything it gets to svcnet: a forwarding
/// loop, as when a node's resolv.conf points back at the cluster DNS.
struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    received: Arc<AtomicUsize>,
}

impl Relay {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind relay");
        let addr = sock.local_addr().expect("addr");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let received = Arc::new(AtomicUsize::new(0));
        let (to, count) = (Arc::clone(&target), Arc::clone(&received));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                count.fetch_add(1, Ordering::Relaxed);
                let (Ok(back), packet, to) = (sock.try_clone(), buf[..n].to_vec(), Arc::clone(&to))
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    // svcnet's address is known only once it is up.
                    let deadline = Instant::now() + Duration::from_secs(3);
                    let target = loop {
                        if let Some(t) = *to.lock().unwrap_or_else(PoisonError::into_inner) {
                            break t;
                        }
                        if Instant::now() > deadline {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    };
                    if let Some(reply) = udp_exchange(target, &packet, Duration::from_secs(3)) {
                        let _ = back.send_to(&reply, peer);
                    }
                });
            }
        });
        Self {
            addr,
            target,
            received,
        }
    }

    fn point_at(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = Some(target);
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

/// CoreDNS's loop plugin, but not fatal: the upstream that sends svcnet's
/// probe back is logged once and dropped; outside names get SERVFAIL at
/// once, cluster names are still answered, the server keeps running.
#[test]
fn spec_2_a_looping_upstream_is_detected_and_dropped_without_exiting() {
    let relay = Relay::start();
    let mut s = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &relay.addr.to_string(),
    ]);
    relay.point_at(s.addr());
    let line = s
        .wait_for_log(Duration::from_secs(5), |l| l.contains("forwarding loop"))
        .unwrap_or_else(|| panic!("no loop detected:\n{}", s.log_text()));
    assert!(line.contains(&relay.addr.to_string()), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    let before = relay.received();
    for i in 0..5 {
        let started = Instant::now();
        let reply = udp_exchange(
            s.addr(),
            &encode(&query(&format!("l{i}.example.org"), RecordType::A)),
            Duration::from_secs(3),
        )
        .expect("a reply, not silence");
        let a = Answer::from_message("hickory-udp", &parse(&reply));
        assert_eq!(a.status, "SERVFAIL", "{a}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        relay.received(),
        before,
        "the looping upstream is still asked"
    );
    assert!(before <= 2, "the probe circled {before} times");
    s.assert_healthy();
    let log = s.log_text();
    assert_eq!(log.matches("forwarding loop").count(), 1, "{log}");
}

/// With a healthy upstream besides the looping one, outside names still
/// resolve, through the healthy one only.
#[test]
fn spec_2_with_a_looping_and_a_healthy_upstream_outside_names_resolve() {
    let relay = Relay::start();
    let up = Upstream::start();
    let mut s = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &relay.addr.to_string(),
        "--upstream",
        &up.addr.to_string(),
    ]);
    relay.point_at(s.addr());
    s.wait_for_log(Duration::from_secs(5), |l| l.contains("forwarding loop"))
        .unwrap_or_else(|| panic!("no loop detected:\n{}", s.log_text()));
    let before = relay.received();
    let started = Instant::now();
    let a = Answer::from_message("hickory-udp", &s.udp(&query("example.org", RecordType::A)));
    assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(up.queries_for("example.org").len(), 1);
    assert_eq!(relay.received(), before);
    s.assert_healthy();
}

/// A DNS-over-TLS upstream on loopback with a certificate for `127.0.0.1`
/// and `dns.test` from a CA made for the test.
struct DotUpstream {
    addr: SocketAddr,
    ca: tempfile::NamedTempFile,
    connections: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
}

impl DotUpstream {
    fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "svcnet test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "dns.test".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(ca.pem().as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let queries = Arc::new(AtomicUsize::new(0));
        let (conns, count) = (Arc::clone(&connections), Arc::clone(&queries));
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                conns.fetch_add(1, Ordering::Relaxed);
                let (config, count) = (Arc::clone(&config), Arc::clone(&count));
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    answer_framed(&mut tls, |q| {
                        if !is_probe(q) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                });
            }
        });
        Self {
            addr,
            ca: ca_file,
            connections,
            queries,
        }
    }

    fn ca_path(&self) -> String {
        self.ca.path().to_string_lossy().into_owned()
    }
}

/// RFC 7858: `tls://` upstreams are asked over TLS, the certificate checked
/// against `--upstream-ca` and the IP address (or the `#NAME`), on one
/// connection shared by queries in flight.
#[test]
fn rfc7858_dns_over_tls_upstream_with_a_private_ca_on_one_connection() {
    let dot = DotUpstream::start();
    let upstream = format!("tls://{}", dot.addr);
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &upstream,
        "--upstream-ca",
        &dot.ca_path(),
    ]);
    for i in 0..3 {
        let a = Answer::from_message(
            "hickory-udp",
            &s.udp(&query(&format!("t{i}.example.com"), RecordType::A)),
        );
        assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    }
    let addr = s.addr();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                let q = encode(&query(&format!("p{i}.example.com"), RecordType::A));
                udp_exchange(addr, &q, Duration::from_secs(3)).map(|r| parse(&r))
            })
        })
        .collect();
    for c in clients {
        let reply = c.join().expect("client").expect("a reply");
        let a = Answer::from_message("hickory-udp", &reply);
        assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    }
    assert_eq!(dot.queries.load(Ordering::Relaxed), 13);
    assert_eq!(
        dot.connections.load(Ordering::Relaxed),
        1,
        "one connection, reused"
    );

    // The certificate names dns.test too; it does not name wrong.test.
    let named = Server::start(&[
        "-f",
        &example("local"),
        "--upstream",
        &format!("tls://{}#dns.test", dot.addr),
        "--upstream-ca",
        &dot.ca_path(),
    ]);
    let a = Answer::from_message(
        "hickory-udp",
        &named.udp(&query("named.example.com", RecordType::A)),
    );
    assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    let local = example("local");
    let wrong_name = format!("tls://{}#wrong.test", dot.addr);
    let ca = dot.ca_path();
    for args in [
        [
            "-f",
            &local,
            "--upstream",
            &wrong_name,
            "--upstream-ca",
            &ca,
        ],
        // Without --upstream-ca the test CA is not trusted.
        ["-f", &local, "--upstream", &upstream, "--cache-bytes", "0"],
    ] {
        let s = Server::start(&args);
        let a = Answer::from_message("hickory-udp", &slow_udp(&s, "bad.example.com"));
        assert_eq!(a.status, "SERVFAIL", "{args:?}: {a}");
    }
}
