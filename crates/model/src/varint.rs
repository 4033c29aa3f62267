//! Numbers in 7-bit groups (LEB128), for the packed forms: a small number
//! (a length, a count) in one byte.

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
}
