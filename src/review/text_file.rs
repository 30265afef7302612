//! Text files the counsellor writes for the reviewer (a passphrase file, a
//! reply written in an editor) come from Linux or Windows editors alike.
//! Windows tools add what Linux ones do not: Notepad may start a file with a
//! UTF-8 byte-order mark, Windows PowerShell 5's `>` writes UTF-16 with one,
//! and every Windows editor ends lines with CR LF. Read as they are, the
//! passphrase would carry a stray mark and the melder would get `\r` in
//! every line; so they are decoded here to plain UTF-8 with LF line ends.

use std::path::Path;

use zeroize::Zeroizing;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
const UTF16LE_BOM: &[u8] = b"\xff\xfe";
const UTF16BE_BOM: &[u8] = b"\xfe\xff";

/// Reads a text file made on Linux or Windows: UTF-8 with or without a
/// byte-order mark, or UTF-16 (little or big endian) with one; CR LF line
/// ends become LF. Zeroized on drop, as it may hold a passphrase.
pub fn read_text_file(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(std::fs::read(path)?);
    decode_text(&bytes)
}

/// The decoding of [`read_text_file`], for bytes already read (standard input).
pub fn decode_text(bytes: &[u8]) -> std::io::Result<Zeroizing<String>> {
    let not_text = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a text file (expected UTF-8, or UTF-16 with a byte-order mark)",
        )
    };
    let text: Zeroizing<String> = if let Some(rest) = bytes.strip_prefix(UTF8_BOM) {
        Zeroizing::new(
            std::str::from_utf8(rest)
                .map_err(|_| not_text())?
                .to_owned(),
        )
    } else if let Some(rest) = bytes.strip_prefix(UTF16LE_BOM) {
        utf16(rest, u16::from_le_bytes).ok_or_else(not_text)?
    } else if let Some(rest) = bytes.strip_prefix(UTF16BE_BOM) {
        utf16(rest, u16::from_be_bytes).ok_or_else(not_text)?
    } else {
        Zeroizing::new(
            std::str::from_utf8(bytes)
                .map_err(|_| not_text())?
                .to_owned(),
        )
    };
    if text.contains("\r\n") {
        Ok(Zeroizing::new(text.replace("\r\n", "\n")))
    } else {
        Ok(text)
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<Zeroizing<String>> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Zeroizing<Vec<u16>> = Zeroizing::new(
        bytes
            .chunks_exact(2)
            .map(|pair| unit([pair[0], pair[1]]))
            .collect(),
    );
    let mut text = Zeroizing::new(String::with_capacity(units.len()));
    for c in char::decode_utf16(units.iter().copied()) {
        text.push(c.ok()?);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        let mut bytes = UTF16LE_BOM.to_vec();
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn windows_files_read_like_linux_ones() {
        let linux = "lantaarn vijver kompas één\ntweede regel\n";
        for bytes in [
            linux.as_bytes().to_vec(),
            linux.replace('\n', "\r\n").into_bytes(),
            [UTF8_BOM, linux.replace('\n', "\r\n").as_bytes()].concat(),
            utf16le(&linux.replace('\n', "\r\n")),
            [
                UTF16BE_BOM.to_vec(),
                linux.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            ]
            .concat(),
        ] {
            assert_eq!(decode_text(&bytes).unwrap().as_str(), linux, "{bytes:?}");
        }
        // A lone CR is the author's, not a line end: it stays (and `show`
        // makes it visible).
        assert_eq!(decode_text(b"a\rb").unwrap().as_str(), "a\rb");
    }

    #[test]
    fn what_is_not_text_is_refused() {
        for bytes in [
            &b"\xff\xd8\xff\xe0 a JPEG"[..],
            &b"\xef\xbb\xbf\xc3"[..],
            &b"\xff\xfe\x41"[..],
            // An unpaired surrogate.
            &b"\xff\xfe\x00\xd8\x41\x00"[..],
        ] {
            let e = decode_text(bytes).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{bytes:?}");
        }
    }

    #[test]
    fn reads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass.txt");
        std::fs::write(&path, utf16le("geheime zin\r\n")).unwrap();
        assert_eq!(read_text_file(&path).unwrap().as_str(), "geheime zin\n");
        assert!(read_text_file(&dir.path().join("absent")).is_err());
    }
}
