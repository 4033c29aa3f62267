//! `svcnet zone`: the snapshot as RFC 1035 master files (SPEC §4), the same
//! records `serve` answers.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use svcnet_index::{Node, Snapshot, ZoneKind};
use svcnet_wire::{dashed_ip, encode_name, name_to_string};

/// The master-file lines of one node's records (owner, TTL, class, type, data).
pub fn rr_lines(snap: &Snapshot, owner: &[u8], node: &Node) -> Vec<String> {
    let o = name_to_string(owner);
    let ttl = snap.ttl;
    let mut out = Vec::new();
    if node.apex
        && let Some(z) = snap.zones.get(usize::from(node.zone))
    {
        let (ns, hm) = (name_to_string(&z.ns), name_to_string(&z.hostmaster));
        let serial = snap.serial();
        out.push(format!(
            "{o}\t{ttl}\tIN\tSOA\t{ns} {hm} {serial} 7200 1800 86400 {ttl}"
        ));
        out.push(format!("{o}\t{ttl}\tIN\tNS\t{ns}"));
    }
    out.extend(node.a().iter().map(|ip| format!("{o}\t{ttl}\tIN\tA\t{ip}")));
    out.extend(
        node.aaaa()
            .iter()
            .map(|ip| format!("{o}\t{ttl}\tIN\tAAAA\t{ip}")),
    );
    if let Some(c) = node.cname() {
        out.push(format!("{o}\t{ttl}\tIN\tCNAME\t{}", name_to_string(c)));
    }
    for s in node.srv() {
        let t = name_to_string(&s.target);
        out.push(format!(
            "{o}\t{ttl}\tIN\tSRV\t{} {} {} {t}",
            s.priority, s.weight, s.port
        ));
    }
    out.extend(
        node.ptr()
            .iter()
            .map(|p| format!("{o}\t{ttl}\tIN\tPTR\t{}", name_to_string(p))),
    );
    if let Some((txt, t)) = node.txt() {
        out.push(format!(
            "{o}\t{t}\tIN\tTXT\t\"{}\"",
            String::from_utf8_lossy(txt)
        ));
    }
    out
}

/// Sort key: labels from the root down, so a zone reads top to bottom.
fn tree_order(name: &[u8]) -> Vec<Vec<u8>> {
    let mut labels: Vec<Vec<u8>> = svcnet_wire::labels(name).map(<[u8]>::to_vec).collect();
    labels.reverse();
    labels
}

/// What an owner name of a zone file stands for.
enum Entry<'s> {
    Node(&'s Node),
    /// A verified pod record (kept as an address, not a node).
    Pod(IpAddr),
}

/// Every zone of the snapshot with records, as master files one after another.
pub fn render_zones(snap: &Snapshot) -> String {
    let mut out = String::new();
    for (zi, zone) in snap.zones.iter().enumerate() {
        let mut entries: Vec<(Cow<'_, [u8]>, Entry<'_>)> = snap
            .nodes
            .iter()
            .filter(|(_, n)| usize::from(n.zone) == zi)
            .map(|(k, n)| (Cow::Borrowed(k), Entry::Node(n)))
            .collect();
        if zone.kind == ZoneKind::Cluster {
            let apex = name_to_string(&zone.apex);
            for (ns, ip) in snap.pods() {
                let owner = format!(
                    "{}.{}.pod.{apex}",
                    dashed_ip(ip),
                    String::from_utf8_lossy(ns)
                );
                if let Ok(wire) = encode_name(&owner) {
                    entries.push((Cow::Owned(wire), Entry::Pod(ip)));
                }
            }
        }
        let lines_total: usize = entries
            .iter()
            .map(|(_, e)| match e {
                Entry::Node(n) => {
                    usize::from(!n.apex)
                        * (n.a().len() + n.aaaa().len() + n.srv().len() + n.ptr().len())
                }
                Entry::Pod(_) => 1,
            })
            .sum();
        if zone.kind == ZoneKind::Reverse && lines_total == 0 {
            continue;
        }
        entries.sort_by_cached_key(|(k, _)| tree_order(k));
        let _ = writeln!(
            out,
            "$ORIGIN {}\n$TTL {}",
            name_to_string(&zone.apex),
            snap.ttl
        );
        for (owner, entry) in entries {
            let lines = match entry {
                Entry::Node(node) => rr_lines(snap, &owner, node),
                Entry::Pod(ip) => {
                    let (o, ttl) = (name_to_string(&owner), snap.ttl);
                    let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
                    vec![format!("{o}\t{ttl}\tIN\t{rtype}\t{ip}")]
                }
            };
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}
