//! An allocation-free response writer (RFC 1035 §4.1) with name compression
//! (§4.1.4) and truncation at RRset boundaries (RFC 2181 §9, SPEC §2).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{Edns, Query, class, rtype};

/// The section a record goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// Answer.
    Answer = 0,
    /// Authority.
    Authority = 1,
    /// Additional.
    Additional = 2,
}

/// Record data. Names are uncompressed wire names; the writer compresses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rdata<'a> {
    /// A.
    A(Ipv4Addr),
    /// AAAA.
    Aaaa(Ipv6Addr),
    /// CNAME, PTR or NS: one name.
    Name(&'a [u8]),
    /// SRV (RFC 2782; the target is never compressed on the wire by RFC, but
    /// every client decompresses it; we keep it uncompressed to be strict).
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target name.
        target: &'a [u8],
    },
    /// TXT with one character-string (at most 255 octets).
    Txt(&'a [u8]),
    /// SOA.
    Soa {
        /// Primary name server.
        mname: &'a [u8],
        /// Responsible mailbox.
        rname: &'a [u8],
        /// Serial.
        serial: u32,
        /// Refresh.
        refresh: u32,
        /// Retry.
        retry: u32,
        /// Expire.
        expire: u32,
        /// Minimum (negative TTL, RFC 2308).
        minimum: u32,
    },
}

const MAX_COMPRESSION_ENTRIES: usize = 64;
const OPT_LEN: usize = 11;

/// The names a response's later names may point to (RFC 1035 §4.1.4), kept
/// by the caller beside its buffer. Apart from the [`Writer`] so that the
/// writer stays small: it is made and moved for every query, and 256 octets
/// of table moved with it cost about what writing a short answer does.
#[derive(Clone, Debug)]
pub struct Compression([Pointee; MAX_COMPRESSION_ENTRIES]);

impl Compression {
    /// A table to lend a [`Writer`]. A writer reads only the entries it
    /// wrote itself, so one table may serve response after response.
    pub fn new() -> Self {
        Self([Pointee::default(); MAX_COMPRESSION_ENTRIES])
    }
}

impl Default for Compression {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds one response in a caller-owned buffer. The buffer's capacity should
/// be 65535 so that nothing allocates.
pub struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    limit: usize,
    counts: [u16; 3],
    comp: &'b mut Compression,
    ncomp: usize,
    mark: (usize, [u16; 3], usize),
    edns: bool,
    /// The query's DO bit, copied into our OPT (RFC 3225 §3).
    dnssec_ok: bool,
    /// A record that does not fit drops only itself when records of its
    /// RRset are already written (see [`Self::allow_partial_rrsets`]).
    partial: bool,
    ext_rcode: u8,
}

impl<'b> Writer<'b> {
    /// Starts a response to `query`: ID, opcode and RD copied, QR set, the
    /// question echoed as asked. `limit` is the largest message allowed.
    /// `comp`'s earlier entries are not read.
    pub fn new(
        buf: &'b mut Vec<u8>,
        comp: &'b mut Compression,
        query: &Query<'_>,
        limit: usize,
    ) -> Self {
        buf.clear();
        buf.extend_from_slice(&query.id.to_be_bytes());
        let flags = 0x8000 | (query.flags & 0x7900);
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(query.question);
        let edns = query.edns.is_some();
        let limit = limit
            .min(usize::from(u16::MAX))
            .saturating_sub(if edns { OPT_LEN } else { 0 });
        let mut w = Self {
            buf,
            limit,
            counts: [0; 3],
            comp,
            ncomp: 0,
            mark: (0, [0; 3], 0),
            edns,
            dnssec_ok: query.edns.is_some_and(|e| e.dnssec_ok),
            partial: false,
            ext_rcode: 0,
        };
        w.register_name(12, query.qname, query.qname.len());
        w.begin_rrset();
        w
    }

    /// A header-only error response (FORMERR, NOTIMP) to a packet whose header
    /// could be read but whose question could not be trusted.
    pub fn header_only(buf: &mut Vec<u8>, packet: &[u8], rcode: u16) {
        buf.clear();
        if packet.len() < 4 {
            return;
        }
        buf.extend_from_slice(&packet[..2]);
        let flags = u16::from_be_bytes([packet[2], packet[3]]);
        let flags = 0x8000 | (flags & 0x7900) | (rcode & 0xf);
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0; 8]);
    }

    /// Sets the AA bit.
    pub fn set_authoritative(&mut self) {
        self.buf[2] |= 0x04;
    }

    /// Sets the TC bit.
    pub fn set_truncated(&mut self) {
        self.buf[2] |= 0x02;
    }

    /// Sets RA (we recurse for clients when an upstream is configured).
    pub fn set_recursion_available(&mut self) {
        self.buf[3] |= 0x80;
    }

    /// Sets the response code; values above 15 use the EDNS extension.
    pub fn set_rcode(&mut self, rcode: u16) {
        self.buf[3] = (self.buf[3] & 0xf0) | (rcode & 0xf) as u8;
        self.ext_rcode = (rcode >> 4) as u8;
    }

    /// The number of records in a section so far.
    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// For a message that cannot be asked again bigger (TCP, 65,535
    /// octets): an RRset that does not fit keeps the records that do, so
    /// the answer is as complete as a message allows (the caller sets TC).
    /// Without it, an RRset is written whole or not at all.
    pub fn allow_partial_rrsets(&mut self) {
        self.partial = true;
    }

    /// Marks the start of an RRset: a record that does not fit rolls the
    /// message back to here.
    pub fn begin_rrset(&mut self) {
        self.mark = (self.buf.len(), self.counts, self.ncomp);
    }

    /// Appends one record. Returns `false` (and removes the partly written
    /// RRset) when it does not fit in the limit.
    pub fn record(
        &mut self,
        section: Section,
        owner: &[u8],
        rr_type: u16,
        ttl: u32,
        rdata: Rdata<'_>,
    ) -> bool {
        let idx = section as usize;
        if self.counts[idx] == u16::MAX {
            self.rollback();
            return false;
        }
        let record_mark = (self.buf.len(), self.ncomp);
        self.write_name(owner, true);
        self.put16(rr_type);
        self.put16(class::IN);
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.put16(0);
        match rdata {
            Rdata::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            Rdata::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            Rdata::Name(n) => self.write_name(n, true),
            Rdata::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.put16(priority);
                self.put16(weight);
                self.put16(port);
                self.write_name(target, false);
            }
            Rdata::Txt(t) => {
                let t = &t[..t.len().min(255)];
                self.buf.push(t.len() as u8);
                self.buf.extend_from_slice(t);
            }
            Rdata::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => {
                self.write_name(mname, true);
                self.write_name(rname, true);
                for v in [serial, refresh, retry, expire, minimum] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        let rdlen = self.buf.len() - len_at - 2;
        if self.buf.len() > self.limit {
            if self.partial && self.counts[idx] > self.mark.1[idx] {
                // Keep the RRset's records so far; drop this one.
                self.buf.truncate(record_mark.0);
                self.ncomp = record_mark.1;
            } else {
                self.rollback();
            }
            return false;
        }
        self.buf[len_at..len_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
        self.counts[idx] += 1;
        true
    }

    fn rollback(&mut self) {
        let (len, counts, ncomp) = self.mark;
        self.buf.truncate(len);
        self.counts = counts;
        self.ncomp = ncomp;
    }

    /// Writes the counts and the OPT record (when the query had one) and
    /// returns the message length.
    pub fn finish(mut self) -> usize {
        if self.edns {
            self.buf.push(0);
            self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
            self.buf
                .extend_from_slice(&crate::MAX_UDP_PAYLOAD.to_be_bytes());
            let flags = if self.dnssec_ok { 0x80 } else { 0 };
            self.buf
                .extend_from_slice(&[self.ext_rcode, 0, flags, 0, 0, 0]);
            self.counts[2] += 1;
        }
        for (i, c) in self.counts.iter().enumerate() {
            self.buf[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        self.buf.len()
    }

    /// The EDNS facts we answer with, for callers that need them.
    pub fn edns_reply(query: &Query<'_>) -> Option<Edns> {
        query.edns.map(|e| Edns {
            udp_size: crate::MAX_UDP_PAYLOAD,
            version: 0,
            dnssec_ok: e.dnssec_ok,
        })
    }

    fn put16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Makes the names at each label of `written` (octets at `at` in the
    /// message, the first `written.len()` octets of a name `total` octets
    /// long when expanded) targets for pointers.
    fn register_name(&mut self, mut at: usize, written: &[u8], total: usize) {
        let mut pos = 0;
        while let Some(&len) = written.get(pos) {
            if len == 0 || at > 0x3fff || self.ncomp == MAX_COMPRESSION_ENTRIES {
                return;
            }
            self.comp.0[self.ncomp] = Pointee {
                at: at as u16,
                len: total.saturating_sub(pos).min(usize::from(u16::MAX)) as u16,
            };
            self.ncomp += 1;
            pos += 1 + usize::from(len);
            at += 1 + usize::from(len);
        }
    }

    fn write_name(&mut self, name: &[u8], compress: bool) {
        let start = self.buf.len();
        let mut pos = 0;
        while let Some(&len) = name.get(pos) {
            if len == 0 {
                break;
            }
            if compress {
                let suffix = &name[pos..];
                // Only a name of the same length can be the same name: most
                // candidates are passed over without reading the message.
                let found = self.comp.0[..self.ncomp].iter().find(|p| {
                    usize::from(p.len) == suffix.len()
                        && suffix_matches(self.buf, usize::from(p.at), suffix)
                });
                if let Some(&Pointee { at, .. }) = found {
                    self.buf.extend_from_slice(&name[..pos]);
                    self.put16(0xc000 | at);
                    if pos > 0 {
                        self.register_name(start, &name[..pos], name.len());
                    }
                    return;
                }
            }
            pos += 1 + usize::from(len);
        }
        let end = (pos + 1).min(name.len());
        self.buf.extend_from_slice(&name[..end]);
        if compress {
            self.register_name(start, &name[..end], end);
        }
    }
}

/// A name already in the message that later names may point to.
#[derive(Clone, Copy, Debug, Default)]
struct Pointee {
    /// Its offset.
    at: u16,
    /// Its length in octets, expanded.
    len: u16,
}

/// Whether the (possibly compressed) name at `off` in `buf` equals the
/// uncompressed `name`, ignoring ASCII case.
fn suffix_matches(buf: &[u8], mut off: usize, name: &[u8]) -> bool {
    // Most often the name is there whole, uncompressed and in the same
    // case (the question, and our own lower-case names): equal octets are
    // the same name, since `name`'s length octets lead the walk through
    // the same octets of `buf` and none of them is a pointer.
    if buf.get(off) == name.first() && buf.get(off..off + name.len()) == Some(name) {
        return true;
    }
    let mut pos = 0;
    let mut hops = 0;
    loop {
        let Some(&len) = buf.get(off) else {
            return false;
        };
        if len & 0xc0 == 0xc0 {
            let Some(&lo) = buf.get(off + 1) else {
                return false;
            };
            off = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            hops += 1;
            if hops > 64 {
                return false;
            }
            continue;
        }
        let Some(&nlen) = name.get(pos) else {
            return false;
        };
        if nlen != len {
            return false;
        }
        if len == 0 {
            return true;
        }
        let l = usize::from(len);
        let (Some(a), Some(b)) = (
            buf.get(off + 1..off + 1 + l),
            name.get(pos + 1..pos + 1 + l),
        ) else {
            return false;
        };
        // Names we write are lower case, and so is nearly every question:
        // the exact comparison (a `memcmp`) settles most labels at once.
        if a != b && !a.eq_ignore_ascii_case(b) {
            return false;
        }
        off += 1 + l;
        pos += 1 + l;
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Message;
    use hickory_proto::rr::RData;

    use super::*;
    use crate::{encode_name, parse_query};

    fn packet(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut p = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        p.extend(encode_name(name).unwrap());
        p.extend(qtype.to_be_bytes());
        p.extend(1u16.to_be_bytes());
        if edns {
            p.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        }
        p
    }

    #[test]
    fn an_rrset_that_does_not_fit_is_dropped_whole_or_cut_when_allowed() {
        let p = packet("big.default.svc.cluster.local", rtype::A, false);
        let q = parse_query(&p).unwrap();
        for partial in [false, true] {
            let mut buf = Vec::with_capacity(65535);
            let mut comp = Compression::new();
            let mut w = Writer::new(&mut buf, &mut comp, &q, 512);
            if partial {
                w.allow_partial_rrsets();
            }
            w.begin_rrset();
            let mut written = 0;
            while w.record(
                Section::Answer,
                q.qname,
                rtype::A,
                5,
                Rdata::A([10, 0, 0, written].into()),
            ) {
                written += 1;
            }
            let kept = w.count(Section::Answer);
            let len = w.finish();
            assert!(len <= 512);
            let m = Message::from_vec(&buf[..len]).unwrap();
            assert_eq!(m.answers.len(), usize::from(kept));
            if partial {
                assert_eq!(kept, u16::from(written), "every record that fit is kept");
                assert!(kept > 20);
            } else {
                assert_eq!(kept, 0, "whole or nothing");
            }
        }
    }

    #[test]
    fn compresses_and_reparses() {
        let p = packet("WEB.default.svc.cluster.local", rtype::SRV, true);
        let q = parse_query(&p).unwrap();
        let mut buf = Vec::with_capacity(65535);
        let mut comp = Compression::new();
        let mut w = Writer::new(&mut buf, &mut comp, &q, 1232);
        w.set_authoritative();
        let owner = encode_name("web.default.svc.cluster.local").unwrap();
        let t1 = encode_name("web-0.web.default.svc.cluster.local").unwrap();
        let t2 = encode_name("web-1.web.default.svc.cluster.local").unwrap();
        for t in [&t1, &t2] {
            let rd = Rdata::Srv {
                priority: 0,
                weight: 50,
                port: 80,
                target: t,
            };
            assert!(w.record(Section::Answer, &owner, rtype::SRV, 5, rd));
        }
        w.begin_rrset();
        assert!(w.record(
            Section::Additional,
            &t1,
            rtype::A,
            5,
            Rdata::A([10, 0, 0, 1].into())
        ));
        let n = w.finish();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.additionals.len(), 1);
        assert_eq!(
            m.answers[0].name.to_string(),
            "WEB.default.svc.cluster.local."
        );
        match &m.answers[1].data {
            RData::SRV(srv) => assert_eq!(
                srv.target.to_string(),
                "web-1.web.default.svc.cluster.local."
            ),
            other => panic!("{other:?}"),
        }
        assert!(m.edns.is_some());
        // The answer owner is a pointer to the question: 2 bytes, not 31.
        assert!(n < 200, "{n}");
    }

    #[test]
    fn rolls_back_rrsets_that_do_not_fit() {
        let p = packet("a.b", rtype::A, false);
        let q = parse_query(&p).unwrap();
        let mut buf = Vec::with_capacity(65535);
        let mut comp = Compression::new();
        let mut w = Writer::new(&mut buf, &mut comp, &q, 512);
        let owner = encode_name("a.b").unwrap();
        let mut fitted = 0;
        while w.record(
            Section::Answer,
            &owner,
            rtype::A,
            5,
            Rdata::A([1, 2, 3, 4].into()),
        ) {
            fitted += 1;
        }
        assert_eq!(w.count(Section::Answer), 0, "the whole RRset is removed");
        assert!(fitted > 20);
        w.set_truncated();
        let n = w.finish();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert!(m.truncation);
        assert!(n <= 512);
    }

    #[test]
    fn header_only_errors() {
        let mut buf = Vec::new();
        Writer::header_only(&mut buf, &[1, 2, 1, 0, 0, 2], crate::rcode::FORMERR);
        assert_eq!(buf, [1, 2, 0x81, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
