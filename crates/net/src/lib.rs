//! Network serving (ARCHITECTURE "Net"): the only crate with sockets.
//!
//! UDP: one worker thread per `SO_REUSEPORT` socket, each looping
//! receive → [`svcnet_dns::answer`] → send with buffers allocated once, and
//! loading the current snapshot without locks. TCP (RFC 7766): tokio, with a
//! connection cap, an idle timeout and pipelined queries answered in order.
//! Snapshots are built elsewhere and only published here through [`Shared`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub mod rrl;

use arc_swap::{ArcSwap, ArcSwapOption};
use socket2::{Domain, Protocol, Socket, Type};
use svcnet_dns::{Context, Outcome, Transport, answer};
use svcnet_forward::Forwarder;
use svcnet_index::Snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// What the workers read: the current snapshot, swapped in by the index.
pub struct Shared {
    /// The snapshot being served.
    pub snapshot: ArcSwap<Snapshot>,
    /// Relays names outside our zones (else they get REFUSED); swapped when
    /// the configuration changes.
    pub forwarder: ArcSwapOption<Forwarder>,
    /// The runtime forwarded exchanges run on.
    runtime: Option<tokio::runtime::Handle>,
    /// Queries answered, for logs and health.
    pub queries: AtomicU64,
    /// Rotation of headless answers over TCP, shared by all connections so
    /// that clients opening one connection per query still see it rotate.
    pub tcp_rotation: AtomicU32,
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

    /// Shares `snapshot`; names outside our zones get REFUSED.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            forwarder: ArcSwapOption::empty(),
            runtime: None,
            queries: AtomicU64::new(0),
            tcp_rotation: AtomicU32::new(0),
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
    /// Open connections at most; further ones wait in the accept queue.
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
/// (and its allocations counted) alone. Returns the reply length, if any.
pub fn handle_datagram(
    shared: &Shared,
    packet: &[u8],
    rotation: u32,
    out: &mut Vec<u8>,
) -> Outcome {
    let snap = shared.snapshot.load();
    let ctx = Context {
        transport: Transport::Udp,
        rotation,
        forward: shared.forwarder.load().is_some(),
    };
    answer(&snap, packet, &ctx, out)
}

/// A reply of `rcode` (with TC when `truncated`) echoing the question of
/// `packet`: what a client gets when the upstream fails, the forwarder is
/// full, or a relayed answer does not fit its UDP limit.
fn short_reply(packet: &[u8], rcode: u16, truncated: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    match svcnet_wire::parse_query(packet) {
        Ok(q) => {
            let mut w = svcnet_wire::Writer::new(&mut out, &q, usize::from(u16::MAX));
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

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(250)))?;
    Ok(sock)
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
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || udp_worker(&Arc::new(sock), &shared, &stop))
                .map_err(err)
        })
        .collect::<Result<_, _>>()?;
    Ok((bound, handles))
}

fn udp_worker(sock: &Arc<UdpSocket>, shared: &Shared, stop: &AtomicBool) {
    let mut inbuf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(65535);
    let mut rotation = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match sock.recv_from(&mut inbuf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp receive");
                continue;
            }
        };
        rotation = rotation.wrapping_add(1);
        let packet = &inbuf[..len];
        let reply = match handle_datagram(shared, packet, rotation, &mut out) {
            Outcome::Reply(n) => &out[..n],
            Outcome::Drop => continue,
            Outcome::Forward => {
                forward_udp(shared, sock, packet, peer, None);
                continue;
            }
            Outcome::Chase(n) => {
                forward_udp(shared, sock, packet, peer, Some(out[..n].to_vec()));
                continue;
            }
        };
        shared.queries.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = sock.send_to(reply, peer) {
            tracing::debug!(error = %e, %peer, "udp send");
        }
    }
}

/// Hands a query for an outside name (or the rest of a CNAME chain, with
/// `partial`) to the forwarder without blocking the worker; a full forwarder
/// answers SERVFAIL at once (or with the chain alone).
fn forward_udp(
    shared: &Shared,
    sock: &Arc<UdpSocket>,
    packet: &[u8],
    peer: SocketAddr,
    partial: Option<Vec<u8>>,
) {
    let (Some(forwarder), Some(runtime)) = (shared.forwarder.load_full(), &shared.runtime) else {
        return;
    };
    let limit = svcnet_wire::parse_query(packet).map_or(512, |q| q.udp_limit());
    let Some(permit) = forwarder.admit() else {
        let reply =
            partial.unwrap_or_else(|| short_reply(packet, svcnet_wire::rcode::SERVFAIL, false));
        let _ = sock.send_to(&reply, peer);
        return;
    };
    let (sock, packet) = (Arc::clone(sock), packet.to_vec());
    runtime.spawn(async move {
        let reply = relay(&forwarder, &packet, partial, Some(limit)).await;
        drop(permit);
        if let Err(e) = sock.send_to(&reply, peer) {
            tracing::debug!(error = %e, %peer, "udp send");
        }
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
pub async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, limits: TcpLimits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(stream, &shared, limits.idle_timeout).await {
                tracing::debug!(error = %e, %peer, "tcp connection");
            }
            drop(permit);
        });
    }
}

/// The largest query accepted over TCP. Queries are small (a name, a type,
/// an OPT); a larger length prefix is abuse, and buffering it per connection
/// would let a few thousand connections pin hundreds of megabytes.
const MAX_TCP_QUERY: usize = 4096;

async fn tcp_connection(mut stream: TcpStream, shared: &Shared, idle: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut msg = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len > MAX_TCP_QUERY {
            return Ok(());
        }
        msg.resize(len, 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut msg)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        let rotation = shared.tcp_rotation.fetch_add(1, Ordering::Relaxed);
        let snap = shared.snapshot.load_full();
        let ctx = Context {
            transport: Transport::Tcp,
            rotation,
            forward: shared.forwarder.load().is_some(),
        };
        let n = match answer(&snap, &msg, &ctx, &mut out) {
            Outcome::Reply(n) => n,
            Outcome::Drop => return Ok(()),
            outcome @ (Outcome::Forward | Outcome::Chase(_)) => {
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
                out.len()
            }
        };
        shared.queries.fetch_add(1, Ordering::Relaxed);
        let Ok(n16) = u16::try_from(n) else {
            return Ok(());
        };
        // A client that stops reading must not hold its connection slot
        // forever: writing is bounded by the idle timeout too.
        let write = async {
            stream.write_all(&n16.to_be_bytes()).await?;
            stream.write_all(&out[..n]).await
        };
        match tokio::time::timeout(idle, write).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
    }
}
