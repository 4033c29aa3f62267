//! Query packets with every knob a test needs (RFC 1035 §4.1, RFC 6891 §6).

use std::fmt;

use svcnet_wire::{class, encode_name, type_name};

/// The OPT record of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdnsSpec {
    /// Requestor's UDP payload size.
    pub payload: u16,
    /// EDNS version (0 is the only one; more must get BADVERS).
    pub version: u8,
    /// The DO bit.
    pub dnssec_ok: bool,
}

impl Default for EdnsSpec {
    fn default() -> Self {
        Self {
            payload: 1232,
            version: 0,
            dnssec_ok: false,
        }
    }
}

/// One query, as a client would send it. The defaults are dig's: RD set,
/// class IN, no EDNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerySpec {
    /// The name, case as it is to be sent (trailing dot optional).
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// Message ID.
    pub id: u16,
    /// Recursion desired.
    pub rd: bool,
    /// Checking disabled.
    pub cd: bool,
    /// OPCODE.
    pub opcode: u8,
    /// The OPT record, if any.
    pub edns: Option<EdnsSpec>,
    /// A QDCOUNT to write instead of 1 (the question is still sent once).
    pub qdcount: Option<u16>,
}

impl QuerySpec {
    /// A standard query for `name` and `qtype`.
    pub fn new(name: &str, qtype: u16) -> Self {
        Self {
            name: name.to_owned(),
            qtype,
            qclass: class::IN,
            id: 0x5356,
            rd: true,
            cd: false,
            opcode: 0,
            edns: None,
            qdcount: None,
        }
    }

    /// With an OPT record advertising `payload`.
    pub fn edns(mut self, payload: u16) -> Self {
        self.edns = Some(EdnsSpec {
            payload,
            ..EdnsSpec::default()
        });
        self
    }

    /// With message ID `id`.
    pub fn id(mut self, id: u16) -> Self {
        self.id = id;
        self
    }

    /// The name with a trailing dot, as it appears in a decoded response.
    pub fn fqdn(&self) -> String {
        if self.name.ends_with('.') {
            self.name.clone()
        } else {
            format!("{}.", self.name)
        }
    }

    /// The largest UDP response the client accepts (SPEC §2 "Protocol"):
    /// 512 without EDNS, else its payload size within 512..=1232.
    pub fn udp_limit(&self) -> usize {
        self.edns
            .map_or(512, |e| usize::from(e.payload.clamp(512, 1232)))
    }

    /// The wire form. Panics if the name is not a valid DNS name.
    #[track_caller]
    pub fn packet(&self) -> Vec<u8> {
        let name = match encode_name(&self.name) {
            Ok(n) => n,
            Err(e) => panic!("query name {:?}: {e}", self.name),
        };
        let mut flags: u16 = u16::from(self.opcode & 0xf) << 11;
        if self.rd {
            flags |= 0x0100;
        }
        if self.cd {
            flags |= 0x0010;
        }
        let mut p = Vec::with_capacity(name.len() + 32);
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&self.qdcount.unwrap_or(1).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&u16::from(self.edns.is_some()).to_be_bytes());
        p.extend_from_slice(&name);
        p.extend_from_slice(&self.qtype.to_be_bytes());
        p.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some(e) = self.edns {
            p.push(0); // root owner
            p.extend_from_slice(&svcnet_wire::rtype::OPT.to_be_bytes());
            p.extend_from_slice(&e.payload.to_be_bytes());
            p.extend_from_slice(&[0, e.version]);
            p.extend_from_slice(&(if e.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
            p.extend_from_slice(&[0, 0]); // no options
        }
        p
    }
}

impl fmt::Display for QuerySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, type_name(self.qtype))?;
        if self.qclass != class::IN {
            write!(f, " class={}", self.qclass)?;
        }
        if let Some(e) = self.edns {
            write!(f, " edns={}", e.payload)?;
            if e.version != 0 {
                write!(f, " edns-version={}", e.version)?;
            }
            if e.dnssec_ok {
                f.write_str(" do")?;
            }
        }
        if !self.rd {
            f.write_str(" norec")?;
        }
        if self.cd {
            f.write_str(" cd")?;
        }
        if self.opcode != 0 {
            write!(f, " opcode={}", self.opcode)?;
        }
        if let Some(n) = self.qdcount {
            write!(f, " qdcount={n}")?;
        }
        Ok(())
    }
}
