//! Numbers in 7-bit groups (LEB128), for the packed forms: a small number
//! (a length, a count) in one byte; and byte strings after their length.

/// Appends `n` in 7-bit groups, lowest first.
pub fn put_varint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads a number written by [`put_varint`] off the front of `buf`.
pub fn take_varint(buf: &mut &[u8]) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..usize::BITS).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        n |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Takes the first `n` bytes off the front of `buf`.
pub fn take_bytes<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = buf.split_at_checked(n)?;
    *buf = rest;
    Some(head)
}

/// Appends `bytes` after their length.
pub fn put_prefixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// Reads bytes written by [`put_prefixed`] off the front of `buf`.
pub fn take_prefixed<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = take_varint(buf)?;
    take_bytes(buf, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_in_as_few_bytes_as_they_need() {
        for (n, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (usize::MAX, 10),
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            assert_eq!(buf.len(), len, "{n}");
            buf.push(0xff);
            let mut rest = &buf[..];
            assert_eq!(take_varint(&mut rest), Some(n));
            assert_eq!(rest, [0xff]);
        }
        // Cut short, or longer than a number can be: none.
        assert_eq!(take_varint(&mut &[0x80][..]), None);
        assert_eq!(take_varint(&mut &[0xff; 11][..]), None);
    }

    #[test]
    fn byte_strings_read_back_after_their_length() {
        let mut buf = Vec::new();
        put_prefixed(&mut buf, b"web-0");
        put_prefixed(&mut buf, &[7; 200]);
        put_prefixed(&mut buf, b"");
        assert_eq!(buf.len(), 1 + 5 + 2 + 200 + 1);
        let mut rest = &buf[..];
        assert_eq!(take_prefixed(&mut rest), Some(&b"web-0"[..]));
        assert_eq!(take_prefixed(&mut rest), Some(&[7; 200][..]));
        assert_eq!(take_prefixed(&mut rest), Some(&b""[..]));
        assert_eq!(take_prefixed(&mut rest), None);
        // A length past the end: none.
        assert_eq!(take_prefixed(&mut &[3, b'a'][..]), None);
    }
}
