//! One query in, one response out.

use std::net::IpAddr;

use svcnet_index::{Node, PodMode, Snapshot, ZoneKind};
use svcnet_wire::{
    Compression, MAX_NAME_LEN, ParseError, Query, Rdata, Section, Writer, class, fold_name,
    parse_query, question_name, rcode, rtype,
};

/// How the query arrived; decides the size limit (SPEC §2 "Protocol").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: the client's EDNS payload size (512 without EDNS), TC beyond it.
    Udp,
    /// TCP: up to 65535 octets.
    Tcp,
}

/// Per-query inputs that are not in the packet or the snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// Transport.
    pub transport: Transport,
    /// Rotation offset for headless answers (a per-worker counter).
    pub rotation: u32,
    /// Whether names outside our zones go to an upstream (else REFUSED).
    pub forward: bool,
}

/// What to do with the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send the first `n` bytes of the output buffer.
    Reply(usize),
    /// Send nothing (no readable header, or a response packet).
    Drop,
    /// The name is outside our zones and forwarding is on: relay it.
    Forward,
    /// The first `n` bytes of the output buffer are a reply whose last
    /// answer record is a CNAME to a name outside our zones (an
    /// ExternalName service, or a search-path expansion with `--autopath`):
    /// resolve that target upstream and append its answer
    /// ([`svcnet_wire::splice_answers`]), or send the reply as it is when the
    /// upstream fails.
    Chase(usize),
}

/// SOA timers of SPEC §2.
const REFRESH: u32 = 7200;
const RETRY: u32 = 1800;
const EXPIRE: u32 = 86400;
/// CNAME chains inside our zones are followed at most this far.
const MAX_CHAIN: usize = 8;

/// Readies the caches for answering `packets` (a batch received together):
/// the name table entries their question names are looked up by are loaded
/// for all of them at once ([`svcnet_index::Nodes::warm`]), so that the
/// misses overlap instead of stalling each answer in turn. Only a hint:
/// what is answered does not change. Packets without a readable question
/// are passed over.
pub fn warm<'p>(snap: &Snapshot, packets: impl IntoIterator<Item = &'p [u8]>) {
    const AT_ONCE: usize = 32;
    let mut hashes = [0u64; AT_ONCE];
    let mut n = 0;
    for packet in packets {
        let Some(qname) = question_name(packet) else {
            continue;
        };
        let mut folded = [0u8; MAX_NAME_LEN];
        hashes[n] = svcnet_index::Nodes::hash(fold_name(qname, &mut folded));
        n += 1;
        if n == AT_ONCE {
            snap.nodes.warm(&hashes);
            n = 0;
        }
    }
    snap.nodes.warm(&hashes[..n]);
}

/// Answers one packet into `out` (whose capacity should be 65535, so nothing
/// allocates). Never panics on any input.
pub fn answer(snap: &Snapshot, packet: &[u8], ctx: &Context, out: &mut Vec<u8>) -> Outcome {
    answer_in_zone(snap, packet, ctx, out).0
}

/// [`answer`], also saying which of [`Snapshot::zones`] the question fell
/// in (`None`: outside our zones, or no readable question), so that
/// callers can count queries per zone without looking the name up again.
pub fn answer_in_zone(
    snap: &Snapshot,
    packet: &[u8],
    ctx: &Context,
    out: &mut Vec<u8>,
) -> (Outcome, Option<u16>) {
    let q = match parse_query(packet) {
        Ok(q) => q,
        Err(ParseError::Short | ParseError::Response) => return (Outcome::Drop, None),
        Err(ParseError::Opcode(_)) => {
            Writer::header_only(out, packet, rcode::NOTIMP);
            return (Outcome::Reply(out.len()), None);
        }
        Err(ParseError::Format) => {
            Writer::header_only(out, packet, rcode::FORMERR);
            return (Outcome::Reply(out.len()), None);
        }
    };
    let limit = match ctx.transport {
        Transport::Udp => q.udp_limit(),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let mut comp = Compression::new();
    let mut w = Writer::new(out, &mut comp, &q, limit);
    if ctx.transport == Transport::Tcp {
        // Nothing bigger can be asked for: a huge RRset (a headless service
        // of thousands of endpoints) is cut, not dropped whole.
        w.allow_partial_rrsets();
    }
    if q.edns.is_some_and(|e| e.version > 0) {
        w.set_rcode(rcode::BADVERS);
        return (Outcome::Reply(w.finish()), None);
    }
    if q.qclass != class::IN && q.qclass != class::ANY {
        w.set_rcode(rcode::REFUSED);
        return (Outcome::Reply(w.finish()), None);
    }
    let mut folded = [0u8; MAX_NAME_LEN];
    let name = fold_name(q.qname, &mut folded);
    let Some((zone, _)) = snap.find_zone(name) else {
        if ctx.forward {
            return (Outcome::Forward, None);
        }
        w.set_rcode(rcode::REFUSED);
        return (Outcome::Reply(w.finish()), None);
    };
    if !snap.complete {
        // Kubernetes API mode before the first full sync: no false NXDOMAIN.
        w.set_rcode(rcode::SERVFAIL);
        return (Outcome::Reply(w.finish()), Some(zone));
    }
    if matches!(q.qtype, rtype::AXFR | rtype::IXFR) {
        w.set_rcode(rcode::REFUSED);
        return (Outcome::Reply(w.finish()), Some(zone));
    }
    w.set_authoritative();
    let outcome = match resolve(snap, &mut w, &q, name, zone, ctx) {
        Resolved::Done => Outcome::Reply(w.finish()),
        Resolved::Chase => Outcome::Chase(w.finish()),
    };
    (outcome, Some(zone))
}

/// Whether the answer is complete or its CNAME chain continues upstream.
enum Resolved {
    Done,
    Chase,
}

/// Follows the name (and in-zone CNAMEs) and writes the sections.
fn resolve(
    snap: &Snapshot,
    w: &mut Writer<'_>,
    q: &Query<'_>,
    name: &[u8],
    zone: u16,
    ctx: &Context,
) -> Resolved {
    let rot = ctx.rotation;
    let mut owner = name;
    let mut zone = zone;
    // Owners already answered with a CNAME: a loop ends the chain instead of
    // repeating it up to the limit.
    let mut chain: [&[u8]; MAX_CHAIN] = [&[]; MAX_CHAIN];
    let mut expansion = [0u8; MAX_NAME_LEN];
    let mut first_hop = 0;
    if snap.autopath
        && !snap.nodes.contains_key(name)
        && pod_address(snap, name, zone).is_none()
        && let Some((target, upstream)) =
            search_expansion(snap, name, zone, q.qtype, ctx.forward, &mut expansion)
    {
        if !cname(w, name, target, snap.ttl) {
            return Resolved::Done;
        }
        if upstream {
            return Resolved::Chase;
        }
        chain[0] = name;
        owner = target;
        zone = snap.find_zone(target).map_or(zone, |(z, _)| z);
        first_hop = 1;
    }
    for hop in first_hop..MAX_CHAIN {
        let Some(node) = snap.nodes.get(owner) else {
            if !pod_record(snap, w, q.qtype, owner, zone) {
                w.set_rcode(rcode::NXDOMAIN);
                if !soa(snap, w, zone, Section::Authority) {
                    w.set_truncated();
                }
            }
            return Resolved::Done;
        };
        if let Some(target) = node.cname().filter(|_| q.qtype != rtype::CNAME) {
            if !cname(w, owner, target, snap.ttl) {
                return Resolved::Done;
            }
            // RFC 1034 §4.3.2: a target in our zones is answered here; an
            // address query for a target outside them is resolved upstream
            // (SPEC §2, ExternalName) when there is one.
            chain[hop] = owner;
            match snap.find_zone(target) {
                Some((z, _)) if !chain[..=hop].contains(&target) => {
                    owner = target;
                    zone = z;
                    continue;
                }
                None if ctx.forward && matches!(q.qtype, rtype::A | rtype::AAAA) => {
                    return Resolved::Chase;
                }
                _ => return Resolved::Done,
            }
        }
        match records(snap, w, node, owner, q.qtype, rot) {
            Ok(0) => {
                if !soa(snap, w, node.zone, Section::Authority) {
                    w.set_truncated();
                }
            }
            Ok(_) => additional(snap, w, node, q.qtype),
            Err(Truncated) => w.set_truncated(),
        }
        return Resolved::Done;
    }
    Resolved::Done
}

/// `--autopath`: `name` (which does not exist) read as the first search-path
/// expansion of a pod in the namespace it names, `<X>.<ns>.svc.<zone>`: the
/// first of `<X>.svc.<zone>`, `<X>.<zone>` and `<X>` that the pod's resolver
/// would accept, written into `buf`. The flag is true when that is `<X>`
/// outside our zones, to be resolved upstream (only when `forward`).
///
/// The asking pod is assumed to live in `<ns>`; a pod elsewhere that asks
/// for such a name directly (a fully qualified name that does not exist)
/// gets the expansion's answer instead of NXDOMAIN. That is the trade-off
/// for not having to map every client address to a namespace.
fn search_expansion<'b>(
    snap: &Snapshot,
    name: &[u8],
    zone: u16,
    qtype: u16,
    forward: bool,
    buf: &'b mut [u8; MAX_NAME_LEN],
) -> Option<(&'b [u8], bool)> {
    let z = snap
        .zones
        .get(usize::from(zone))
        .filter(|z| z.kind == ZoneKind::Cluster)?;
    let rel_len = name.len().checked_sub(z.apex.len())?;
    // Label offsets within `name`, up to the zone apex.
    let mut starts = [0usize; 128];
    let mut n = 0;
    let mut pos = 0;
    while pos < rel_len {
        *starts.get_mut(n)? = pos;
        n += 1;
        pos += 1 + usize::from(*name.get(pos)?);
    }
    // At least one label of X, then <ns>, then `svc`.
    if n < 3 || name.get(starts[n - 1]..rel_len)? != b"\x03svc" {
        return None;
    }
    let ns_at = starts[n - 2];
    if !snap.nodes.contains_key(&name[ns_at..]) {
        return None;
    }
    let x = &name[..ns_at];
    let tails: [&[u8]; 3] = [&name[starts[n - 1]..], &name[rel_len..], &[0]];
    for tail in tails {
        let len = x.len() + tail.len();
        let out = buf.get_mut(..len)?;
        out[..x.len()].copy_from_slice(x);
        out[x.len()..].copy_from_slice(tail);
        let candidate = &buf[..len];
        match snap.find_zone(candidate) {
            None => {
                return forward.then(|| (&buf[..len], true));
            }
            Some((cz, _)) => {
                let pod = || {
                    pod_address(snap, candidate, cz).is_some_and(|ip| match ip {
                        IpAddr::V4(_) => matches!(qtype, rtype::A | rtype::ANY),
                        IpAddr::V6(_) => matches!(qtype, rtype::AAAA | rtype::ANY),
                    })
                };
                if snap
                    .nodes
                    .get(candidate)
                    .is_some_and(|node| has_data(node, qtype))
                    || pod()
                {
                    return Some((&buf[..len], false));
                }
            }
        }
    }
    None
}

/// Whether a search-path resolver would stop at `node` for `qtype`: it has a
/// CNAME or records of that type (NODATA makes it go on searching).
fn has_data(node: &Node, qtype: u16) -> bool {
    let any = qtype == rtype::ANY;
    node.cname().is_some()
        || ((qtype == rtype::A || any) && !node.a().is_empty())
        || ((qtype == rtype::AAAA || any) && !node.aaaa().is_empty())
        || ((qtype == rtype::SRV || any) && !node.srv().is_empty())
        || ((qtype == rtype::PTR || any) && !node.ptr().is_empty())
        || ((qtype == rtype::TXT || any) && node.txt().is_some())
}

struct Truncated;

/// Writes `owner CNAME target` into the answer; false (TC set) when it does
/// not fit.
fn cname(w: &mut Writer<'_>, owner: &[u8], target: &[u8], ttl: u32) -> bool {
    w.begin_rrset();
    let ok = w.record(
        Section::Answer,
        owner,
        rtype::CNAME,
        ttl,
        Rdata::Name(target),
    );
    if !ok {
        w.set_truncated();
    }
    ok
}

fn rrset<T: Copy>(
    w: &mut Writer<'_>,
    owner: &[u8],
    rr_type: u16,
    ttl: u32,
    items: &[T],
    start: usize,
    rdata: impl Fn(T) -> Rdata<'static>,
) -> Result<usize, Truncated> {
    w.begin_rrset();
    let n = items.len();
    for i in 0..n {
        let item = items[(start + i) % n];
        if !w.record(Section::Answer, owner, rr_type, ttl, rdata(item)) {
            return Err(Truncated);
        }
    }
    Ok(n)
}

/// Writes the answer RRsets of `qtype` at `node`; the count written.
fn records(
    snap: &Snapshot,
    w: &mut Writer<'_>,
    node: &Node,
    owner: &[u8],
    qtype: u16,
    rot: u32,
) -> Result<usize, Truncated> {
    let any = qtype == rtype::ANY;
    let ttl = snap.ttl;
    let mut n = 0;
    let start = |len: usize| {
        if node.rotate && len > 0 {
            rot as usize % len
        } else {
            0
        }
    };
    if qtype == rtype::A || any {
        n += rrset(
            w,
            owner,
            rtype::A,
            ttl,
            node.a(),
            start(node.a().len()),
            Rdata::A,
        )?;
    }
    if qtype == rtype::AAAA || any {
        n += rrset(
            w,
            owner,
            rtype::AAAA,
            ttl,
            node.aaaa(),
            start(node.aaaa().len()),
            Rdata::Aaaa,
        )?;
    }
    if (qtype == rtype::SRV || any) && !node.srv().is_empty() {
        w.begin_rrset();
        for s in node.srv() {
            let rd = Rdata::Srv {
                priority: s.priority,
                weight: s.weight,
                port: s.port,
                target: &s.target,
            };
            if !w.record(Section::Answer, owner, rtype::SRV, ttl, rd) {
                return Err(Truncated);
            }
            n += 1;
        }
    }
    if (qtype == rtype::PTR || any) && !node.ptr().is_empty() {
        w.begin_rrset();
        for p in node.ptr() {
            if !w.record(Section::Answer, owner, rtype::PTR, ttl, Rdata::Name(p)) {
                return Err(Truncated);
            }
            n += 1;
        }
    }
    if (qtype == rtype::CNAME || any)
        && let Some(c) = node.cname()
    {
        w.begin_rrset();
        if !w.record(Section::Answer, owner, rtype::CNAME, ttl, Rdata::Name(c)) {
            return Err(Truncated);
        }
        n += 1;
    }
    if (qtype == rtype::TXT || any)
        && let Some((txt, txt_ttl)) = node.txt()
    {
        w.begin_rrset();
        if !w.record(Section::Answer, owner, rtype::TXT, txt_ttl, Rdata::Txt(txt)) {
            return Err(Truncated);
        }
        n += 1;
    }
    if node.apex {
        if qtype == rtype::SOA || any {
            if !soa(snap, w, node.zone, Section::Answer) {
                return Err(Truncated);
            }
            n += 1;
        }
        if qtype == rtype::NS || any {
            let zone = &snap.zones[usize::from(node.zone)];
            w.begin_rrset();
            if !w.record(
                Section::Answer,
                owner,
                rtype::NS,
                ttl,
                Rdata::Name(&zone.ns),
            ) {
                return Err(Truncated);
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Writes the zone's SOA (SPEC §2: serial = generation, minimum = TTL).
fn soa(snap: &Snapshot, w: &mut Writer<'_>, zone: u16, section: Section) -> bool {
    let Some(z) = snap.zones.get(usize::from(zone)) else {
        return false;
    };
    let rd = Rdata::Soa {
        mname: &z.ns,
        rname: &z.hostmaster,
        serial: snap.serial(),
        refresh: REFRESH,
        retry: RETRY,
        expire: EXPIRE,
        minimum: snap.ttl,
    };
    w.begin_rrset();
    w.record(section, &z.apex, rtype::SOA, snap.ttl, rd)
}

/// Glue: addresses of SRV targets and of the name server. Dropped silently
/// when it does not fit (RFC 2181 §9: TC is only for the answer).
fn additional(snap: &Snapshot, w: &mut Writer<'_>, node: &Node, qtype: u16) {
    let mut last: Option<&[u8]> = None;
    let glue = |w: &mut Writer<'_>, target: &[u8]| -> bool {
        let Some(t) = snap.nodes.get(target) else {
            return true;
        };
        w.begin_rrset();
        t.a().iter().all(|ip| {
            w.record(
                Section::Additional,
                target,
                rtype::A,
                snap.ttl,
                Rdata::A(*ip),
            )
        }) && {
            w.begin_rrset();
            t.aaaa().iter().all(|ip| {
                w.record(
                    Section::Additional,
                    target,
                    rtype::AAAA,
                    snap.ttl,
                    Rdata::Aaaa(*ip),
                )
            })
        }
    };
    if qtype == rtype::SRV {
        for s in node.srv() {
            if last == Some(&s.target) {
                continue;
            }
            last = Some(&s.target);
            if !glue(w, &s.target) {
                return;
            }
        }
    } else if qtype == rtype::NS
        && node.apex
        && let Some(z) = snap.zones.get(usize::from(node.zone))
    {
        glue(w, &z.ns);
    }
}

/// The address the pod record `name` (`<a-b-c-d>.<ns>.pod.<zone>`) answers
/// with, if it exists: with `--pods verified` only when a pod of that
/// namespace has the address, with `--pods insecure` for any address the
/// label spells.
fn pod_address(snap: &Snapshot, name: &[u8], zone: u16) -> Option<IpAddr> {
    if snap.pods == PodMode::Disabled {
        return None;
    }
    // Pod names live in the cluster zones only (not clusterset.local, not
    // the reverse zones).
    let z = snap
        .zones
        .get(usize::from(zone))
        .filter(|z| z.kind == ZoneKind::Cluster)?;
    let rel = &name[..name.len().checked_sub(z.apex.len())?];
    let mut labels = svcnet_wire::labels(rel);
    let (Some(dashed), Some(ns), Some(b"pod"), None) =
        (labels.next(), labels.next(), labels.next(), labels.next())
    else {
        return None;
    };
    let ip = parse_dashed(dashed)?;
    match snap.pods {
        PodMode::Insecure => Some(ip),
        PodMode::Verified => snap.has_pod(ns, ip).then_some(ip),
        PodMode::Disabled => None,
    }
}

/// Answers the pod record `name` if it exists (see [`pod_address`]);
/// returns whether it did.
fn pod_record(snap: &Snapshot, w: &mut Writer<'_>, qtype: u16, name: &[u8], zone: u16) -> bool {
    let Some(ip) = pod_address(snap, name, zone) else {
        return false;
    };
    let ok = match (ip, qtype) {
        (IpAddr::V4(v4), rtype::A | rtype::ANY) => {
            w.begin_rrset();
            w.record(Section::Answer, name, rtype::A, snap.ttl, Rdata::A(v4))
        }
        (IpAddr::V6(v6), rtype::AAAA | rtype::ANY) => {
            w.begin_rrset();
            w.record(
                Section::Answer,
                name,
                rtype::AAAA,
                snap.ttl,
                Rdata::Aaaa(v6),
            )
        }
        _ => soa(snap, w, zone, Section::Authority),
    };
    if !ok {
        w.set_truncated();
    }
    true
}

/// Parses `10-244-1-5` or `2001-db8--1` without allocating.
fn parse_dashed(label: &[u8]) -> Option<IpAddr> {
    let mut buf = [0u8; 64];
    let out = buf.get_mut(..label.len())?;
    let v4 = label.iter().filter(|&&b| b == b'-').count() == 3
        && label.iter().all(|b| b.is_ascii_digit() || *b == b'-');
    for (o, &b) in out.iter_mut().zip(label) {
        *o = match b {
            b'-' if v4 => b'.',
            b'-' => b':',
            _ => b,
        };
    }
    std::str::from_utf8(out).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_dashed;

    #[test]
    fn dashed_forms() {
        assert_eq!(parse_dashed(b"10-244-1-5"), Some([10, 244, 1, 5].into()));
        assert_eq!(parse_dashed(b"2001-db8--1"), "2001:db8::1".parse().ok());
        assert_eq!(parse_dashed(b"web-0"), None);
        assert_eq!(parse_dashed(&[b'1'; 80]), None);
    }
}
