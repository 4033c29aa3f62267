//! Responses read back by hickory-proto, the oracle (ARCHITECTURE "Crates
//! we chose"): a reply it cannot parse is a failure, whatever our own
//! decoder thinks of it.

use std::fmt;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{RData, Record};
use svcnet_wire::{rcode_name, type_name};

use crate::packet::EdnsSpec;

/// Header flags of a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// QR: it is a response.
    pub qr: bool,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired (copied from the query).
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.qr, "qr"),
            (self.aa, "aa"),
            (self.tc, "tc"),
            (self.rd, "rd"),
            (self.ra, "ra"),
        ];
        let set: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        f.write_str(&set.join(" "))
    }
}

/// One resource record in master-file form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rr {
    /// Owner name with its trailing dot, case as sent.
    pub owner: String,
    /// TTL.
    pub ttl: u32,
    /// `IN`, or `CLASSn`.
    pub class: String,
    /// `A`, `SRV`, … or `TYPEn`.
    pub rtype: String,
    /// Record data as a master file writes it (names absolute, TXT quoted).
    pub rdata: String,
}

impl fmt::Display for Rr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.owner, self.ttl, self.class, self.rtype, self.rdata
        )
    }
}

/// A response, decoded by hickory-proto and normalised for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Message ID.
    pub id: u16,
    /// OPCODE.
    pub opcode: u8,
    /// Header flags.
    pub flags: Flags,
    /// RCODE including the EDNS extension (16 = BADVERS).
    pub rcode: u16,
    /// The question section: name as sent, type, class.
    pub question: Vec<(String, u16, u16)>,
    /// Answer section.
    pub answer: Vec<Rr>,
    /// Authority section.
    pub authority: Vec<Rr>,
    /// Additional section, without the OPT pseudo-record.
    pub additional: Vec<Rr>,
    /// The OPT record.
    pub edns: Option<EdnsSpec>,
    /// Size on the wire.
    pub len: usize,
}

fn rr(record: &Record) -> Rr {
    let rdata = match &record.data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::NS(n) => n.0.to_ascii(),
        RData::CNAME(n) => n.0.to_ascii(),
        RData::PTR(n) => n.0.to_ascii(),
        RData::SRV(s) => format!(
            "{} {} {} {}",
            s.priority,
            s.weight,
            s.port,
            s.target.to_ascii()
        ),
        RData::SOA(s) => format!(
            "{} {} {} {} {} {} {}",
            s.mname.to_ascii(),
            s.rname.to_ascii(),
            s.serial,
            s.refresh as u32,
            s.retry as u32,
            s.expire as u32,
            s.minimum
        ),
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| {
                let text = String::from_utf8_lossy(s);
                format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let class = u16::from(record.dns_class);
    Rr {
        owner: record.name.to_ascii(),
        ttl: record.ttl,
        class: if class == 1 {
            "IN".to_owned()
        } else {
            format!("CLASS{class}")
        },
        rtype: type_name(u16::from(record.record_type())),
        rdata,
    }
}

impl Response {
    /// Decodes a response with hickory-proto. Fails on anything it rejects.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let m = Message::from_vec(bytes)
            .map_err(|e| format!("hickory-proto cannot parse the response ({e}): {bytes:02x?}"))?;
        let md = &m.metadata;
        Ok(Self {
            id: md.id,
            opcode: u8::from(md.op_code),
            flags: Flags {
                qr: md.message_type == MessageType::Response,
                aa: md.authoritative,
                tc: md.truncation,
                rd: md.recursion_desired,
                ra: md.recursion_available,
            },
            rcode: u16::from(md.response_code),
            question: m
                .queries
                .iter()
                .map(|q| {
                    (
                        q.name.to_ascii(),
                        u16::from(q.query_type),
                        u16::from(q.query_class),
                    )
                })
                .collect(),
            answer: m.answers.iter().map(rr).collect(),
            authority: m.authorities.iter().map(rr).collect(),
            additional: m.additionals.iter().map(rr).collect(),
            edns: m.edns.as_ref().map(|e| EdnsSpec {
                payload: e.max_payload(),
                version: e.version(),
                dnssec_ok: e.flags().dnssec_ok,
            }),
            len: bytes.len(),
        })
    }

    /// The RCODE's mnemonic (`NOERROR`, `NXDOMAIN`, `BADVERS`…).
    pub fn rcode_name(&self) -> String {
        rcode_name(self.rcode)
    }

    /// The answer section as `owner ttl IN TYPE rdata` lines, sorted.
    pub fn answer_lines(&self) -> Vec<String> {
        sorted_lines(&self.answer)
    }

    /// The authority section as sorted lines.
    pub fn authority_lines(&self) -> Vec<String> {
        sorted_lines(&self.authority)
    }

    /// The additional section (OPT excluded) as sorted lines.
    pub fn additional_lines(&self) -> Vec<String> {
        sorted_lines(&self.additional)
    }

    /// The rdata of the answer records of type `rtype`, in answer order.
    pub fn answer_data(&self, rtype: &str) -> Vec<String> {
        self.answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.rdata.clone())
            .collect()
    }
}

fn sorted_lines(rrs: &[Rr]) -> Vec<String> {
    let mut lines: Vec<String> = rrs.iter().map(ToString::to_string).collect();
    lines.sort();
    lines
}

impl fmt::Display for Response {
    /// dig-like, for failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            ";; {} id={} flags: {} ({} bytes)",
            self.rcode_name(),
            self.id,
            self.flags,
            self.len
        )?;
        if let Some(e) = self.edns {
            writeln!(
                f,
                ";; OPT payload={} version={}{}",
                e.payload,
                e.version,
                if e.dnssec_ok { " do" } else { "" }
            )?;
        }
        for (name, t, c) in &self.question {
            writeln!(f, ";; QUESTION {name} {} class={c}", type_name(*t))?;
        }
        for (title, rrs) in [
            ("ANSWER", &self.answer),
            ("AUTHORITY", &self.authority),
            ("ADDITIONAL", &self.additional),
        ] {
            if !rrs.is_empty() {
                writeln!(f, ";; {title}")?;
                for r in rrs {
                    writeln!(f, "{r}")?;
                }
            }
        }
        Ok(())
    }
}
