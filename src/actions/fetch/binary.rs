//! Binary-file detection as the `isbinaryfile` npm package (5.0.x) does it,
//! which decides whether `fetch:template` renders a file or copies its bytes:
//! the first 512 bytes (plus 3 so a UTF-8 sequence is not cut) are inspected
//! for BOMs, NUL bytes, the share of suspicious bytes and protobuf framing.

use std::io::{self, Read};
use std::path::Path;

const MAX_BYTES: usize = 512;
const UTF8_BOUNDARY_RESERVE: usize = 3;

/// Reads the head of `path` and tells whether it looks binary.
pub fn is_binary_file(path: &Path) -> io::Result<bool> {
    let mut head = Vec::with_capacity(MAX_BYTES + UTF8_BOUNDARY_RESERVE);
    std::fs::File::open(path)?
        .take((MAX_BYTES + UTF8_BOUNDARY_RESERVE) as u64)
        .read_to_end(&mut head)?;
    Ok(is_binary(&head))
}

/// `isBinaryCheck` of `isbinaryfile`, over at most the first 515 bytes.
pub fn is_binary(bytes: &[u8]) -> bool {
    let total = bytes.len().min(MAX_BYTES + UTF8_BOUNDARY_RESERVE);
    let buf = &bytes[..total];
    if total == 0 {
        return false;
    }
    let scan = total.min(MAX_BYTES);
    if buf.starts_with(&[0xef, 0xbb, 0xbf])
        || buf.starts_with(&[0x00, 0x00, 0xfe, 0xff])
        || buf.starts_with(&[0xff, 0xfe, 0x00, 0x00])
        || buf.starts_with(&[0x84, 0x31, 0x95, 0x33])
    {
        return false;
    }
    if buf.starts_with(b"%PDF-") {
        return true;
    }
    if buf.starts_with(&[0xfe, 0xff]) || buf.starts_with(&[0xff, 0xfe]) {
        return false;
    }

    let at = |i: usize| buf.get(i).copied().unwrap_or(0);
    let continuation = |b: u8| (0x80..=0xbf).contains(&b);
    let mut suspicious = 0usize;
    let mut i = 0;
    while i < scan {
        let b = buf[i];
        if b == 0 {
            return true;
        }
        if !(7..=14).contains(&b) && !(32..=127).contains(&b) {
            // A valid UTF-8 sequence is not suspicious; the index moves past
            // what was examined either way, as in the original loop.
            if (0xc0..=0xdf).contains(&b) && i + 1 < total {
                i += 1;
                if continuation(at(i)) {
                    i += 1;
                    continue;
                }
            } else if (0xe0..=0xef).contains(&b) && i + 2 < total {
                i += 1;
                if continuation(at(i)) && continuation(at(i + 1)) {
                    i += 2;
                    continue;
                }
            } else if (0xf0..=0xf7).contains(&b) && i + 3 < total {
                i += 1;
                if continuation(at(i)) && continuation(at(i + 1)) && continuation(at(i + 2)) {
                    i += 3;
                    continue;
                }
            }
            suspicious += 1;
            if i >= 32 && suspicious * 100 / scan > 10 {
                return true;
            }
        }
        i += 1;
    }
    if suspicious * 100 / scan > 10 {
        return true;
    }
    suspicious > 1 && is_binary_proto(&buf[..scan])
}

/// A tolerant reader: reading past the end sets `error` instead of failing.
struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
    error: bool,
}

impl Reader<'_> {
    fn next_byte(&mut self) -> u8 {
        if self.offset >= self.buf.len() || self.error {
            self.error = true;
            return 0xff;
        }
        let b = self.buf[self.offset];
        self.offset += 1;
        b
    }

    fn skip(&mut self, len: i32) {
        for _ in 0..len.max(0) {
            if self.error {
                return;
            }
            self.next_byte();
        }
    }

    /// JavaScript's `|` and `<<` work on 32-bit integers; so does this.
    fn var_int(&mut self) -> i32 {
        let mut value: i32 = 0;
        let mut idx = 0u32;
        while !self.error {
            let b = self.next_byte();
            value |= ((u32::from(b) & 0x7f) << ((7 * idx) % 32)) as i32;
            if b & 0x80 == 0 {
                break;
            }
            if idx >= 10 {
                self.error = true;
                break;
            }
            idx += 1;
        }
        value
    }

    fn message(&mut self) -> bool {
        let key = self.var_int();
        match key & 0x7 {
            0 => {
                self.var_int();
                true
            }
            1 => {
                self.skip(8);
                true
            }
            2 => {
                let len = self.var_int();
                self.skip(len);
                true
            }
            5 => {
                self.skip(4);
                true
            }
            _ => false,
        }
    }
}

fn is_binary_proto(buf: &[u8]) -> bool {
    let mut reader = Reader {
        buf,
        offset: 0,
        error: false,
    };
    let mut messages = 0;
    loop {
        if !reader.message() && !reader.error {
            return false;
        }
        if reader.error {
            break;
        }
        messages += 1;
    }
    messages > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_are_told_apart() {
        assert!(!is_binary(b""));
        assert!(!is_binary(b"hello ${{ values.name }}\n"));
        assert!(!is_binary("héllo wörld — ✓ 😀\n".repeat(40).as_bytes()));
        assert!(!is_binary(&[0xef, 0xbb, 0xbf, 0, 0, 0]));
        assert!(!is_binary(&[0xff, 0xfe, b'a', 0]));
        assert!(is_binary(b"%PDF-1.4 ..."));
        assert!(is_binary(b"abc\0def"));
        // PNG signature and header.
        assert!(is_binary(&[
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52
        ]));
        // Latin-1 text: a few high bytes among plenty of ASCII.
        let mut latin1 = b"caf\xe9 ".repeat(3);
        latin1.extend(b"plain ascii text ".repeat(10));
        assert!(!is_binary(&latin1));
        // Mostly high bytes that are not UTF-8.
        assert!(is_binary(&[0x80u8; 100]));
        // A NUL beyond the first 512 bytes is not seen.
        let mut late_nul = vec![b'a'; 600];
        late_nul[550] = 0;
        assert!(!is_binary(&late_nul));
    }

    #[test]
    fn a_multibyte_character_across_the_512_byte_boundary_is_text() {
        let mut text = vec![b'a'; 511];
        text.extend("€".as_bytes());
        assert!(!is_binary(&text));
    }
}
