//! One upstream resolver: how the user named it (`10.0.0.1`, `10.0.0.1:5353`,
//! `tls://1.1.1.1#cloudflare-dns.com`), the exchange of one query with it
//! (UDP with TCP on TC, RFC 1035 §4.2; or DNS over TLS, RFC 7858), and its
//! counters and health flags.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use svcnet_stats::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::tls::TlsPipe;
use crate::{ForwardError, UpstreamStats, matches_query, random_id};

/// Port of plain DNS upstreams when none is given.
const DNS_PORT: u16 = 53;
/// Port of DNS-over-TLS upstreams when none is given (RFC 7858 §3.1).
const DOT_PORT: u16 = 853;

/// An upstream resolver as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// How the user wrote it, for logs and metrics labels.
    pub text: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// For DNS over TLS, the name its certificate must carry (a DNS name
    /// given after `#`, else its IP address); `None` for plain DNS.
    pub tls: Option<ServerName<'static>>,
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Self {
        Self {
            text: addr.to_string(),
            addr,
            tls: None,
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT`, `V6`, `[V6]`, each with its default port.
fn parse_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        let ip = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        ip.unwrap_or(s)
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

impl FromStr for Upstream {
    type Err = ForwardError;

    /// `IP[:PORT]` (plain DNS, port 53) or `tls://IP[:PORT][#NAME]` (DNS over
    /// TLS, port 853, the certificate checked for NAME, else for IP).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| ForwardError::BadUpstream {
            text: s.to_owned(),
            reason,
        };
        let Some(rest) = s.strip_prefix("tls://") else {
            if s.contains('#') {
                return Err(bad("a server name (#NAME) needs tls://"));
            }
            let addr = parse_addr(s, DNS_PORT).ok_or_else(|| bad("not an IP address"))?;
            return Ok(Self {
                text: s.to_owned(),
                addr,
                tls: None,
            });
        };
        let (host, name) = match rest.split_once('#') {
            Some((host, name)) => (host, Some(name)),
            None => (rest, None),
        };
        let addr = parse_addr(host, DOT_PORT).ok_or_else(|| bad("not an IP address"))?;
        let tls = match name {
            Some(name) => ServerName::try_from(name.to_owned())
                .map_err(|_| bad("the name after # is not a valid DNS name"))?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        Ok(Self {
            text: s.to_owned(),
            addr,
            tls: Some(tls),
        })
    }
}

/// How many failures in a row take an upstream down. Two, not one: a single
/// lost UDP datagram must not shift traffic; not more: with sequential
/// upstreams every query to a dead first one waits a full timeout, and that
/// cost should be paid as few times as possible.
pub(crate) const DOWN_AFTER: u32 = 2;

/// An upstream with its connection and its counters.
pub(crate) struct UpstreamState {
    pub(crate) upstream: Upstream,
    tls: Option<TlsPipe>,
    queries: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    latency: Histogram,
    /// Failures in a row (relayed queries and health probes).
    failures: AtomicU32,
    pub(crate) healthy: AtomicBool,
    pub(crate) looping: AtomicBool,
    /// A health probe task is running for it.
    pub(crate) probing: AtomicBool,
    /// The folded wire name of the last loop probe sent to it.
    pub(crate) loop_probe: Mutex<Option<Box<[u8]>>>,
}

impl fmt::Debug for UpstreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamState")
            .field("upstream", &self.upstream.text)
            .field("healthy", &self.healthy.load(Ordering::Relaxed))
            .field("looping", &self.looping.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What a relayed exchange did to an upstream's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed.
    None,
    /// It failed [`DOWN_AFTER`] times in a row and is down now.
    Down,
    /// It was down and answered.
    Up,
}

impl UpstreamState {
    pub(crate) fn new(upstream: Upstream, tls: Option<TlsPipe>) -> Self {
        Self {
            upstream,
            tls,
            queries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            latency: Histogram::default(),
            failures: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            looping: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            loop_probe: Mutex::new(None),
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn is_looping(&self) -> bool {
        self.looping.load(Ordering::Relaxed)
    }

    /// Counts an exchange's outcome toward health.
    pub(crate) fn record(&self, ok: bool) -> Transition {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            if self.healthy.swap(true, Ordering::Relaxed) {
                Transition::None
            } else {
                Transition::Up
            }
        } else {
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= DOWN_AFTER && self.healthy.swap(false, Ordering::Relaxed) {
                Transition::Down
            } else {
                Transition::None
            }
        }
    }

    /// Whether `folded` (a lower-case wire name) is the loop probe sent here.
    pub(crate) fn sent_probe(&self, folded: &[u8]) -> bool {
        self.loop_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            == Some(folded)
    }

    pub(crate) fn stats(&self) -> UpstreamStats {
        UpstreamStats {
            addr: self.upstream.text.clone(),
            queries: self.queries.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            healthy: self.is_healthy(),
            looping: self.is_looping(),
            latency: self.latency.snapshot(),
        }
    }

    /// Sends `query` (its ID replaced by a fresh random one) and returns the
    /// matching answer, counting it in this upstream's statistics.
    pub(crate) async fn exchange(
        &self,
        query: &[u8],
        question: &[u8],
        timeout: Duration,
    ) -> io::Result<Vec<u8>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = match &self.tls {
            Some(pipe) => {
                pipe.exchange(self.upstream.addr, query, question, timeout)
                    .await
            }
            None => exchange_udp(self.upstream.addr, query, question, timeout).await,
        };
        match &result {
            Ok(_) => self.latency.observe(started.elapsed()),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if e.kind() == io::ErrorKind::TimedOut {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        result
    }
}

fn timed_out() -> io::Error {
    io::Error::from(io::ErrorKind::TimedOut)
}

/// `query` with `id` in place of its own.
pub(crate) fn with_id(query: &[u8], id: [u8; 2]) -> Vec<u8> {
    let mut relayed = query.to_vec();
    if let Some(head) = relayed.get_mut(..2) {
        head.copy_from_slice(&id);
    }
    relayed
}

/// One exchange over a fresh `connect`ed UDP socket (a kernel-chosen random
/// source port, and only the upstream's address can answer); a truncated
/// answer is asked again over TCP.
async fn exchange_udp(
    upstream: SocketAddr,
    query: &[u8],
    question: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let id = random_id()?;
    let query = with_id(query, id);
    let bind: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(&query).await?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        let answer = &buf[..n];
        if !matches_query(answer, id, question) {
            // Not ours (spoofed or stale): keep waiting for the real one.
            continue;
        }
        if answer[2] & 0x02 != 0 {
            return exchange_tcp(upstream, &query, id, question, timeout).await;
        }
        return Ok(answer.to_vec());
    }
}

async fn exchange_tcp(
    upstream: SocketAddr,
    query: &[u8],
    id: [u8; 2],
    question: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let work = async {
        let mut conn = TcpStream::connect(upstream).await?;
        conn.write_all(&frame(query)?).await?;
        let answer = read_frame(&mut conn).await?;
        if matches_query(&answer, id, question) {
            Ok(answer)
        } else {
            Err(io::Error::from(io::ErrorKind::InvalidData))
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| timed_out())?
}

/// A message with its RFC 1035 §4.2.2 length prefix, in one buffer so it
/// leaves in one write.
pub(crate) fn frame(message: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(message.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

/// Reads one length-prefixed message.
pub(crate) async fn read_frame(
    conn: &mut (impl tokio::io::AsyncRead + Unpin),
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut message).await?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_as_written() {
        let u: Upstream = "10.0.0.1".parse().unwrap();
        assert_eq!(u.addr, "10.0.0.1:53".parse().unwrap());
        assert_eq!((u.text.as_str(), u.tls), ("10.0.0.1", None));
        let u: Upstream = "[fd00::1]:5353".parse().unwrap();
        assert_eq!(u.addr, "[fd00::1]:5353".parse().unwrap());
        let u: Upstream = "fd00::1".parse().unwrap();
        assert_eq!(u.addr.port(), 53);

        let u: Upstream = "tls://1.1.1.1".parse().unwrap();
        assert_eq!(u.addr, "1.1.1.1:853".parse().unwrap());
        assert_eq!(
            u.tls,
            Some(ServerName::IpAddress(
                "1.1.1.1".parse::<IpAddr>().unwrap().into()
            ))
        );
        assert_eq!(u.to_string(), "tls://1.1.1.1");
        let u: Upstream = "tls://[2606:4700::1111]:8853#one.one.one.one"
            .parse()
            .unwrap();
        assert_eq!(u.addr, "[2606:4700::1111]:8853".parse().unwrap());
        assert_eq!(
            u.tls,
            Some(ServerName::try_from("one.one.one.one").unwrap())
        );

        for bad in [
            "dns.google",
            "10.0.0.1#name",
            "tls://dns.google",
            "tls://1.1.1.1#bad name",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }

    #[test]
    fn two_failures_in_a_row_take_an_upstream_down_and_one_answer_up() {
        let u = UpstreamState::new("10.0.0.1".parse().unwrap(), None);
        assert_eq!(u.record(false), Transition::None);
        assert_eq!(u.record(true), Transition::None, "the streak is broken");
        assert_eq!(u.record(false), Transition::None);
        assert_eq!(u.record(false), Transition::Down);
        assert!(!u.is_healthy());
        assert_eq!(u.record(false), Transition::None, "said once");
        assert_eq!(u.record(true), Transition::Up);
        assert!(u.is_healthy());
    }
}
