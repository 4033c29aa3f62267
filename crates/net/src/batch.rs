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
use std::time::{Duration, Instant};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// The largest query read; a longer datagram is dropped (queries are a name,
/// a type and an OPT record: a few hundred octets).
const MAX_QUERY: usize = 4096;
/// Room for any reply (UDP replies stay within the client's limit, but the
/// writer is given a full buffer so it never allocates).
const MAX_REPLY: usize = 65535;
/// The longest reply sent in a segmented send (see [`Batch::send`]): what
/// fits a 1280-octet path, IPv6's least MTU, under its 48 octets of
/// headers (IPv4 then needs a path of 1260). Longer ones go alone. A path
/// smaller still refuses the group, whose replies then go one by one.
const GSO_MAX_SEGMENT: usize = 1232;
/// The shortest reply in a segmented send: a DNS header. (A group holds
/// no empty datagram, which the kernel could not tell apart.)
const GSO_MIN_SEGMENT: usize = 12;
/// Segmented sends refused in a row (each group's replies then sent one by
/// one, successfully) after which a worker stops segmenting for
/// [`GSO_RESUME`]: the socket or its routes cannot segment.
const GSO_REFUSALS: u32 = 8;
/// How long a worker sends replies one by one after [`GSO_REFUSALS`].
const GSO_RESUME: Duration = Duration::from_secs(10);

// A group is at most a batch: within the kernel's 64 segments and, with
// UDP and IPv6 headers, one IP datagram.
const _: () = assert!(BATCH <= 64 && BATCH * GSO_MAX_SEGMENT + 48 <= 65_535);

/// Room for one `UDP_SEGMENT` control message (`CMSG_SPACE` of a `u16`),
/// aligned as `cmsghdr` must be.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct SegmentCmsg([u8; 32]);

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
    /// The queued replies in the order they are sent: grouped by client,
    /// longest first within a client.
    order: [u8; BATCH],
    /// One `UDP_SEGMENT` control message per outgoing header.
    cmsgs: Box<[SegmentCmsg]>,
    /// Whether replies to one client go out in one segmented send (asked
    /// for, and the kernel knows how).
    gso: bool,
    /// Segmented sends refused in a row.
    refusals: u32,
    /// Set after [`GSO_REFUSALS`]: segmenting stops until then.
    resume: Option<Instant>,
}

/// What [`Batch::send`] did beyond sending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Replies sent in segmented sends, with others to the same client.
    pub segmented: u64,
    /// Segmented sends the kernel refused (their replies sent one by one).
    pub refused: u64,
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
            order: [0; BATCH],
            cmsgs: vec![SegmentCmsg([0; 32]); BATCH].into_boxed_slice(),
            gso: false,
            refusals: 0,
            resume: None,
        }
    }

    /// Sends replies to one client together in one segmented datagram
    /// (`UDP_SEGMENT`, see [`Self::send`]) when `on` and `sock`'s kernel
    /// knows the option. Returns whether it will.
    pub fn segment_replies(&mut self, sock: &impl AsRawFd, on: bool) -> bool {
        self.gso = on && kernel_segments(sock.as_raw_fd());
        self.refusals = 0;
        self.resume = None;
        self.gso
    }

    /// Whether replies to one client go out together now (as
    /// [`Self::segmenting`], but a stop whose time is up still counts until
    /// the next batch of several replies).
    pub fn segments(&self) -> bool {
        self.gso && self.resume.is_none()
    }

    /// Whether this batch's replies to one client go out together: asked
    /// for, known to the kernel, and not stopped by refusals.
    pub fn segmenting(&mut self) -> bool {
        if let Some(at) = self.resume {
            if Instant::now() < at {
                return false;
            }
            // `refusals` was zeroed when the stop began, and nothing is
            // refused while no groups are sent.
            self.resume = None;
        }
        self.gso
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
        if let Some(out) = self.outs.get(self.nqueued) {
            self.queued[self.nqueued] = (i, len.min(out.len()), tag);
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
    ///
    /// With [`Self::segment_replies`] on, the replies of the batch to one
    /// client (a resolver asking A and AAAA at once, a node cache with many
    /// queries in flight) go out as one segmented send: the kernel routes
    /// and builds headers once and cuts the datagrams apart at the device,
    /// which is most of a small datagram's cost. Segments must be of one
    /// length but the last, so a client's replies are sent longest first,
    /// and a group ends after the first shorter one. The client receives
    /// the same datagrams as from separate sends.
    ///
    /// A group the kernel refuses goes out one reply at a time. When it
    /// refused it for what it is (no segmentation on that path: a small
    /// MTU, no checksum offload, a tunnel) and the replies then went out,
    /// it counts as a refusal; [`GSO_REFUSALS`] in a row stop segmenting in
    /// this worker for [`GSO_RESUME`].
    pub(crate) fn send(&mut self, sock: &impl AsRawFd) -> Sent {
        let n = self.nqueued;
        let segment = n > 1 && self.segmenting();
        let messages = self.build_messages(n, segment);
        let mut done = Sent::default();
        let fd = sock.as_raw_fd();
        let mut sent = 0;
        while sent < messages {
            // SAFETY: headers `sent..messages` point at this struct's own
            // iovecs, reply buffers, control messages and address storage,
            // alive for the call; the kernel only reads them (and writes
            // msg_len).
            #[allow(unsafe_code)]
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.out_hdrs[sent..messages].as_mut_ptr(),
                    (messages - sent) as libc::c_uint,
                    0,
                )
            };
            match usize::try_from(r) {
                Ok(0) => break,
                Ok(k) => {
                    let grouped: usize = self.out_hdrs[sent..sent + k]
                        .iter()
                        .map(|h| iov_count(&h.msg_hdr))
                        .filter(|&v| v > 1)
                        .sum();
                    if grouped > 0 {
                        done.segmented += grouped as u64;
                        self.refusals = 0;
                    }
                    sent += k;
                }
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    if self.out_hdrs[sent].msg_hdr.msg_iovlen > 1 {
                        let delivered = self.send_singly(fd, sent);
                        if delivered && cannot_segment(&e) {
                            done.refused += 1;
                            self.refused(&e);
                        } else {
                            tracing::debug!(error = %e, "udp segmented send");
                        }
                    } else {
                        tracing::debug!(error = %e, "udp send");
                    }
                    // The first unsent message failed: skip it, send the rest.
                    sent += 1;
                }
            }
        }
        done
    }

    /// Counts a refused segmented send whose replies went out one by one.
    fn refused(&mut self, e: &io::Error) {
        self.refusals += 1;
        if self.refusals >= GSO_REFUSALS {
            self.refusals = 0;
            self.resume = Some(Instant::now() + GSO_RESUME);
            tracing::warn!(
                error = %e,
                "udp: {GSO_REFUSALS} segmented sends refused in a row; replies go one by one for {}s",
                GSO_RESUME.as_secs()
            );
        }
    }

    /// Fills the outgoing headers for the `n` queued replies and returns
    /// how many messages they make: one per reply, or one per group of
    /// replies to one client when segmenting (see [`Self::send`]).
    fn build_messages(&mut self, n: usize, segment: bool) -> usize {
        for (k, o) in self.order[..n].iter_mut().enumerate() {
            *o = k as u8;
        }
        if segment {
            self.sort_by_client(n);
        }
        let mut messages = 0;
        let mut p = 0;
        while p < n {
            let first = usize::from(self.order[p]);
            let (i, seg, _) = self.queued[first];
            let mut count = 0;
            while p < n {
                let k = usize::from(self.order[p]);
                let (j, len, _) = self.queued[k];
                if count > 0
                    && (!(GSO_MIN_SEGMENT..=GSO_MAX_SEGMENT).contains(&seg)
                        || !(GSO_MIN_SEGMENT..=seg).contains(&len)
                        || !self.same_client(i, j))
                {
                    break;
                }
                let out = &self.outs[k];
                self.out_iovs[p] = libc::iovec {
                    iov_base: out.as_ptr().cast_mut().cast(),
                    iov_len: len,
                };
                count += 1;
                p += 1;
                if !segment || len < seg {
                    // A shorter segment can only be the last.
                    break;
                }
            }
            let hdr = &mut self.out_hdrs[messages];
            hdr.msg_len = 0;
            hdr.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = self.hdrs[i].msg_hdr.msg_namelen;
            hdr.msg_hdr.msg_iov = &raw mut self.out_iovs[p - count];
            hdr.msg_hdr.msg_iovlen = count as _;
            hdr.msg_hdr.msg_flags = 0;
            if count > 1 {
                let cmsg = &mut self.cmsgs[messages];
                hdr.msg_hdr.msg_control = cmsg.0.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE only computes a size.
                #[allow(unsafe_code)]
                let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as libc::c_uint) };
                hdr.msg_hdr.msg_controllen = space as _;
                // SAFETY: the header's control buffer is this struct's own,
                // 8-aligned and 32 octets, more than CMSG_SPACE(2) (24), so
                // the first cmsghdr and its two data octets lie inside it.
                #[allow(unsafe_code)]
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&raw const hdr.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as libc::c_uint) as _;
                    libc::CMSG_DATA(c).cast::<u16>().write_unaligned(seg as u16);
                }
            } else {
                hdr.msg_hdr.msg_control = std::ptr::null_mut();
                hdr.msg_hdr.msg_controllen = 0;
            }
            messages += 1;
        }
        messages
    }

    /// Orders the first `n` queued replies by client, longest first within
    /// a client (an insertion sort: a batch is at most [`BATCH`]).
    fn sort_by_client(&mut self, n: usize) {
        for a in 1..n {
            let mut b = a;
            while b > 0 && self.sends_before(self.order[b], self.order[b - 1]) {
                self.order.swap(b, b - 1);
                b -= 1;
            }
        }
    }

    /// Whether queued reply `x` goes before queued reply `y`.
    fn sends_before(&self, x: u8, y: u8) -> bool {
        let (i, lx, _) = self.queued[usize::from(x)];
        let (j, ly, _) = self.queued[usize::from(y)];
        match self.client_bytes(i).cmp(self.client_bytes(j)) {
            std::cmp::Ordering::Equal => lx > ly,
            o => o == std::cmp::Ordering::Less,
        }
    }

    fn same_client(&self, i: usize, j: usize) -> bool {
        i == j || self.client_bytes(i) == self.client_bytes(j)
    }

    /// The sender's address of datagram `i` as the kernel wrote it.
    fn client_bytes(&self, i: usize) -> &[u8] {
        let len =
            (self.hdrs[i].msg_hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: sockaddr_storage is plain integers, `len` is within it,
        // and the slice borrows it for no longer than `self`.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(&self.addrs[i]).cast::<u8>(), len)
        }
    }

    /// Sends the replies of outgoing message `m` one datagram each. Returns
    /// whether all went out.
    fn send_singly(&mut self, fd: RawFd, m: usize) -> bool {
        let hdr = self.out_hdrs[m].msg_hdr;
        let mut all = true;
        for v in 0..iov_count(&hdr) {
            let mut one = hdr;
            // SAFETY: `v` is within the message's iovecs, which lie in
            // this struct's `out_iovs`.
            #[allow(unsafe_code)]
            {
                one.msg_iov = unsafe { hdr.msg_iov.add(v) };
            }
            one.msg_iovlen = 1;
            one.msg_control = std::ptr::null_mut();
            one.msg_controllen = 0;
            // SAFETY: `one` points at this struct's own address storage and
            // one of its reply iovecs, alive for the call; read only.
            #[allow(unsafe_code)]
            let r = unsafe { libc::sendmsg(fd, &raw const one, 0) };
            if r < 0 {
                all = false;
                tracing::debug!(error = %io::Error::last_os_error(), "udp send");
            }
        }
        all
    }
}

/// A message's iovec count (`size_t` with glibc, `int` with musl).
#[allow(clippy::unnecessary_cast)]
fn iov_count(hdr: &libc::msghdr) -> usize {
    hdr.msg_iovlen as usize
}

/// Whether this host's kernel can send segmented UDP (`UDP_SEGMENT`), asked
/// of a fresh loopback socket.
pub fn segmenting_available() -> bool {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .is_ok_and(|s| kernel_segments(s.as_raw_fd()))
}

/// Whether `e`, from a segmented send, says the path cannot take them at all
/// (rather than, as a full buffer would, that this one send failed).
fn cannot_segment(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EIO | libc::EMSGSIZE | libc::EOPNOTSUPP)
    )
}

/// Whether the kernel behind `fd` knows `UDP_SEGMENT` (Linux 4.18 on).
/// Without it, a control message of that type would be ignored and the
/// replies sent as one datagram, so it is asked before any use.
fn kernel_segments(fd: RawFd) -> bool {
    let mut val: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` octets into `val`.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            std::ptr::from_mut(&mut val).cast(),
            &raw mut len,
        )
    };
    r == 0
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

    /// Sends, from `server`, a reply of `lengths[k]` octets (each octet `k`)
    /// to query `k`; queries 0..split come from one client, the rest from
    /// another. Returns what `send` did, whether `b` still segments, and
    /// each client's datagrams as (octet, length), sorted.
    fn burst(server: &UdpSocket, b: &mut Batch, lengths: &[usize], split: usize) -> Burst {
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let here = (server.local_addr().unwrap().ip(), 0);
        let clients = [
            UdpSocket::bind(here).unwrap(),
            UdpSocket::bind(here).unwrap(),
        ];
        for (k, _) in lengths.iter().enumerate() {
            let c = &clients[client_of(k, split)];
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.send_to(&[k as u8; 12], server.local_addr().unwrap())
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.receive(server).unwrap(), lengths.len());
        for (k, &len) in lengths.iter().enumerate() {
            let (packet, _, out) = b.slot(k).unwrap();
            let fill = packet[0];
            out.clear();
            out.resize(len, fill);
            b.queue(k, len, 0);
        }
        let sent = b.send(server);
        let mut got = [Vec::new(), Vec::new()];
        let mut buf = vec![0u8; 65536];
        for (k, _) in lengths.iter().enumerate() {
            let c = client_of(k, split);
            let (len, _) = clients[c].recv_from(&mut buf).unwrap();
            assert!(
                buf[..len].iter().all(|&o| o == buf[0]),
                "a datagram holds more than one reply"
            );
            got[c].push((buf[0], len));
        }
        for g in &mut got {
            g.sort_unstable();
        }
        Burst {
            sent,
            still: b.segments(),
            got,
        }
    }

    /// Which of the two clients sends query `k`: 0 before `split`, 1 from
    /// it; split 0: they take turns.
    fn client_of(k: usize, split: usize) -> usize {
        if split == 0 {
            k % 2
        } else {
            usize::from(k >= split)
        }
    }

    struct Burst {
        sent: Sent,
        still: bool,
        got: [Vec<(u8, usize)>; 2],
    }

    /// What each client should receive: replies `k` of `lengths[k]` octets.
    fn expected(lengths: &[usize], split: usize) -> [Vec<(u8, usize)>; 2] {
        let mut got = [Vec::new(), Vec::new()];
        for (k, &len) in lengths.iter().enumerate() {
            got[client_of(k, split)].push((k as u8, len));
        }
        for g in &mut got {
            g.sort_unstable();
        }
        got
    }

    /// Sends `lengths` (0..split from one client) from a segmenting batch
    /// (split 0: alternately) and checks what arrived; returns how many
    /// replies went in groups.
    /// `None` where the kernel cannot segment.
    fn segmented(server: &UdpSocket, lengths: &[usize], split: usize) -> Option<u64> {
        let mut b = Batch::new();
        if !b.segment_replies(server, true) {
            return None;
        }
        let r = burst(server, &mut b, lengths, split);
        assert_eq!(r.got, expected(lengths, split));
        assert_eq!(r.sent.refused, 0);
        assert!(r.still);
        Some(r.sent.segmented)
    }

    const LENGTHS: [usize; 7] = [30, 50, 50, 20, 1300, 50, 40];

    /// Six replies to one client: the three of 50 octets and the 30 go as
    /// one segmented send (a shorter one ends a group), the 20 alone (it is
    /// the shortest), and the 1,300 alone (longer than a segment may be);
    /// the other client's one reply alone. Each arrives as its datagram,
    /// over IPv4 and (where the host has it) IPv6, and the same with
    /// segmenting off.
    #[test]
    fn replies_to_one_client_go_in_segmented_sends_and_arrive_apart() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let Some(n) = segmented(&server, &LENGTHS, 6) else {
            return;
        };
        assert_eq!(n, 4);
        let mut off = Batch::new();
        assert!(!off.segment_replies(&server, false));
        let r = burst(&server, &mut off, &LENGTHS, 6);
        assert_eq!(r.got, expected(&LENGTHS, 6));
        assert_eq!(r.sent, Sent::default());
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            assert_eq!(segmented(&v6, &LENGTHS, 6), Some(4));
        }
    }

    /// A whole batch to one client of one length is one send; the longest
    /// segment is 1,232 octets; a reply shorter than a DNS header never
    /// goes in a group; two clients' replies interleaved are grouped apart.
    #[test]
    fn segmented_groups_at_their_bounds() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let Some(n) = segmented(&server, &[100; BATCH], BATCH) else {
            return;
        };
        assert_eq!(n, BATCH as u64);
        assert_eq!(segmented(&server, &[1233, 1232, 1232], 3), Some(2));
        assert_eq!(segmented(&server, &[1233, 1233], 2), Some(0));
        assert_eq!(segmented(&server, &[12, 11, 12], 3), Some(2));
        assert_eq!(segmented(&server, &[11, 11], 2), Some(0));
        // The two clients take turns: client one's queries are 0, 2, 4, …
        // with replies of 60, 62, 60, 62, … octets; client two's 1, 3, 5, …
        // with 61, 63, 61, 63, …. Each client's four longer and four shorter
        // go as a group of five (the first shorter ends it) and one of three.
        let lengths: Vec<usize> = (0..16).map(|k| 60 + k % 4).collect();
        assert_eq!(segmented(&server, &lengths, 0), Some(16));
    }

    /// A socket that refuses segmented sends (here: one without UDP
    /// checksums, which segmentation needs) still gets every reply out, one
    /// by one; after eight refusals in a row the worker stops segmenting.
    #[test]
    fn a_refused_segmented_send_falls_back_to_single_replies() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int.
        #[allow(unsafe_code)]
        let r = unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                std::ptr::from_ref(&one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        let mut b = Batch::new();
        if !b.segment_replies(&server, true) {
            return;
        }
        for round in 1..=GSO_REFUSALS {
            let r = burst(&server, &mut b, &LENGTHS, 6);
            assert_eq!(r.got, expected(&LENGTHS, 6));
            assert_eq!(r.sent.segmented, 0);
            assert_eq!(r.sent.refused, 1, "round {round}");
            assert_eq!(r.still, round < GSO_REFUSALS, "round {round}");
        }
        // Stopped: replies go one by one without asking.
        let r = burst(&server, &mut b, &LENGTHS, 6);
        assert_eq!(r.got, expected(&LENGTHS, 6));
        assert_eq!(r.sent, Sent::default());
        assert!(!r.still);
    }
}
