//! Bytes to text, honouring a BOM or the encoding the XML declaration names.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

use super::FeedError;

/// Decodes an XML document to UTF-8 text.
///
/// The BOM wins, then the declaration's `encoding`, then UTF-8. Bytes that are not valid in the
/// chosen encoding are an error, never replaced, since a replacement would change the feed.
pub fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, FeedError> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return decode_as(encoding, &bytes[bom_len..]);
    }
    match declared_encoding(bytes) {
        Some(label) => match Encoding::for_label(label.as_bytes()) {
            Some(encoding) => decode_as(encoding, bytes),
            None => Err(FeedError::UnknownEncoding { label }),
        },
        None => decode_as(UTF_8, bytes),
    }
}

/// [`decode`] for a document from a site: the BOM wins, then the declaration's `encoding`, then
/// `charset` (the `Content-Type`'s), then UTF-8.
pub fn decode_with_charset<'b>(bytes: &'b [u8], charset: Option<&str>) -> Result<Cow<'b, str>, FeedError> {
    if Encoding::for_bom(bytes).is_some() || declared_encoding(bytes).is_some() {
        return decode(bytes);
    }
    match charset {
        Some(label) => match Encoding::for_label(label.trim().as_bytes()) {
            Some(encoding) => decode_as(encoding, bytes),
            None => Err(FeedError::UnknownEncoding {
                label: label.chars().take(40).collect(),
            }),
        },
        None => decode_as(UTF_8, bytes),
    }
}

/// [`decode_with_charset`] of bytes the text then takes the place of: UTF-8 keeps its buffer,
/// so a document is held once, not as bytes and text.
pub fn decode_owned(bytes: Vec<u8>, charset: Option<&str>) -> Result<String, FeedError> {
    let skip = match decode_with_charset(&bytes, charset)? {
        Cow::Owned(text) => return Ok(text),
        Cow::Borrowed(text) => bytes.len() - text.len(),
    };
    // Valid UTF-8 after a BOM, which is valid UTF-8 too: checked again, without a copy.
    let mut text = String::from_utf8(bytes).expect("validated as UTF-8 just now");
    text.drain(..skip);
    Ok(text)
}

fn decode_as<'b>(encoding: &'static Encoding, bytes: &'b [u8]) -> Result<Cow<'b, str>, FeedError> {
    if encoding == UTF_8 {
        // The SIMD validator is several times faster on feeds; std finds the offset on failure.
        return match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => Ok(Cow::Borrowed(text)),
            Err(_) => Err(FeedError::InvalidUtf8 {
                offset: std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| 0),
            }),
        };
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| FeedError::BadEncoding {
            encoding: encoding.name().to_string(),
        })
}

/// The `encoding` pseudo-attribute of an ASCII-compatible XML declaration, if any.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(512)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_without_declaration_is_borrowed() {
        assert!(matches!(
            decode("<a>中</a>".as_bytes()).unwrap(),
            Cow::Borrowed("<a>中</a>")
        ));
    }

    #[test]
    fn owned_text_keeps_the_buffer_of_utf8() {
        let bytes = b"\xEF\xBB\xBF<a>\xE4\xB8\xAD</a>".to_vec();
        let at = bytes.as_ptr();
        let text = decode_owned(bytes, None).unwrap();
        assert_eq!((text.as_str(), text.as_ptr()), ("<a>中</a>", at));
        let (gbk, _, _) = encoding_rs::GBK.encode("<a>中文</a>");
        assert_eq!(decode_owned(gbk.into_owned(), Some("gbk")).unwrap(), "<a>中文</a>");
    }

    #[test]
    fn gbk_is_transcoded() {
        let (bytes, _, _) = encoding_rs::GBK.encode("<?xml version=\"1.0\" encoding=\"GBK\"?><a>中文</a>");
        assert_eq!(
            decode(&bytes).unwrap(),
            "<?xml version=\"1.0\" encoding=\"GBK\"?><a>中文</a>"
        );
    }

    #[test]
    fn bom_wins_over_declaration() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xC3\xA9</a>");
        assert_eq!(
            decode(&bytes).unwrap(),
            "<?xml version='1.0' encoding='ISO-8859-1'?><a>é</a>"
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_with_offset() {
        assert_eq!(
            decode(b"<a>\xFF</a>").unwrap_err(),
            FeedError::InvalidUtf8 { offset: 3 }
        );
    }

    #[test]
    fn unknown_label_is_an_error() {
        assert!(matches!(
            decode(b"<?xml version=\"1.0\" encoding=\"x-klingon\"?><a/>").unwrap_err(),
            FeedError::UnknownEncoding { .. }
        ));
    }
}
