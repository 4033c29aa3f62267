//! Forwarding (SPEC §2 "names outside our zones"): a raw-bytes relay of the
//! client's query to upstream resolvers, so EDNS, DO and CD bits pass
//! unchanged.
//!
//! Each relayed query gets a fresh random ID from the operating system's
//! CSPRNG and a fresh socket (a kernel-chosen random source port, and a
//! `connect`ed socket, so only the upstream's address can answer). An answer
//! counts only when its ID, QR bit and question match. A truncated UDP answer
//! is asked again over TCP. Upstreams are tried in order; the first that
//! answers wins (failover). A bound on queries in flight turns overload into
//! an immediate SERVFAIL instead of an unbounded queue.
//!
//! Answers are cached ([`cache`]): TTL-decremented, negative answers for the
//! SOA minimum, served stale when every upstream fails.
//!
//! Not here yet (issue "forwarding, caching…"): coalescing, health checks,
//! loop detection, DNS over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod cache;

use cache::Cache;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The query is not one we relay (no readable question).
    #[error("malformed query")]
    Malformed,
    /// No upstream answered in time.
    #[error("no upstream answered")]
    NoAnswer,
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
}

/// The upstreams and limits.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    cache: Option<Cache>,
}

impl Forwarder {
    /// Relays to `upstreams` in order, waiting `timeout` for each, with at
    /// most `max_in_flight` queries outstanding and a cache of `cache_bytes`
    /// (0: no cache).
    pub fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
        max_in_flight: usize,
        cache_bytes: usize,
    ) -> Self {
        Self {
            upstreams,
            timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            cache: (cache_bytes > 0).then(|| Cache::new(cache_bytes)),
        }
    }

    /// The cache, when there is one.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// A slot for one more query in flight, or `None` when full (answer
    /// SERVFAIL at once).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.in_flight).try_acquire_owned().ok()
    }

    /// Relays `query` and returns the upstream's answer with the client's ID
    /// restored.
    pub async fn resolve(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let q = svcnet_wire::parse_query(query).map_err(|_| ForwardError::Malformed)?;
        if let Some((answer, _)) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&q, Instant::now(), false))
        {
            return Ok(answer);
        }
        let mut id = [0u8; 2];
        getrandom::fill(&mut id).map_err(ForwardError::Random)?;
        let mut relayed = query.to_vec();
        relayed[..2].copy_from_slice(&id);
        for upstream in &self.upstreams {
            match self.exchange(*upstream, &relayed, id, q.question).await {
                Ok(mut answer) => {
                    answer[..2].copy_from_slice(&q.id.to_be_bytes());
                    if let Some(c) = &self.cache {
                        c.insert(&q, &answer, Instant::now());
                    }
                    return Ok(answer);
                }
                Err(e) => tracing::debug!(%upstream, "upstream failed: {e}"),
            }
        }
        // RFC 8767: a stale answer beats none while upstreams fail.
        match self
            .cache
            .as_ref()
            .and_then(|c| c.get(&q, Instant::now(), true))
        {
            Some((answer, _)) => Ok(answer),
            None => Err(ForwardError::NoAnswer),
        }
    }

    async fn exchange(
        &self,
        upstream: SocketAddr,
        query: &[u8],
        id: [u8; 2],
        question: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let bind: SocketAddr = if upstream.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(upstream).await?;
        sock.send(query).await?;
        let mut buf = vec![0u8; 65535];
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            let answer = &buf[..n];
            if !matches_query(answer, id, question) {
                // Not ours (spoofed or stale): keep waiting for the real one.
                continue;
            }
            if answer[2] & 0x02 != 0 {
                return self.exchange_tcp(upstream, query, id, question).await;
            }
            return Ok(answer.to_vec());
        }
    }

    async fn exchange_tcp(
        &self,
        upstream: SocketAddr,
        query: &[u8],
        id: [u8; 2],
        question: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let work = async {
            let mut conn = TcpStream::connect(upstream).await?;
            let len = u16::try_from(query.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
            conn.write_all(&len.to_be_bytes()).await?;
            conn.write_all(query).await?;
            let mut len = [0u8; 2];
            conn.read_exact(&mut len).await?;
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
            conn.read_exact(&mut answer).await?;
            if matches_query(&answer, id, question) {
                Ok(answer)
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::InvalidData))
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
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
