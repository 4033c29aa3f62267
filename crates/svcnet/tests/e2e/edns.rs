//! EDNS(0) and truncation (SPEC §2 "Protocol"): OPT echo, the client's
//! payload size honoured, BADVERS, TC over UDP and the full answer over TCP.

use std::fmt::Write as _;

use hickory_proto::op::Edns;
use hickory_proto::rr::RecordType;
use tempfile::TempDir;

use crate::harness::{Answer, Server, example, query, with_edns};

/// A headless service `name` in namespace `load` over `pods` explicit Pods
/// with `status.podIP` 10.250.<name's octet>.<i>.
pub(crate) fn headless_manifest(name: &str, octet: u8, pods: u8) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: load\n\
         spec:\n  clusterIP: None\n  selector:\n    app: {name}\n  ports:\n    - name: http\n      port: 80\n"
    );
    for i in 0..pods {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}-{i}\n  namespace: load\n  labels:\n    app: {name}\n\
             spec:\n  containers:\n    - name: c\n      image: example/c:1\n\
             status:\n  phase: Running\n  podIP: 10.250.{octet}.{}\n",
            u16::from(i) + 1
        );
    }
    y
}

/// 150 endpoints (about 2.4 kB of A records: over 1232) and 40 (about
/// 700 bytes: over 512, under 1232).
fn big_server() -> (TempDir, Server) {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("big.yaml"),
        headless_manifest("big", 1, 150),
    )
    .expect("write big.yaml");
    std::fs::write(dir.path().join("mid.yaml"), headless_manifest("mid", 2, 40))
        .expect("write mid.yaml");
    let path = dir.path().to_string_lossy().into_owned();
    let server = Server::start(&["-f", &path]);
    (dir, server)
}

const BIG: &str = "big.load.svc.cluster.local";
const MID: &str = "mid.load.svc.cluster.local";

#[test]
fn spec_2_edns_opt_is_echoed_advertising_1232() {
    let s = Server::start(&["-f", &example("local")]);
    let name = "web-0.nginx.default.svc.cluster.local";
    for payload in [512, 1232, 4096] {
        let reply = s.udp(&with_edns(query(name, RecordType::A), payload));
        let edns = reply.edns.as_ref().expect("OPT echoed");
        assert_eq!(edns.max_payload(), 1232, "asked with {payload}");
        assert_eq!(edns.version(), 0);
        let reply = s.tcp(&with_edns(query(name, RecordType::A), payload));
        assert_eq!(reply.edns.as_ref().map(Edns::max_payload), Some(1232));
    }
    // No OPT in, no OPT out.
    let reply = s.udp(&query(name, RecordType::A));
    assert!(reply.edns.is_none(), "{reply}");
    let a = s.dig(&["+noedns", name]);
    assert_eq!(a.edns_payload, None, "{a}");
    for a in [s.dig(&[name]), s.kdig(&["+edns", name])] {
        assert_eq!(a.edns_payload, Some(1232), "{a}");
        assert_eq!(a.status, "NOERROR", "{a}");
    }
}

#[test]
fn spec_2_edns_version_1_is_badvers() {
    let s = Server::start(&["-f", &example("local")]);
    let name = "web-0.nginx.default.svc.cluster.local";
    // dig would otherwise retry with version 0 and hide the BADVERS.
    for a in [
        s.dig(&["+edns=1", "+noednsnegotiation", name]),
        s.dig(&["+tcp", "+edns=1", "+noednsnegotiation", name]),
        s.kdig(&["+edns=1", name]),
        s.kdig(&["+tcp", "+edns=1", name]),
    ] {
        assert_eq!(a.status, "BADVERS", "{a}");
        assert!(a.answer.is_empty(), "{a}");
        assert_eq!(a.edns_payload, Some(1232), "{a}");
    }
    let mut q = with_edns(query(name, RecordType::A), 1232);
    if let Some(e) = q.edns.as_mut() {
        e.set_version(1);
    }
    for reply in [s.udp(&q), s.tcp(&q)] {
        // RCODE 16 is BADVERS in a reply to an OPT (hickory names it BADSIG,
        // the TSIG reading of the same number).
        assert_eq!(u16::from(reply.metadata.response_code), 16, "{reply}");
        let edns = reply.edns.as_ref().expect("BADVERS needs an OPT");
        assert_eq!(edns.version(), 0, "we speak version 0");
    }
}

#[test]
fn spec_2_answer_too_big_for_udp_is_truncated_and_complete_over_tcp() {
    let (_dir, s) = big_server();
    let mut want: Vec<String> = (1..=150).map(|i| format!("10.250.1.{i}")).collect();
    want.sort();

    // UDP without EDNS (512) and with 1232: the single RRset does not fit,
    // so TC and no partial RRset.
    for q in [
        query(BIG, RecordType::A),
        with_edns(query(BIG, RecordType::A), 1232),
        with_edns(query(BIG, RecordType::A), 4096),
    ] {
        let reply = s.udp(&q);
        assert!(reply.metadata.truncation, "{reply}");
        assert_eq!(
            reply.edns.is_some(),
            q.edns.is_some(),
            "OPT echoed: {reply}"
        );
        assert!(reply.answers.is_empty(), "whole RRsets only: {reply}");
        assert_eq!(reply.queries.len(), 1, "question echoed: {reply}");
    }
    let a = s.dig(&["+ignore", "+noedns", BIG]);
    assert!(a.has_flag("tc"), "{a}");
    let a = s.kdig(&["+ignore", BIG]);
    assert!(a.has_flag("tc"), "{a}");

    // TCP: everything.
    for a in [
        Answer::from_message("hickory-tcp", &s.tcp(&query(BIG, RecordType::A))),
        s.dig(&["+tcp", BIG]),
        s.kdig(&["+tcp", BIG]),
        // dig and kdig retry over TCP by themselves on TC.
        s.dig(&[BIG]),
        s.kdig(&[BIG]),
    ] {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(!a.has_flag("tc"), "{a}");
        assert_eq!(a.rdata("A"), want, "[{}] all 150", a.client);
    }
    let a = s.dig(&[BIG]);
    assert!(a.text.contains("Truncated, retrying in TCP mode"), "{a}");
}

#[test]
fn spec_2_udp_limit_is_the_clients_edns_payload_size() {
    let (_dir, s) = big_server();
    // 40 A records: more than 512 bytes, less than 1232.
    for (payload, truncated) in [(None, true), (Some(512), true), (Some(1232), false)] {
        let q = query(MID, RecordType::A);
        let q = match payload {
            Some(p) => with_edns(q, p),
            None => q,
        };
        let raw = s.udp_raw(&crate::harness::encode(&q)).expect("a UDP reply");
        assert!(
            raw.len() <= usize::from(payload.unwrap_or(512)),
            "{} bytes do not fit the payload size {payload:?}",
            raw.len()
        );
        let reply = crate::harness::parse(&raw);
        assert_eq!(
            reply.metadata.truncation, truncated,
            "payload {payload:?}: {reply}"
        );
        let expected = if truncated { 0 } else { 40 };
        assert_eq!(reply.answers.len(), expected, "payload {payload:?}");
    }
    let a = s.dig(&["+bufsize=1232", MID]);
    assert_eq!(a.rdata("A").len(), 40, "{a}");
    assert!(!a.text.contains("Truncated"), "{a}");
}
