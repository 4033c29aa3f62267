//! Incremental updates: the next snapshot as a copy of the last one with
//! only the changed services' names rebuilt (ARCHITECTURE "Updates are
//! incremental").
//!
//! Every name under `<svc>.<ns>.svc.<zone>` belongs to that one service, so
//! a service's change is: build its old records and its new records apart
//! (with the same code as a full build), take the old names out of the
//! snapshot and put the new ones in. The snapshot's tables are in shared
//! shards, so the copy costs the shards the change touches. What a service
//! contributes elsewhere is kept in the [`Ledger`]: the addresses it offers
//! a PTR for (the canonical PTR of each touched address is chosen again
//! among all its candidates) and the reverse zones' empty non-terminals.
//!
//! A change that reaches further is built whole: a namespace that appears
//! or goes (its empty non-terminals, in every zone), the multi-cluster
//! objects and exported services (the clusterset zone), another cluster
//! than the local one, a reverse name outside the configured reverse zones
//! (a zone of its own), a new configuration, or a change too large to be
//! worth following (a relist that replaced much).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use svcnet_model::{Cidr, EndpointSlice, Kind, Object, Service};
use svcnet_wire::{reverse_wire, suffixes};

use crate::build::{
    Builder, Ledger, PtrKey, PtrKeys, ptr_targets, ptrs_by_address, reverse_apex, reverse_ents,
    unique, wire,
};
use crate::snapshot::{Node, PodMode, Snapshot};
use crate::store::{Changes, ClusterStore, Index, key};

/// What one update did, for the log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Whether the snapshot was updated in place (else built whole).
    pub incremental: bool,
    /// Services whose records were rebuilt.
    pub services: usize,
    /// Pods whose addresses changed.
    pub pods: usize,
    /// Addresses whose PTR was chosen again.
    pub addresses: usize,
    /// Why the snapshot was built whole (none: it was not, or it was the
    /// first).
    pub built_whole_because: Option<&'static str>,
}

/// Services whose records change: (namespace, name) → the old slices of
/// theirs that changed or went.
type Touched = BTreeMap<(String, String), Vec<EndpointSlice>>;

/// The services a change touches, or why it reaches further than a
/// service's own names.
fn touched(store: &ClusterStore, changes: &Changes) -> Result<Touched, &'static str> {
    let mut services = Touched::new();
    for (key, old) in &changes.objects {
        let ns = &key.namespace;
        match key.kind {
            Kind::Service => {
                services.entry((ns.clone(), key.name.clone())).or_default();
            }
            Kind::Endpoints | Kind::EndpointSlice => {
                for obj in old.iter().flat_map(|p| p.objects(store.files())) {
                    if let Object::EndpointSlice { slice, .. } = obj {
                        services
                            .entry((ns.clone(), slice.service.clone()))
                            .or_default()
                            .push(slice);
                    }
                }
                for service in store.slice_services(key) {
                    services
                        .entry((ns.clone(), service.to_owned()))
                        .or_default();
                }
            }
            // Workloads make pods and slices before the store; the snapshot
            // reads neither (beyond their namespace, checked apart).
            Kind::StatefulSet | Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet => {}
            Kind::Pod => {}
            Kind::Namespace => return Err("a Namespace changed"),
            Kind::ServiceExport | Kind::ServiceImport | Kind::ImportedEndpointSlice => {
                return Err("a multi-cluster object changed");
            }
        }
    }
    Ok(services)
}

/// A service's records built apart: its names in the cluster zones and its
/// PTR candidates.
struct Built {
    nodes: Vec<(Box<[u8]>, Node)>,
    ptrs: BTreeMap<IpAddr, PtrKeys>,
}

/// Builds the records of service `svc` (absent: none) with `slices`, in
/// every cluster zone; keeps the names at and under its own name.
fn build_service(
    index: &Index,
    like: &Snapshot,
    zones: &[(u16, &str)],
    (ns, name): (&str, &str),
    svc: Option<&Service>,
    slices: Vec<&EndpointSlice>,
) -> Built {
    let mut b = Builder::scratch(index.config(), like);
    if let Some(svc) = svc {
        for (i, (z, zone)) in zones.iter().enumerate() {
            b.service(*z, zone, svc, &slices, i == 0);
        }
    }
    let bases: Vec<Box<[u8]>> = zones
        .iter()
        .filter_map(|(_, zone)| wire(&format!("{name}.{ns}.svc.{zone}")))
        .collect();
    let nodes = b
        .snap
        .nodes
        .into_entries()
        .filter(|(k, _)| bases.iter().any(|base| is_at_or_under(k, base)))
        .collect();
    Built {
        nodes,
        ptrs: ptrs_by_address(b.ptrs, &b.ptr_services),
    }
}

/// Whether wire name `name` is `base` or below it (label by label).
fn is_at_or_under(name: &[u8], base: &[u8]) -> bool {
    suffixes(name).find(|s| s.len() <= base.len()) == Some(base)
}

/// The next snapshot as an update of `prev`, or why the changes need a
/// full build. `ledger` goes with `prev` and is brought up to date; after
/// an error it must be thrown away.
pub(crate) fn update(
    index: &Index,
    prev: &Snapshot,
    ledger: &mut Ledger,
    changes: &[Changes],
    generation: u64,
) -> Result<(Snapshot, UpdateStats), &'static str> {
    let cfg = index.config();
    let (local_id, store) = index.local_cluster().ok_or("no local cluster")?;
    let local = index
        .clusters()
        .iter()
        .position(|(id, _)| id == local_id)
        .ok_or("no local cluster")?;
    for (i, c) in changes.iter().enumerate() {
        if c.overflow {
            return Err("too many changes to follow one by one");
        }
        if i != local && (!c.objects.is_empty() || !c.pods.is_empty()) {
            return Err("another cluster changed (the clusterset zone)");
        }
    }
    let changes = changes.get(local).ok_or("no local cluster")?;
    let services = touched(store, changes)?;
    // A namespace that appears or goes changes empty non-terminals in every
    // zone, the clusterset zone's included.
    let first_zone = cfg.zones.first().ok_or("no cluster zone")?;
    let namespaces: BTreeSet<&str> = changes
        .objects
        .keys()
        .map(|k| k.namespace.as_str())
        .chain(changes.pods.keys().map(|(ns, _)| &**ns))
        .collect();
    for ns in namespaces {
        let before =
            wire(&format!("{ns}.svc.{first_zone}")).is_some_and(|k| prev.nodes.contains_key(&k));
        if before != store.has_namespace(ns) {
            return Err("a namespace appeared or went");
        }
    }
    // Past this many services the copies of the shards cost about what a
    // full build does.
    if services.len() > 256 && services.len() * 16 > prev.nodes.len() {
        return Err("too many services changed");
    }
    if services
        .keys()
        .any(|(ns, name)| store.contains(&key(Kind::ServiceExport, ns, name)))
    {
        return Err("an exported service changed (the clusterset zone)");
    }
    let zones: Vec<(u16, &str)> = cfg
        .zones
        .iter()
        .map(|zone| Some((prev.zone_index.get(&wire(zone)?)?, zone.as_str())))
        .collect::<Option<_>>()
        .ok_or("a cluster zone is missing")?;

    let mut snap = prev.clone();
    snap.generation = generation;
    snap.complete = index.is_complete();
    let mut stats = UpdateStats {
        incremental: true,
        services: services.len(),
        pods: changes.pods.len(),
        addresses: 0,
        built_whole_because: None,
    };
    // Each touched address, and the candidates of the services built so far.
    let mut addresses: BTreeSet<IpAddr> = BTreeSet::new();
    let mut candidates: FxHashMap<u32, BTreeMap<IpAddr, PtrKeys>> = FxHashMap::default();
    for ((ns, name), changed_slices) in services {
        let old_svc = match changes.objects.get(&key(Kind::Service, &ns, &name)) {
            Some(old) => old.as_ref().and_then(|p| p.service(store.files())),
            None => store.service(&ns, &name),
        };
        let current = store.slices_of(&ns, &name);
        let old_slices: Vec<&EndpointSlice> = current
            .iter()
            .filter(|(k, _)| !changes.objects.contains_key(*k))
            .map(|(_, s)| s)
            .chain(&changed_slices)
            .collect();
        let new_slices = current.iter().map(|(_, s)| s).collect();
        let id_of = (ns.as_str(), name.as_str());
        let old = build_service(index, prev, &zones, id_of, old_svc.as_ref(), old_slices);
        let new = build_service(
            index,
            prev,
            &zones,
            id_of,
            store.service(&ns, &name).as_ref(),
            new_slices,
        );
        let (mut before, mut after) = (0, 0);
        for (k, _) in &old.nodes {
            before += snap.nodes.remove(k).map_or(0, |n| n.records());
        }
        for (k, mut node) in new.nodes {
            node.sort_srv();
            after += node.records();
            before += snap.nodes.remove(&k).map_or(0, |n| n.records());
            snap.nodes.insert_new(&k, node);
        }
        snap.adjust_records(before, after);
        let id = ledger.service_id(&ns, &name);
        for ip in old.ptrs.keys().filter(|ip| !new.ptrs.contains_key(ip)) {
            ledger.set_ptr_owner(*ip, id, false);
            addresses.insert(*ip);
        }
        for ip in new.ptrs.keys() {
            ledger.set_ptr_owner(*ip, id, true);
            addresses.insert(*ip);
        }
        candidates.insert(id, new.ptrs);
    }
    if cfg.pods == PodMode::Verified {
        update_pods(&mut snap, ledger, store, changes);
    }
    stats.addresses = addresses.len();
    let reverse = cfg.reverse_zones();
    for ip in addresses {
        let mut keys: BTreeSet<PtrKey> = BTreeSet::new();
        for &id in ledger.ptr_owners(ip) {
            let built = match candidates.entry(id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let (ns, name) = ledger.service_name(id).ok_or("unknown service")?;
                    let slices = store.slices_of(ns, name);
                    let built = build_service(
                        index,
                        prev,
                        &zones,
                        (ns, name),
                        store.service(ns, name).as_ref(),
                        slices.iter().map(|(_, s)| s).collect(),
                    );
                    e.insert(built.ptrs)
                }
            };
            if let Some(k) = built.get(&ip) {
                keys.extend(k.iter().cloned());
            }
        }
        set_ptr(
            &mut snap,
            ledger,
            &reverse,
            ip,
            ptr_targets(cfg, keys.iter().map(|k| &k.3)),
        )
        .ok_or("an address outside the reverse zones has a PTR")?;
    }
    Ok((snap, stats))
}

/// Brings the verified pod addresses up to date with the changed pods.
/// The ledger counts the addresses several pods of a namespace share
/// (host-network pods), so one of them going does not take the address.
fn update_pods(snap: &mut Snapshot, ledger: &mut Ledger, store: &ClusterStore, changes: &Changes) {
    for (key, old) in &changes.pods {
        let new = store.pod(key);
        let new_ips = new.as_ref().map_or(&[][..], |p| p.ips());
        let old_ips = old.as_ref().map_or(&[][..], |p| p.ips());
        let ns = key.0.to_ascii_lowercase();
        for ip in unique(old_ips).filter(|ip| !new_ips.contains(ip)) {
            ledger.release_pod(snap, ns.as_bytes(), ip);
        }
        for ip in unique(new_ips).filter(|ip| !old_ips.contains(ip)) {
            ledger.hold_pod(snap, ns.as_bytes(), ip);
        }
    }
}

/// Sets the PTR targets of `ip` (none: its name goes, with the empty
/// non-terminals only it needed). `None` when its name would be outside
/// the configured reverse zones (a zone of its own: a full build).
fn set_ptr(
    snap: &mut Snapshot,
    ledger: &mut Ledger,
    reverse: &[Cidr],
    ip: IpAddr,
    targets: Vec<Arc<[u8]>>,
) -> Option<()> {
    let cidr = reverse.iter().find(|c| c.contains(ip))?;
    let z = snap.zone_index.get(&wire(&reverse_apex(*cidr))?)?;
    let apex_len = snap.zones[usize::from(z)].apex.len();
    let key = reverse_wire(ip);
    // A reverse name holds PTR records only: built again as a full build
    // would build it.
    let old = snap.nodes.get(&key).map(|n| (n.records(), n.apex));
    let mut node = Node::new(z);
    node.apex = old.is_some_and(|(_, apex)| apex);
    for t in targets {
        node.push_ptr(t);
    }
    snap.adjust_records(old.map_or(0, |(records, _)| records), node.records());
    let keep = !node.is_empty() || node.apex;
    match (old.is_some(), keep) {
        (false, false) => {}
        (false, true) => {
            snap.nodes.insert_new(&key, node);
            for ent in reverse_ents(&key, apex_len) {
                ledger.hold_reverse_ent(ent);
                if !snap.nodes.contains_key(ent) {
                    snap.nodes.insert_new(ent, Node::new(z));
                }
            }
        }
        (true, true) => {
            if let Some(n) = snap.nodes.get_mut(&key) {
                n.assign(node);
            }
        }
        (true, false) => {
            snap.nodes.remove(&key);
            for ent in reverse_ents(&key, apex_len) {
                if ledger.release_reverse_ent(ent)
                    && snap.nodes.get(ent).is_some_and(|n| n.is_empty() && !n.apex)
                {
                    snap.nodes.remove(ent);
                }
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::is_at_or_under;

    #[test]
    fn names_at_or_under_a_service_label_by_label() {
        let base = b"\x01s\x02ns\x00";
        assert!(is_at_or_under(b"\x01s\x02ns\x00", base));
        assert!(is_at_or_under(b"\x03web\x01s\x02ns\x00", base));
        // Same octets at the end, not at a label boundary.
        assert!(!is_at_or_under(b"\x03x\x01s\x02ns\x00", base));
        assert!(!is_at_or_under(b"\x02ns\x00", base));
        // A length past the end.
        assert!(!is_at_or_under(b"\x3fab", base));
    }
}
