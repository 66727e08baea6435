//! A page's bytes as text, the way a browser decodes them: the BOM, then the `Content-Type`'s
//! charset, then a `<meta charset>` in the first 1024 bytes, then UTF-8 (HTML's encoding
//! sniffing, without the guesswork). Bytes that are not valid in the encoding become U+FFFD, as
//! in a browser: a page is read for its items, never republished byte for byte.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

/// How far `<meta charset>` is looked for (the HTML standard's prescan reads 1024 bytes).
const PRESCAN: usize = 1024;

/// The page as text. A JSON API's reply is UTF-8 (RFC 8259 §8.1) whatever its header says.
pub fn decode<'b>(bytes: &'b [u8], charset: Option<&str>, json: bool) -> Cow<'b, str> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        return encoding.decode_without_bom_handling(&bytes[bom..]).0;
    }
    let encoding = if json {
        UTF_8
    } else {
        charset
            .and_then(|label| Encoding::for_label(label.trim().as_bytes()))
            .or_else(|| meta_charset(&bytes[..bytes.len().min(PRESCAN)]))
            .unwrap_or(UTF_8)
    };
    encoding.decode_without_bom_handling(bytes).0
}

/// The encoding a `<meta charset="…">` or `<meta http-equiv … content="…; charset=…">` names.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&lower[from..], b"<meta") {
        let start = from + at;
        let end = lower[start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(c) = memchr::memmem::find(tag, b"charset=") {
            let value = &tag[c + b"charset=".len()..];
            let value = value
                .strip_prefix(b"\"")
                .or_else(|| value.strip_prefix(b"'"))
                .unwrap_or(value);
            let stop = value
                .iter()
                .position(|b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'>'))
                .unwrap_or(value.len());
            // A page that says UTF-16 in ASCII is not UTF-16 (the standard reads it as UTF-8).
            return Encoding::for_label(&value[..stop]).map(|e| e.output_encoding());
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_then_meta_then_utf8() {
        let (gbk, _, _) = encoding_rs::GBK.encode("<title>新闻</title>");
        let mut page = br#"<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk">"#.to_vec();
        page.extend_from_slice(&gbk);
        assert!(decode(&page, None, false).contains("新闻"));
        assert!(!decode(&page, Some("windows-1252"), false).contains("新闻"));
        let utf8 = "<meta charset='utf-8'><p>中文</p>".as_bytes();
        assert!(decode(utf8, None, false).contains("中文"));
        assert!(decode("{\"t\":\"中文\"}".as_bytes(), Some("iso-8859-1"), true).contains("中文"));
        assert_eq!(decode(b"\xff", None, false), "\u{fffd}");
    }
}
