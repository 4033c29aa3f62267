//! The seed scenarios (SPEC §2, §3) asked over real UDP and TCP by dig, kdig
//! and hickory-proto: every client must see the same answer.

use hickory_proto::rr::RecordType;

use crate::harness::{Answer, Server, ask_everyone, example, query, with_edns};

fn local() -> Server {
    Server::start(&["-f", &example("local")])
}

/// The one A record every client gets for `name`.
fn single_a(server: &Server, name: &str) -> String {
    let a = server.dig(&[name, "A"]);
    assert_eq!(a.status, "NOERROR", "{a}");
    let ips = a.rdata("A");
    assert_eq!(ips.len(), 1, "{a}");
    ips[0].clone()
}

fn assert_soa_authority(a: &Answer, zone: &str) {
    assert_eq!(a.authority.len(), 1, "{a}");
    let soa = &a.authority[0];
    assert_eq!(soa.rtype, "SOA", "{a}");
    assert_eq!(soa.name, format!("{zone}."), "{a}");
    assert!(
        soa.rdata
            .starts_with(&format!("ns.dns.{zone}. hostmaster.{zone}. ")),
        "{a}"
    );
    // SPEC §2: SOA TTL = min(TTL, minimum) = 5 with the defaults.
    assert_eq!(soa.ttl, 5, "{a}");
}

#[test]
fn spec_2_statefulset_hostname_a_is_served_to_every_client_over_udp_and_tcp() {
    let s = local();
    let all = ask_everyone(&s, "web-0.nginx.default.svc.cluster.local", "A");
    let want = all[0].rdata("A");
    assert_eq!(want.len(), 1, "{}", all[0]);
    assert!(want[0].starts_with("10.244."), "pod CIDR: {}", all[0]);
    for a in &all {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(
            a.has_flag("qr") && a.has_flag("aa") && a.has_flag("rd"),
            "{a}"
        );
        assert!(!a.has_flag("tc"), "{a}");
        assert_eq!(a.rdata("A"), want, "{a}");
        assert_eq!(a.answer.len(), 1, "{a}");
        assert_eq!(a.answer[0].name, "web-0.nginx.default.svc.cluster.local.");
        assert_eq!(a.answer[0].ttl, 5, "default TTL: {a}");
        assert!(a.authority.is_empty(), "{a}");
    }
}

#[test]
fn spec_2_question_is_matched_case_insensitively_and_echoed_as_asked() {
    let s = local();
    let want = single_a(&s, "web-0.nginx.default.svc.cluster.local");
    let reply = s.udp(&query(
        "WEB-0.Nginx.Default.SVC.cluster.LOCAL",
        RecordType::A,
    ));
    let a = Answer::from_message("hickory-udp", &reply);
    assert_eq!(a.rdata("A"), vec![want], "{a}");
    assert_eq!(
        reply.queries[0].name().to_string(),
        "WEB-0.Nginx.Default.SVC.cluster.LOCAL."
    );
}

#[test]
fn spec_2_srv_of_headless_named_port_lists_ready_endpoints_with_additional_a() {
    let s = local();
    let web0 = single_a(&s, "web-0.nginx.default.svc.cluster.local");
    let web1 = single_a(&s, "web-1.nginx.default.svc.cluster.local");
    for a in ask_everyone(&s, "_web._tcp.nginx.default.svc.cluster.local", "SRV") {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(a.has_flag("aa"), "{a}");
        // web-2 is not Ready (examples/local/01-statefulset-web.yaml).
        assert_eq!(
            a.rdata("SRV"),
            vec![
                "0 50 80 web-0.nginx.default.svc.cluster.local.",
                "0 50 80 web-1.nginx.default.svc.cluster.local.",
            ],
            "{a}"
        );
        let mut extra: Vec<(String, String)> = a
            .additional
            .iter()
            .map(|r| (r.name.clone(), format!("{} {}", r.rtype, r.rdata)))
            .collect();
        extra.sort();
        assert_eq!(
            extra,
            vec![
                (
                    "web-0.nginx.default.svc.cluster.local.".to_owned(),
                    format!("A {web0}")
                ),
                (
                    "web-1.nginx.default.svc.cluster.local.".to_owned(),
                    format!("A {web1}")
                ),
            ],
            "{a}"
        );
    }
}

#[test]
fn spec_2_srv_of_clusterip_service_targets_the_service_with_its_port() {
    let s = local();
    let ip = single_a(&s, "backend.default.svc.cluster.local");
    for a in ask_everyone(&s, "_http._tcp.backend.default.svc.cluster.local", "SRV") {
        assert_eq!(
            a.rdata("SRV"),
            vec!["0 100 80 backend.default.svc.cluster.local."],
            "{a}"
        );
        assert_eq!(a.additional_rdata("A"), vec![ip.clone()], "{a}");
    }
}

#[test]
fn spec_2_headless_service_answers_every_ready_pod() {
    let s = local();
    let all = ask_everyone(&s, "nginx-headless.test.svc.cluster.local", "A");
    let want = all[0].rdata("A");
    assert_eq!(want.len(), 2, "two replicas: {}", all[0]);
    assert_ne!(want[0], want[1]);
    for a in &all {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert_eq!(a.rdata("A"), want, "{a}");
    }
    // The same two pods answer under their dashed-IP names.
    for ip in &want {
        let name = format!(
            "{}.nginx-headless.test.svc.cluster.local",
            ip.replace('.', "-")
        );
        assert_eq!(single_a(&s, &name), *ip);
    }
}

#[test]
fn spec_2_headless_a_answers_rotate_between_queries() {
    let s = local();
    let q = query("nginx-headless.test.svc.cluster.local", RecordType::A);
    let mut conn = s.connect();
    let mut orders = Vec::new();
    for _ in 0..4 {
        crate::harness::write_framed(&mut conn, &crate::harness::encode(&q));
        let reply = crate::harness::read_framed(&mut conn).expect("TCP reply");
        let a = Answer::from_message("hickory-tcp", &crate::harness::parse(&reply));
        orders.push(a.answer.iter().map(|r| r.rdata.clone()).collect::<Vec<_>>());
    }
    assert!(
        orders.windows(2).any(|w| w[0] != w[1]),
        "the order never changed: {orders:?}"
    );
}

#[test]
fn spec_2_external_name_is_a_cname_to_the_external_name() {
    let s = local();
    for rtype in ["A", "CNAME"] {
        for a in ask_everyone(&s, "database.default.svc.cluster.local", rtype) {
            assert_eq!(a.status, "NOERROR", "{a}");
            assert!(a.has_flag("aa"), "{a}");
            assert_eq!(a.answer.len(), 1, "no upstream, nothing appended: {a}");
            assert_eq!(a.answer[0].rtype, "CNAME", "{a}");
            assert_eq!(a.answer[0].rdata, "db.example.com.", "{a}");
        }
    }
}

#[test]
fn spec_2_ptr_of_endpoint_ip_names_the_pod_hostname() {
    let s = local();
    let ip = single_a(&s, "web-0.nginx.default.svc.cluster.local");
    let want = vec!["web-0.nginx.default.svc.cluster.local.".to_owned()];
    let octets: Vec<&str> = ip.split('.').rev().collect();
    let reverse = format!("{}.in-addr.arpa", octets.join("."));
    let mut all = vec![
        s.dig(&["-x", &ip]),
        s.dig(&["+tcp", "-x", &ip]),
        s.kdig(&["-x", &ip]),
        s.kdig(&["+tcp", "-x", &ip]),
    ];
    all.extend(ask_everyone(&s, &reverse, "PTR"));
    for a in &all {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(a.has_flag("aa"), "{a}");
        assert_eq!(a.rdata("PTR"), want, "{a}");
        assert_eq!(a.answer[0].name, format!("{reverse}."), "{a}");
    }
    // A ClusterIP maps back to its service.
    let cip = single_a(&s, "backend.default.svc.cluster.local");
    let a = s.dig(&["-x", &cip]);
    assert_eq!(
        a.rdata("PTR"),
        vec!["backend.default.svc.cluster.local."],
        "{a}"
    );
}

#[test]
fn spec_2_unknown_name_is_nxdomain_with_soa_in_authority() {
    let s = local();
    for name in [
        "nope.default.svc.cluster.local",
        // §2.1: no per-endpoint names under a ClusterIP service.
        "web-0.backend.default.svc.cluster.local",
        "web-2.nginx.default.svc.cluster.local",
    ] {
        for a in ask_everyone(&s, name, "A") {
            assert_eq!(a.status, "NXDOMAIN", "{name}: {a}");
            assert!(a.has_flag("aa"), "{a}");
            assert!(a.answer.is_empty(), "{a}");
            assert_soa_authority(&a, "cluster.local");
        }
    }
}

#[test]
fn spec_2_existing_name_of_another_type_is_nodata_with_soa() {
    let s = local();
    for (name, rtype) in [
        ("backend.default.svc.cluster.local", "AAAA"),
        ("backend.default.svc.cluster.local", "TXT"),
        ("default.svc.cluster.local", "A"),
        ("svc.cluster.local", "A"),
        ("cluster.local", "A"),
    ] {
        for a in ask_everyone(&s, name, rtype) {
            assert_eq!(a.status, "NOERROR", "{name} {rtype}: {a}");
            assert!(a.answer.is_empty(), "{a}");
            assert_soa_authority(&a, "cluster.local");
        }
    }
}

#[test]
fn spec_2_zone_apex_serves_soa_ns_and_dns_version() {
    let s = local();
    for a in ask_everyone(&s, "cluster.local", "SOA") {
        let soa = a.rdata("SOA");
        assert_eq!(soa.len(), 1, "{a}");
        let fields: Vec<&str> = soa[0].split(' ').collect();
        assert_eq!(
            [
                fields[0], fields[1], fields[3], fields[4], fields[5], fields[6]
            ],
            [
                "ns.dns.cluster.local.",
                "hostmaster.cluster.local.",
                "7200",
                "1800",
                "86400",
                "5"
            ],
            "{a}"
        );
    }
    let ns = s.dig(&["cluster.local", "NS"]);
    assert_eq!(ns.rdata("NS"), vec!["ns.dns.cluster.local."], "{ns}");
    let v = s.dig(&["dns-version.cluster.local", "TXT"]);
    assert_eq!(v.rdata("TXT"), vec!["\"1.1.0\""], "{v}");
    assert_eq!(v.answer[0].ttl, 28800, "{v}");
}

#[test]
fn spec_2_axfr_is_refused() {
    let s = local();
    for tool in ["dig", "kdig"] {
        let port = s.port();
        let args = ["@127.0.0.1", "-p", &port, "AXFR", "cluster.local"];
        let out = crate::harness::run_tool(tool, &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Transfer failed") || text.contains("REFUSED"),
            "{tool} AXFR:\n{text}"
        );
        assert!(!text.contains("IN\tSOA"), "{tool} got a zone:\n{text}");
    }
    for rtype in [RecordType::AXFR, RecordType::IXFR] {
        let q = query("cluster.local", rtype);
        for (how, reply) in [("udp", s.udp(&q)), ("tcp", s.tcp(&q))] {
            let a = Answer::from_message(how, &reply);
            assert_eq!(a.status, "REFUSED", "{rtype} over {how}: {a}");
            assert!(a.answer.is_empty(), "{a}");
        }
    }
}

#[test]
fn spec_2_name_outside_our_zones_is_refused_without_upstream() {
    let s = local();
    for name in ["example.com", "kubernetes.default.svc.other.local", "local"] {
        for a in ask_everyone(&s, name, "A") {
            assert_eq!(a.status, "REFUSED", "{name}: {a}");
            assert!(!a.has_flag("aa"), "{a}");
            assert!(a.answer.is_empty(), "{a}");
        }
    }
}

#[test]
fn spec_2_class_other_than_in_is_refused() {
    let s = local();
    let a = s.dig(&["-c", "CH", "web-0.nginx.default.svc.cluster.local", "A"]);
    assert_eq!(a.status, "REFUSED", "{a}");
}

#[test]
fn spec_3_clusterset_names_span_every_exporting_cluster() {
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--cluster",
        &format!("west={}", example("west")),
    ]);
    let local = s
        .dig(&["local.nginx-headless.test.svc.clusterset.local"])
        .rdata("A");
    let west = s
        .dig(&["west.nginx-headless.test.svc.clusterset.local"])
        .rdata("A");
    assert_eq!((local.len(), west.len()), (2, 2), "{local:?} {west:?}");
    let mut both: Vec<String> = local.iter().chain(&west).cloned().collect();
    both.sort();
    both.dedup();
    assert_eq!(both.len(), 4, "distinct pods in the two clusters: {both:?}");

    for a in ask_everyone(&s, "nginx-headless.test.svc.clusterset.local", "A") {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(a.has_flag("aa"), "{a}");
        assert_eq!(a.rdata("A"), both, "{a}");
    }
    // cluster.local answers for the local cluster only.
    assert_eq!(
        s.dig(&["nginx-headless.test.svc.cluster.local"]).rdata("A"),
        local
    );
    // SRV: one record per endpoint, named under its cluster.
    let srv = s.dig(&["_http._tcp.nginx-headless.test.svc.clusterset.local", "SRV"]);
    let targets = srv.rdata("SRV");
    assert_eq!(targets.len(), 4, "{srv}");
    for t in &targets {
        assert!(
            t.starts_with("0 25 80 ")
                && (t.contains(".local.nginx-headless.") || t.contains(".west.nginx-headless.")),
            "{srv}"
        );
    }
    assert_eq!(srv.additional_rdata("A"), both, "{srv}");

    // A ClusterIP service exported from west only.
    let set_ip = s.dig(&["backend.default.svc.clusterset.local"]);
    let ips = set_ip.rdata("A");
    assert_eq!(ips.len(), 1, "{set_ip}");
    let second: u8 = ips[0]
        .split('.')
        .nth(1)
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    assert!(
        ips[0].starts_with("10.") && (112..128).contains(&second),
        "ClusterSetIP from 10.112.0.0/12: {set_ip}"
    );
    assert_eq!(
        s.dig(&["west.backend.default.svc.clusterset.local"])
            .rdata("A"),
        vec!["10.100.0.50"]
    );
    for name in [
        "local.backend.default.svc.clusterset.local",
        // Not exported: no clusterset name even though cluster.local has it.
        "api-headless.default.svc.clusterset.local",
    ] {
        let a = s.kdig(&[name]);
        assert_eq!(a.status, "NXDOMAIN", "{a}");
        assert_soa_authority(&a, "clusterset.local");
    }
    let v = s.kdig(&["dns-version.clusterset.local", "TXT"]);
    assert_eq!(v.rdata("TXT"), vec!["\"1.0.0\""], "{v}");

    // hickory over UDP with EDNS sees the same union.
    let reply = s.udp(&with_edns(
        query("nginx-headless.test.svc.clusterset.local", RecordType::A),
        1232,
    ));
    assert_eq!(Answer::from_message("hickory-udp", &reply).rdata("A"), both);
}
