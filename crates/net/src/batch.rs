//! Batched UDP I/O: up to [`BATCH`] datagrams received with one
//! `recvmmsg(2)` and their replies sent with one `sendmmsg(2)`, so the
//! per-query system-call cost is shared by the batch. Every buffer is
//! allocated once per worker; a batch allocates nothing.
//!
//! The kernel structures hold raw pointers into this struct's own buffers;
//! they are rebuilt before each call, so nothing dangles between calls.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// The largest query read; a longer datagram is dropped (queries are a name,
/// a type and an OPT record: a few hundred octets).
const MAX_QUERY: usize = 4096;
/// Room for any reply (UDP replies stay within the client's limit, but the
/// writer is given a full buffer so it never allocates).
const MAX_REPLY: usize = 65535;

/// One worker's buffers.
pub struct Batch {
    inbufs: Box<[[u8; MAX_QUERY]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Reply buffers, one per slot.
    outs: Box<[Vec<u8>]>,
    /// Per queued reply: the datagram it answers, its length, and a tag
    /// the caller keeps with it (the metrics' zone slot).
    queued: [(usize, usize, usize); BATCH],
    nqueued: usize,
    out_iovs: Box<[libc::iovec]>,
    out_hdrs: Box<[libc::mmsghdr]>,
}

fn zeroed_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct of integers and pointers, for
    // which all-zero bytes are a valid value (null pointers, zero lengths).
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain integers; all-zero is valid.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

/// The address the kernel wrote into `ss`.
fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            #[allow(unsafe_code)]
            let sin = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            #[allow(unsafe_code)]
            let sin6 = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// Buffers for [`BATCH`] datagrams and their replies (about 2 MiB).
    pub fn new() -> Self {
        Self {
            inbufs: vec![[0u8; MAX_QUERY]; BATCH].into_boxed_slice(),
            addrs: (0..BATCH).map(|_| zeroed_storage()).collect(),
            iovs: (0..BATCH).map(|_| zeroed_iovec()).collect(),
            hdrs: (0..BATCH).map(|_| zeroed_mmsghdr()).collect(),
            outs: (0..BATCH).map(|_| Vec::with_capacity(MAX_REPLY)).collect(),
            queued: [(0, 0, 0); BATCH],
            nqueued: 0,
            out_iovs: (0..BATCH).map(|_| zeroed_iovec()).collect(),
            out_hdrs: (0..BATCH).map(|_| zeroed_mmsghdr()).collect(),
        }
    }

    /// Waits for at least one datagram (up to the socket's read timeout)
    /// and takes as many as are queued, up to [`BATCH`]. Returns how many.
    pub(crate) fn receive(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.nqueued = 0;
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.inbufs[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let hdr = &mut self.hdrs[i];
            hdr.msg_len = 0;
            hdr.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = &raw mut self.iovs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
        }
        let fd: RawFd = sock.as_raw_fd();
        // SAFETY: every header points at this struct's own iovec, buffer
        // and address storage, sized as declared, all alive and not
        // otherwise borrowed during the call.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// The length and sender of datagram `i` of the last [`Self::receive`];
    /// `None` for one that was cut (longer than we read) or has no usable
    /// address.
    fn received(&self, i: usize) -> Option<(usize, SocketAddr)> {
        Some((self.length(i)?, socket_addr(self.addrs.get(i)?)?))
    }

    /// The length of datagram `i` of the last [`Self::receive`]; `None` for
    /// one that was cut (longer than we read).
    fn length(&self, i: usize) -> Option<usize> {
        let hdr = self.hdrs.get(i)?;
        if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        Some((hdr.msg_len as usize).min(MAX_QUERY))
    }

    /// Datagram `i` of the last [`Self::receive`] and its sender (see
    /// [`Self::received`]).
    pub(crate) fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (len, peer) = self.received(i)?;
        Some((&self.inbufs[i][..len], peer))
    }

    /// The octets of datagram `i` of the last [`Self::receive`] (see
    /// [`Self::length`]), without reading its sender's address.
    pub(crate) fn query(&self, i: usize) -> Option<&[u8]> {
        Some(&self.inbufs.get(i)?[..self.length(i)?])
    }

    /// Splits out datagram `i` and the next free reply buffer, so one can be
    /// answered into the other. `None` when the batch's replies are full.
    pub(crate) fn slot(&mut self, i: usize) -> Option<(&[u8], SocketAddr, &mut Vec<u8>)> {
        let (len, peer) = self.received(i)?;
        let out = self.outs.get_mut(self.nqueued)?;
        Some((&self.inbufs[i][..len], peer, out))
    }

    /// Queues the reply just written into the buffer [`Self::slot`] gave,
    /// `len` octets, for datagram `i`'s sender, with `tag`.
    pub(crate) fn queue(&mut self, i: usize, len: usize, tag: usize) {
        if self.nqueued < BATCH {
            self.queued[self.nqueued] = (i, len, tag);
            self.nqueued += 1;
        }
    }

    /// The queued (or, after [`Self::send`], sent) replies of this batch:
    /// (query, its sender, tag, reply bytes).
    pub(crate) fn replies(&self) -> impl Iterator<Item = (&[u8], SocketAddr, usize, &[u8])> {
        self.queued[..self.nqueued]
            .iter()
            .zip(self.outs.iter())
            .filter_map(|(&(i, len, tag), out)| {
                let (query, peer) = self.datagram(i)?;
                Some((query, peer, tag, out.get(..len).unwrap_or(&[])))
            })
    }

    /// Sends every queued reply to its datagram's sender. A reply the kernel
    /// refuses (an unreachable client, a full buffer) is skipped. The
    /// replies stay listed by [`Self::replies`] until the next receive.
    pub(crate) fn send(&mut self, sock: &impl AsRawFd) {
        let n = self.nqueued;
        for k in 0..n {
            let (i, len, _) = self.queued[k];
            let out = &self.outs[k];
            self.out_iovs[k] = libc::iovec {
                iov_base: out.as_ptr().cast_mut().cast(),
                iov_len: len.min(out.len()),
            };
            let hdr = &mut self.out_hdrs[k];
            hdr.msg_len = 0;
            hdr.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = self.hdrs[i].msg_hdr.msg_namelen;
            hdr.msg_hdr.msg_iov = &raw mut self.out_iovs[k];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
        }
        let fd = sock.as_raw_fd();
        let mut sent = 0;
        while sent < n {
            // SAFETY: headers `sent..n` point at this struct's own iovecs,
            // reply buffers and address storage, alive for the call; the
            // kernel only reads them (and writes msg_len).
            #[allow(unsafe_code)]
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.out_hdrs[sent..n].as_mut_ptr(),
                    (n - sent) as libc::c_uint,
                    0,
                )
            };
            match usize::try_from(r) {
                Ok(0) => break,
                Ok(k) => sent += k,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    tracing::debug!(error = %e, "udp send");
                    // The first unsent reply failed: skip it, send the rest.
                    sent += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn a_burst_is_received_and_answered_in_one_batch_each_way() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let v6 = UdpSocket::bind("[::1]:0").ok();
        for i in 0..5u8 {
            client
                .send_to(&[i; 3], server.local_addr().unwrap())
                .unwrap();
        }
        client
            .send_to(&[9u8; MAX_QUERY + 1], server.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut b = Batch::new();
        let n = b.receive(&server).unwrap();
        assert_eq!(n, 6);
        assert!(
            b.datagram(5).is_none(),
            "an oversized datagram is cut and dropped"
        );
        for i in 0..5 {
            let (packet, peer, out) = b.slot(i).unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            let reply = [packet[0], 0xee];
            out.clear();
            out.extend_from_slice(&reply);
            b.queue(i, 2, 7);
        }
        assert!(b.replies().all(|(q, _, tag, r)| tag == 7 && r[0] == q[0]));
        assert_eq!(b.replies().count(), 5);
        b.send(&server);
        let mut buf = [0u8; 16];
        for i in 0..5u8 {
            let (len, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, server.local_addr().unwrap());
            assert_eq!(&buf[..len], &[i, 0xee]);
        }
        // IPv6 senders come back with their address intact.
        if let Some(v6) = v6 {
            let c6 = UdpSocket::bind("[::1]:0").unwrap();
            c6.send_to(b"hi", v6.local_addr().unwrap()).unwrap();
            v6.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            assert_eq!(b.receive(&v6).unwrap(), 1);
            assert_eq!(b.datagram(0).unwrap().1, c6.local_addr().unwrap());
        }
    }
}
