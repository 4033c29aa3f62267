//! The immutable snapshot the engine answers from.

use std::net::{Ipv4Addr, Ipv6Addr};

use rustc_hash::FxHashMap;

/// Pod records `<a-b-c-d>.<ns>.pod.<zone>` (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodMode {
    /// Only for an IP that a pod in that namespace has (the default).
    #[default]
    Verified,
    /// Any well-formed dashed IP answers with that IP (kube-dns behaviour).
    Insecure,
    /// No pod records.
    Disabled,
}

/// What a zone is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// A cluster zone (`cluster.local`).
    Cluster,
    /// The multi-cluster zone (`clusterset.local`).
    ClusterSet,
    /// A reverse zone (`in-addr.arpa`/`ip6.arpa`).
    Reverse,
}

/// A zone we are authoritative for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The apex, lower-case wire form.
    pub apex: Box<[u8]>,
    /// Its kind.
    pub kind: ZoneKind,
    /// SOA MNAME and NS target (`ns.dns.<zone>.`).
    pub ns: Box<[u8]>,
    /// SOA RNAME (`hostmaster.<zone>.`).
    pub hostmaster: Box<[u8]>,
}

/// An SRV record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    /// Priority (always 0 here).
    pub priority: u16,
    /// Weight (`100/n`, at least 1).
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target, lower-case wire form.
    pub target: Box<[u8]>,
}

/// One owner name and its records. A node with no records is an empty
/// non-terminal: the name exists (NODATA), it just has nothing of any type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Index of its zone in [`Snapshot::zones`].
    pub zone: u16,
    /// A records.
    pub a: Vec<Ipv4Addr>,
    /// AAAA records.
    pub aaaa: Vec<Ipv6Addr>,
    /// SRV records.
    pub srv: Vec<Srv>,
    /// CNAME target.
    pub cname: Option<Box<[u8]>>,
    /// PTR targets.
    pub ptr: Vec<Box<[u8]>>,
    /// One TXT string and its TTL.
    pub txt: Option<(Box<[u8]>, u32)>,
    /// The zone apex (SOA and NS live here).
    pub apex: bool,
    /// Address answers rotate between queries (headless services).
    pub rotate: bool,
}

/// Everything the engine needs to answer, immutable once built.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Generation: the SOA serial.
    pub generation: u64,
    /// Every source has delivered its first complete state (or the startup
    /// timeout passed). Until then names in our zones get SERVFAIL: an
    /// answer from a partial state would be a false NXDOMAIN.
    pub complete: bool,
    /// TTL of every record but `dns-version`.
    pub ttl: u32,
    /// Pod record mode.
    pub pods: PodMode,
    /// Answer a search-path expansion that does not exist with the first
    /// expansion that does (`--autopath`).
    pub autopath: bool,
    /// Our zones.
    pub zones: Vec<Zone>,
    /// Apex (lower-case wire) → index into `zones`.
    pub zone_index: FxHashMap<Box<[u8]>, u16>,
    /// Owner (lower-case wire) → records.
    pub nodes: FxHashMap<Box<[u8]>, Node>,
}

impl Snapshot {
    /// The zone containing a lower-case wire name (longest match), if any.
    pub fn find_zone(&self, name: &[u8]) -> Option<(u16, usize)> {
        let mut pos = 0;
        loop {
            if let Some(&z) = self.zone_index.get(&name[pos..]) {
                return Some((z, pos));
            }
            let len = usize::from(*name.get(pos)?);
            if len == 0 {
                return None;
            }
            pos += 1 + len;
        }
    }

    /// The SOA serial (RFC 1982 arithmetic wraps it into 32 bits).
    pub fn serial(&self) -> u32 {
        self.generation as u32
    }
}
