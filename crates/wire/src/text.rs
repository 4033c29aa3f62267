//! Reading a response back as text, dig style, for `svcnet resolve` (which
//! prints exactly the bytes `serve` would send).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::rtype;

/// A response, decoded for display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// RCODE (with the EDNS extension).
    pub rcode: u16,
    /// Header flags as dig names them (`qr aa rd`…).
    pub flags: Vec<&'static str>,
    /// Answer, authority, additional: one master-file line per record.
    pub sections: [Vec<String>; 3],
}

/// The mnemonic of a type.
pub fn type_name(t: u16) -> String {
    match t {
        rtype::A => "A".into(),
        rtype::NS => "NS".into(),
        rtype::CNAME => "CNAME".into(),
        rtype::SOA => "SOA".into(),
        rtype::PTR => "PTR".into(),
        rtype::TXT => "TXT".into(),
        rtype::AAAA => "AAAA".into(),
        rtype::SRV => "SRV".into(),
        rtype::OPT => "OPT".into(),
        rtype::AXFR => "AXFR".into(),
        rtype::IXFR => "IXFR".into(),
        rtype::ANY => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

/// The type named by a mnemonic (`A`, `srv`, `TYPE65`).
pub fn parse_type(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    (1..=u16::MAX)
        .take(256)
        .find(|t| type_name(*t) == up)
        .or_else(|| up.strip_prefix("TYPE")?.parse().ok())
}

/// The mnemonic of a response code.
pub fn rcode_name(r: u16) -> String {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        other => format!("RCODE{other}"),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from(self.u16()?) << 16 | u32::from(self.u16()?))
    }

    fn name(&mut self) -> Option<String> {
        let (wire, after) = crate::message::read_name(self.buf, self.pos)?;
        self.pos = after;
        Some(crate::name_to_string(&wire))
    }
}

/// Decodes a response; `None` when it is malformed.
pub fn decode_response(buf: &[u8]) -> Option<Decoded> {
    let mut r = Reader { buf, pos: 0 };
    let _id = r.u16()?;
    let flags = r.u16()?;
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    let mut d = Decoded {
        rcode: flags & 0xf,
        ..Decoded::default()
    };
    for (bit, name) in [(15, "qr"), (10, "aa"), (9, "tc"), (8, "rd"), (7, "ra")] {
        if flags & (1 << bit) != 0 {
            d.flags.push(name);
        }
    }
    for _ in 0..counts[0] {
        r.name()?;
        r.u32()?;
    }
    for (s, &count) in counts[1..].iter().enumerate() {
        for _ in 0..count {
            let owner = r.name()?;
            let (t, class, ttl, len) = (r.u16()?, r.u16()?, r.u32()?, usize::from(r.u16()?));
            let end = r.pos + len;
            if t == rtype::OPT {
                d.rcode |= u16::from((ttl >> 24) as u8) << 4;
                r.pos = end;
                continue;
            }
            let data = match t {
                rtype::A if len == 4 => {
                    Ipv4Addr::new(r.u8()?, r.u8()?, r.u8()?, r.u8()?).to_string()
                }
                rtype::AAAA if len == 16 => {
                    let b: [u8; 16] = buf.get(r.pos..r.pos + 16)?.try_into().ok()?;
                    Ipv6Addr::from(b).to_string()
                }
                rtype::NS | rtype::CNAME | rtype::PTR => r.name()?,
                rtype::SRV => format!("{} {} {} {}", r.u16()?, r.u16()?, r.u16()?, r.name()?),
                rtype::SOA => {
                    let (m, rn) = (r.name()?, r.name()?);
                    format!(
                        "{m} {rn} {} {} {} {} {}",
                        r.u32()?,
                        r.u32()?,
                        r.u32()?,
                        r.u32()?,
                        r.u32()?
                    )
                }
                rtype::TXT => {
                    let mut s = String::new();
                    let mut p = r.pos;
                    while p < end {
                        let l = usize::from(*buf.get(p)?);
                        let txt = String::from_utf8_lossy(buf.get(p + 1..p + 1 + l)?);
                        let _ = write!(s, "{}\"{txt}\"", if s.is_empty() { "" } else { " " });
                        p += 1 + l;
                    }
                    s
                }
                _ => format!("\\# {len}"),
            };
            r.pos = end;
            let class = if class == 1 {
                "IN".to_owned()
            } else {
                format!("CLASS{class}")
            };
            d.sections[s].push(format!("{owner}\t{ttl}\t{class}\t{}\t{data}", type_name(t)));
        }
    }
    Some(d)
}
