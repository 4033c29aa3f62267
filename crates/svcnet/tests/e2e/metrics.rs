//! `/metrics` under a query load (issue "operations"): the exposition is
//! well formed, and the query counters move by exactly what was asked, per
//! zone, type, rcode and protocol; `--log-queries` logs what it samples.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::forward::Upstream;
use crate::harness::{Server, example, http_get, query, udp_exchange};

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// `k="v",…` (the part between the braces), with escapes undone.
fn parse_labels(text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(
            !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !key.starts_with(|c: char| c.is_ascii_digit()),
            "bad label name {key:?} in {line:?}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(key.to_owned(), value).is_none(),
            "label {key} twice in {line:?}"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// Parses Prometheus text format 0.0.4 and checks what a scraper relies
/// on: every sample belongs to a family declared once by `# TYPE` (after
/// its `# HELP`) before its samples, names and labels are well formed,
/// values are numbers, no series repeats, and histogram buckets are
/// cumulative and end in `+Inf` equal to `_count`.
pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            assert!(valid_name(name), "HELP of a bad name: {line:?}");
            assert!(!helped.contains(&name.to_owned()), "HELP twice: {line:?}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (name, kind) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            assert!(
                helped.contains(&name.to_owned()),
                "TYPE before HELP: {line:?}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line:?}"
            );
            assert!(
                samples.iter().all(|s| family(&s.name, &types) != name),
                "TYPE of {name} after its samples"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        assert!(!line.trim().is_empty(), "blank line in the exposition");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                (name, parse_labels(inner, line))
            }
            None => (series, BTreeMap::new()),
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value is not a number in {line:?}")),
        };
        let fam = family(name, &types);
        let kind = types
            .get(fam)
            .unwrap_or_else(|| panic!("sample of a family without TYPE: {line:?}"));
        if kind == "counter" {
            assert!(value >= 0.0, "negative counter {line:?}");
        }
        if name != fam {
            assert_eq!(kind, "histogram", "suffixed sample of a {kind}: {line:?}");
        }
        let sample = Sample {
            name: name.to_owned(),
            labels,
            value,
        };
        assert!(
            !samples
                .iter()
                .any(|s| s.name == sample.name && s.labels == sample.labels),
            "series twice: {line:?}"
        );
        samples.push(sample);
    }
    check_histograms(&samples, &types);
    samples
}

/// The family a sample belongs to: its own name, or a histogram's name
/// without `_bucket`/`_sum`/`_count`.
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|k| k == "histogram")
        {
            return base;
        }
    }
    name
}

/// A series' labels other than `le`, in order.
type SeriesKey = Vec<(String, String)>;

fn check_histograms(samples: &[Sample], types: &BTreeMap<String, String>) {
    for (name, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let le = s
                .labels
                .get("le")
                .unwrap_or_else(|| panic!("bucket without le: {s:?}"));
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or_else(|_| panic!("bad le in {s:?}"))
            };
            let key: SeriesKey = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series.entry(key).or_default().push((bound, s.value));
        }
        assert!(!series.is_empty(), "histogram {name} has no buckets");
        for (labels, buckets) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{name}{labels:?}: buckets not increasing and cumulative: {buckets:?}"
            );
            let (last_bound, last) = buckets[buckets.len() - 1];
            assert!(last_bound.is_infinite(), "{name}{labels:?}: no +Inf bucket");
            let count = samples
                .iter()
                .find(|s| {
                    s.name == format!("{name}_count")
                        && s.labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .eq(labels.clone())
                })
                .unwrap_or_else(|| panic!("{name}{labels:?}: no _count"));
            assert_eq!(count.value, last, "{name}{labels:?}: +Inf bucket != _count");
            assert!(
                samples.iter().any(|s| s.name == format!("{name}_sum")
                    && s.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .eq(labels.clone())),
                "{name}{labels:?}: no _sum"
            );
        }
    }
}

/// Scrapes and validates `/metrics`.
pub(crate) fn scrape(admin: SocketAddr) -> Vec<Sample> {
    let (code, body) = http_get(admin, "/metrics");
    assert_eq!(code, 200, "{body}");
    parse_exposition(&body)
}

/// The value of the series `name` with exactly `labels` (0 when absent: a
/// counter not incremented yet is not rendered).
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map_or(0.0, |s| s.value)
}

fn requests(samples: &[Sample], zone: &str, qtype: &str, rcode: &str, proto: &str) -> f64 {
    value(
        samples,
        "svcnet_dns_requests_total",
        &[
            ("zone", zone),
            ("type", qtype),
            ("rcode", rcode),
            ("proto", proto),
        ],
    )
}

#[test]
fn exposition_parser_rejects_what_scrapers_reject() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    assert_eq!(parse_exposition(good).len(), 5);
    for bad in [
        "a_total 1\n",
        "# HELP a A.\n# TYPE a counter\na{x=\"1} 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// About 200 queries of known zone, type, rcode and protocol move the
/// counters by exactly those amounts; the latency histograms count the
/// same queries; dropped packets and TCP connections are counted.
#[test]
fn metrics_count_queries_by_zone_type_rcode_and_protocol() {
    let up = Upstream::start();
    let upstream = up.addr.to_string();
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--admin",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
    ]);
    let admin = s.admin_addr();
    let before = scrape(admin);
    // (name, type, transport, how many, zone, rcode)
    let load: [(&str, RecordType, &str, usize, &str, &str); 8] = [
        (
            "web-0.nginx.default.svc.cluster.local",
            RecordType::A,
            "udp",
            60,
            "cluster.local",
            "NOERROR",
        ),
        (
            "nope.default.svc.cluster.local",
            RecordType::A,
            "udp",
            40,
            "cluster.local",
            "NXDOMAIN",
        ),
        (
            "backend.default.svc.cluster.local",
            RecordType::AAAA,
            "udp",
            10,
            "cluster.local",
            "NOERROR",
        ),
        (
            "_web._tcp.nginx.default.svc.cluster.local",
            RecordType::SRV,
            "tcp",
            30,
            "cluster.local",
            "NOERROR",
        ),
        (
            "1.0.96.10.in-addr.arpa",
            RecordType::PTR,
            "udp",
            20,
            "reverse",
            "NOERROR",
        ),
        (
            "nginx-headless.test.svc.clusterset.local",
            RecordType::A,
            "udp",
            20,
            "clusterset.local",
            "NOERROR",
        ),
        (
            "www.example.org",
            RecordType::A,
            "udp",
            15,
            "forwarded",
            "NOERROR",
        ),
        (
            "mail.example.org",
            RecordType::A,
            "tcp",
            5,
            "forwarded",
            "NOERROR",
        ),
    ];
    let mut per_proto = BTreeMap::<&str, f64>::new();
    let mut forwarded = BTreeMap::<&str, f64>::new();
    for (name, rtype, proto, n, zone, _) in load {
        for _ in 0..n {
            let q = query(name, rtype);
            let reply = if proto == "udp" { s.udp(&q) } else { s.tcp(&q) };
            assert!(
                reply.answers.len() + reply.authorities.len() > 0,
                "{name}: {reply}"
            );
        }
        let bucket = if zone == "forwarded" {
            &mut forwarded
        } else {
            &mut per_proto
        };
        *bucket.entry(proto).or_default() += n as f64;
    }
    // Three packets without a header: dropped, never answered.
    for _ in 0..3 {
        let reply = udp_exchange(s.addr(), &[1, 2, 3], Duration::from_millis(200));
        assert_eq!(reply, None);
    }
    let after = scrape(admin);
    for (name, rtype, proto, n, zone, rcode) in load {
        let qtype = rtype.to_string();
        let moved = requests(&after, zone, &qtype, rcode, proto)
            - requests(&before, zone, &qtype, rcode, proto);
        // Two rows share a label set only if they are listed together.
        let expected: usize = load
            .iter()
            .filter(|l| (l.1, l.2, l.4, l.5) == (rtype, proto, zone, rcode))
            .map(|l| l.3)
            .sum();
        assert_eq!(
            moved, expected as f64,
            "{name} {qtype} {proto}: zone={zone} rcode={rcode} moved by {moved}, not {n}"
        );
    }
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let total: usize = load.iter().map(|l| l.3).sum();
    assert_eq!(total, 200);
    assert_eq!(delta("svcnet_queries_total", &[]), 200.0);
    for proto in ["udp", "tcp"] {
        assert_eq!(
            delta(
                "svcnet_dns_request_duration_seconds_count",
                &[("proto", proto)]
            ),
            per_proto[proto],
            "{proto} local latency observations"
        );
        assert_eq!(
            delta(
                "svcnet_forward_request_duration_seconds_count",
                &[("proto", proto)]
            ),
            forwarded[proto],
            "{proto} forwarded latency observations"
        );
    }
    assert_eq!(
        delta("svcnet_dns_dropped_packets_total", &[("proto", "udp")]),
        3.0
    );
    // One connection per TCP query.
    assert_eq!(delta("svcnet_tcp_connections_accepted_total", &[]), 35.0);
    assert!(value(&after, "svcnet_snapshot_age_seconds", &[]) >= 0.0);
    assert_eq!(
        value(
            &after,
            "svcnet_objects",
            &[("cluster", "local"), ("kind", "Service")]
        ),
        7.0,
        "{}",
        http_get(admin, "/metrics").1
    );
    assert_eq!(
        value(
            &after,
            "svcnet_manifest_load_failures_total",
            &[("cluster", "local")]
        ),
        0.0
    );
    assert!(value(&after, "svcnet_cache_misses_total", &[]) >= 1.0);
    // Per upstream: two names went out (the rest came from the cache), each
    // timed; the upstream is healthy and not looping.
    let up_label = [("upstream", upstream.as_str())];
    assert!(
        delta("svcnet_forward_upstream_queries_total", &up_label) >= 2.0,
        "{}",
        http_get(admin, "/metrics").1
    );
    assert!(delta("svcnet_forward_upstream_duration_seconds_count", &up_label) >= 2.0);
    assert_eq!(
        value(&after, "svcnet_forward_upstream_healthy", &up_label),
        1.0
    );
    assert_eq!(
        value(&after, "svcnet_forward_upstream_looping", &up_label),
        0.0
    );
    assert!(delta("svcnet_cache_hits_total", &[]) >= 15.0);
}

/// `--log-queries` logs every query with its facts; `--log-queries 0.25`
/// every fourth.
#[test]
fn log_queries_logs_every_query_or_a_sampled_share() {
    let s = Server::start(&["-f", &example("local"), "--log-queries"]);
    let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
    s.udp(&q);
    s.tcp(&query("nope.default.svc.cluster.local", RecordType::AAAA));
    let udp = s
        .wait_for_log(Duration::from_secs(3), |l| {
            l.contains("qname=web-0.nginx.default.svc.cluster.local.")
        })
        .unwrap_or_else(|| panic!("no query logged:\n{}", s.log_text()));
    for field in [
        "INFO",
        "client=127.0.0.1:",
        "proto=\"udp\"",
        "qtype=A",
        "rcode=\"NOERROR\"",
        "answers=1",
        "latency_us=",
        "forwarded=false",
    ] {
        assert!(udp.contains(field), "{field} missing in {udp:?}");
    }
    let tcp = s
        .wait_for_log(Duration::from_secs(3), |l| {
            l.contains("qname=nope.default.svc.cluster.local.")
        })
        .unwrap_or_else(|| panic!("no TCP query logged:\n{}", s.log_text()));
    for field in [
        "proto=\"tcp\"",
        "qtype=AAAA",
        "rcode=\"NXDOMAIN\"",
        "answers=0",
    ] {
        assert!(tcp.contains(field), "{field} missing in {tcp:?}");
    }

    // Each worker samples its own queries (no shared counter on the hot
    // path): with one worker the share is exact.
    let sampled = Server::start(&[
        "-f",
        &example("local"),
        "--log-queries",
        "0.25",
        "--udp-workers",
        "1",
    ]);
    for _ in 0..8 {
        sampled.udp(&q);
    }
    std::thread::sleep(Duration::from_millis(300));
    let logged = sampled
        .log_lines()
        .iter()
        .filter(|l| l.contains("qname=web-0.nginx"))
        .count();
    assert_eq!(logged, 2, "{}", sampled.log_text());

    let quiet = Server::start(&["-f", &example("local")]);
    quiet.udp(&q);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !quiet.log_text().contains("qname="),
        "queries logged without --log-queries:\n{}",
        quiet.log_text()
    );
}

/// Sends `total` queries from one socket keeping `window` unanswered at a
/// time (a new one for each reply); returns how many were answered.
fn keep_busy(server: SocketAddr, packet: &[u8], total: usize, window: usize) -> usize {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut sent = 0;
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    while sent < window.min(total) {
        sock.send_to(packet, server).expect("send");
        sent += 1;
    }
    while answered < sent {
        if sock.recv_from(&mut buf).is_err() {
            break;
        }
        answered += 1;
        if sent < total {
            sock.send_to(packet, server).expect("send");
            sent += 1;
        }
    }
    answered
}

/// `--udp-coalesce`: a worker kept busy above the rate pauses between
/// batches (and says so in /metrics) yet answers every query; `0` never
/// pauses; a worker below the default rate never pauses either.
#[test]
fn udp_coalescing_pauses_only_under_load_and_loses_nothing() {
    let q = crate::harness::encode(&query(
        "web-0.nginx.default.svc.cluster.local",
        RecordType::A,
    ));
    let pauses = |args: &[&str], total: usize, window: usize| {
        let local = example("local");
        let mut argv = vec!["-f", &local, "--admin", "127.0.0.1:0", "--udp-workers", "1"];
        argv.extend_from_slice(args);
        let s = Server::start(&argv);
        let answered = keep_busy(s.addr(), &q, total, window);
        assert_eq!(answered, total, "{}", s.log_text());
        let samples = scrape(s.admin_addr());
        let answers = value(&samples, "svcnet_queries_total", &[]);
        assert!(answers >= total as f64, "{answers} answered of {total}");
        value(&samples, "svcnet_udp_coalesce_pauses_total", &[])
    };
    // A few thousand queries a second are far above 1,000.
    let busy = pauses(&["--udp-coalesce", "1000"], 20_000, 16);
    assert!(busy > 0.0, "no pause under load");
    assert_eq!(pauses(&["--udp-coalesce", "0"], 20_000, 16), 0.0);
    // One query at a time, 200 µs apart (under 5,000 a second), stays
    // below the default 50,000 a second.
    let s = Server::start(&["-f", &example("local"), "--admin", "127.0.0.1:0"]);
    for _ in 0..200 {
        assert_eq!(keep_busy(s.addr(), &q, 1, 1), 1);
        std::thread::sleep(Duration::from_micros(200));
    }
    let samples = scrape(s.admin_addr());
    assert_eq!(
        value(&samples, "svcnet_udp_coalesce_pauses_total", &[]),
        0.0
    );
}

/// A batch's replies to one client go out in one segmented send
/// (`UDP_SEGMENT`): from one socket with several queries in flight, every
/// reply still arrives as its own datagram, octet for octet what the same
/// query gets alone, and /metrics counts the replies so sent;
/// `--no-udp-segment` sends each alone.
#[test]
fn udp_replies_to_one_client_are_segmented_yet_unchanged() {
    // Replies of several lengths, none rotated (so each is one octet
    // string): ClusterIP and StatefulSet A, NODATA, NXDOMAIN, SRV, and one
    // with EDNS.
    let asked = [
        query("backend.default.svc.cluster.local", RecordType::A),
        query("backend.default.svc.cluster.local", RecordType::AAAA),
        query("database.default.svc.cluster.local", RecordType::A),
        query("web-0.nginx.default.svc.cluster.local", RecordType::A),
        query("nope.default.svc.cluster.local", RecordType::A),
        query(
            "_http._tcp.backend.default.svc.cluster.local",
            RecordType::SRV,
        ),
        crate::harness::with_edns(
            query("database.default.svc.cluster.local", RecordType::A),
            1232,
        ),
        query("backend.default.svc.cluster.local", RecordType::TXT),
    ];
    let packets: Vec<Vec<u8>> = asked
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut p = crate::harness::encode(m);
            p[..2].copy_from_slice(&(i as u16).to_be_bytes());
            p
        })
        .collect();
    let segmented = |args: &[&str]| {
        let local = example("local");
        let mut argv = vec!["-f", &local, "--admin", "127.0.0.1:0", "--udp-workers", "1"];
        argv.extend_from_slice(args);
        let s = Server::start(&argv);
        let alone: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| udp_exchange(s.addr(), p, Duration::from_secs(2)).expect("an answer"))
            .collect();
        let lengths: std::collections::BTreeSet<usize> = alone.iter().map(Vec::len).collect();
        assert!(
            lengths.len() >= 4,
            "replies of too few lengths: {lengths:?}"
        );
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        for _ in 0..300 {
            for p in &packets {
                sock.send_to(p, s.addr()).expect("send");
            }
            let mut got: Vec<Option<Vec<u8>>> = vec![None; packets.len()];
            for _ in 0..packets.len() {
                let (len, _) = sock.recv_from(&mut buf).expect("every reply");
                let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                assert!(
                    id < got.len() && got[id].is_none(),
                    "reply {id} unasked or twice"
                );
                got[id] = Some(buf[..len].to_vec());
            }
            for (i, reply) in got.into_iter().enumerate() {
                assert_eq!(reply.as_ref(), Some(&alone[i]), "reply to query {i}");
            }
        }
        let samples = scrape(s.admin_addr());
        assert_eq!(
            value(&samples, "svcnet_udp_segment_refusals_total", &[]),
            0.0
        );
        (
            value(&samples, "svcnet_udp_workers_segmenting", &[]),
            value(&samples, "svcnet_udp_segmented_replies_total", &[]),
        )
    };
    let (workers, replies) = segmented(&[]);
    if svcnet_net::batch::segmenting_available() {
        assert_eq!(workers, 1.0);
        assert!(replies > 0.0, "no reply went in a segmented send");
    } else {
        assert_eq!((workers, replies), (0.0, 0.0));
    }
    assert_eq!(segmented(&["--no-udp-segment"]), (0.0, 0.0));
}
