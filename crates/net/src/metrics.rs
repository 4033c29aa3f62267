//! Query counters of the serving paths, for `/metrics` and the query log.
//!
//! Each UDP worker owns a [`QueryStats`] (its own cache lines: increments
//! never contend across workers); TCP connections share one set, and UDP
//! answers relayed from upstream another, both written from the runtime
//! thread. A scrape sums them ([`Metrics::totals`]). Every label has a fixed,
//! small set of values so the counters are plain arrays indexed on the hot
//! path: no map, no allocation.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use svcnet_dns::Transport;
use svcnet_index::{Snapshot, ZoneKind};
use svcnet_stats::{Histogram, HistogramSnapshot};
use svcnet_wire::{rcode, rtype};

/// Cluster zones counted under their own name; queries of further ones
/// (rarely configured) are counted as `other`.
pub const MAX_CLUSTER_ZONES: usize = 8;
/// Zone slot of `clusterset.local` (the multi-cluster zone).
pub const ZONE_CLUSTERSET: usize = MAX_CLUSTER_ZONES;
/// Zone slot of the reverse zones we serve.
pub const ZONE_REVERSE: usize = MAX_CLUSTER_ZONES + 1;
/// Zone slot of names relayed upstream.
pub const ZONE_FORWARDED: usize = MAX_CLUSTER_ZONES + 2;
/// Zone slot of everything else: REFUSED outside names, malformed queries,
/// other classes.
pub const ZONE_OTHER: usize = MAX_CLUSTER_ZONES + 3;
/// Number of zone slots.
pub const ZONE_SLOTS: usize = MAX_CLUSTER_ZONES + 4;

/// `type` label values; the last is every other type.
pub const QTYPE_LABELS: [&str; 10] = [
    "A", "AAAA", "SRV", "PTR", "CNAME", "SOA", "NS", "TXT", "ANY", "other",
];
const QTYPE_CODES: [u16; 9] = [
    rtype::A,
    rtype::AAAA,
    rtype::SRV,
    rtype::PTR,
    rtype::CNAME,
    rtype::SOA,
    rtype::NS,
    rtype::TXT,
    rtype::ANY,
];

/// `rcode` label values; the last is every other code (BADVERS among them).
pub const RCODE_LABELS: [&str; 7] = [
    "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "other",
];
const RCODE_CODES: [u16; 6] = [
    rcode::NOERROR,
    rcode::NXDOMAIN,
    rcode::SERVFAIL,
    rcode::REFUSED,
    rcode::FORMERR,
    rcode::NOTIMP,
];

const CELLS: usize = ZONE_SLOTS * QTYPE_LABELS.len() * RCODE_LABELS.len();

fn cell(zone: usize, qtype: usize, rcode: usize) -> usize {
    (zone * QTYPE_LABELS.len() + qtype) * RCODE_LABELS.len() + rcode
}

/// The `type` slot of a query type.
pub fn qtype_slot(qtype: u16) -> usize {
    QTYPE_CODES
        .iter()
        .position(|&t| t == qtype)
        .unwrap_or(QTYPE_CODES.len())
}

/// The question name (wire form) and type of a packet, read in place;
/// `None` when there is no readable question.
pub fn question(packet: &[u8]) -> Option<(&[u8], u16)> {
    let end = name_end(packet)?;
    let qtype = u16::from_be_bytes([*packet.get(end)?, *packet.get(end + 1)?]);
    Some((&packet[12..end], qtype))
}

/// Where the question name of a packet ends (the offset of its type).
fn name_end(packet: &[u8]) -> Option<usize> {
    if u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]) == 0 {
        return None;
    }
    let mut pos = 12;
    loop {
        let len = usize::from(*packet.get(pos)?);
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + len;
        if len == 0 {
            return Some(pos);
        }
    }
}

/// The EDNS version of a query, as [`svcnet_wire::parse_query`] reads it
/// (`None`: no OPT, or not a query it parses). A query as resolvers send
/// them (one question, then its OPT record and nothing else) is read in
/// place; anything else is parsed.
/// `name_end` is [`name_end`] of the query.
fn edns_version(query: &[u8], name_end: Option<usize>) -> Option<u8> {
    // A query (QR clear, opcode QUERY) of one question and one more record.
    if query.get(2).is_some_and(|f| f & 0xf8 == 0)
        && query.get(4..12) == Some(&[0, 1, 0, 0, 0, 0, 0, 1])
        && let Some(end) = name_end
        && end - 12 <= svcnet_wire::MAX_NAME_LEN
        // That record: root owner, type OPT, its data inside the packet.
        && let Some(opt) = query.get(end + 4..end + 15)
        && opt[..3] == [0, 0, 41]
    {
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        return (end + 15 + rdlen <= query.len()).then_some(opt[6]);
    }
    svcnet_wire::parse_query(query)
        .ok()?
        .edns
        .map(|e| e.version)
}

/// The RCODE of a reply: the header's four bits. A reply whose header says
/// NOERROR but that answers an EDNS version we do not speak carries BADVERS
/// in its OPT record; `query` tells those apart without parsing the reply.
fn rcode_of(query: &[u8], name_end: Option<usize>, reply: &[u8]) -> u16 {
    let code = reply
        .get(3)
        .map_or(rcode::SERVFAIL, |b| u16::from(b & 0x0f));
    let badvers = code == rcode::NOERROR && edns_version(query, name_end).is_some_and(|v| v > 0);
    if badvers { rcode::BADVERS } else { code }
}

/// The `rcode` slot of a reply to `query`.
pub fn rcode_slot(query: &[u8], reply: &[u8]) -> usize {
    rcode_slot_at(query, name_end(query), reply)
}

/// [`rcode_slot`] with [`name_end`] of the query already known.
fn rcode_slot_at(query: &[u8], name_end: Option<usize>, reply: &[u8]) -> usize {
    let code = rcode_of(query, name_end, reply);
    RCODE_CODES
        .iter()
        .position(|&c| c == code)
        .unwrap_or(RCODE_CODES.len())
}

/// The zone slot of a query answered from `snap` whose name fell in zone
/// `zone` of it (`None`: not in our zones, or no readable question).
pub fn zone_slot(snap: &Snapshot, zone: Option<u16>) -> usize {
    let Some(z) = zone else { return ZONE_OTHER };
    let i = usize::from(z);
    match snap.zones.get(i).map(|z| z.kind) {
        Some(ZoneKind::Cluster) if i < MAX_CLUSTER_ZONES => i,
        Some(ZoneKind::ClusterSet) => ZONE_CLUSTERSET,
        Some(ZoneKind::Reverse) => ZONE_REVERSE,
        _ => ZONE_OTHER,
    }
}

/// The `zone` label of every slot for `snap`: cluster zones by their name
/// (slot `i` is zone `i` of the snapshot; cluster zones come first), `None`
/// for slots no zone uses.
pub fn zone_labels(snap: &Snapshot) -> [Option<String>; ZONE_SLOTS] {
    let mut labels: [Option<String>; ZONE_SLOTS] = Default::default();
    for (i, z) in snap.zones.iter().enumerate() {
        match z.kind {
            ZoneKind::Cluster if i < MAX_CLUSTER_ZONES => {
                labels[i] = Some(zone_text(&z.apex));
            }
            ZoneKind::ClusterSet => labels[ZONE_CLUSTERSET] = Some(zone_text(&z.apex)),
            _ => {}
        }
    }
    labels[ZONE_REVERSE] = Some("reverse".to_owned());
    labels[ZONE_FORWARDED] = Some("forwarded".to_owned());
    labels[ZONE_OTHER] = Some("other".to_owned());
    labels
}

fn zone_text(apex: &[u8]) -> String {
    let text = svcnet_wire::name_to_string(apex);
    text.strip_suffix('.').unwrap_or(&text).to_owned()
}

/// The counters one serving thread (or one group of connections) owns.
/// Aligned so that two sets never share a cache line.
#[repr(align(128))]
pub struct QueryStats {
    requests: [AtomicU64; CELLS],
    /// Latency of answers from our zones (and REFUSED/FORMERR), receipt to
    /// reply sent.
    pub local: Histogram,
    /// Latency of relayed answers, receipt to reply sent.
    pub forwarded: Histogram,
    dropped: AtomicU64,
    paused: AtomicU64,
    segmented: AtomicU64,
    segment_refusals: AtomicU64,
    segmenting: AtomicU64,
    log_tick: AtomicU64,
}

impl Default for QueryStats {
    fn default() -> Self {
        Self {
            requests: [const { AtomicU64::new(0) }; CELLS],
            local: Histogram::default(),
            forwarded: Histogram::default(),
            dropped: AtomicU64::new(0),
            paused: AtomicU64::new(0),
            segmented: AtomicU64::new(0),
            segment_refusals: AtomicU64::new(0),
            segmenting: AtomicU64::new(0),
            log_tick: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for QueryStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryStats").finish_non_exhaustive()
    }
}

/// One answered query, as the metrics and the query log see it.
#[derive(Clone, Copy, Debug)]
pub struct Served<'a> {
    /// How it came.
    pub proto: Transport,
    /// Who asked.
    pub peer: SocketAddr,
    /// The query as received.
    pub query: &'a [u8],
    /// The reply as sent.
    pub reply: &'a [u8],
    /// Its zone slot ([`zone_slot`], or [`ZONE_FORWARDED`]).
    pub zone: usize,
    /// The reply came from upstream (a relayed name, or the rest of a
    /// CNAME chain): its latency counts as forwarded.
    pub forwarded: bool,
    /// When the query was received.
    pub received: Instant,
}

impl QueryStats {
    /// Counts a packet dropped unanswered (no readable header, or a response).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a pause between batches of a UDP worker under load
    /// ([`crate::coalesce`]).
    pub fn paused(&self) {
        self.paused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the replies a batch sent together with others to the same
    /// client in segmented sends, and the segmented sends the kernel
    /// refused ([`crate::batch::Batch::send`]).
    pub fn segmented(&self, sent: crate::batch::Sent) {
        self.segmented.fetch_add(sent.segmented, Ordering::Relaxed);
        self.segment_refusals
            .fetch_add(sent.refused, Ordering::Relaxed);
    }

    /// Notes whether this (UDP worker's) counter set's worker sends
    /// segmented now.
    pub fn set_segmenting(&self, on: bool) {
        self.segmenting.store(u64::from(on), Ordering::Relaxed);
    }

    /// Records an answered query: its counter, its latency and, when the
    /// query log samples it, one log event.
    pub fn record(&self, served: &Served<'_>, log: QueryLog) {
        self.record_took(served, served.received.elapsed(), log);
    }

    /// [`Self::record`] with the latency already measured: the replies of
    /// one batch leave in one system call, so one clock reading serves them
    /// all.
    pub fn record_took(&self, served: &Served<'_>, took: Duration, log: QueryLog) {
        let query = served.query;
        let end = name_end(query);
        let qtype = end
            .and_then(|e| Some(u16::from_be_bytes([*query.get(e)?, *query.get(e + 1)?])))
            .map_or(QTYPE_CODES.len(), qtype_slot);
        let rcode = rcode_slot_at(query, end, served.reply);
        self.requests[cell(served.zone.min(ZONE_OTHER), qtype, rcode)]
            .fetch_add(1, Ordering::Relaxed);
        let forwarded = served.forwarded;
        if forwarded {
            self.forwarded.observe(took);
        } else {
            self.local.observe(took);
        }
        if log.every != 0
            && self
                .log_tick
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(log.every)
        {
            log_query(served, took.as_micros(), forwarded);
        }
    }

    /// The current values.
    pub fn totals(&self) -> QueryTotals {
        let mut t = QueryTotals::default();
        for (to, from) in t.requests.iter_mut().zip(&self.requests) {
            *to = from.load(Ordering::Relaxed);
        }
        t.local = self.local.snapshot();
        t.forwarded = self.forwarded.snapshot();
        t.dropped = self.dropped.load(Ordering::Relaxed);
        t.paused = self.paused.load(Ordering::Relaxed);
        t.segmented = self.segmented.load(Ordering::Relaxed);
        t.segment_refusals = self.segment_refusals.load(Ordering::Relaxed);
        t.segmenting = self.segmenting.load(Ordering::Relaxed);
        t
    }
}

/// [`QueryStats`] values at one moment; several add up with [`Self::add`].
#[derive(Clone, Debug)]
pub struct QueryTotals {
    requests: [u64; CELLS],
    /// Latency of local answers.
    pub local: HistogramSnapshot,
    /// Latency of relayed answers.
    pub forwarded: HistogramSnapshot,
    /// Packets dropped unanswered.
    pub dropped: u64,
    /// Pauses of UDP workers between batches under load.
    pub paused: u64,
    /// UDP replies sent in segmented sends.
    pub segmented: u64,
    /// Segmented sends the kernel refused.
    pub segment_refusals: u64,
    /// UDP workers sending segmented now.
    pub segmenting: u64,
}

impl Default for QueryTotals {
    fn default() -> Self {
        Self {
            requests: [0; CELLS],
            local: HistogramSnapshot::default(),
            forwarded: HistogramSnapshot::default(),
            dropped: 0,
            paused: 0,
            segmented: 0,
            segment_refusals: 0,
            segmenting: 0,
        }
    }
}

impl QueryTotals {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Self) {
        for (a, b) in self.requests.iter_mut().zip(&other.requests) {
            *a += b;
        }
        self.local.add(&other.local);
        self.forwarded.add(&other.forwarded);
        self.dropped += other.dropped;
        self.paused += other.paused;
        self.segmented += other.segmented;
        self.segment_refusals += other.segment_refusals;
        self.segmenting += other.segmenting;
    }

    /// Queries of zone slot `zone`, `type` slot `qtype`, `rcode` slot `rcode`.
    pub fn requests(&self, zone: usize, qtype: usize, rcode: usize) -> u64 {
        self.requests
            .get(cell(zone, qtype, rcode))
            .copied()
            .unwrap_or(0)
    }
}

/// TCP connection counters.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed because they stayed idle past the timeout.
    pub idle_closed: AtomicU64,
    /// Connections closed at once because the cap was reached.
    pub refused: AtomicU64,
}

/// Every counter of the serving paths.
#[derive(Debug, Default)]
pub struct Metrics {
    udp_workers: Mutex<Vec<Arc<QueryStats>>>,
    /// UDP queries relayed upstream (their replies are sent from the runtime).
    pub udp_relayed: Arc<QueryStats>,
    /// TCP queries.
    pub tcp: Arc<QueryStats>,
    /// TCP connections.
    pub tcp_connections: TcpStats,
}

impl Metrics {
    /// A new counter set for one UDP worker thread.
    pub fn udp_worker(&self) -> Arc<QueryStats> {
        let stats = Arc::new(QueryStats::default());
        self.udp_workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&stats));
        stats
    }

    /// The sums for one protocol.
    pub fn totals(&self, proto: Transport) -> QueryTotals {
        match proto {
            Transport::Tcp => self.tcp.totals(),
            Transport::Udp => {
                let mut t = self.udp_relayed.totals();
                for w in self
                    .udp_workers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                {
                    t.add(&w.totals());
                }
                t
            }
        }
    }
}

/// `--log-queries`: one event per `every`-th query (0: off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryLog {
    /// Log one query in this many; 0 logs none.
    pub every: u64,
}

impl QueryLog {
    /// Logs about `rate` of the queries (0 < rate ≤ 1; 0 or less: none),
    /// sampling every `round(1/rate)`-th query so no random numbers are
    /// drawn per query.
    pub fn with_rate(rate: f64) -> Self {
        let every = if rate > 0.0 && rate.is_finite() {
            (1.0 / rate.min(1.0)).round().max(1.0) as u64
        } else {
            0
        };
        Self { every }
    }
}

/// The label value of a transport.
pub fn proto_label(proto: Transport) -> &'static str {
    match proto {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// A wire name displayed as text (`web.default.svc.cluster.local.`) without
/// building a string first.
struct WireName<'a>(&'a [u8]);

impl fmt::Display for WireName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for label in svcnet_wire::labels(self.0) {
            any = true;
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    fmt::Write::write_char(f, char::from(b))?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// A query type by name (`AAAA`), or `TYPE<n>` for one not in the label set.
struct TypeName(u16);

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match QTYPE_CODES.iter().position(|&t| t == self.0) {
            Some(i) => f.write_str(QTYPE_LABELS[i]),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

fn log_query(served: &Served<'_>, micros: u128, forwarded: bool) {
    let (qname, qtype) = question(served.query).unwrap_or((&[0], 0));
    let answers = served
        .reply
        .get(6..8)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let rcode = RCODE_LABELS[rcode_slot(served.query, served.reply)];
    tracing::info!(
        target: "svcnet::query",
        client = %served.peer,
        proto = proto_label(served.proto),
        qname = %WireName(qname),
        qtype = %TypeName(qtype),
        rcode,
        answers,
        latency_us = micros as u64,
        forwarded,
        "query"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend(svcnet_wire::encode_name(name).unwrap());
        p.extend(qtype.to_be_bytes());
        p.extend(1u16.to_be_bytes());
        p
    }

    #[test]
    fn question_reads_name_and_type_in_place() {
        let p = packet("web.default.svc.cluster.local", rtype::SRV);
        let (name, t) = question(&p).unwrap();
        assert_eq!(t, rtype::SRV);
        assert_eq!(WireName(name).to_string(), "web.default.svc.cluster.local.");
        assert_eq!(question(&p[..p.len() - 3]), None);
        assert_eq!(question(&[0; 12]), None);
        assert_eq!(question(&[1, 2, 3]), None);
    }

    #[test]
    fn slots_cover_the_label_sets() {
        assert_eq!(QTYPE_LABELS[qtype_slot(rtype::AAAA)], "AAAA");
        assert_eq!(QTYPE_LABELS[qtype_slot(99)], "other");
        assert_eq!(TypeName(99).to_string(), "TYPE99");
        let q = packet("x.cluster.local", rtype::A);
        let mut reply = q.clone();
        reply[3] = 3;
        assert_eq!(RCODE_LABELS[rcode_slot(&q, &reply)], "NXDOMAIN");
        reply[3] = 9;
        assert_eq!(RCODE_LABELS[rcode_slot(&q, &reply)], "other");
        assert_eq!(RCODE_LABELS[rcode_slot(&q, &[])], "SERVFAIL");
    }

    #[test]
    fn the_edns_version_read_in_place_is_the_parsers() {
        let plain = packet("x.cluster.local", rtype::A);
        let with_opt = |version: u8, rdata: &[u8]| {
            let mut p = plain.clone();
            p[11] = 1;
            p.extend([0, 0, 41, 4, 208, 0, version, 0, 0]);
            p.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
            p.extend(rdata);
            p
        };
        let mut cases = vec![
            plain.clone(),
            with_opt(0, &[]),
            with_opt(1, &[]),
            with_opt(1, &[0, 10, 0, 2, 1, 2]),
        ];
        // Its data running past the end; trailing octets after it.
        let v1 = with_opt(1, &[]);
        let mut long = v1.clone();
        long[v1.len() - 1] = 1;
        cases.push(long);
        let mut trailing = v1.clone();
        trailing.push(0);
        cases.push(trailing);
        // A response; another opcode; a named owner; not an OPT; two records.
        for (at, value) in [(2, 0x80), (2, 0x28), (plain.len(), 1), (plain.len() + 2, 1)] {
            let mut p = v1.clone();
            p[at] = value;
            cases.push(p);
        }
        let mut two = v1.clone();
        two[11] = 2;
        two.extend_from_slice(&v1[plain.len()..]);
        cases.push(two);
        // A question name longer than a name may be.
        let mut huge = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        for _ in 0..5 {
            huge.push(63);
            huge.extend([b'a'; 63]);
        }
        huge.extend([0, 0, 1, 0, 1, 0, 0, 41, 4, 208, 0, 1, 0, 0, 0, 0]);
        cases.push(huge);
        for (i, p) in cases.iter().enumerate() {
            let parsed = svcnet_wire::parse_query(p)
                .ok()
                .and_then(|q| q.edns)
                .map(|e| e.version);
            assert_eq!(edns_version(p, name_end(p)), parsed, "case {i}");
        }
        assert_eq!(edns_version(&cases[2], name_end(&cases[2])), Some(1));
    }

    #[test]
    fn sampling_rate_becomes_a_stride() {
        assert_eq!(QueryLog::with_rate(1.0).every, 1);
        assert_eq!(QueryLog::with_rate(0.01).every, 100);
        assert_eq!(QueryLog::with_rate(0.3).every, 3);
        assert_eq!(QueryLog::with_rate(0.0).every, 0);
        assert_eq!(QueryLog::with_rate(f64::NAN).every, 0);
        assert_eq!(QueryLog::with_rate(5.0).every, 1);
    }

    #[test]
    fn workers_sum_at_scrape() {
        let m = Metrics::default();
        let (a, b) = (m.udp_worker(), m.udp_worker());
        let q = packet("x.cluster.local", rtype::A);
        let served = Served {
            proto: Transport::Udp,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            query: &q,
            reply: &q,
            zone: 0,
            forwarded: false,
            received: Instant::now(),
        };
        a.record(&served, QueryLog::default());
        b.record(&served, QueryLog::default());
        m.udp_relayed.record(
            &Served {
                zone: ZONE_FORWARDED,
                forwarded: true,
                ..served
            },
            QueryLog::default(),
        );
        b.dropped();
        let t = m.totals(Transport::Udp);
        assert_eq!(t.requests(0, 0, 0), 2);
        assert_eq!(t.requests(ZONE_FORWARDED, 0, 0), 1);
        assert_eq!(t.local.count, 2);
        assert_eq!(t.forwarded.count, 1);
        assert_eq!(t.dropped, 1);
        assert_eq!(m.totals(Transport::Tcp).local.count, 0);
    }
}
