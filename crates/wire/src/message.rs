//! Reading whole DNS messages that others wrote (an upstream's answer):
//! integers, compressed names, records. The query parser ([`crate::parse_query`])
//! stays separate, since a query is read under stricter rules and without
//! allocating.

use crate::MAX_NAME_LEN;

/// The big-endian `u16` at `at`.
pub fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// The big-endian `u32` at `at`.
pub fn be32(msg: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(msg.get(at..at + 4)?.try_into().ok()?))
}

/// The position after the possibly compressed name at `pos`, without
/// following pointers.
pub fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0xc0 => return (pos + 2 <= msg.len()).then_some(pos + 2),
            0 if len == 0 => return Some(pos + 1),
            0 => pos += 1 + usize::from(len),
            _ => return None,
        }
    }
}

/// The possibly compressed name at `pos` in uncompressed wire form, with
/// its case as written, and the position after the name as stored. Every
/// pointer must go strictly backwards, so the walk ends; a name longer than
/// DNS allows is refused.
pub fn read_name(msg: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::with_capacity(64);
    let mut at = pos;
    let mut after = None;
    let mut floor = pos;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0xc0 => {
                let target = usize::from(len & 0x3f) << 8 | usize::from(*msg.get(at + 1)?);
                if target >= floor {
                    return None;
                }
                after.get_or_insert(at + 2);
                floor = target;
                at = target;
            }
            0 => {
                name.push(len);
                if len == 0 {
                    return (name.len() <= MAX_NAME_LEN).then(|| (name, after.unwrap_or(at + 1)));
                }
                name.extend_from_slice(msg.get(at + 1..at + 1 + usize::from(len))?);
                if name.len() > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + usize::from(len);
            }
            _ => return None,
        }
    }
}

/// The position after the question section (every question of QDCOUNT).
pub fn skip_questions(msg: &[u8]) -> Option<usize> {
    let mut pos = 12;
    for _ in 0..be16(msg, 4)? {
        pos = skip_name(msg, pos)? + 4;
    }
    (pos <= msg.len()).then_some(pos)
}

/// One resource record's place in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAt {
    /// Where its fixed part (type, class, TTL, RDLENGTH) starts, after the
    /// owner name.
    pub fixed: usize,
    /// Its type.
    pub rtype: u16,
    /// Where its RDATA starts.
    pub rdata: usize,
    /// The position after it.
    pub end: usize,
}

/// The record at `pos`: where its parts are.
pub fn record_at(msg: &[u8], pos: usize) -> Option<RecordAt> {
    let fixed = skip_name(msg, pos)?;
    let rtype = be16(msg, fixed)?;
    let rdata = fixed + 10;
    let end = rdata + usize::from(be16(msg, fixed + 8)?);
    (end <= msg.len()).then_some(RecordAt {
        fixed,
        rtype,
        rdata,
        end,
    })
}

/// Whether `name` is `parent` or under it (wire form, ASCII case ignored).
pub fn is_under(name: &[u8], parent: &[u8]) -> bool {
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if name[pos..].eq_ignore_ascii_case(parent) {
            return true;
        }
        if len == 0 {
            return false;
        }
        pos += 1 + usize::from(len);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_loops_forward_pointers_and_cut_names_are_rejected() {
        assert!(read_name(&[0xc0, 0], 0).is_none());
        assert!(read_name(&[1, b'a', 0xc0, 2], 0).is_none());
        assert_eq!(
            read_name(&[0, 1, b'A', 0xc0, 0], 1),
            Some((vec![1, b'A', 0], 5))
        );
        assert!(read_name(&[0x80], 0).is_none());
        assert!(skip_name(&[1, b'a', 0xc0], 0).is_none());
        assert_eq!(skip_name(&[1, b'a', 0xc0, 0], 0), Some(4));
        assert!(skip_questions(&[0; 11]).is_none());
    }

    #[test]
    fn names_under_a_parent_any_case() {
        let name = crate::encode_name("WWW.Example.org").unwrap();
        let parent = crate::encode_name("example.ORG").unwrap();
        assert!(is_under(&name, &parent));
        assert!(is_under(&name, &[0]));
        assert!(!is_under(&parent, &name));
    }
}
