//! The index: the single writer between sources and the DNS engine
//! (ARCHITECTURE "Data flows one way").
//!
//! It applies [`Delta`]s per cluster ([`Index::apply`]) and builds immutable
//! [`Snapshot`]s ([`Index::build`]): every name of SPEC §2 and §3 with its
//! records, the empty non-terminals that make NODATA differ from NXDOMAIN,
//! one canonical PTR per address (SPEC §2.1), and the zones we are
//! authoritative for. Readers share a snapshot through `Arc`; nothing in it
//! changes after it is built.

mod build;
mod numbered;
mod packed;
mod pods;
mod service_ids;
mod shards;
mod snapshot;
mod store;
mod update;

pub use snapshot::{Node, Nodes, PodMode, Snapshot, Srv, Zone, ZoneIndex, ZoneKind};
pub use store::{ClusterStore, Index, IndexConfig};
pub use update::UpdateStats;
