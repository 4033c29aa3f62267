//! Network serving (ARCHITECTURE "Net"): the only crate with sockets.
//!
//! UDP: one worker thread per `SO_REUSEPORT` socket, each looping over
//! batches: up to 32 datagrams in with one `recvmmsg`, answered by
//! [`svcnet_dns::answer`] from the snapshot loaded once per batch (without
//! locks), replies out with one `sendmmsg`, buffers allocated once
//! ([`batch`]); under load a worker pauses briefly between batches so that
//! each wake-up answers more ([`coalesce`]). TCP (RFC 7766): tokio, with a
//! connection cap, an idle timeout and pipelined queries answered in order.
//! Snapshots are built elsewhere and only published here through [`Shared`].
//!
//! Every answered query is counted in [`metrics`] (per worker, summed at
//! scrape) and, with `--log-queries`, sampled into the query log.

pub mod metrics;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
pub mod batch;
pub mod coalesce;
pub mod rrl;

use arc_swap::{ArcSwap, ArcSwapOption};
use socket2::{Domain, Protocol, Socket, Type};
use svcnet_dns::{Context, Outcome, Transport, answer_in_zone};
use svcnet_forward::Forwarder;
use svcnet_index::Snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use crate::coalesce::Coalesce;
use crate::coalesce::Coalescer;
use crate::metrics::{Metrics, QueryLog, QueryStats, Served, ZONE_FORWARDED, zone_slot};

/// What the workers read: the current snapshot, swapped in by the index.
pub struct Shared {
    /// The snapshot being served.
    pub snapshot: ArcSwap<Snapshot>,
    /// Relays names outside our zones (else they get REFUSED); swapped when
    /// the configuration changes.
    pub forwarder: ArcSwapOption<Forwarder>,
    /// The runtime forwarded exchanges run on.
    runtime: Option<tokio::runtime::Handle>,
    /// Query counters and latencies.
    pub metrics: Metrics,
    /// Which queries are logged (`--log-queries`).
    pub query_log: QueryLog,
    /// Rotation of headless answers over TCP, shared by all connections so
    /// that clients opening one connection per query still see it rotate.
    pub tcp_rotation: AtomicU32,
    /// Response-rate limiting of UDP (`--rrl`), when on.
    pub rrl: Option<rrl::RateLimiter>,
    /// When UDP workers pause between batches under load (`--udp-coalesce`).
    pub coalesce: Coalesce,
    /// Whether a batch's replies to one client go out in one segmented send
    /// (`UDP_SEGMENT`; `--no-udp-segment` turns it off).
    pub segment: bool,
}

impl Shared {
    /// Runs forwarded exchanges on `runtime`.
    pub fn with_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Forwards names outside our zones with `forwarder` from now on (`None`:
    /// they get REFUSED). Queries in flight finish with the one they have.
    pub fn set_forwarder(&self, forwarder: Option<Arc<Forwarder>>) {
        self.forwarder.store(forwarder);
    }

    /// Limits UDP responses to `per_second` per client network (0: off).
    pub fn with_rrl(mut self, per_second: u32) -> Self {
        self.rrl = (per_second > 0).then(|| rrl::RateLimiter::new(per_second));
        self
    }

    /// Pauses UDP workers between batches as `coalesce` says.
    pub fn with_coalesce(mut self, coalesce: Coalesce) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// Sends a batch's replies to one client in one segmented send (`true`,
    /// the default, where the kernel knows how) or one by one.
    pub fn with_segment(mut self, segment: bool) -> Self {
        self.segment = segment;
        self
    }

    /// Logs the queries `log` samples.
    pub fn with_query_log(mut self, log: QueryLog) -> Self {
        self.query_log = log;
        self
    }

    /// Shares `snapshot`; names outside our zones get REFUSED.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            forwarder: ArcSwapOption::empty(),
            runtime: None,
            metrics: Metrics::default(),
            query_log: QueryLog::default(),
            tcp_rotation: AtomicU32::new(0),
            rrl: None,
            coalesce: Coalesce::DEFAULT,
            segment: true,
        }
    }
}

/// Errors starting the listeners.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket could not be bound.
    #[error("cannot listen on {proto} {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

/// Limits of the TCP listener.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    /// Open connections at most. A connection beyond it is accepted and
    /// closed at once (counted as refused): its client learns at once that
    /// it must retry instead of waiting in the listen backlog.
    pub max_connections: usize,
    /// A connection with no complete query for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Answers one datagram: the UDP path without the socket, so it can be tested
/// (and its allocations counted) alone. The datagram is warmed first, as a
/// worker warms its batch (here a batch of one). Returns what to do and the
/// zone slot of the query ([`metrics::zone_slot`]; [`ZONE_FORWARDED`] for a
/// name relayed upstream); a dropped packet is counted in `stats` here, an
/// answered one by [`QueryStats::record`] once sent.
pub fn handle_datagram(
    shared: &Shared,
    stats: &QueryStats,
    packet: &[u8],
    rotation: u32,
    out: &mut Vec<u8>,
) -> (Outcome, usize) {
    let snap = shared.snapshot.load();
    let forward = shared.forwarder.load().is_some();
    svcnet_dns::warm(&snap, [packet]);
    answer_datagram(&snap, forward, stats, packet, rotation, out)
}

/// One datagram through the UDP path without the sockets: answered into
/// `out` as [`handle_datagram`] does and, when there is a reply, counted as
/// sent to `peer`. What a worker does per query apart from the system calls,
/// for benchmarks and the allocation test.
pub fn answer_and_count(
    shared: &Shared,
    stats: &QueryStats,
    packet: &[u8],
    rotation: u32,
    peer: SocketAddr,
    out: &mut Vec<u8>,
) -> Outcome {
    let received = Instant::now();
    let (outcome, zone) = handle_datagram(shared, stats, packet, rotation, out);
    if let Outcome::Reply(n) = outcome {
        let served = Served {
            proto: Transport::Udp,
            peer,
            query: packet,
            reply: &out[..n],
            zone,
            forwarded: false,
            received,
        };
        stats.record(&served, shared.query_log);
    }
    outcome
}

/// [`handle_datagram`] with the snapshot and the forwarding switch already
/// loaded (once per batch).
fn answer_datagram(
    snap: &Snapshot,
    forward: bool,
    stats: &QueryStats,
    packet: &[u8],
    rotation: u32,
    out: &mut Vec<u8>,
) -> (Outcome, usize) {
    let ctx = Context {
        transport: Transport::Udp,
        rotation,
        forward,
    };
    let (outcome, zone) = answer_in_zone(snap, packet, &ctx, out);
    let slot = match outcome {
        Outcome::Drop => {
            stats.dropped();
            return (outcome, metrics::ZONE_OTHER);
        }
        Outcome::Forward => ZONE_FORWARDED,
        Outcome::Reply(_) | Outcome::Chase(_) => zone_slot(snap, zone),
    };
    (outcome, slot)
}

/// A reply of `rcode` (with TC when `truncated`) echoing the question of
/// `packet`: what a client gets when the upstream fails, the forwarder is
/// full, or a relayed answer does not fit its UDP limit.
fn short_reply(packet: &[u8], rcode: u16, truncated: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    match svcnet_wire::parse_query(packet) {
        Ok(q) => {
            let mut comp = svcnet_wire::Compression::new();
            let mut w = svcnet_wire::Writer::new(&mut out, &mut comp, &q, usize::from(u16::MAX));
            w.set_rcode(rcode);
            w.set_recursion_available();
            if truncated {
                w.set_truncated();
            }
            w.finish();
        }
        Err(_) => svcnet_wire::Writer::header_only(&mut out, packet, rcode),
    }
    out
}

/// Relays a query upstream; the reply to send (SERVFAIL when no upstream
/// answered). `udp_limit` caps what a UDP client can take. With `partial`
/// (an [`Outcome::Chase`] reply), the upstream is asked for the target of its
/// CNAME chain instead and the answer is appended to it; when the upstream
/// fails, `partial` is sent as it is.
async fn relay(
    forwarder: &Forwarder,
    packet: &[u8],
    partial: Option<Vec<u8>>,
    udp_limit: Option<usize>,
) -> Vec<u8> {
    if let Some(partial) = partial {
        return chase(forwarder, packet, partial, udp_limit).await;
    }
    match forwarder.resolve(packet).await {
        Ok(answer) if udp_limit.is_some_and(|l| answer.len() > l) => {
            short_reply(packet, svcnet_wire::rcode::NOERROR, true)
        }
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!("forwarding failed: {e}");
            short_reply(packet, svcnet_wire::rcode::SERVFAIL, false)
        }
    }
}

async fn chase(
    forwarder: &Forwarder,
    packet: &[u8],
    mut partial: Vec<u8>,
    udp_limit: Option<usize>,
) -> Vec<u8> {
    let (Ok(q), Some(target)) = (
        svcnet_wire::parse_query(packet),
        svcnet_wire::cname_target(&partial),
    ) else {
        return partial;
    };
    let query = svcnet_wire::chase_query(&q, &target);
    let answer = match forwarder.resolve(&query).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!("resolving a CNAME target upstream failed: {e}");
            return partial;
        }
    };
    match svcnet_wire::splice_answers(&partial, &answer, usize::from(u16::MAX)) {
        Some(full) if udp_limit.is_none_or(|l| full.len() <= l) => full,
        Some(_) => {
            // Too large for this UDP client: the chain alone, truncated, so
            // it asks again over TCP.
            if let Some(flags) = partial.get_mut(2) {
                *flags |= 0x02;
            }
            partial
        }
        None => partial,
    }
}

/// A UDP socket bound on `addr`, sharing its port with others of the same
/// user that also set `reuse_port`.
fn udp_bound(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock)
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock: UdpSocket = udp_bound(addr, true)?.into();
    sock.set_read_timeout(Some(Duration::from_millis(250)))?;
    Ok(sock)
}

/// Whether no UDP socket at all holds `addr`: a probe bound without
/// `SO_REUSEPORT`, closed again. For a port picked with 0 (for TCP first):
/// the sockets of [`spawn_udp`] share their port, so on a port another of
/// our processes still holds for UDP (one stopping, its TCP listener
/// already closed) they would join its sockets instead of failing, and the
/// two would split the queries. `AddrInUse` when held.
pub fn udp_port_unused(addr: SocketAddr) -> Result<(), NetError> {
    udp_bound(addr, false)
        .map(drop)
        .map_err(|source| NetError::Bind {
            proto: "udp",
            addr,
            source,
        })
}

/// Binds `workers` UDP sockets on `addr` (port 0 picks one port for all) and
/// starts a thread per socket. Returns the bound address and the threads.
pub fn spawn_udp(
    addr: SocketAddr,
    workers: usize,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Result<(SocketAddr, Vec<JoinHandle<()>>), NetError> {
    let err = |source| NetError::Bind {
        proto: "udp",
        addr,
        source,
    };
    let first = udp_socket(addr).map_err(err)?;
    let bound = first.local_addr().map_err(err)?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(udp_socket(bound).map_err(err)?);
    }
    let handles = sockets
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            let stats = shared.metrics.udp_worker();
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || udp_worker(&Arc::new(sock), &shared, &stats, &stop))
                .map_err(err)
        })
        .collect::<Result<_, _>>()?;
    Ok((bound, handles))
}

fn udp_worker(sock: &Arc<UdpSocket>, shared: &Shared, stats: &QueryStats, stop: &AtomicBool) {
    let mut batch = batch::Batch::new();
    batch.segment_replies(sock.as_ref(), shared.segment);
    let mut rotation = 0u32;
    // Off, the loop neither reads the clock nor counts for it.
    let mut coalescer = shared.coalesce.is_on().then(|| {
        coalesce::precise_sleeps(shared.coalesce.nap);
        Coalescer::new(shared.coalesce, batch::BATCH, Instant::now())
    });
    while !stop.load(Ordering::Relaxed) {
        // Set before each wait for datagrams, so the gauge holds while idle.
        stats.set_segmenting(batch.segments());
        let served = serve_batch(sock, shared, stats, &mut batch, &mut rotation);
        if let Some(coalescer) = coalescer.as_mut()
            && let Some(nap) = coalescer.after_batch(*served.as_ref().unwrap_or(&0), Instant::now())
        {
            stats.paused();
            std::thread::sleep(nap);
        }
        if let Err(e) = served
            && !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            )
        {
            tracing::debug!(error = %e, "udp receive");
        }
    }
}

/// One round of a UDP worker: waits for datagrams (up to the socket's read
/// timeout), answers the batch, sends the replies with one system call and
/// counts them. Returns how many datagrams came. Allocates nothing for
/// names in our zones.
pub fn serve_batch(
    sock: &Arc<UdpSocket>,
    shared: &Shared,
    stats: &QueryStats,
    batch: &mut batch::Batch,
    rotation: &mut u32,
) -> io::Result<usize> {
    let n = batch.receive(sock.as_ref())?;
    let received = Instant::now();
    // One snapshot for the whole batch: a reload lands between batches.
    let snap = shared.snapshot.load();
    let forward = shared.forwarder.load().is_some();
    svcnet_dns::warm(&snap, (0..n).filter_map(|i| batch.query(i)));
    for i in 0..n {
        *rotation = rotation.wrapping_add(1);
        let Some((packet, peer, out)) = batch.slot(i) else {
            stats.dropped();
            continue;
        };
        let (outcome, zone) = answer_datagram(&snap, forward, stats, packet, *rotation, out);
        let served = Served {
            proto: Transport::Udp,
            peer,
            query: packet,
            reply: &[],
            zone,
            forwarded: false,
            received,
        };
        let reply = match outcome {
            Outcome::Reply(n) => rate_limit(shared, peer, out, n),
            Outcome::Drop => None,
            Outcome::Forward => {
                forward_udp(shared, sock, &served, None);
                None
            }
            Outcome::Chase(n) => {
                let partial = out[..n].to_vec();
                forward_udp(shared, sock, &served, Some(partial));
                None
            }
        };
        if let Some(len) = reply {
            batch.queue(i, len, zone);
        }
    }
    let sent = batch.send(sock.as_ref());
    if sent != batch::Sent::default() {
        stats.segmented(sent);
    }
    let took = received.elapsed();
    for (query, peer, zone, reply) in batch.replies() {
        let served = Served {
            proto: Transport::Udp,
            peer,
            query,
            reply,
            zone,
            forwarded: false,
            received,
        };
        stats.record_took(&served, took, shared.query_log);
    }
    Ok(n)
}

/// `--rrl`: the length of the reply to send to `peer` (cut to its slip
/// form in place when over the rate), or `None` to send nothing.
fn rate_limit(shared: &Shared, peer: SocketAddr, out: &mut [u8], n: usize) -> Option<usize> {
    match shared.rrl.as_ref().map(|r| r.check(peer.ip())) {
        None | Some(rrl::Verdict::Send) => Some(n),
        Some(rrl::Verdict::Slip) => Some(rrl::slip(out, n)),
        Some(rrl::Verdict::Drop) => None,
    }
}

/// Hands a query for an outside name (or the rest of a CNAME chain, with
/// `partial`) to the forwarder without blocking the worker; a full forwarder
/// answers SERVFAIL at once (or with the chain alone).
///
/// Its reply is counted (in the relayed-UDP counters, as `query` says)
/// when sent.
fn forward_udp(
    shared: &Shared,
    sock: &Arc<UdpSocket>,
    query: &Served<'_>,
    partial: Option<Vec<u8>>,
) {
    let (packet, peer) = (query.query, query.peer);
    let (Some(forwarder), Some(runtime)) = (shared.forwarder.load_full(), &shared.runtime) else {
        // The forwarder was turned off by a reload since the engine looked:
        // the chain so far, or SERVFAIL, rather than silence.
        let reply =
            partial.unwrap_or_else(|| short_reply(packet, svcnet_wire::rcode::SERVFAIL, false));
        let _ = sock.send_to(&reply, peer);
        return;
    };
    match shared.rrl.as_ref().map(|r| r.check(peer.ip())) {
        None | Some(rrl::Verdict::Send) => {}
        Some(rrl::Verdict::Slip) => {
            // Not worth an upstream query: the client retries over TCP.
            let _ = sock.send_to(
                &short_reply(packet, svcnet_wire::rcode::NOERROR, true),
                peer,
            );
            return;
        }
        Some(rrl::Verdict::Drop) => return,
    }
    let stats = Arc::clone(&shared.metrics.udp_relayed);
    let log = shared.query_log;
    let (zone, received) = (query.zone, query.received);
    let limit = svcnet_wire::parse_query(packet).map_or(512, |q| q.udp_limit());
    let Some(permit) = forwarder.admit() else {
        let reply =
            partial.unwrap_or_else(|| short_reply(packet, svcnet_wire::rcode::SERVFAIL, false));
        let _ = sock.send_to(&reply, peer);
        let served = Served {
            reply: &reply,
            forwarded: true,
            ..*query
        };
        stats.record(&served, log);
        return;
    };
    let (sock, packet) = (Arc::clone(sock), packet.to_vec());
    runtime.spawn(async move {
        let reply = relay(&forwarder, &packet, partial, Some(limit)).await;
        drop(permit);
        if let Err(e) = sock.send_to(&reply, peer) {
            tracing::debug!(error = %e, %peer, "udp send");
        }
        let served = Served {
            proto: Transport::Udp,
            peer,
            query: &packet,
            reply: &reply,
            zone,
            forwarded: true,
            received,
        };
        stats.record(&served, log);
    });
}

/// Binds the TCP listener on `addr` (inside a tokio runtime).
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, NetError> {
    let err = |source| NetError::Bind {
        proto: "tcp",
        addr,
        source,
    };
    let sock =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    sock.set_reuse_address(true).map_err(err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(err)?;
    }
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    sock.listen(1024).map_err(err)?;
    TcpListener::from_std(sock.into()).map_err(err)
}

/// Serves DNS over TCP until the runtime stops.
///
/// At most `limits.max_connections` connections are served at once. One
/// more is accepted and closed at once (counted as refused), so that a
/// flood of idle connections neither grows without bound nor leaves new
/// clients hanging in the listen backlog: they see the close and retry,
/// and slots come back as idle connections time out. UDP runs on its own
/// threads and is not slowed by any of this.
pub async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, limits: TcpLimits) {
    let conns = &shared.metrics.tcp_connections;
    let max = u64::try_from(limits.max_connections.max(1)).unwrap_or(u64::MAX);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::debug!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if conns.open.load(Ordering::Relaxed) >= max {
            conns.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        conns.accepted.fetch_add(1, Ordering::Relaxed);
        conns.open.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let conns = &shared.metrics.tcp_connections;
            match tcp_connection(stream, peer, &shared, limits.idle_timeout).await {
                Ok(Closed::Idle) => {
                    conns.idle_closed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Closed::ByPeer | Closed::Unanswerable) => {}
                Err(e) => tracing::debug!(error = %e, %peer, "tcp connection"),
            }
            conns.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Why a TCP connection ended (other than an I/O error).
enum Closed {
    /// The client closed it.
    ByPeer,
    /// Nothing was received (or could be sent) within the idle timeout.
    Idle,
    /// A query that cannot be answered: too long, or without a header.
    Unanswerable,
}

/// The largest query accepted over TCP. Queries are small (a name, a type,
/// an OPT); a larger length prefix is abuse, and buffering it per connection
/// would let a few thousand connections pin hundreds of megabytes.
const MAX_TCP_QUERY: usize = 4096;

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    idle: Duration,
) -> io::Result<Closed> {
    stream.set_nodelay(true)?;
    let stats = &shared.metrics.tcp;
    let mut msg = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Closed::ByPeer),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(Closed::Idle),
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len > MAX_TCP_QUERY {
            stats.dropped();
            return Ok(Closed::Unanswerable);
        }
        msg.resize(len, 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut msg)).await {
            Ok(r) => r?,
            Err(_) => return Ok(Closed::Idle),
        };
        let received = Instant::now();
        let rotation = shared.tcp_rotation.fetch_add(1, Ordering::Relaxed);
        let snap = shared.snapshot.load_full();
        let ctx = Context {
            transport: Transport::Tcp,
            rotation,
            forward: shared.forwarder.load().is_some(),
        };
        let (outcome, zone) = answer_in_zone(&snap, &msg, &ctx, &mut out);
        let zone = match outcome {
            Outcome::Forward => ZONE_FORWARDED,
            _ => zone_slot(&snap, zone),
        };
        drop(snap);
        let (n, forwarded) = match outcome {
            Outcome::Reply(n) => (n, false),
            Outcome::Drop => {
                stats.dropped();
                return Ok(Closed::Unanswerable);
            }
            Outcome::Forward | Outcome::Chase(_) => {
                let partial = match outcome {
                    Outcome::Chase(n) => Some(out[..n].to_vec()),
                    _ => None,
                };
                let forwarder = shared.forwarder.load_full();
                let reply = match forwarder.as_ref().and_then(|f| Some((f, f.admit()?))) {
                    Some((f, _permit)) => relay(f, &msg, partial, None).await,
                    None => partial
                        .unwrap_or_else(|| short_reply(&msg, svcnet_wire::rcode::SERVFAIL, false)),
                };
                out.clear();
                out.extend_from_slice(&reply);
                (out.len(), true)
            }
        };
        let Ok(n16) = u16::try_from(n) else {
            return Ok(Closed::Unanswerable);
        };
        // A client that stops reading must not hold its connection slot
        // forever: writing is bounded by the idle timeout too.
        let write = async {
            stream.write_all(&n16.to_be_bytes()).await?;
            stream.write_all(&out[..n]).await
        };
        match tokio::time::timeout(idle, write).await {
            Ok(r) => r?,
            Err(_) => return Ok(Closed::Idle),
        }
        let served = Served {
            proto: Transport::Tcp,
            peer,
            query: &msg,
            reply: &out[..n],
            zone,
            forwarded,
            received,
        };
        stats.record(&served, shared.query_log);
    }
}

/// Hands memory the allocator holds but no longer uses back to the
/// operating system. Loading a large state frees most of what parsing and
/// emulation allocated, but glibc keeps those pages; without this, the
/// resident size after a load stays near its peak. Call it after a load or
/// a rebuild, not on a hot path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists; it
        // takes no pointers from us.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Caps the allocator's arenas at one per core and the main one. glibc
/// gives each new thread an arena of its own, up to eight per core; a
/// load's reading threads leave theirs mostly free when the objects they
/// parsed are dropped, and the threads that build the snapshot next would
/// take fresh arenas for the records they keep. Capped, they take the
/// reading threads' arenas and fill what those left free (at 100k
/// services: 46 MiB less at the peak, 13 MiB less after, the same load
/// time). Call it first, before the threads that load. The workers that
/// answer allocate nothing for a name of our zones, so sharing an arena
/// costs them nothing there.
pub fn cap_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let arenas = libc::c_int::try_from(cores + 1).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; it takes no
        // pointers, and a rejected value leaves the default in place.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit, so
/// that a server with thousands of TCP clients does not run out of
/// descriptors at a default soft limit of 1024. Returns the limits before
/// and after.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    #[allow(unsafe_code)]
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
    if got != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
        #[allow(unsafe_code)]
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port another process's worker sockets hold (here: one socket with
    /// `SO_REUSEPORT`, as `spawn_udp` binds them) would take ours in as
    /// members of its group; the probe says it is held, and is free again
    /// once they are closed.
    #[test]
    fn a_udp_port_shared_by_reuseport_sockets_is_not_unused() {
        for here in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(here) = here.parse::<SocketAddr>() else {
                continue;
            };
            let Ok(theirs) = udp_socket(here) else {
                continue; // no IPv6 on this host
            };
            let port = theirs.local_addr().expect("addr");
            // What the probe guards against: a reuseport bind just joins.
            let joined = udp_socket(port).expect("a reuseport bind joins the group");
            drop(joined);
            match udp_port_unused(port) {
                Err(NetError::Bind { source, .. }) => {
                    assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{port}");
                }
                other => panic!("{port}: {other:?}"),
            }
            drop(theirs);
            assert!(udp_port_unused(port).is_ok(), "{port} once closed");
        }
    }
}
