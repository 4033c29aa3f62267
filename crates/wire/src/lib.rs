//! DNS wire format (RFC 1035 §4, RFC 6891 EDNS(0)) for svcnet's hot path.
//!
//! Sits between the network workers and the answering engine: [`parse_query`]
//! reads a query in place (no copies, no allocation) and [`Writer`] builds a
//! response into a caller-owned buffer with name compression and whole-RRset
//! truncation (SPEC §2 "Protocol"). hickory-proto is only a test oracle here.

mod chase;
pub mod message;
mod name;
mod query;
mod text;
mod writer;

pub use chase::{chase_query, cname_target, splice_answers};
pub use name::{
    NameError, dashed_ip, encode_name, fold_name, labels, name_to_string, reverse_name,
    reverse_wire, suffixes,
};
pub use query::{Edns, ParseError, Query, parse_query, question_name};
pub use text::{Decoded, decode_response, parse_type, rcode_name, type_name};
pub use writer::{Compression, Rdata, Section, Writer};

/// Resource record types svcnet answers or recognises.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Pointer.
    pub const PTR: u16 = 12;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service locator.
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record.
    pub const OPT: u16 = 41;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Full zone transfer.
    pub const AXFR: u16 = 252;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// Classes.
pub mod class {
    /// Internet.
    pub const IN: u16 = 1;
    /// Chaos (`version.bind`).
    pub const CH: u16 = 3;
    /// Any class.
    pub const ANY: u16 = 255;
}

/// Response codes (the low four bits; BADVERS uses the EDNS extension).
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error.
    pub const FORMERR: u16 = 1;
    /// Server failure.
    pub const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub const NOTIMP: u16 = 4;
    /// Refused.
    pub const REFUSED: u16 = 5;
    /// Bad EDNS version (extended: 16).
    pub const BADVERS: u16 = 16;
}

/// The largest UDP payload we advertise and send (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The smallest payload any client accepts (RFC 1035).
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// The maximum length of a wire-format name (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
