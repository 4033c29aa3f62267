//! Test support for svcnet (ARCHITECTURE house style 6: tests named after
//! the spec, data-driven vectors). A dev-dependency only; nothing ships it.
//!
//! It covers the three ends of a DNS test without knowing the engine, so the
//! same vectors run through `svcnet_dns::answer` and over real sockets:
//! - [`Setup`] turns manifests (text or directories, one or several
//!   clusters) plus `serve` options into a [`svcnet_index::Snapshot`] built
//!   exactly as `svcnet serve` builds it ([`svcnet_server::Pipeline`]), or
//!   into the command line that makes `svcnet serve` load the same state;
//! - [`QuerySpec`] makes a query packet with any flags, EDNS size, class,
//!   opcode or question count;
//! - [`Response`] is a reply decoded by hickory-proto, the oracle (anything
//!   it cannot parse is a failure), normalised to `owner ttl IN TYPE rdata`
//!   lines;
//! - [`Vector`] is a directory of manifests and a `queries.txt` of expected
//!   answers (the format is described in [`vector`]), checked with
//!   [`check`].

pub mod kube;
mod packet;
mod response;
mod setup;
pub mod vector;

pub use kube::kube_objects;
pub use packet::{EdnsSpec, QuerySpec};
pub use response::{Flags, Response, Rr};
pub use setup::{Setup, workspace_root};
pub use vector::{
    Case, Expect, Transport, Vector, check, check_transport, load_vector, load_vectors,
    parse_cases, run_vector, vectors_dir,
};
