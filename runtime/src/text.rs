//! Agent ids and escaping of text that came from a module.

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The agent id of a module: `sha256:<hex>` of its bytes.
pub fn agent_id(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    push_hex(&mut s, &digest);
    s
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Appends the lowercase hex digits of `bytes` (a table, not `fmt`: module bytes of
/// whole generations go through here).
fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Why text is not hex: what [`decode_hex`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// An odd number of characters.
    #[error("hex of odd length {0}")]
    OddLength(usize),
    /// A byte other than the ASCII digits `0-9`, `a-f`, `A-F`.
    #[error("byte {byte:#04x} at {index} is not a hex digit")]
    NotADigit {
        /// The byte.
        byte: u8,
        /// Where it stands.
        index: usize,
    },
}

/// Bytes of a hex string: an even number of the digits `0-9`, `a-f`, `A-F` and
/// nothing else (no sign, no space, no `0x`).
pub fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    hex::decode(s).map_err(|e| match e {
        // `hex` gives the byte as a `char` (`c as char`): it is below 256.
        hex::FromHexError::InvalidHexCharacter { c, index } => HexError::NotADigit {
            byte: u8::try_from(c).unwrap_or(u8::MAX),
            index,
        },
        hex::FromHexError::OddLength | hex::FromHexError::InvalidStringLength => {
            HexError::OddLength(s.len())
        }
    })
}

/// [`decode_hex`] for callers that need no reason: `None` for anything but hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    decode_hex(s).ok()
}

/// Checks that `id` is a well-formed agent id (`sha256:` and 64 lowercase hex digits).
pub fn is_agent_id(id: &str) -> bool {
    id.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Escapes text that came from a module so it is safe on a terminal and in a page:
/// control characters, bidirectional overrides and backslashes become `\n`, `\u{1b}`, `\\`.
/// Printable text, including non-ASCII letters, is kept.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes bytes that came from a module: invalid UTF-8 is shown as `\x..`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Escapes a module's text form for display: like [`escape`] but keeps its line breaks
/// and indentation.
pub fn escape_multiline(text: &str) -> String {
    text.split('\n')
        .map(|line| escape(line).replace("\\t", "\t"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_escaping() {
        let id = agent_id(b"");
        assert_eq!(
            id,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_agent_id(&id));
        assert!(!is_agent_id("sha256:../../etc/passwd"));
        assert_eq!(escape("a\u{1b}[31mb\\"), "a\\u{1b}[31mb\\\\");
        assert_eq!(escape("line\nnext"), "line\\nnext");
        assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(escape("héllo"), "héllo");
        assert_eq!(escape_bytes(b"ok\xff"), "ok\\xff");
        assert_eq!(escape_multiline("(module\n  \u{7})"), "(module\n  \\u{7})");
        assert_eq!(to_hex(b"\x00\xffA"), "00ff41");
        assert_eq!(from_hex("00ff41").as_deref(), Some(&b"\x00\xffA"[..]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("").as_deref(), Some(&b""[..]));
        assert_eq!(from_hex("aBcD").as_deref(), Some(&b"\xab\xcd"[..]));
        // u8::from_str_radix would take a sign: "+f+f" is not hex
        for bad in ["+f+f", "-f", " f", "f ", "0x", "0g", "\u{e9}0", "ff0"] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
        assert_eq!(decode_hex("ff0"), Err(HexError::OddLength(3)));
        assert_eq!(
            decode_hex("0g"),
            Err(HexError::NotADigit {
                byte: b'g',
                index: 1
            })
        );
        assert_eq!(
            decode_hex("\u{e9}").map_err(|e| e.to_string()),
            Err("byte 0xc3 at 0 is not a hex digit".to_string())
        );
    }
}
