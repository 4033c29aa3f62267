//! Finishing an answer whose CNAME chain leaves our zones (SPEC §2: an
//! ExternalName's target "is resolved through the upstream and appended").
//!
//! The engine writes the in-zone part (the question and the CNAME records);
//! the network layer asks an upstream for the chain's last target with
//! [`chase_query`] and merges the upstream's answer records into ours with
//! [`splice_answers`]. Names from the upstream's message are written out
//! uncompressed, since its compression pointers mean nothing in ours.

use crate::message::{be16, is_under, read_name, record_at, skip_questions};
use crate::{Query, rcode, rtype};

/// The position after the question of a message with one question.
fn after_question(msg: &[u8]) -> Option<usize> {
    if be16(msg, 4)? != 1 {
        return None;
    }
    skip_questions(msg)
}

/// The target of the last answer record of `reply` when it is a CNAME: the
/// name still to be resolved.
pub fn cname_target(reply: &[u8]) -> Option<Vec<u8>> {
    let mut pos = after_question(reply)?;
    let mut last = None;
    for _ in 0..be16(reply, 6)? {
        let r = record_at(reply, pos)?;
        last = (r.rtype == rtype::CNAME).then_some(r.rdata);
        pos = r.end;
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

/// Copies one record of `msg` at `pos` with every name that may be
/// compressed (RFC 3597 §4: those of the RFC 1035 types) written out in
/// full. Returns it and the position after it.
fn copy_record(msg: &[u8], pos: usize) -> Option<(Copied, usize)> {
    let (owner, at) = read_name(msg, pos)?;
    let rtype = be16(msg, at)?;
    let fixed = msg.get(at..at + 8)?;
    let len = usize::from(be16(msg, at + 8)?);
    let start = at + 10;
    let end = start + len;
    let rdata = msg.get(start..end)?;
    let mut data = Vec::with_capacity(len + 16);
    match rtype {
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
    let mut bytes = Vec::with_capacity(owner.len() + 10 + data.len());
    bytes.extend_from_slice(&owner);
    bytes.extend_from_slice(fixed);
    bytes.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
    bytes.extend_from_slice(&data);
    let target = (rtype == rtype::CNAME).then_some(data);
    Some((
        Copied {
            owner,
            rtype,
            target,
            bytes,
        },
        end,
    ))
}

const DNAME: u16 = 39;
const MX: u16 = 15;

/// The longest chain followed in an upstream's answer.
const MAX_HOPS: usize = 16;

/// One record of the upstream's message, copied out uncompressed.
struct Copied {
    owner: Vec<u8>,
    rtype: u16,
    /// The CNAME target, for chain walking.
    target: Option<Vec<u8>>,
    bytes: Vec<u8>,
}

/// Reads `count` records from `pos`, uncompressed.
fn copy_records(msg: &[u8], mut pos: usize, count: u16) -> Option<(Vec<Copied>, usize)> {
    let mut out = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let (record, next) = copy_record(msg, pos)?;
        out.push(record);
        pos = next;
    }
    Some((out, pos))
}

/// Our `partial` reply (question and CNAME chain) completed with the
/// `upstream`'s reply to [`chase_query`]: its answer records on the chain
/// from our target (others are not ours to vouch for) after our own, and
/// for a negative answer its SOA, so caches downstream can keep it (RFC
/// 2308). The upstream's NXDOMAIN becomes ours (RFC 6604 §2.1: the RCODE
/// describes the last name of the chain); any other failure leaves
/// `partial` as it is. `None` when the result would exceed `limit` octets or
/// either message is malformed.
pub fn splice_answers(partial: &[u8], upstream: &[u8], limit: usize) -> Option<Vec<u8>> {
    let (ours, our_auth_end) = {
        let mut pos = after_question(partial)?;
        for _ in 0..be16(partial, 6)? {
            pos = record_at(partial, pos)?.end;
        }
        let answers_end = pos;
        for _ in 0..be16(partial, 8)? {
            pos = record_at(partial, pos)?.end;
        }
        (answers_end, pos)
    };
    let code = be16(upstream, 2)? & 0xf;
    if code != rcode::NOERROR && code != rcode::NXDOMAIN {
        return Some(partial.to_vec());
    }
    let qpos = after_question(upstream)?;
    let (target, at) = read_name(upstream, 12)?;
    let qtype = be16(upstream, at)?;
    let (answers, pos) = copy_records(upstream, qpos, be16(upstream, 6)?)?;
    let (authority, _) = copy_records(upstream, pos, be16(upstream, 8)?)?;
    // The chain: our target and the CNAME targets reachable from it.
    let mut chain = vec![target];
    for hop in 0..MAX_HOPS {
        let Some(next) = chain.get(hop).and_then(|name| {
            answers
                .iter()
                .find(|r| r.owner.eq_ignore_ascii_case(name) && r.target.is_some())
                .and_then(|r| r.target.clone())
        }) else {
            break;
        };
        if chain.iter().any(|n| n.eq_ignore_ascii_case(&next)) {
            break;
        }
        chain.push(next);
    }
    let on_chain = |r: &Copied| {
        chain
            .iter()
            .any(|n| r.owner.eq_ignore_ascii_case(n) || (r.rtype == DNAME && is_under(n, &r.owner)))
    };
    let kept: Vec<&Copied> = answers.iter().filter(|r| on_chain(r)).collect();
    let negative = code == rcode::NXDOMAIN || !kept.iter().any(|r| r.rtype == qtype);
    let soa: Vec<&Copied> = authority
        .iter()
        .filter(|r| negative && r.rtype == rtype::SOA)
        .take(1)
        .collect();
    let mut out = Vec::with_capacity(partial.len() + 512);
    out.extend_from_slice(partial.get(..ours)?);
    for r in &kept {
        out.extend_from_slice(&r.bytes);
    }
    out.extend_from_slice(partial.get(ours..our_auth_end)?);
    for r in &soa {
        out.extend_from_slice(&r.bytes);
    }
    out.extend_from_slice(partial.get(our_auth_end..)?);
    let count = |n: usize| u16::try_from(n).ok();
    let ancount = be16(partial, 6)?.checked_add(count(kept.len())?)?;
    let nscount = be16(partial, 8)?.checked_add(count(soa.len())?)?;
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    out[8..10].copy_from_slice(&nscount.to_be_bytes());
    if code == rcode::NXDOMAIN {
        out[3] = (out[3] & 0xf0) | rcode::NXDOMAIN as u8;
    }
    (out.len() <= limit).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, Rdata, Section, Writer, decode_response, encode_name, parse_query};

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
        let mut comp = Compression::new();
        let mut w = Writer::new(&mut out, &mut comp, &q, 65535);
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

    /// An upstream reply built with hickory-proto (compressed by it).
    fn hickory_reply(chase: &[u8], rc: u8, answers: &[(&str, &str)], soa: bool) -> Vec<u8> {
        use hickory_proto::op::{Message, MessageType, ResponseCode};
        use hickory_proto::rr::rdata::{A, CNAME, SOA};
        use hickory_proto::rr::{Name, RData, Record};
        use hickory_proto::serialize::binary::BinEncodable;
        let mut m = Message::from_vec(chase).unwrap();
        m.metadata.message_type = MessageType::Response;
        m.metadata.response_code = ResponseCode::from(0, rc);
        for (owner, data) in answers {
            let owner = Name::from_ascii(owner).unwrap();
            let rdata = match data.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => RData::A(A(ip)),
                Err(_) => RData::CNAME(CNAME(Name::from_ascii(data).unwrap())),
            };
            m.answers.push(Record::from_rdata(owner, 60, rdata));
        }
        if soa {
            let zone = Name::from_ascii("example.net.").unwrap();
            let rd = SOA::new(zone.clone(), zone.clone(), 1, 2, 3, 4, 30);
            m.authorities
                .push(Record::from_rdata(zone, 30, RData::SOA(rd)));
        }
        m.to_bytes().unwrap()
    }

    #[test]
    fn only_the_chain_is_appended_and_negative_answers_keep_chain_and_soa() {
        let packet = query("ext.default.svc.cluster.local", rtype::A, false);
        let ours = partial(&packet, "www.example.org");
        let chase = chase_query(
            &parse_query(&packet).unwrap(),
            &cname_target(&ours).unwrap(),
        );
        // Records off the chain (a name in our zone!) are not vouched for.
        let up = hickory_reply(
            &chase,
            0,
            &[
                ("kubernetes.default.svc.cluster.local.", "6.6.6.6"),
                ("www.example.org.", "edge.example.net."),
                ("edge.example.net.", "192.0.2.8"),
                ("other.example.net.", "192.0.2.9"),
            ],
            false,
        );
        let d = decode_response(&splice_answers(&ours, &up, 65535).unwrap()).unwrap();
        assert_eq!(
            d.sections[0],
            [
                "ext.default.svc.cluster.local.\t5\tIN\tCNAME\twww.example.org.",
                "www.example.org.\t60\tIN\tCNAME\tedge.example.net.",
                "edge.example.net.\t60\tIN\tA\t192.0.2.8",
            ]
        );
        assert!(d.sections[1].is_empty());
        // NXDOMAIN at the end of a longer chain: the chain and the SOA stay.
        let up = hickory_reply(
            &chase,
            3,
            &[("www.example.org.", "gone.example.net.")],
            true,
        );
        let d = decode_response(&splice_answers(&ours, &up, 65535).unwrap()).unwrap();
        assert_eq!(d.rcode, 3);
        assert_eq!(d.sections[0].len(), 2, "{:?}", d.sections[0]);
        assert_eq!(d.sections[1].len(), 1, "{:?}", d.sections[1]);
        assert!(d.sections[1][0].contains("SOA"));
        // NODATA: the SOA too.
        let up = hickory_reply(&chase, 0, &[], true);
        let d = decode_response(&splice_answers(&ours, &up, 65535).unwrap()).unwrap();
        assert_eq!(
            (d.rcode, d.sections[0].len(), d.sections[1].len()),
            (0, 1, 1)
        );
        // A chain that loops upstream ends.
        let up = hickory_reply(
            &chase,
            0,
            &[
                ("www.example.org.", "a.example.net."),
                ("a.example.net.", "www.example.org."),
            ],
            false,
        );
        let d = decode_response(&splice_answers(&ours, &up, 65535).unwrap()).unwrap();
        assert_eq!(d.sections[0].len(), 3);
    }

    #[test]
    fn a_message_too_short_has_no_target() {
        assert!(cname_target(&[0; 11]).is_none());
    }
}
