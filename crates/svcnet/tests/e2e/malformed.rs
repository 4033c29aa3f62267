//! Malformed packets (SPEC §2 "Protocol"): never a crash or a stall;
//! FORMERR when a header can be read, NOTIMP for other opcodes, otherwise
//! dropped. Checked over UDP and TCP, then the server must still answer.

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::RecordType;

use crate::harness::{
    Server, encode, example, parse, query, read_framed, udp_exchange, write_framed,
};

/// What the server must do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// No reply (UDP), or the connection is closed (TCP).
    Drop,
    /// A reply with this RCODE and the query's ID.
    Rcode(u16),
}

const FORMERR: Expect = Expect::Rcode(1);
const NOTIMP: Expect = Expect::Rcode(4);

/// A header: ID 0xbeef, RD, the given flags word and counts.
fn header(flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = vec![0xbe, 0xef];
    for v in [flags, qd, an, ns, ar] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn question(name: &[u8]) -> Vec<u8> {
    let mut q = name.to_vec();
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

const WEB0: &[u8] = b"\x05web-0\x05nginx\x07default\x03svc\x07cluster\x05local\x00";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The abuse catalogue: (what, packet, expected).
fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let valid = encode(&query(
        "web-0.nginx.default.svc.cluster.local",
        RecordType::A,
    ));
    let mut response = Message::response(0xbeef, OpCode::Query);
    response.add_query(
        query("web-0.nginx.default.svc.cluster.local", RecordType::A).queries[0].clone(),
    );
    let opcode = |op: u8| {
        let mut p = valid.clone();
        p[0] = 0xbe;
        p[1] = 0xef;
        p[2] = (p[2] & 0x87) | (op << 3);
        p
    };
    let five_long_labels: Vec<u8> = std::iter::repeat_n([&[63u8][..], &[b'a'; 63][..]].concat(), 5)
        .flatten()
        .chain([0])
        .collect();
    vec![
        ("empty", Vec::new(), Expect::Drop),
        ("one byte", vec![0x12], Expect::Drop),
        (
            "truncated header",
            header(0x0100, 1, 0, 0, 0)[..7].to_vec(),
            Expect::Drop,
        ),
        (
            "header only, QDCOUNT=1",
            header(0x0100, 1, 0, 0, 0),
            FORMERR,
        ),
        ("QDCOUNT=0", header(0x0100, 0, 0, 0, 0), FORMERR),
        (
            "QDCOUNT=2",
            cat(&[
                &header(0x0100, 2, 0, 0, 0),
                &question(WEB0),
                &question(WEB0),
            ]),
            FORMERR,
        ),
        (
            "QDCOUNT=65535",
            cat(&[&header(0x0100, 0xffff, 0, 0, 0), &question(WEB0)]),
            FORMERR,
        ),
        (
            "compression pointer to itself in the question",
            cat(&[&header(0x0100, 1, 0, 0, 0), &question(&[0xc0, 12])]),
            FORMERR,
        ),
        (
            "compression pointer loop after a label",
            cat(&[&header(0x0100, 1, 0, 0, 0), &question(&[1, b'a', 0xc0, 12])]),
            FORMERR,
        ),
        (
            "label length 63 past the end",
            cat(&[&header(0x0100, 1, 0, 0, 0), &[63, b'a', b'b']]),
            FORMERR,
        ),
        (
            "label length 0x7f (extended label type)",
            cat(&[&header(0x0100, 1, 0, 0, 0), &question(&[0x7f, b'a', 0])]),
            FORMERR,
        ),
        (
            "label length 0xff",
            cat(&[&header(0x0100, 1, 0, 0, 0), &[0xff; 40]]),
            FORMERR,
        ),
        (
            "name longer than 255 octets",
            cat(&[&header(0x0100, 1, 0, 0, 0), &question(&five_long_labels)]),
            FORMERR,
        ),
        (
            "question without type and class",
            cat(&[&header(0x0100, 1, 0, 0, 0), WEB0]),
            FORMERR,
        ),
        (
            "ARCOUNT=1 without the record",
            cat(&[&header(0x0100, 1, 0, 0, 1), &question(WEB0)]),
            FORMERR,
        ),
        (
            "OPT with RDLENGTH past the end",
            cat(&[
                &header(0x0100, 1, 0, 0, 1),
                &question(WEB0),
                &[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0xff, 0xff],
            ]),
            FORMERR,
        ),
        (
            "two OPT records",
            cat(&[
                &header(0x0100, 1, 0, 0, 2),
                &question(WEB0),
                &[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0],
                &[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0],
            ]),
            FORMERR,
        ),
        ("a response (QR set)", encode(&response), Expect::Drop),
        (
            "QR set, garbage after the header",
            cat(&[&header(0x8000, 1, 0, 0, 0), &[0xff; 20]]),
            Expect::Drop,
        ),
        ("opcode 1 (IQUERY)", opcode(1), NOTIMP),
        ("opcode 2 (STATUS)", opcode(2), NOTIMP),
        ("opcode 4 (NOTIFY)", opcode(4), NOTIMP),
        ("opcode 5 (UPDATE)", opcode(5), NOTIMP),
        ("opcode 15", opcode(15), NOTIMP),
    ]
}

fn check_reply(what: &str, reply: &[u8], expect: Expect) {
    let Expect::Rcode(rcode) = expect else {
        panic!("{what}: expected no reply, got {reply:02x?}");
    };
    let m = parse(reply);
    assert_eq!(m.metadata.id, 0xbeef, "{what}: ID echoed");
    assert_eq!(m.metadata.message_type, MessageType::Response, "{what}");
    assert_eq!(u16::from(m.metadata.response_code), rcode, "{what}: {m}");
}

#[test]
fn spec_2_malformed_udp_gets_formerr_or_notimp_or_is_dropped() {
    let mut s = Server::start(&["-f", &example("local")]);
    for (what, packet, expect) in cases() {
        // A drop is proven by silence, so wait less for those.
        let wait = match expect {
            Expect::Drop => Duration::from_millis(400),
            Expect::Rcode(_) => Duration::from_secs(2),
        };
        match udp_exchange(s.addr, &packet, wait) {
            Some(reply) => check_reply(what, &reply, expect),
            None => assert_eq!(expect, Expect::Drop, "{what}: no reply"),
        }
    }
    s.assert_healthy();
}

#[test]
fn spec_2_malformed_tcp_gets_formerr_or_notimp_or_is_closed() {
    let mut s = Server::start(&["-f", &example("local")]);
    for (what, packet, expect) in cases() {
        let mut conn = s.connect();
        write_framed(&mut conn, &packet);
        match read_framed(&mut conn) {
            Ok(reply) => {
                check_reply(what, &reply, expect);
                // FORMERR does not end the connection: the next query works.
                let q = query("web-1.nginx.default.svc.cluster.local", RecordType::A);
                write_framed(&mut conn, &encode(&q));
                let next = parse(&read_framed(&mut conn).expect("a reply after FORMERR"));
                assert_eq!(next.metadata.id, q.metadata.id, "{what}");
                assert_eq!(next.answers.len(), 1, "{what}: {next}");
            }
            Err(e) => assert_eq!(expect, Expect::Drop, "{what}: connection ended: {e}"),
        }
    }
    s.assert_healthy();
}

#[test]
fn spec_2_tcp_length_prefix_longer_than_the_data_does_not_stall_the_server() {
    let mut s = Server::start(&["-f", &example("local")]);
    // Announce 300 bytes, send 20, close our side.
    let mut conn = s.connect();
    conn.write_all(&300u16.to_be_bytes()).expect("write");
    conn.write_all(&header(0x0100, 1, 0, 0, 0)).expect("write");
    conn.write_all(&[7u8; 8]).expect("write");
    conn.shutdown(Shutdown::Write).expect("shutdown");
    assert!(
        read_framed(&mut conn).is_err(),
        "no reply to an incomplete frame"
    );
    // Half a length prefix, then close.
    let mut conn = s.connect();
    conn.write_all(&[0x01]).expect("write");
    conn.shutdown(Shutdown::Write).expect("shutdown");
    assert!(read_framed(&mut conn).is_err());
    // A zero-length frame.
    let mut conn = s.connect();
    conn.write_all(&[0, 0]).expect("write");
    assert!(read_framed(&mut conn).is_err());
    // And connections that hang mid-frame, held open while others are served.
    let mut hanging = Vec::new();
    for announced in [12u16, 512, 65535] {
        let mut c = s.connect();
        c.write_all(&announced.to_be_bytes()).expect("write");
        c.write_all(&[0xbe, 0xef, 1]).expect("write");
        hanging.push(c);
    }
    let mut slow_prefix = s.connect();
    slow_prefix.write_all(&[0]).expect("write");
    hanging.push(slow_prefix);
    s.assert_healthy();
    drop(hanging);
    s.assert_healthy();
}

/// xorshift64*: reproducible garbage without a rand dependency.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn packet(&mut self) -> Vec<u8> {
        let len = usize::try_from(self.next() % 600).unwrap_or(0);
        let mut p: Vec<u8> = (0..len).map(|_| self.next().to_le_bytes()[0]).collect();
        // Keep most of them queries (QR clear), so they get past the first check.
        if p.len() > 2 && !self.next().is_multiple_of(4) {
            p[2] &= 0x7f;
        }
        // And some with a plausible question count.
        if p.len() > 5 && self.next().is_multiple_of(2) {
            p[4] = 0;
            p[5] = 1;
        }
        p
    }
}

#[test]
fn spec_2_random_garbage_never_crashes_the_server_and_every_reply_parses() {
    let mut s = Server::start(&["-f", &example("local")]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("set_read_timeout");
    let mut g = Garbage(0x5eed_0f5c_e7e7);
    let mut sent = Vec::new();
    for _ in 0..300 {
        let p = g.packet();
        sock.send_to(&p, s.addr).expect("send");
        sent.push(p);
        // Pace the burst so the socket buffers never drop replies.
        std::thread::sleep(Duration::from_micros(300));
    }
    let mut buf = vec![0u8; 65535];
    let mut replies = 0;
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        replies += 1;
        let m = parse(&buf[..n]);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(
            sent.iter()
                .any(|p| p.len() >= 12 && p[..2] == m.metadata.id.to_be_bytes()),
            "a reply with an ID nobody sent: {m}"
        );
    }
    assert!(replies > 0, "300 packets and not one reply");
    // Garbage over TCP too, one frame per connection.
    for _ in 0..30 {
        let p = g.packet();
        let mut conn = s.connect();
        write_framed(&mut conn, &p);
        if let Ok(reply) = read_framed(&mut conn) {
            parse(&reply);
        }
    }
    s.assert_healthy();
}
