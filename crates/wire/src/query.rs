//! Zero-copy parsing of a DNS query (RFC 1035 §4.1, RFC 6891 §6).

use crate::message::be16;
use crate::{MAX_NAME_LEN, rtype};

/// The EDNS(0) facts of a query's OPT record (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// The DO bit.
    pub dnssec_ok: bool,
}

/// A parsed query; every slice borrows from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// Message ID.
    pub id: u16,
    /// The header's flag word as received.
    pub flags: u16,
    /// The question name in wire form, with the client's case.
    pub qname: &'a [u8],
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The whole question (name, type, class) to echo.
    pub question: &'a [u8],
    /// The OPT record, when there was one.
    pub edns: Option<Edns>,
}

impl Query<'_> {
    /// The OPCODE.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// Recursion desired.
    pub fn rd(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// The largest response that may be sent over UDP (SPEC §2: honour the
    /// client's size, at least 512, at most what we advertise).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => usize::from(
                e.udp_size
                    .clamp(crate::MIN_UDP_PAYLOAD, crate::MAX_UDP_PAYLOAD),
            ),
            None => usize::from(crate::MIN_UDP_PAYLOAD),
        }
    }
}

/// Why a packet is not a query we can answer normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than a header: nothing can be answered; drop it.
    #[error("shorter than a DNS header")]
    Short,
    /// The QR bit is set: a response, never answered (that is how loops start).
    #[error("a response, not a query")]
    Response,
    /// An opcode other than QUERY: answer NOTIMP.
    #[error("opcode {0} is not implemented")]
    Opcode(u8),
    /// QDCOUNT is not 1, or the question or OPT is malformed: answer FORMERR.
    #[error("malformed query")]
    Format,
}

/// Reads an uncompressed name at `pos`, returning the offset after it.
fn question_name_end(buf: &[u8], mut pos: usize) -> Result<usize, ParseError> {
    let start = pos;
    loop {
        let len = *buf.get(pos).ok_or(ParseError::Format)?;
        if len & 0xc0 != 0 {
            // Compression (or an extended label type) in a question is never
            // sent by real clients; refusing it keeps the parse linear.
            return Err(ParseError::Format);
        }
        pos += 1 + usize::from(len);
        if pos - start > MAX_NAME_LEN {
            return Err(ParseError::Format);
        }
        if len == 0 {
            return Ok(pos);
        }
    }
}

/// The question name of a packet (wire form, with the client's case), read
/// in place with [`parse_query`]'s checks of the name and nothing else.
pub fn question_name(packet: &[u8]) -> Option<&[u8]> {
    let end = question_name_end(packet, 12).ok()?;
    packet.get(12..end)
}

/// Skips a possibly compressed name in a resource record.
fn skip_name(buf: &[u8], pos: usize) -> Result<usize, ParseError> {
    crate::message::skip_name(buf, pos).ok_or(ParseError::Format)
}

/// Parses a query. Never panics, never allocates, runs in time linear in the
/// packet length.
pub fn parse_query(buf: &[u8]) -> Result<Query<'_>, ParseError> {
    if buf.len() < 12 {
        return Err(ParseError::Short);
    }
    let id = be16(buf, 0).ok_or(ParseError::Short)?;
    let flags = be16(buf, 2).ok_or(ParseError::Short)?;
    if flags & 0x8000 != 0 {
        return Err(ParseError::Response);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    if opcode != 0 {
        return Err(ParseError::Opcode(opcode));
    }
    let count = |at| be16(buf, at).ok_or(ParseError::Short);
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    if qd != 1 {
        return Err(ParseError::Format);
    }
    let name_end = question_name_end(buf, 12)?;
    let qtype = be16(buf, name_end).ok_or(ParseError::Format)?;
    let qclass = be16(buf, name_end + 2).ok_or(ParseError::Format)?;
    let qend = name_end + 4;
    let mut edns = None;
    let mut pos = qend;
    for i in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
        let owner = pos;
        pos = skip_name(buf, pos)?;
        let rr_type = be16(buf, pos).ok_or(ParseError::Format)?;
        let rr_class = be16(buf, pos + 2).ok_or(ParseError::Format)?;
        let ttl_hi = be16(buf, pos + 4).ok_or(ParseError::Format)?;
        let ttl_lo = be16(buf, pos + 6).ok_or(ParseError::Format)?;
        let rdlen = be16(buf, pos + 8).ok_or(ParseError::Format)?;
        pos += 10 + usize::from(rdlen);
        if pos > buf.len() {
            return Err(ParseError::Format);
        }
        if rr_type == rtype::OPT {
            let in_additional = i >= u32::from(an) + u32::from(ns);
            if !in_additional || edns.is_some() || buf.get(owner) != Some(&0) {
                return Err(ParseError::Format);
            }
            edns = Some(Edns {
                udp_size: rr_class,
                version: (ttl_hi & 0xff) as u8,
                dnssec_ok: ttl_lo & 0x8000 != 0,
            });
        }
    }
    Ok(Query {
        id,
        flags,
        qname: &buf[12..name_end],
        qtype,
        qclass,
        question: &buf[12..qend],
        edns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut p = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            u8::from(edns.is_some()),
        ];
        p.extend(crate::encode_name(name).unwrap());
        p.extend(qtype.to_be_bytes());
        p.extend(1u16.to_be_bytes());
        if let Some(size) = edns {
            p.extend([0, 0, 41]);
            p.extend(size.to_be_bytes());
            p.extend([0, 0, 0x80, 0, 0, 0]);
        }
        p
    }

    #[test]
    fn parses_question_and_edns() {
        let p = query("Web.Default.svc.cluster.local", rtype::A, Some(4096));
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qtype, rtype::A);
        assert_eq!(
            crate::name_to_string(q.qname),
            "Web.Default.svc.cluster.local."
        );
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                version: 0,
                dnssec_ok: true
            })
        );
        assert_eq!(q.udp_limit(), 1232);
        assert!(q.rd());
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_query(&[0; 5]), Err(ParseError::Short));
        let mut p = query("a", 1, None);
        p[5] = 2;
        assert_eq!(parse_query(&p), Err(ParseError::Format));
        let mut p = query("a", 1, None);
        p[2] |= 0x80;
        assert_eq!(parse_query(&p), Err(ParseError::Response));
        let mut p = query("a", 1, None);
        p[2] = 0x28;
        assert_eq!(parse_query(&p), Err(ParseError::Opcode(5)));
        let p = query("a", 1, None);
        assert_eq!(parse_query(&p[..p.len() - 1]), Err(ParseError::Format));
        let mut p = query("a", 1, None);
        p[12] = 0xc0;
        assert_eq!(parse_query(&p), Err(ParseError::Format));
    }
}
