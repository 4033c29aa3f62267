//! The cache of forwarded answers: whole responses in wire form, keyed by
//! question, served with their TTLs decremented (RFC 1035 §7.4), negative
//! answers kept for the SOA minimum (RFC 2308 §5), bounded by bytes, and
//! served stale for 30 s when every upstream fails (RFC 8767). An answer
//! whose ANSWER section holds records for names other than the question and
//! its CNAME/DNAME chain is relayed but never cached (RFC 2181 §5.4.1: data
//! outside the question's bailiwick is not to be trusted for other queries),
//! nor is one whose CNAME chain is longer than 16 links.
//! Our own zones never come here: they are always current.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use svcnet_wire::message::{self, be16, be32, is_under, skip_name, skip_questions};
use svcnet_wire::{MAX_NAME_LEN, Query, fold_name, rtype};

/// Longest time any answer is kept, whatever its TTL says.
const MAX_TTL: u32 = 3600;
/// How long past its TTL an answer may still be served when upstreams fail,
/// and the TTL it is then served with (RFC 8767 §4, §5).
pub const STALE_TTL: u32 = 30;

/// What makes two queries the same question: the folded name, type,
/// class, whether the query had EDNS, DO and CD (the last three change what
/// an upstream answers; a client without EDNS must get no OPT record back,
/// RFC 6891 §7).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) name: Box<[u8]>,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    pub(crate) edns: bool,
    pub(crate) dnssec_ok: bool,
    pub(crate) checking_disabled: bool,
}

impl Key {
    pub(crate) fn of(q: &Query<'_>) -> Self {
        let mut folded = [0u8; MAX_NAME_LEN];
        Self {
            name: fold_name(q.qname, &mut folded).into(),
            qtype: q.qtype,
            qclass: q.qclass,
            edns: q.edns.is_some(),
            dnssec_ok: q.edns.is_some_and(|e| e.dnssec_ok),
            checking_disabled: q.flags & 0x0010 != 0,
        }
    }
}

#[derive(Debug)]
struct Entry {
    answer: Box<[u8]>,
    /// Offsets of the TTL fields of every record but OPT.
    ttl_at: Box<[usize]>,
    stored: Instant,
    lifetime: u32,
    serial: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    /// Insertion order for eviction: (key, serial of that insertion).
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    serial: u64,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within the stale window.
    Stale,
}

/// Hit and miss counts, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answers served from the cache while fresh.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Answers served stale because upstreams failed.
    pub stale: u64,
    /// Entries dropped to stay within the byte bound.
    pub evictions: u64,
}

/// A byte-bounded answer cache.
#[derive(Debug)]
pub struct Cache {
    inner: Mutex<Inner>,
    stats: Mutex<CacheStats>,
    max_bytes: usize,
}

struct Walk {
    ttl_at: Vec<usize>,
    lifetime: Option<u32>,
}

/// The record counts of the answer, authority and additional sections,
/// and where the first record starts.
fn sections(answer: &[u8]) -> Option<([u16; 3], usize)> {
    let counts = [be16(answer, 6)?, be16(answer, 8)?, be16(answer, 10)?];
    Some((counts, skip_questions(answer)?))
}

/// Finds the TTL fields and how long the answer may be cached: the least
/// TTL of answer and authority records; for a negative answer, the SOA's
/// min(TTL, MINIMUM) (RFC 2308 §5). `None` = not cacheable.
fn walk(answer: &[u8]) -> Option<Walk> {
    let flags = be16(answer, 2)?;
    let rcode = flags & 0xf;
    if flags & 0x0200 != 0 || !(rcode == 0 || rcode == 3) {
        return None;
    }
    let (counts, mut pos) = sections(answer)?;
    let mut ttl_at = Vec::new();
    let mut least: Option<u32> = None;
    let mut negative_ttl: Option<u32> = None;
    for (section, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            pos = skip_name(answer, pos)?;
            let t = be16(answer, pos)?;
            let ttl = be32(answer, pos + 4)?;
            let rdlen = usize::from(be16(answer, pos + 8)?);
            if t != rtype::OPT {
                ttl_at.push(pos + 4);
                if section < 2 {
                    least = Some(least.map_or(ttl, |l| l.min(ttl)));
                }
                if section == 1 && t == rtype::SOA {
                    // MINIMUM is the last 4 octets of the SOA RDATA.
                    let minimum = be32(answer, pos + 10 + rdlen.checked_sub(4)?)?;
                    negative_ttl = Some(ttl.min(minimum));
                }
            }
            pos += 10 + rdlen;
            if pos > answer.len() {
                return None;
            }
        }
    }
    let lifetime = if counts[0] == 0 { negative_ttl } else { least };
    Some(Walk {
        ttl_at,
        lifetime: lifetime.map(|l| l.min(MAX_TTL)),
    })
}

/// The name at `pos` (compression followed), folded to lower case, and the
/// position after it in place.
fn read_name(msg: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let (mut name, after) = message::read_name(msg, pos)?;
    // Length octets are below 64, so only letters change.
    name.make_ascii_lowercase();
    Some((name, after))
}

/// `answer` with the options of its OPT record dropped (RDLENGTH 0), the
/// OPT header kept: UDP size, extended RCODE, version, DO. Options (cookies
/// above all, RFC 7873; padding) belong to the exchange of the client whose
/// query went upstream, never to another client served the same answer from
/// a shared exchange or the cache. `None` when the answer cannot be walked,
/// or when records follow an OPT with options (cutting bytes there could
/// break their compression pointers); such an answer is not shared.
pub(crate) fn without_edns_options(answer: &[u8]) -> Option<Cow<'_, [u8]>> {
    let (counts, mut pos) = sections(answer)?;
    let records: u32 = counts.iter().map(|&c| u32::from(c)).sum();
    for left in (0..records).rev() {
        pos = skip_name(answer, pos)?;
        let t = be16(answer, pos)?;
        let rdlen = usize::from(be16(answer, pos + 8)?);
        let rdata = pos + 10;
        let end = rdata + rdlen;
        if end > answer.len() {
            return None;
        }
        if t == rtype::OPT && rdlen > 0 {
            if left > 0 {
                return None;
            }
            let mut out = Vec::with_capacity(answer.len() - rdlen);
            out.extend_from_slice(&answer[..pos + 8]);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&answer[end..]);
            return Some(Cow::Owned(out));
        }
        pos = end;
    }
    Some(Cow::Borrowed(answer))
}

/// The longest CNAME chain an answer may hold and still be cached. Real
/// chains are a few links long; resolvers give up well before this.
const MAX_CHAIN: usize = 16;

/// Whether every ANSWER record is owned by the question name or by a name
/// on the CNAME chain that starts at it; a DNAME may be owned by a parent of
/// such a name (RFC 6672 §2.3: its synthesised CNAME continues the chain).
/// Answers with a chain longer than [`MAX_CHAIN`] links, or with two CNAMEs
/// for one owner (RFC 2181 §10.1), are not cached either. The work is linear
/// in the number of records, whatever order they come in.
fn in_bailiwick(answer: &[u8]) -> bool {
    let check = || -> Option<bool> {
        if be16(answer, 4)? != 1 {
            return Some(false);
        }
        let (qname, after) = read_name(answer, 12)?;
        let mut pos = after + 4;
        let count = be16(answer, 6)?;
        let mut records = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (owner, after) = read_name(answer, pos)?;
            let rtype = be16(answer, after)?;
            let rdlen = usize::from(be16(answer, after + 8)?);
            records.push((owner, rtype, after + 10));
            pos = after + 10 + rdlen;
        }
        // Owner → where its CNAME's target is, in one pass.
        let mut cnames: HashMap<&[u8], usize> = HashMap::new();
        for (owner, rtype, rdata) in &records {
            if *rtype == rtype::CNAME && cnames.insert(owner, *rdata).is_some() {
                return Some(false);
            }
        }
        let mut chain = vec![qname];
        while let Some(&rdata) = chain.last().and_then(|n| cnames.get(n.as_slice())) {
            let (target, _) = read_name(answer, rdata)?;
            if chain.contains(&target) {
                break;
            }
            if chain.len() > MAX_CHAIN {
                return Some(false);
            }
            chain.push(target);
        }
        Some(records.iter().all(|(owner, rtype, _)| {
            chain.contains(owner) || (*rtype == DNAME && chain.iter().any(|n| is_under(n, owner)))
        }))
    };
    check().unwrap_or(false)
}

/// RFC 6672.
const DNAME: u16 = 39;

impl Cache {
    /// A cache holding at most `max_bytes` of answers.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            stats: Mutex::new(CacheStats::default()),
            max_bytes,
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Keeps `answer` (to `query`) if it is cacheable, without its EDNS
    /// options: it is served to other clients.
    pub fn insert(&self, query: &Query<'_>, answer: &[u8], now: Instant) {
        let Some(answer) = without_edns_options(answer) else {
            return;
        };
        let answer = &*answer;
        let Some(w) = walk(answer) else { return };
        if !in_bailiwick(answer) {
            tracing::debug!("not caching an answer with records off the question's chain");
            return;
        }
        let Some(lifetime) = w.lifetime.filter(|l| *l > 0) else {
            return;
        };
        let key = Key::of(query);
        let size = answer.len() + key.name.len() + 64;
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.serial += 1;
        let serial = inner.serial;
        let entry = Entry {
            answer: answer.into(),
            ttl_at: w.ttl_at.into(),
            stored: now,
            lifetime,
            serial,
        };
        if let Some(old) = inner.map.insert(key.clone(), entry) {
            inner.bytes -= old.answer.len() + key.name.len() + 64;
        }
        inner.bytes += size;
        inner.order.push_back((key, serial));
        let mut evicted = 0;
        while inner.bytes > self.max_bytes {
            let Some((k, s)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&k).is_some_and(|e| e.serial == s)
                && let Some(e) = inner.map.remove(&k)
            {
                inner.bytes -= e.answer.len() + k.name.len() + 64;
                evicted += 1;
            }
        }
        // Superseded insertions leave stale order entries; keep the queue
        // from growing without bound when one name is refreshed often.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.serial == *s));
        }
        drop(inner);
        if evicted > 0 {
            self.count(|s| s.evictions += evicted);
        }
    }

    /// The cached answer to `query` with the client's ID and question case,
    /// TTLs decremented; stale answers only when `allow_stale`.
    pub fn get(
        &self,
        query: &Query<'_>,
        now: Instant,
        allow_stale: bool,
    ) -> Option<(Vec<u8>, Freshness)> {
        let key = Key::of(query);
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let found = inner.map.get(&key).and_then(|e| {
            let age = now.saturating_duration_since(e.stored);
            let age_secs = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
            let fresh = age < Duration::from_secs(u64::from(e.lifetime));
            let stale_ok = allow_stale && age_secs < e.lifetime.saturating_add(STALE_TTL);
            if !fresh && !stale_ok {
                return None;
            }
            let mut out = e.answer.to_vec();
            out[..2].copy_from_slice(&query.id.to_be_bytes());
            let q = out.get_mut(12..12 + query.question.len())?;
            q.copy_from_slice(query.question);
            for &at in e.ttl_at.iter() {
                let Some(field) = out.get_mut(at..at + 4) else {
                    continue;
                };
                let ttl = u32::from_be_bytes(field.try_into().ok()?);
                let now_ttl = if fresh {
                    ttl.saturating_sub(age_secs)
                } else {
                    STALE_TTL
                };
                field.copy_from_slice(&now_ttl.to_be_bytes());
            }
            Some((
                out,
                if fresh {
                    Freshness::Fresh
                } else {
                    Freshness::Stale
                },
            ))
        });
        drop(inner);
        match &found {
            Some((_, Freshness::Fresh)) => self.count(|s| s.hits += 1),
            Some((_, Freshness::Stale)) => self.count(|s| s.stale += 1),
            None => self.count(|s| s.misses += 1),
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_wire::{encode_name, parse_query};

    fn query(name: &str) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend(encode_name(name).unwrap());
        p.extend([0, 1, 0, 1]);
        p
    }

    fn answer(q: &[u8], rcode: u8, ttl: u32, soa: Option<(u32, u32)>) -> Vec<u8> {
        let mut a = q.to_vec();
        a[2] = 0x81;
        a[3] = 0x80 | rcode;
        let qlen = q.len() - 12;
        if let Some((soa_ttl, minimum)) = soa {
            a[9] = 1;
            a.extend([0xc0, 12, 0, 6, 0, 1]);
            a.extend(soa_ttl.to_be_bytes());
            a.extend(24u16.to_be_bytes());
            a.extend([0xc0, 12, 0xc0, 12]);
            a.extend([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
            a.extend(minimum.to_be_bytes());
        } else {
            a[7] = 1;
            a.extend([0xc0, 12, 0, 1, 0, 1]);
            a.extend(ttl.to_be_bytes());
            a.extend([0, 4, 192, 0, 2, 1]);
        }
        assert!(a.len() > 12 + qlen);
        a
    }

    #[test]
    fn rfc1035_ttls_decrement_and_expire() {
        let qb = query("Example.COM");
        let q = parse_query(&qb).unwrap();
        let c = Cache::new(1 << 20);
        let t0 = Instant::now();
        c.insert(&q, &answer(&qb, 0, 60, None), t0);
        let (hit, f) = c.get(&q, t0 + Duration::from_secs(10), false).unwrap();
        assert_eq!(f, Freshness::Fresh);
        let ttl_at = hit.len() - 10;
        assert_eq!(
            u32::from_be_bytes(hit[ttl_at..ttl_at + 4].try_into().unwrap()),
            50
        );
        assert_eq!(
            &hit[12..12 + q.question.len()],
            q.question,
            "question echoed as asked"
        );
        assert!(c.get(&q, t0 + Duration::from_secs(61), false).is_none());
        let (stale, f) = c.get(&q, t0 + Duration::from_secs(61), true).unwrap();
        assert_eq!(f, Freshness::Stale);
        assert_eq!(
            u32::from_be_bytes(stale[ttl_at..ttl_at + 4].try_into().unwrap()),
            STALE_TTL
        );
        assert!(c.get(&q, t0 + Duration::from_secs(91), true).is_none());
    }

    #[test]
    fn rfc2308_negative_answers_live_for_the_soa_minimum() {
        let qb = query("nope.example");
        let q = parse_query(&qb).unwrap();
        let c = Cache::new(1 << 20);
        let t0 = Instant::now();
        c.insert(&q, &answer(&qb, 3, 0, Some((300, 20))), t0);
        assert!(c.get(&q, t0 + Duration::from_secs(19), false).is_some());
        assert!(c.get(&q, t0 + Duration::from_secs(21), false).is_none());
        // SERVFAIL is never cached.
        let qb2 = query("broken.example");
        let q2 = parse_query(&qb2).unwrap();
        c.insert(&q2, &answer(&qb2, 2, 60, None), t0);
        assert!(c.get(&q2, t0, false).is_none());
    }

    /// Owner, type, RDATA.
    type Record<'a> = (&'a str, u16, Vec<u8>);

    /// A response to `qname` A with the given answer records (owner, type,
    /// RDATA), names uncompressed.
    fn response(qname: &str, records: &[Record<'_>]) -> Vec<u8> {
        let mut a = query(qname);
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = u8::try_from(records.len()).unwrap();
        for (owner, t, rdata) in records {
            a.extend(encode_name(owner).unwrap());
            a.extend(t.to_be_bytes());
            a.extend([0, 1, 0, 0, 0, 60]);
            a.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
            a.extend(rdata);
        }
        a
    }

    #[test]
    fn rfc2181_answers_off_the_cname_chain_are_relayed_but_not_cached() {
        let ip = vec![192, 0, 2, 1];
        let name = |n: &str| encode_name(n).unwrap();
        let cases: [(&str, Vec<Record<'_>>, bool); 5] = [
            (
                "Example.com",
                vec![("example.COM", rtype::A, ip.clone())],
                true,
            ),
            (
                "example.com",
                vec![
                    ("www.example.net", rtype::A, ip.clone()),
                    ("example.com", rtype::CNAME, name("WWW.example.net")),
                ],
                true,
            ),
            (
                "example.com",
                vec![
                    ("example.com", rtype::A, ip.clone()),
                    ("bank.example", rtype::A, ip.clone()),
                ],
                false,
            ),
            (
                "x.example.com",
                vec![
                    ("example.com", DNAME, name("example.net")),
                    ("x.example.com", rtype::CNAME, name("x.example.net")),
                    ("x.example.net", rtype::A, ip),
                ],
                true,
            ),
            (
                "x.example.com",
                vec![("other.example.com", DNAME, name("example.net"))],
                false,
            ),
        ];
        let t0 = Instant::now();
        for (qname, records, cached) in cases {
            let c = Cache::new(1 << 20);
            let qb = query(qname);
            let q = parse_query(&qb).unwrap();
            let a = response(qname, &records);
            assert_eq!(in_bailiwick(&a), cached, "{qname} {records:?}");
            c.insert(&q, &a, t0);
            assert_eq!(c.get(&q, t0, false).is_some(), cached, "{qname}");
        }
    }

    /// A response to `qname` A whose answer records are built by the
    /// caller (a count beyond 255 needs the full 16-bit ANCOUNT).
    fn big_response(qname: &str, count: usize, records: &[u8]) -> Vec<u8> {
        let mut a = query(qname);
        a[2] = 0x81;
        a[3] = 0x80;
        a[6..8].copy_from_slice(&u16::try_from(count).unwrap().to_be_bytes());
        a.extend(records);
        a
    }

    fn record(out: &mut Vec<u8>, owner: &str, t: u16, rdata: &[u8]) {
        out.extend(encode_name(owner).unwrap());
        out.extend(t.to_be_bytes());
        out.extend([0, 1, 0, 0, 0, 60]);
        out.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
        out.extend(rdata);
    }

    /// A chain c0 → c1 → … → c`links` ending in an A record, the records
    /// in reverse order (the worst case for following the chain pass by
    /// pass).
    fn reversed_chain(links: usize) -> Vec<u8> {
        let mut records = Vec::new();
        record(
            &mut records,
            &format!("c{links}.example"),
            rtype::A,
            &[192, 0, 2, 1],
        );
        for i in (0..links).rev() {
            let target = encode_name(&format!("c{}.example", i + 1)).unwrap();
            record(
                &mut records,
                &format!("c{i}.example"),
                rtype::CNAME,
                &target,
            );
        }
        big_response("c0.example", links + 1, &records)
    }

    #[test]
    fn long_cname_chains_in_any_order_are_checked_in_linear_time_and_not_cached() {
        // 3,000 links in reverse order: following the chain pass by pass
        // would take billions of comparisons.
        let a = reversed_chain(3000);
        assert!(!in_bailiwick(&a));
        let qb = query("c0.example");
        let q = parse_query(&qb).unwrap();
        let c = Cache::new(1 << 20);
        let t0 = Instant::now();
        c.insert(&q, &a, t0);
        assert!(c.get(&q, t0, false).is_none());
        // Chains up to the limit are fine in any order; one more is not.
        assert!(in_bailiwick(&reversed_chain(MAX_CHAIN)));
        assert!(!in_bailiwick(&reversed_chain(MAX_CHAIN + 1)));
    }

    #[test]
    fn two_cnames_for_one_owner_are_not_cached() {
        let mut records = Vec::new();
        let target = |n: &str| encode_name(n).unwrap();
        record(
            &mut records,
            "a.example",
            rtype::CNAME,
            &target("b.example"),
        );
        record(
            &mut records,
            "a.example",
            rtype::CNAME,
            &target("c.example"),
        );
        record(&mut records, "c.example", rtype::A, &[192, 0, 2, 1]);
        assert!(!in_bailiwick(&big_response("a.example", 3, &records)));
    }

    #[test]
    fn large_rrsets_are_cached() {
        let mut records = Vec::new();
        for i in 0..800u16 {
            let [hi, lo] = i.to_be_bytes();
            record(&mut records, "many.example", rtype::A, &[10, 0, hi, lo]);
        }
        let a = big_response("many.example", 800, &records);
        let qb = query("many.example");
        let q = parse_query(&qb).unwrap();
        let c = Cache::new(1 << 20);
        let t0 = Instant::now();
        c.insert(&q, &a, t0);
        assert!(c.get(&q, t0, false).is_some());
    }

    /// OPT with UDP size 1232, DO set, and a cookie option of `cookie`.
    fn opt(cookie: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0];
        let mut rdata = vec![0, 10];
        rdata.extend(u16::try_from(cookie.len()).unwrap().to_be_bytes());
        rdata.extend(cookie);
        o.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
        o.extend(rdata);
        o
    }

    /// `q` with an OPT record carrying a client cookie appended.
    fn with_opt(q: &[u8], cookie: &[u8]) -> Vec<u8> {
        let mut q = q.to_vec();
        q[11] += 1;
        q.extend(opt(cookie));
        q
    }

    #[test]
    fn rfc6891_plain_queries_never_get_an_edns_answer_and_options_are_not_kept() {
        let plain = query("example.com");
        let edns = with_opt(&plain, b"clientA\0");
        let mut a = answer(&plain, 0, 60, None);
        a[11] = 1;
        let cookie = b"clientA\0serverAAAAAAAA";
        a.extend(opt(cookie));
        let c = Cache::new(1 << 20);
        let t0 = Instant::now();
        let qe = parse_query(&edns).unwrap();
        c.insert(&qe, &a, t0);
        let qp = parse_query(&plain).unwrap();
        assert!(
            c.get(&qp, t0, false).is_none(),
            "an EDNS answer is no answer to a plain query"
        );
        let other = with_opt(&plain, b"clientB\0");
        let (hit, _) = c
            .get(
                &parse_query(&other).unwrap(),
                t0 + Duration::from_secs(5),
                false,
            )
            .unwrap();
        let stripped_opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];
        assert!(hit.ends_with(&stripped_opt), "{hit:?}");
        assert_eq!(hit.len(), a.len() - (4 + cookie.len()));
        assert!(!hit.windows(7).any(|w| w == b"clientA"));
        let ttl_at = hit.len() - stripped_opt.len() - 10;
        assert_eq!(
            hit[ttl_at..ttl_at + 4],
            55u32.to_be_bytes(),
            "TTLs still found"
        );
    }

    #[test]
    fn edns_options_are_dropped_only_where_that_is_safe() {
        let plain = query("example.com");
        let a = answer(&plain, 0, 60, None);
        assert!(matches!(without_edns_options(&a), Some(Cow::Borrowed(_))));
        let mut with = a.clone();
        with[11] = 1;
        with.extend(opt(b"12345678"));
        let stripped = without_edns_options(&with).unwrap();
        assert_eq!(stripped[..11], a[..11]);
        assert_eq!(stripped[11], 1, "the OPT record stays");
        assert_eq!(stripped[12..a.len()], a[12..]);
        assert_eq!(
            stripped[a.len()..],
            [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]
        );
        // A record after an OPT with options: left alone, not shared.
        let mut after = with.clone();
        after[11] = 2;
        after.extend([0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 2]);
        assert!(without_edns_options(&after).is_none());
        // Truncated RDATA.
        assert!(without_edns_options(&with[..with.len() - 1]).is_none());
    }

    #[test]
    fn bounded_by_bytes() {
        let c = Cache::new(600);
        let t0 = Instant::now();
        let names: Vec<Vec<u8>> = (0..20).map(|i| query(&format!("n{i}.example"))).collect();
        for qb in &names {
            let q = parse_query(qb).unwrap();
            c.insert(&q, &answer(qb, 0, 60, None), t0);
        }
        let inner = c.inner.lock().unwrap();
        assert!(inner.bytes <= 600, "{}", inner.bytes);
        assert!(inner.map.len() < 20);
        drop(inner);
        assert!(c.stats().evictions > 0);
        let last = parse_query(&names[19]).unwrap();
        assert!(c.get(&last, t0, false).is_some(), "the newest entry stays");
    }
}
