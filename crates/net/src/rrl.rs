//! Response-rate limiting for UDP (`--rrl N`, off by default): at most N
//! responses per second to one client network (a /24 for IPv4, a /56 for
//! IPv6), so svcnet cannot be used to reflect traffic at a spoofed address.
//! Beyond the rate, one response in two is replaced by an empty truncated
//! one (the "slip": a real client retries over TCP, which cannot be
//! spoofed) and the other is dropped.
//!
//! Off by default because a whole node's pods can share one source address
//! (SNAT, NodeLocal DNSCache), and such a node must not be throttled as one
//! client.
//!
//! The table is a fixed array of atomic slots shared by every worker (a
//! client's queries land on different `SO_REUSEPORT` sockets), indexed by a
//! hash of the network: no allocation, no lock. Two networks that share a
//! slot only reset each other's count, which errs toward answering.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Slots in the table (a power of two).
const SLOTS: usize = 1 << 16;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: send it.
    Send,
    /// Over the rate: send an empty reply with TC set instead.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// The shared limiter.
pub struct RateLimiter {
    per_second: u32,
    start: Instant,
    /// tag (24 bits) | second (24 bits) | count (16 bits).
    slots: Box<[AtomicU64]>,
    slipped: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

/// The client network a response is counted against, hashed.
fn network_hash(ip: IpAddr) -> u64 {
    let (bytes, len): ([u8; 16], usize) = match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..3].copy_from_slice(&v4.octets()[..3]);
            (b, 3)
        }
        IpAddr::V6(v6) => {
            let mut b = v6.octets();
            b[7] = 0;
            (b, 7)
        }
    };
    // FNV-1a, with the family mixed in so 10.0.0.0/24 and a v6 prefix
    // starting 0a00:00 differ.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ len as u64;
    for b in &bytes[..len] {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl RateLimiter {
    /// At most `per_second` responses per second to one client network
    /// (1 to 65534; the count saturates at 65535).
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second.clamp(1, 0xfffe),
            start: Instant::now(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            slipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The limit, responses per second per client network.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Responses slipped (sent truncated) and dropped so far.
    pub fn limited(&self) -> (u64, u64) {
        (
            self.slipped.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    /// Counts one response to `client` and says what to do with it.
    pub fn check(&self, client: IpAddr) -> Verdict {
        let second = self.start.elapsed().as_secs() & 0xff_ffff;
        self.check_at(client, second)
    }

    fn check_at(&self, client: IpAddr, second: u64) -> Verdict {
        let h = network_hash(client);
        let slot = &self.slots[(h as usize) & (SLOTS - 1)];
        let tag = (h >> 40) & 0xff_ffff;
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let same = current >> 40 == tag && (current >> 16) & 0xff_ffff == second;
            // Saturates at 0xffff, the slot's width (odd: beyond it, every
            // response is dropped).
            let count = if same {
                ((current & 0xffff) + 1).min(0xffff)
            } else {
                1
            };
            let next = tag << 40 | second << 16 | count;
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    return if count <= u64::from(self.per_second) {
                        Verdict::Send
                    } else if count % 2 == 0 {
                        self.slipped.fetch_add(1, Ordering::Relaxed);
                        Verdict::Slip
                    } else {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        Verdict::Drop
                    };
                }
                Err(seen) => current = seen,
            }
        }
    }
}

/// Turns a reply into its slip form in place: the header and question only,
/// with TC set. Returns the new length.
pub fn slip(reply: &mut [u8], len: usize) -> usize {
    if len < 12 {
        return len;
    }
    // Keep the question (QDCOUNT is 1 in every reply we send): skip its
    // name and the type and class.
    let mut pos = 12;
    if reply[4..6] == [0, 1] {
        while let Some(&l) = reply.get(pos) {
            if l == 0 || l & 0xc0 != 0 {
                pos += if l == 0 { 1 } else { 2 };
                break;
            }
            pos += 1 + usize::from(l);
        }
        pos = (pos + 4).min(len);
    }
    reply[2] |= 0x02;
    reply[6..12].fill(0);
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_per_network_per_second_then_slip_and_drop() {
        let rrl = RateLimiter::new(3);
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let same_net: IpAddr = "192.0.2.77".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..6)
            .map(|i| rrl.check_at(if i % 2 == 0 { a } else { same_net }, 5))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Send,
                Verdict::Send,
                Verdict::Send,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip
            ]
        );
        assert_eq!(rrl.check_at(other, 5), Verdict::Send);
        assert_eq!(rrl.limited(), (2, 1));
        // The next second starts again.
        assert_eq!(rrl.check_at(a, 6), Verdict::Send);
        let v6: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let v6_same: IpAddr = "2001:db8:0:1:ffff::2".parse().unwrap();
        let v6_other: IpAddr = "2001:db8:0:200::1".parse().unwrap();
        let one = RateLimiter::new(1);
        assert_eq!(one.check_at(v6, 1), Verdict::Send);
        assert_ne!(one.check_at(v6_same, 1), Verdict::Send);
        assert_eq!(one.check_at(v6_other, 1), Verdict::Send);
    }

    #[test]
    fn slip_keeps_header_and_question_with_tc() {
        let mut reply = vec![0x12, 0x34, 0x85, 0x00, 0, 1, 0, 2, 0, 1, 0, 1];
        reply.extend([3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
        reply.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        let n = reply.len();
        let len = slip(&mut reply, n);
        assert_eq!(len, 21);
        assert_eq!(reply[2] & 0x02, 0x02);
        assert_eq!(reply[6..12], [0; 6]);
        assert_eq!(slip(&mut [0u8; 4], 4), 4);
    }
}
