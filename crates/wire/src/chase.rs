//! Finishing an answer whose CNAME chain leaves our zones (SPEC §2: an
//! ExternalName's target "is resolved through the upstream and appended").
//!
//! The engine writes the in-zone part (the question and the CNAME records);
//! the network layer asks an upstream for the chain's last target with
//! [`chase_query`] and merges the upstream's answer records into ours with
//! [`splice_answers`]. Names from the upstream's message are written out
//! uncompressed, since its compression pointers mean nothing in ours.

use crate::{MAX_NAME_LEN, Query, rcode, rtype};

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads a possibly compressed name at `pos`: the uncompressed wire form
/// and the position after the name as stored.
fn read_name(msg: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::with_capacity(64);
    let mut at = pos;
    let mut after = None;
    // Every pointer must go strictly backwards, so the walk ends.
    let mut floor = pos;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0xc0 => {
                let target = usize::from(len & 0x3f) << 8 | usize::from(*msg.get(at + 1)?);
                if target >= floor {
                    return None;
                }
                after.get_or_insert(at + 2);
                floor = target;
                at = target;
            }
            0 => {
                name.push(len);
                if len == 0 {
                    return (name.len() <= MAX_NAME_LEN).then(|| (name, after.unwrap_or(at + 1)));
                }
                name.extend_from_slice(msg.get(at + 1..at + 1 + usize::from(len))?);
                if name.len() > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + usize::from(len);
            }
            _ => return None,
        }
    }
}

/// The position after the record starting at `pos`, with its type and the
/// range of its RDATA.
fn skip_record(msg: &[u8], pos: usize) -> Option<(usize, u16, usize, usize)> {
    let (_, at) = read_name(msg, pos)?;
    let t = be16(msg, at)?;
    let len = usize::from(be16(msg, at + 8)?);
    let start = at + 10;
    let end = start + len;
    (end <= msg.len()).then_some((end, t, start, end))
}

/// The position after the question of a message with one question.
fn after_question(msg: &[u8]) -> Option<usize> {
    if be16(msg, 4)? != 1 {
        return None;
    }
    let (_, at) = read_name(msg, 12)?;
    let end = at + 4;
    (end <= msg.len()).then_some(end)
}

/// The target of the last answer record of `reply` when it is a CNAME: the
/// name still to be resolved.
pub fn cname_target(reply: &[u8]) -> Option<Vec<u8>> {
    let mut pos = after_question(reply)?;
    let mut last = None;
    for _ in 0..be16(reply, 6)? {
        let (end, t, start, _) = skip_record(reply, pos)?;
        last = (t == rtype::CNAME).then_some(start);
        pos = end;
    }
    read_name(reply, last?).map(|(name, _)| name)
}

/// A recursive query for `target` with the type, class and EDNS DO bit of
/// the client's `query`.
pub fn chase_query(query: &Query<'_>, target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() + 32);
    let edns = query.edns.is_some();
    out.extend_from_slice(&query.id.to_be_bytes());
    // RD, and CD as the client asked.
    out.extend_from_slice(&(0x0100 | (query.flags & 0x0010)).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    out.extend_from_slice(target);
    out.extend_from_slice(&query.qtype.to_be_bytes());
    out.extend_from_slice(&query.qclass.to_be_bytes());
    if let Some(e) = query.edns {
        out.push(0);
        out.extend_from_slice(&rtype::OPT.to_be_bytes());
        out.extend_from_slice(&crate::MAX_UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    out
}

/// Copies one record of `msg` at `pos` into `out` with every name that may
/// be compressed (RFC 3597 §4: those of the RFC 1035 types) written out in
/// full. Returns the position after the record.
fn copy_record(msg: &[u8], pos: usize, out: &mut Vec<u8>) -> Option<usize> {
    let (owner, at) = read_name(msg, pos)?;
    let t = be16(msg, at)?;
    let fixed = msg.get(at..at + 8)?;
    let len = usize::from(be16(msg, at + 8)?);
    let start = at + 10;
    let end = start + len;
    let rdata = msg.get(start..end)?;
    let mut data = Vec::with_capacity(len + 16);
    match t {
        rtype::CNAME | rtype::NS | rtype::PTR | DNAME => {
            data.extend(read_name(msg, start)?.0);
        }
        MX => {
            data.extend_from_slice(rdata.get(..2)?);
            data.extend(read_name(msg, start + 2)?.0);
        }
        rtype::SOA => {
            let (mname, at) = read_name(msg, start)?;
            let (rname, at) = read_name(msg, at)?;
            data.extend(mname);
            data.extend(rname);
            data.extend_from_slice(msg.get(at..at + 20)?);
        }
        _ => data.extend_from_slice(rdata),
    }
    out.extend(owner);
    out.extend_from_slice(fixed);
    out.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
    out.extend(data);
    Some(end)
}

const DNAME: u16 = 39;
const MX: u16 = 15;

/// Our `partial` reply (question and CNAME chain) with the answer records of
/// the `upstream`'s reply to [`chase_query`] added after our own. The
/// upstream's NXDOMAIN becomes ours (RFC 6604 §2.1: the RCODE describes the
/// last name of the chain); any other failure leaves `partial` as it is.
/// `None` when the result would exceed `limit` octets or either message is
/// malformed.
pub fn splice_answers(partial: &[u8], upstream: &[u8], limit: usize) -> Option<Vec<u8>> {
    let ours = {
        let mut pos = after_question(partial)?;
        for _ in 0..be16(partial, 6)? {
            pos = skip_record(partial, pos)?.0;
        }
        pos
    };
    let code = be16(upstream, 2)? & 0xf;
    let mut added = Vec::new();
    let mut count = 0u16;
    if code == rcode::NOERROR {
        let mut pos = after_question(upstream)?;
        for _ in 0..be16(upstream, 6)? {
            pos = copy_record(upstream, pos, &mut added)?;
            count += 1;
        }
    } else if code != rcode::NXDOMAIN {
        return Some(partial.to_vec());
    }
    let mut out = Vec::with_capacity(partial.len() + added.len());
    out.extend_from_slice(partial.get(..ours)?);
    out.extend(added);
    out.extend_from_slice(partial.get(ours..)?);
    let ancount = be16(partial, 6)?.checked_add(count)?;
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    if code == rcode::NXDOMAIN {
        out[3] = (out[3] & 0xf0) | rcode::NXDOMAIN as u8;
    }
    (out.len() <= limit).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rdata, Section, Writer, decode_response, encode_name, parse_query};

    fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut p = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        p.extend(encode_name(name).unwrap());
        p.extend(qtype.to_be_bytes());
        p.extend(1u16.to_be_bytes());
        if edns {
            p.extend([0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0]);
        }
        p
    }

    /// Our partial answer: `ext.default.svc.cluster.local CNAME target`.
    fn partial(packet: &[u8], target: &str) -> Vec<u8> {
        let q = parse_query(packet).unwrap();
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out, &q, 65535);
        w.set_authoritative();
        let t = encode_name(target).unwrap();
        w.begin_rrset();
        assert!(w.record(Section::Answer, q.qname, rtype::CNAME, 5, Rdata::Name(&t)));
        w.finish();
        out
    }

    /// An upstream answer with compression: `target CNAME edge.target`,
    /// `edge.target A 192.0.2.1`.
    fn upstream(chase: &[u8], rc: u8) -> Vec<u8> {
        let mut a = chase[..12].to_vec();
        a[2] = 0x81;
        a[3] = 0x80 | rc;
        a[11] = 0;
        let qend = after_question(chase).unwrap();
        a.extend_from_slice(&chase[12..qend]);
        if rc == 0 {
            a[7] = 2;
            // CNAME owner: pointer to the question name.
            a.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7]);
            let edge_at = a.len();
            a.extend([4, b'e', b'd', b'g', b'e', 0xc0, 12]);
            a.extend([
                0xc0,
                edge_at as u8,
                0,
                1,
                0,
                1,
                0,
                0,
                0,
                60,
                0,
                4,
                192,
                0,
                2,
                1,
            ]);
        }
        a
    }

    #[test]
    fn upstream_records_are_appended_uncompressed_before_our_opt() {
        let packet = query("ext.default.svc.cluster.local", rtype::A, true);
        let ours = partial(&packet, "www.example.org");
        let target = cname_target(&ours).unwrap();
        assert_eq!(target, encode_name("www.example.org").unwrap());
        let q = parse_query(&packet).unwrap();
        let chase = chase_query(&q, &target);
        let cq = parse_query(&chase).unwrap();
        assert_eq!(cq.qname, &target[..]);
        assert!(cq.rd() && cq.edns.unwrap().dnssec_ok);
        let spliced = splice_answers(&ours, &upstream(&chase, 0), 65535).unwrap();
        let d = decode_response(&spliced).unwrap();
        assert_eq!(d.rcode, 0);
        assert_eq!(
            d.sections[0],
            [
                "ext.default.svc.cluster.local.\t5\tIN\tCNAME\twww.example.org.",
                "www.example.org.\t60\tIN\tCNAME\tedge.www.example.org.",
                "edge.www.example.org.\t60\tIN\tA\t192.0.2.1",
            ]
        );
        // Our OPT stays the last record.
        assert_eq!(&spliced[spliced.len() - 11..], &ours[ours.len() - 11..]);
        assert_eq!(spliced[2] & 0x04, 0x04, "AA kept");
        assert!(splice_answers(&ours, &upstream(&chase, 0), ours.len() + 10).is_none());
    }

    #[test]
    fn nxdomain_carries_over_and_servfail_keeps_the_cname() {
        let packet = query("ext.default.svc.cluster.local", rtype::AAAA, false);
        let ours = partial(&packet, "gone.example.org");
        let chase = chase_query(
            &parse_query(&packet).unwrap(),
            &cname_target(&ours).unwrap(),
        );
        let nx = splice_answers(&ours, &upstream(&chase, 3), 512).unwrap();
        assert_eq!(decode_response(&nx).unwrap().rcode, 3);
        assert_eq!(decode_response(&nx).unwrap().sections[0].len(), 1);
        assert_eq!(
            splice_answers(&ours, &upstream(&chase, 2), 512).unwrap(),
            ours
        );
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_rejected() {
        assert!(read_name(&[0xc0, 0], 0).is_none());
        assert!(read_name(&[1, b'a', 0xc0, 2], 0).is_none());
        assert!(read_name(&[0, 1, b'a', 0xc0, 0], 1).is_some());
        assert!(read_name(&[0x80], 0).is_none());
        assert!(cname_target(&[0; 11]).is_none());
    }
}
