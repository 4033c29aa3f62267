//! DNS over TCP (SPEC §2 "Protocol", RFC 7766): pipelined queries on one
//! connection are all answered, in order; an idle connection is closed.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::harness::{Answer, Server, encode, example, parse, query, read_framed};

#[test]
fn rfc7766_pipelined_queries_on_one_connection_are_answered_in_order() {
    let s = Server::start(&["-f", &example("local")]);
    let asks = [
        (
            "web-0.nginx.default.svc.cluster.local",
            RecordType::A,
            "NOERROR",
            1,
        ),
        (
            "web-1.nginx.default.svc.cluster.local",
            RecordType::A,
            "NOERROR",
            1,
        ),
        (
            "nope.default.svc.cluster.local",
            RecordType::A,
            "NXDOMAIN",
            0,
        ),
        (
            "nginx-headless.test.svc.cluster.local",
            RecordType::A,
            "NOERROR",
            2,
        ),
        (
            "_web._tcp.nginx.default.svc.cluster.local",
            RecordType::SRV,
            "NOERROR",
            2,
        ),
        ("example.com", RecordType::A, "REFUSED", 0),
        (
            "backend.default.svc.cluster.local",
            RecordType::AAAA,
            "NOERROR",
            0,
        ),
    ];
    // Every query in one write: the server must frame them itself.
    let mut bytes = Vec::new();
    let mut ids = Vec::new();
    for (i, (name, rtype, ..)) in asks.iter().enumerate() {
        let mut q = query(name, *rtype);
        q.metadata.id = 0x4000 + u16::try_from(i).expect("few queries");
        ids.push(q.metadata.id);
        let wire = encode(&q);
        let len = u16::try_from(wire.len()).expect("small query");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&wire);
    }
    let mut conn = s.connect();
    conn.write_all(&bytes).expect("write the pipeline");
    for (i, (name, _, status, answers)) in asks.iter().enumerate() {
        let reply = parse(&read_framed(&mut conn).expect("a reply per query"));
        assert_eq!(reply.metadata.id, ids[i], "reply {i} out of order");
        assert_eq!(
            reply.queries[0].name().to_string(),
            format!("{name}."),
            "reply {i}"
        );
        let a = Answer::from_message("hickory-tcp", &reply);
        assert_eq!(a.status, *status, "{name}: {a}");
        assert_eq!(a.answer.len(), *answers, "{name}: {a}");
    }
    // The connection stays usable afterwards.
    let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
    crate::harness::write_framed(&mut conn, &encode(&q));
    let reply = parse(&read_framed(&mut conn).expect("reply after the pipeline"));
    assert_eq!(reply.metadata.id, q.metadata.id);
}

/// Reads until the peer closes; returns how long that took, or `None` when
/// the connection stayed open for `limit`.
pub(crate) fn time_to_close(conn: &mut std::net::TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set_read_timeout");
    let mut buf = [0u8; 512];
    while start.elapsed() < limit {
        match conn.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(start.elapsed()),
            Err(e) => panic!("reading the idle connection: {e}"),
        }
    }
    None
}

#[test]
fn spec_4_tcp_connection_idle_past_the_timeout_is_closed() {
    let s = Server::start(&["-f", &example("local"), "--tcp-idle-timeout", "1"]);
    // Silent from the start.
    let mut silent = s.connect();
    // Used once, then idle.
    let mut used = s.connect();
    let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
    crate::harness::write_framed(&mut used, &encode(&q));
    let reply = parse(&read_framed(&mut used).expect("a reply before idling"));
    assert_eq!(reply.metadata.id, q.metadata.id);
    let limit = Duration::from_secs(5);
    let silent_after = time_to_close(&mut silent, limit);
    let used_after = time_to_close(&mut used, limit);
    assert!(
        silent_after.is_some(),
        "a silent connection stayed open past {limit:?}"
    );
    assert!(
        used_after.is_some(),
        "an idle connection stayed open past {limit:?}"
    );
    // The server still takes new connections.
    let a = Answer::from_message("hickory-tcp", &s.tcp(&q));
    assert_eq!(a.status, "NOERROR", "{a}");
}

/// Clients that open one connection per query (the usual fallback after TC)
/// still see headless answers rotate (SPEC §2).
#[test]
fn spec_2_headless_answers_rotate_across_tcp_connections() {
    let s = Server::start(&["-f", &example("local")]);
    let q = query("nginx-headless.test.svc.cluster.local", RecordType::A);
    let firsts: Vec<String> = (0..4)
        .map(|_| {
            let a = Answer::from_message("hickory-tcp", &s.tcp(&q));
            a.answer
                .first()
                .map(|r| r.rdata.clone())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        firsts.windows(2).any(|w| w[0] != w[1]),
        "the first record never changed: {firsts:?}"
    );
}

/// A length prefix far beyond any query is abuse: the connection is closed
/// at once instead of buffering 64 KiB for it; others are still served.
#[test]
fn tcp_length_prefix_beyond_any_query_closes_the_connection() {
    let s = Server::start(&["-f", &example("local")]);
    let mut conn = s.connect();
    conn.write_all(&[0xff, 0xff])
        .expect("write the length prefix");
    let closed = time_to_close(&mut conn, Duration::from_secs(3));
    assert!(
        closed.is_some(),
        "a 65535-byte query length kept the connection open"
    );
    let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
    let a = Answer::from_message("hickory-tcp", &s.tcp(&q));
    assert_eq!(a.status, "NOERROR", "{a}");
}

/// Opens `n` TCP connections that never send anything.
fn idle_connections(s: &Server, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|i| {
            std::net::TcpStream::connect_timeout(&s.addr(), Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect()
}

/// Raises this test process's open-files limit: 2,000 connections need
/// more descriptors than a default soft limit of 1,024.
fn enough_descriptors(n: u64) {
    let (_, now) = svcnet_net::raise_nofile_limit().expect("getrlimit/setrlimit");
    assert!(
        now > n + 200,
        "the hard open-files limit ({now}) is too low for {n} connections"
    );
}

/// A UDP query and a fresh TCP client are answered within `limit`.
fn answers_promptly(s: &Server, limit: Duration) {
    let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
    let start = Instant::now();
    let udp = Answer::from_message("hickory-udp", &s.udp(&q));
    assert_eq!(udp.status, "NOERROR", "{udp}");
    assert!(start.elapsed() < limit, "UDP took {:?}", start.elapsed());
    let start = Instant::now();
    let tcp = Answer::from_message("hickory-tcp", &s.tcp(&q));
    assert_eq!(tcp.status, "NOERROR", "{tcp}");
    assert!(start.elapsed() < limit, "TCP took {:?}", start.elapsed());
}

/// A flood of 2,000 idle TCP connections (RFC 7766 §6.2.3): UDP and new
/// TCP clients are still answered at once, the server counts the open
/// connections, and closes every one of them after the idle timeout.
#[test]
fn rfc7766_two_thousand_idle_connections_do_not_stall_service_and_time_out() {
    const FLOOD: usize = 2000;
    enough_descriptors(FLOOD as u64);
    let mut s = Server::start(&[
        "-f",
        &example("local"),
        "--tcp-idle-timeout",
        "3",
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = s.admin_addr();
    let opened = Instant::now();
    let mut flood = idle_connections(&s, FLOOD);
    answers_promptly(&s, Duration::from_millis(500));
    let open = crate::metrics::value(
        &crate::metrics::scrape(admin),
        "svcnet_tcp_connections_open",
        &[],
    );
    // Some may already have timed out on a slow machine; most are open.
    if opened.elapsed() < Duration::from_secs(2) {
        assert!(open >= FLOOD as f64, "{open} connections open");
    }
    // Every idle connection is closed by the server.
    let deadline = Duration::from_secs(10);
    for (i, conn) in flood.iter_mut().enumerate() {
        let left = deadline.saturating_sub(opened.elapsed());
        assert!(
            time_to_close(conn, left.max(Duration::from_millis(1))).is_some(),
            "connection {i} still open {:?} after the flood began",
            opened.elapsed()
        );
    }
    drop(flood);
    let metrics = crate::metrics::scrape(admin);
    let idle_closed =
        crate::metrics::value(&metrics, "svcnet_tcp_connections_idle_closed_total", &[]);
    assert!(idle_closed >= FLOOD as f64, "{idle_closed} closed on idle");
    let ok = crate::harness::wait_until(Duration::from_secs(2), || {
        let m = crate::metrics::scrape(admin);
        crate::metrics::value(&m, "svcnet_tcp_connections_open", &[]) == 0.0
    });
    assert!(ok.is_some(), "connections still counted open");
    s.assert_healthy();
}

/// At the cap, a new connection is accepted and closed at once (counted as
/// refused) instead of waiting in the backlog; UDP is unaffected, and TCP
/// serves again once idle connections time out.
#[test]
fn tcp_connections_beyond_the_cap_are_closed_at_once() {
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--tcp-max-connections",
        "50",
        "--tcp-idle-timeout",
        "2",
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = s.admin_addr();
    let mut held = idle_connections(&s, 50);
    // Let the server accept all 50 before the next one arrives.
    let full = crate::harness::wait_until(Duration::from_secs(2), || {
        let m = crate::metrics::scrape(admin);
        crate::metrics::value(&m, "svcnet_tcp_connections_open", &[]) == 50.0
    });
    assert!(full.is_some(), "the 50 connections were not all accepted");
    let mut extra = idle_connections(&s, 10);
    for (i, conn) in extra.iter_mut().enumerate() {
        let closed = time_to_close(conn, Duration::from_secs(1));
        assert!(
            closed.is_some_and(|t| t < Duration::from_secs(1)),
            "connection {i} beyond the cap was not closed at once"
        );
    }
    let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
    let start = Instant::now();
    let udp = Answer::from_message("hickory-udp", &s.udp(&q));
    assert_eq!(udp.status, "NOERROR", "{udp}");
    assert!(start.elapsed() < Duration::from_millis(500));
    let m = crate::metrics::scrape(admin);
    assert_eq!(
        crate::metrics::value(&m, "svcnet_tcp_connections_refused_total", &[]),
        10.0
    );
    assert_eq!(
        crate::metrics::value(&m, "svcnet_tcp_connections_accepted_total", &[]),
        50.0
    );
    // Once the held connections time out, TCP serves again.
    for conn in &mut held {
        assert!(time_to_close(conn, Duration::from_secs(6)).is_some());
    }
    answers_promptly(&s, Duration::from_millis(500));
}

/// A headless service of 5,000 ready endpoints: over UDP the address RRset
/// does not fit (TC, so clients switch to TCP); over TCP the answer carries
/// as many addresses as 65,535 octets hold, flagged TC, instead of none.
#[test]
fn five_thousand_endpoints_answer_over_tcp_as_much_as_fits() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("big.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: big}\n\
         spec: {clusterIP: None, selector: {app: big}, ports: [{port: 80}]}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: big}\n\
         spec:\n  replicas: 5000\n  selector: {matchLabels: {app: big}}\n  template:\n\
         \x20   metadata: {labels: {app: big}}\n\
         \x20   spec: {containers: [{name: c, image: c}]}\n",
    )
    .expect("write");
    let s = Server::start(&[
        "-f",
        &dir.path().display().to_string(),
        "--pod-cidr",
        "10.0.0.0/8",
    ]);
    let name = "big.default.svc.cluster.local";
    let udp = s.dig(&["+notcp", "+ignore", name, "A"]);
    assert!(udp.has_flag("tc") && udp.answer.is_empty(), "{udp}");
    for client in ["dig", "kdig"] {
        let a = if client == "dig" {
            s.dig(&["+tcp", name, "A"])
        } else {
            s.kdig(&["+tcp", name, "A"])
        };
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(
            a.answer.len() > 3000,
            "{client}: {} addresses",
            a.answer.len()
        );
    }
}
