//! Domain names in wire form (RFC 1035 §3.1) and the textual forms svcnet
//! derives from addresses (dashed IPs, SPEC §2; reverse names, RFC 1035 §3.5
//! and RFC 3596 §2.5).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::MAX_NAME_LEN;

/// Why a textual name cannot be a DNS name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A label is empty (`a..b`).
    #[error("empty label")]
    EmptyLabel,
    /// A label is longer than 63 octets.
    #[error("label longer than 63 octets")]
    LabelTooLong,
    /// The whole name is longer than 255 octets in wire form.
    #[error("name longer than 253 characters")]
    NameTooLong,
}

/// Encodes a dotted name (trailing dot optional, `.` alone is the root) into
/// wire form, keeping its case.
pub fn encode_name(text: &str) -> Result<Vec<u8>, NameError> {
    let mut out = Vec::with_capacity(text.len() + 2);
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            let len = u8::try_from(label.len()).map_err(|_| NameError::LabelTooLong)?;
            if len > 63 {
                return Err(NameError::LabelTooLong);
            }
            out.push(len);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong);
    }
    Ok(out)
}

/// Copies a wire name into `out` with ASCII letters folded to lower case
/// (the lookup key form; RFC 4343), returning the folded slice.
pub fn fold_name<'o>(wire: &[u8], out: &'o mut [u8; MAX_NAME_LEN]) -> &'o [u8] {
    let n = wire.len().min(MAX_NAME_LEN);
    for (o, b) in out.iter_mut().zip(&wire[..n]) {
        *o = b.to_ascii_lowercase();
    }
    &out[..n]
}

/// Iterates over the labels of an uncompressed wire name.
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(pos)?);
        if len == 0 {
            return None;
        }
        let label = wire.get(pos + 1..pos + 1 + len)?;
        pos += 1 + len;
        Some(label)
    })
}

/// The suffixes of an uncompressed wire name: the name itself, then each
/// ancestor, longest first, down to the root.
pub fn suffixes(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = Some(0);
    std::iter::from_fn(move || {
        let at = next?;
        let suffix = wire.get(at..)?;
        let len = usize::from(*suffix.first()?);
        next = (len != 0).then_some(at + 1 + len);
        Some(suffix)
    })
}

/// Renders a wire name as text with a trailing dot, escaping as RFC 1035 §5.1
/// does for master files.
pub fn name_to_string(wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len() + 1);
    for label in labels(wire) {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b';' | b'(' | b')' => {
                    s.push('\\');
                    s.push(char::from(b));
                }
                0x21..=0x7e => s.push(char::from(b)),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('.');
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// The dashed form of an address used for endpoint and pod names (SPEC §2:
/// `10-244-1-5`; IPv6 `:`→`-`, with `0` added where the result would start or
/// end with `-`, as CoreDNS does).
pub fn dashed_ip(ip: IpAddr) -> String {
    if let IpAddr::V4(v4) = ip {
        // Every endpoint of a cluster has one: written directly, at its size.
        let mut s = String::with_capacity(15);
        let mut buf = [0; 3];
        for (i, &o) in v4.octets().iter().enumerate() {
            if i > 0 {
                s.push('-');
            }
            s.extend(octet_digits(o, &mut buf).iter().map(|&d| char::from(d)));
        }
        return s;
    }
    let mut s = ip.to_string().replace([':', '.'], "-");
    if s.ends_with('-') {
        s.push('0');
    }
    if s.starts_with('-') {
        s.insert(0, '0');
    }
    s
}

/// The reverse-lookup name of an address (`5.1.244.10.in-addr.arpa.`, or the
/// 32 nibbles under `ip6.arpa.`).
pub fn reverse_name(ip: IpAddr) -> String {
    let mut s = String::with_capacity(73);
    match ip {
        IpAddr::V4(v4) => {
            for o in v4.octets().iter().rev() {
                let _ = write!(s, "{o}.");
            }
            s.push_str("in-addr.arpa.");
        }
        IpAddr::V6(v6) => {
            for o in v6.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", o & 0xf, o >> 4);
            }
            s.push_str("ip6.arpa.");
        }
    }
    s
}

/// The decimal digits of an octet (ASCII, no leading zeros), written
/// into `buf`: an IPv4 address's parts in its dashed and reverse names.
fn octet_digits(o: u8, buf: &mut [u8; 3]) -> &[u8] {
    *buf = [b'0' + o / 100, b'0' + o / 10 % 10, b'0' + o % 10];
    let skip = if o >= 100 {
        0
    } else if o >= 10 {
        1
    } else {
        2
    };
    &buf[skip..]
}

/// The reverse name of `ip` in wire form (lower case), as
/// `encode_name(&reverse_name(ip))` would make it, without the text.
pub fn reverse_wire(ip: IpAddr) -> Vec<u8> {
    let mut w = Vec::with_capacity(72);
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0; 3];
            for &o in v4.octets().iter().rev() {
                let digits = octet_digits(o, &mut buf);
                w.push(digits.len() as u8);
                w.extend_from_slice(digits);
            }
            w.extend_from_slice(b"\x07in-addr\x04arpa\x00");
        }
        IpAddr::V6(v6) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for o in v6.octets().iter().rev() {
                w.extend_from_slice(&[1, HEX[usize::from(o & 0xf)], 1, HEX[usize::from(o >> 4)]]);
            }
            w.extend_from_slice(b"\x03ip6\x04arpa\x00");
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_run_from_the_name_to_the_root() {
        let all: Vec<&[u8]> = suffixes(b"\x01a\x02bc\x00").collect();
        assert_eq!(all, [&b"\x01a\x02bc\x00"[..], b"\x02bc\x00", b"\x00"]);
        // A length past the end stops at the broken label.
        assert_eq!(suffixes(b"\x05ab").count(), 1);
        assert_eq!(suffixes(b"").count(), 0);
    }

    #[test]
    fn encodes_and_renders() {
        let w = encode_name("Web-0.nginx.default.svc.cluster.local.").unwrap();
        assert_eq!(w[0], 5);
        assert_eq!(name_to_string(&w), "Web-0.nginx.default.svc.cluster.local.");
        assert_eq!(encode_name(".").unwrap(), vec![0]);
        assert_eq!(encode_name("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(encode_name(&"a".repeat(64)), Err(NameError::LabelTooLong));
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(encode_name(&long), Err(NameError::NameTooLong));
    }

    #[test]
    fn folds_case() {
        let w = encode_name("WeB.Cluster.LOCAL").unwrap();
        let mut buf = [0; MAX_NAME_LEN];
        assert_eq!(
            fold_name(&w, &mut buf),
            encode_name("web.cluster.local").unwrap()
        );
    }

    #[test]
    fn spec_2_dashed_names() {
        assert_eq!(dashed_ip("10.244.1.5".parse().unwrap()), "10-244-1-5");
        for o in 0..=255u8 {
            let ip = IpAddr::from([o, 255 - o, o / 10, o % 100]);
            assert_eq!(dashed_ip(ip), ip.to_string().replace('.', "-"));
        }
        assert_eq!(dashed_ip("2001:db8::1".parse().unwrap()), "2001-db8--1");
        assert_eq!(dashed_ip("2001:db8::".parse().unwrap()), "2001-db8--0");
        assert_eq!(dashed_ip("::1".parse().unwrap()), "0--1");
    }

    #[test]
    fn reverse_wire_is_the_reverse_name_encoded() {
        let mut ips: Vec<IpAddr> = (0..=255u8)
            .map(|o| IpAddr::from([o, 255 - o, o / 10, o % 100]))
            .collect();
        ips.extend(
            ["::", "::1", "2001:db8::abcd:ef01", "fd00:10:244::1:2"]
                .map(|s| s.parse::<IpAddr>().unwrap()),
        );
        for ip in ips {
            assert_eq!(
                reverse_wire(ip),
                encode_name(&reverse_name(ip)).unwrap(),
                "{ip}"
            );
        }
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.96.0.1".parse().unwrap()),
            "1.0.96.10.in-addr.arpa."
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."));
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa."));
    }
}
