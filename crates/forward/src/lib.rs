//! Forwarding (SPEC §2 "names outside our zones"): a raw-bytes relay of the
//! client's query to upstream resolvers, so EDNS, DO and CD bits pass
//! unchanged.
//!
//! Each exchange with an upstream gets a fresh random ID from the operating
//! system's CSPRNG and, over UDP, a fresh socket (a kernel-chosen random
//! source port, and a `connect`ed socket, so only the upstream's address can
//! answer). An answer counts only when its ID, QR bit and question match. A
//! truncated UDP answer is asked again over TCP. An upstream written
//! `tls://IP[:PORT][#NAME]` is asked over DNS over TLS instead (RFC
//! 7858, one kept-open connection per upstream, pipelined). A bound on
//! queries in flight turns overload into an immediate SERVFAIL instead of an
//! unbounded queue.
//!
//! - **Coalescing**: identical queries (same [`cache`] key) in flight at
//!   once share one upstream exchange; each gets the answer with its own ID
//!   and question case. Only the client whose query went upstream gets the
//!   EDNS options of the answer (a cookie is for one client alone); the
//!   others, and every cache hit, get its OPT record without options.
//! - **Health and failover**: upstreams are tried in the configured order
//!   (CoreDNS `policy sequential`). After two failures in a row an upstream
//!   is down: it is tried after the healthy ones, never skipped entirely, and
//!   probed with `. IN NS` after 1 s, then at doubling intervals up to 10 s,
//!   until it answers. Going down is a warning, coming back an info line,
//!   each said once per transition.
//! - **Loop detection**: at start (after the listeners are up,
//!   [`Forwarder::start`]) and whenever an upstream comes back, it is sent
//!   `<random>.svcnet-loop-probe. HINFO`. Nobody else knows that name, so if
//!   it reaches [`Forwarder::resolve`] the upstream relays our outside
//!   queries back to us: the first sighting is proof enough, and acting on
//!   it at once means the probe goes round only once. The upstream is then
//!   logged (error, once) and never used again until restart; the returned
//!   probe gets SERVFAIL. Coalescing keeps a client query that loops before
//!   that from multiplying: its returning copy waits on the original. When
//!   every upstream loops, outside names get SERVFAIL.
//!
//! Answers are cached ([`cache`]): TTL-decremented, negative answers for the
//! SOA minimum, served stale when every upstream fails, never when records
//! fall outside the question's chain. [`Forwarder::upstream_stats`] and the
//! forwarder-wide counters feed metrics.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant};

pub mod cache;
mod flight;
mod tls;
mod upstream;

pub use svcnet_stats::HistogramSnapshot;
pub use upstream::Upstream;

use cache::{Cache, Key, without_edns_options};
use flight::{Flights, Role, follow};
use svcnet_wire::{MAX_NAME_LEN, Query, fold_name};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use upstream::{DOWN_AFTER, Transition, UpstreamState};

/// Why forwarding, or setting it up, failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The query is not one we relay (no readable question).
    #[error("malformed query")]
    Malformed,
    /// No upstream answered in time.
    #[error("no upstream answered")]
    NoAnswer,
    /// The query is our own loop probe, sent back to us by an upstream.
    #[error("forwarding loop: our loop probe came back")]
    Looped,
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
    /// An `--upstream` value that is not `IP[:PORT]` or `tls://IP[:PORT][#NAME]`.
    #[error("upstream {text:?}: {reason} (expected IP[:PORT] or tls://IP[:PORT][#NAME])")]
    BadUpstream {
        /// As written.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CA file for TLS upstreams could not be read.
    #[error("CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls_pki_types::pem::Error,
    },
    /// TLS could not be set up.
    #[error("TLS setup ({what}): {source}")]
    Tls {
        /// What was being set up.
        what: &'static str,
        /// The cause.
        source: rustls::Error,
    },
}

/// A fresh random message ID.
pub(crate) fn random_id() -> io::Result<[u8; 2]> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| io::Error::other(ForwardError::Random(e)))?;
    Ok(id)
}

/// How the forwarder is set up.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The upstreams, in the order they are tried.
    pub upstreams: Vec<Upstream>,
    /// How long each upstream has to answer one query.
    pub timeout: Duration,
    /// Queries in flight at most; beyond, [`Forwarder::admit`] refuses.
    pub max_in_flight: usize,
    /// Bytes of answers to cache (0: no cache).
    pub cache_bytes: usize,
    /// A PEM file of CA certificates trusted for TLS upstreams, besides the
    /// system's.
    pub ca_file: Option<PathBuf>,
}

/// One upstream's counters and state, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamStats {
    /// The upstream as the user wrote it (`10.0.0.1:53`, `tls://1.1.1.1:853`).
    pub addr: String,
    /// Queries sent to it, health and loop probes included.
    pub queries: u64,
    /// Exchanges that failed in any way (timeouts included).
    pub errors: u64,
    /// Exchanges that got no answer in time.
    pub timeouts: u64,
    /// Not down (down: failed twice in a row and not answered a probe since).
    pub healthy: bool,
    /// It sent our loop probe back to us; it is not used any more.
    pub looping: bool,
    /// Round-trip times of the exchanges that got an answer.
    pub latency: HistogramSnapshot,
}

/// Health probe: `. IN NS`, recursion desired (the ID is set per exchange).
const HEALTH_QUERY: [u8; 17] = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
/// The first health probe of a down upstream comes this long after it went down.
const PROBE_FIRST: Duration = Duration::from_secs(1);
/// Probe intervals double up to this.
const PROBE_MAX: Duration = Duration::from_secs(10);
/// Loop probe names end in this (wire form).
const LOOP_PROBE_ZONE: &[u8] = b"\x11svcnet-loop-probe\x00";
/// HINFO: a type nobody caches specially and every server answers cheaply.
const HINFO: u16 = 13;

/// The upstreams and limits.
#[derive(Debug)]
pub struct Forwarder {
    inner: Arc<Inner>,
    in_flight: Arc<Semaphore>,
    refused_full: AtomicU64,
}

/// What the forwarder's background tasks share with it.
#[derive(Debug)]
struct Inner {
    upstreams: Vec<UpstreamState>,
    timeout: Duration,
    cache: Option<Cache>,
    flights: Flights,
    coalesced: AtomicU64,
}

/// `answer` as the client who sent `q` expects it: its ID, its question case.
fn answer_for(answer: &[u8], q: &Query<'_>) -> Vec<u8> {
    let mut out = answer.to_vec();
    if let Some(id) = out.get_mut(..2) {
        id.copy_from_slice(&q.id.to_be_bytes());
    }
    if let Some(question) = out.get_mut(12..12 + q.question.len()) {
        question.copy_from_slice(q.question);
    }
    out
}

/// Runs `task` on the current runtime, if there is one.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

impl Forwarder {
    /// A forwarder for `config`; fails only on a bad TLS setup (CA file).
    pub fn new(config: ForwardConfig) -> Result<Self, ForwardError> {
        let tls = if config.upstreams.iter().any(|u| u.tls.is_some()) {
            Some(tls::client_config(config.ca_file.as_deref())?)
        } else {
            None
        };
        let upstreams = config
            .upstreams
            .into_iter()
            .map(|u| {
                let pipe = match (&u.tls, &tls) {
                    (Some(name), Some(config)) => {
                        Some(tls::TlsPipe::new(Arc::clone(config), name.clone()))
                    }
                    _ => None,
                };
                UpstreamState::new(u, pipe)
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                upstreams,
                timeout: config.timeout,
                cache: (config.cache_bytes > 0).then(|| Cache::new(config.cache_bytes)),
                flights: Flights::default(),
                coalesced: AtomicU64::new(0),
            }),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            refused_full: AtomicU64::new(0),
        })
    }

    /// Sends every upstream a loop probe. Call it once the listeners are up
    /// (a probe relayed back before then would go unseen).
    pub fn start(&self, runtime: &tokio::runtime::Handle) {
        for i in 0..self.inner.upstreams.len() {
            runtime.spawn(send_loop_probe(Arc::downgrade(&self.inner), i));
        }
    }

    /// The cache, when there is one.
    pub fn cache(&self) -> Option<&Cache> {
        self.inner.cache.as_ref()
    }

    /// The upstreams, in configured order.
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.inner.upstreams.iter().map(|u| &u.upstream)
    }

    /// Each upstream's counters and state, in configured order.
    pub fn upstream_stats(&self) -> Vec<UpstreamStats> {
        self.inner
            .upstreams
            .iter()
            .map(UpstreamState::stats)
            .collect()
    }

    /// Queries answered by another identical query's upstream exchange.
    pub fn coalesced(&self) -> u64 {
        self.inner.coalesced.load(Ordering::Relaxed)
    }

    /// Queries refused by [`Self::admit`] because too many were in flight.
    pub fn refused_full(&self) -> u64 {
        self.refused_full.load(Ordering::Relaxed)
    }

    /// A slot for one more query in flight, or `None` when full (answer
    /// SERVFAIL at once).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.in_flight).try_acquire_owned().ok();
        if permit.is_none() {
            self.refused_full.fetch_add(1, Ordering::Relaxed);
        }
        permit
    }

    /// Relays `query` and returns the upstream's answer with the client's ID
    /// and question restored.
    pub async fn resolve(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let q = svcnet_wire::parse_query(query).map_err(|_| ForwardError::Malformed)?;
        if let Some(i) = self.inner.looped_probe(&q) {
            self.inner.mark_looping(i);
            return Err(ForwardError::Looped);
        }
        if let Some((answer, _)) = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.get(&q, Instant::now(), false))
        {
            return Ok(answer);
        }
        let key = Key::of(&q);
        loop {
            match self.inner.flights.join(key.clone()) {
                Role::Lead(lead) => {
                    let result = self.inner.relay(query, &q).await;
                    // The followers are other clients: not our options.
                    let shared = result.as_deref().ok().and_then(without_edns_options);
                    lead.land(shared.map(|a| Arc::from(&*a)));
                    return result.map(|a| answer_for(&a, &q));
                }
                Role::Follow(board) => {
                    // `None`: the leader was cancelled; lead or follow anew.
                    if let Some(landing) = follow(board).await {
                        self.inner.coalesced.fetch_add(1, Ordering::Relaxed);
                        return landing
                            .map(|a| answer_for(&a, &q))
                            .ok_or(ForwardError::NoAnswer);
                    }
                }
            }
        }
    }
}

impl Inner {
    /// Usable upstreams: the healthy ones in configured order, then the
    /// down ones; looping ones never.
    fn order(&self) -> Vec<usize> {
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..self.upstreams.len())
            .filter(|&i| !self.upstreams[i].is_looping())
            .partition(|&i| self.upstreams[i].is_healthy());
        up.extend(down);
        up
    }

    async fn relay(self: &Arc<Self>, query: &[u8], q: &Query<'_>) -> Result<Vec<u8>, ForwardError> {
        for i in self.order() {
            let u = &self.upstreams[i];
            match u.exchange(query, q.question, self.timeout).await {
                Ok(answer) => {
                    self.note(i, u.record(true));
                    if let Some(c) = &self.cache {
                        c.insert(q, &answer, Instant::now());
                    }
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::debug!(upstream = %u.upstream, "upstream failed: {e}");
                    self.note(i, u.record(false));
                }
            }
        }
        // RFC 8767: a stale answer beats none while upstreams fail.
        match self
            .cache
            .as_ref()
            .and_then(|c| c.get(q, Instant::now(), true))
        {
            Some((answer, _)) => Ok(answer),
            None => Err(ForwardError::NoAnswer),
        }
    }

    /// Acts on a health transition of upstream `i`.
    fn note(self: &Arc<Self>, i: usize, transition: Transition) {
        let u = &self.upstreams[i];
        match transition {
            Transition::None => {}
            Transition::Down => {
                tracing::warn!(upstream = %u.upstream, "upstream down after {DOWN_AFTER} failures in a row; tried last until it answers a health probe");
                if !u.probing.swap(true, Ordering::Relaxed) {
                    spawn(probe_until_up(Arc::downgrade(self), i));
                }
            }
            Transition::Up => {
                tracing::info!(upstream = %u.upstream, "upstream up again");
                spawn(send_loop_probe(Arc::downgrade(self), i));
            }
        }
    }

    /// The upstream whose loop probe `q` asks for, if it is one.
    fn looped_probe(&self, q: &Query<'_>) -> Option<usize> {
        let tail = q.qname.len().checked_sub(LOOP_PROBE_ZONE.len())?;
        if !q.qname[tail..].eq_ignore_ascii_case(LOOP_PROBE_ZONE) {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let folded = fold_name(q.qname, &mut buf);
        self.upstreams.iter().position(|u| u.sent_probe(folded))
    }

    fn mark_looping(&self, i: usize) {
        let u = &self.upstreams[i];
        if u.looping.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::error!(upstream = %u.upstream, "forwarding loop: this upstream sent our loop probe back to us (it forwards to this server); it is not used again until restart");
        if self.upstreams.iter().all(UpstreamState::is_looping) {
            tracing::error!("every upstream loops: names outside our zones get SERVFAIL");
        }
    }
}

/// Probes down upstream `i` until it answers (then it is up again), it
/// turns out to loop, or the forwarder is gone.
async fn probe_until_up(inner: Weak<Inner>, i: usize) {
    let mut delay = PROBE_FIRST;
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        let u = &inner.upstreams[i];
        if u.is_looping() || u.is_healthy() {
            u.probing.store(false, Ordering::Relaxed);
            return;
        }
        let question = &HEALTH_QUERY[12..];
        if u.exchange(&HEALTH_QUERY, question, inner.timeout)
            .await
            .is_ok()
        {
            u.probing.store(false, Ordering::Relaxed);
            inner.note(i, u.record(true));
            return;
        }
        delay = (delay * 2).min(PROBE_MAX);
    }
}

/// Sends upstream `i` a query for a fresh random name under
/// `svcnet-loop-probe.`, remembered so that [`Forwarder::resolve`] knows it
/// if it comes back. Its answer (NXDOMAIN, usually) does not matter.
async fn send_loop_probe(inner: Weak<Inner>, i: usize) {
    let Some(inner) = inner.upgrade() else { return };
    let u = &inner.upstreams[i];
    let mut random = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut random) {
        tracing::warn!("no loop probe: {}", ForwardError::Random(e));
        return;
    }
    let mut name = vec![16u8];
    for b in random {
        name.extend(format!("{b:02x}").bytes());
    }
    name.extend_from_slice(LOOP_PROBE_ZONE);
    *u.loop_probe.lock().unwrap_or_else(PoisonError::into_inner) = Some(name.clone().into());
    let mut query = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(&name);
    query.extend_from_slice(&HINFO.to_be_bytes());
    query.extend_from_slice(&svcnet_wire::class::IN.to_be_bytes());
    match u.exchange(&query, &query[12..], inner.timeout).await {
        Ok(_) => tracing::debug!(upstream = %u.upstream, "loop probe answered"),
        Err(e) => tracing::debug!(upstream = %u.upstream, "loop probe: {e}"),
    }
}

/// An answer to our relayed query: our ID, QR set, exactly our question.
fn matches_query(answer: &[u8], id: [u8; 2], question: &[u8]) -> bool {
    answer.len() >= 12 + question.len()
        && answer[..2] == id
        && answer[2] & 0x80 != 0
        && answer[4..6] == [0, 1]
        && answer[12..12 + question.len()].eq_ignore_ascii_case(question)
}

/// The nameservers of a resolv.conf text, port 53.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let addr = words.next()?.split('%').next()?;
            let ip: std::net::IpAddr = addr.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch default.svc.cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\noptions ndots:5\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.96.0.10:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    /// A UDP upstream on loopback that answers every query (NOERROR, no
    /// records: not cacheable) after `delay`, counting the queries that are
    /// not probes.
    async fn scripted_upstream(delay: Duration) -> (SocketAddr, Arc<AtomicU64>) {
        let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                let mut answer = buf[..n].to_vec();
                answer[2] |= 0x80;
                if !answer.ends_with(&[0, HINFO as u8, 0, 1]) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                let sock = Arc::clone(&sock);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = sock.send_to(&answer, peer).await;
                });
            }
        });
        (addr, seen)
    }

    fn forwarder(upstreams: &[SocketAddr]) -> Forwarder {
        Forwarder::new(ForwardConfig {
            upstreams: upstreams.iter().map(|&a| Upstream::from(a)).collect(),
            timeout: Duration::from_secs(1),
            max_in_flight: 64,
            cache_bytes: 0,
            ca_file: None,
        })
        .unwrap()
    }

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend(svcnet_wire::encode_name(name).unwrap());
        q.extend([0, 1, 0, 1]);
        q
    }

    #[tokio::test]
    async fn identical_queries_in_flight_share_one_exchange() {
        let (addr, seen) = scripted_upstream(Duration::from_millis(200)).await;
        let f = Arc::new(forwarder(&[addr]));
        let tasks: Vec<_> = (0..20u16)
            .map(|i| {
                let f = Arc::clone(&f);
                let name = if i % 2 == 0 {
                    "same.example"
                } else {
                    "SAME.Example"
                };
                let q = query(1000 + i, name);
                tokio::spawn(async move { (f.resolve(&q).await, q) })
            })
            .collect();
        for t in tasks {
            let (answer, q) = t.await.unwrap();
            let answer = answer.unwrap();
            assert_eq!(answer[..2], q[..2], "each gets its own ID");
            assert_eq!(answer[12..], q[12..], "and its own question case");
        }
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(f.coalesced(), 19);
        assert_eq!(f.inner.flights.len(), 0, "no flight left behind");
        // Once landed, the next one asks again (no cache here).
        f.resolve(&query(7, "same.example")).await.unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 2);
    }

    /// `query` with an OPT record (UDP size 1232) carrying `cookie`.
    fn edns_query(id: u16, name: &str, cookie: &[u8]) -> Vec<u8> {
        let mut q = query(id, name);
        q[11] = 1;
        q.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        q.extend(u16::try_from(4 + cookie.len()).unwrap().to_be_bytes());
        q.extend([0, 10]);
        q.extend(u16::try_from(cookie.len()).unwrap().to_be_bytes());
        q.extend(cookie);
        q
    }

    #[tokio::test]
    async fn rfc6891_coalesced_answers_keep_edns_apart_and_options_private() {
        // The upstream echoes each query as its answer, OPT and cookie too.
        let (addr, seen) = scripted_upstream(Duration::from_millis(200)).await;
        let f = Arc::new(forwarder(&[addr]));
        let queries = [
            edns_query(1, "same.example", b"leader00"),
            edns_query(2, "same.example", b"follow00"),
            query(3, "same.example"),
            query(4, "same.example"),
        ];
        let tasks: Vec<_> = queries
            .iter()
            .map(|q| {
                let (f, q) = (Arc::clone(&f), q.clone());
                tokio::spawn(async move { f.resolve(&q).await })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap().unwrap());
        }
        assert_eq!(
            seen.load(Ordering::Relaxed),
            2,
            "one exchange per EDNS-ness"
        );
        assert_eq!(f.coalesced(), 2);
        assert_eq!(
            answers[0][3..],
            queries[0][3..],
            "its own options for the leader"
        );
        let stripped_opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
        assert!(answers[1].ends_with(&stripped_opt), "{:?}", answers[1]);
        assert!(!answers[1].windows(8).any(|w| w == b"leader00"));
        for (a, q) in answers[2..].iter().zip(&queries[2..]) {
            assert_eq!(a[10..12], [0, 0], "no OPT for a plain query");
            assert_eq!(a[..2], q[..2]);
            assert_eq!(a[12..], q[12..]);
        }
    }

    #[tokio::test]
    async fn a_dead_upstream_goes_down_and_is_tried_last() {
        let dead = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (live, seen) = scripted_upstream(Duration::ZERO).await;
        let f = forwarder(&[dead, live]);
        for i in 0..3 {
            f.resolve(&query(i, &format!("n{i}.example")))
                .await
                .unwrap();
        }
        let stats = f.upstream_stats();
        assert_eq!(stats[0].addr, dead.to_string());
        assert!(!stats[0].healthy, "{stats:?}");
        assert_eq!(stats[0].queries, 2, "not asked first once down");
        assert_eq!(stats[0].errors, 2);
        assert!(stats[1].healthy);
        assert_eq!(stats[1].queries, 3);
        assert_eq!(stats[1].latency.count, 3);
        assert_eq!(seen.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_returning_loop_probe_gets_servfail_and_retires_its_upstream() {
        let (addr, _) = scripted_upstream(Duration::ZERO).await;
        let f = forwarder(&[addr]);
        f.start(&tokio::runtime::Handle::current());
        let mut probe = None;
        for _ in 0..100 {
            probe = f.inner.upstreams[0]
                .loop_probe
                .lock()
                .unwrap()
                .as_deref()
                .map(<[u8]>::to_vec);
            if probe.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut name = probe.expect("a loop probe was sent");
        name[1] = name[1].to_ascii_uppercase();
        let mut q = vec![0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(&name);
        q.extend([0, 13, 0, 1]);
        assert!(matches!(f.resolve(&q).await, Err(ForwardError::Looped)));
        assert!(f.upstream_stats()[0].looping);
        let started = Instant::now();
        assert!(matches!(
            f.resolve(&query(1, "example.org")).await,
            Err(ForwardError::NoAnswer)
        ));
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "not even tried"
        );
        assert!(f.admit().is_some());
        assert_eq!(f.refused_full(), 0);
    }

    #[test]
    fn answers_must_match() {
        let q = [3, b'c', b'o', b'm', 0, 0, 1, 0, 1];
        let mut a = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        a.extend([3, b'C', b'O', b'M', 0, 0, 1, 0, 1]);
        assert!(matches_query(&a, [0xab, 0xcd], &q));
        assert!(!matches_query(&a, [0xab, 0xce], &q));
        a[2] &= 0x7f;
        assert!(!matches_query(&a, [0xab, 0xcd], &q));
    }
}
