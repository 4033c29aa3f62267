//! The `serve` process itself (SPEC §2 "Protocol", §4): every listen
//! address serves UDP and TCP, and SIGTERM stops it cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{Server, example, run_tool};

#[test]
fn spec_2_every_listen_address_serves_udp_and_tcp_and_is_advertised() {
    let s = Server::start(&["-f", &example("local"), "--listen", "[::1]:0"]);
    let line = s
        .wait_for_log(Duration::from_secs(5), |l| l.contains("udp+tcp [::1]:"))
        .unwrap_or_else(|| panic!("no IPv6 listener:\n{}", s.log_text()));
    let v6: SocketAddr = line
        .split_once("udp+tcp ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let v6_port = v6.port().to_string();
    let v4_port = s.port();
    let name = "web-0.nginx.default.svc.cluster.local";
    let mut answers = Vec::new();
    for (server, port) in [("@127.0.0.1", &v4_port), ("@::1", &v6_port)] {
        for transport in ["+notcp", "+tcp"] {
            let args = [
                server, "-p", port, "+tries=1", "+time=2", "+short", transport, name,
            ];
            let out = run_tool("dig", &args);
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert!(
                out.status.success() && !text.is_empty(),
                "dig {args:?}: {text}"
            );
            answers.push(text);
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // ns.dns.<zone> has the listen addresses (SPEC §2.1, no --advertise).
    assert_eq!(
        s.dig(&["ns.dns.cluster.local", "A"]).rdata("A"),
        vec!["127.0.0.1"]
    );
    assert_eq!(
        s.dig(&["ns.dns.cluster.local", "AAAA"]).rdata("AAAA"),
        vec!["::1"]
    );
}

#[test]
fn spec_4_serve_stops_cleanly_on_sigterm() {
    let mut s = Server::start(&["-f", &example("local")]);
    s.assert_healthy();
    let status = s
        .terminate(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM:\n{}", s.log_text()));
    assert!(status.success(), "exit {status}:\n{}", s.log_text());
    assert!(
        s.wait_for_log(Duration::from_secs(1), |l| l.contains("stopping"))
            .is_some(),
        "{}",
        s.log_text()
    );
}
