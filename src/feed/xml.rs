//! A validating walk over an XML document held in memory.
//!
//! The guard and the formatter both drive this walk, so "well-formed" means the same thing to
//! both, and every event comes with the byte span it was read from: the formatter copies those
//! spans instead of re-serialising, which keeps prefixes, attribute order and references as written.

use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::FeedError;

/// Receives every event of a well-formed document, in order.
///
/// `depth` is the number of open ancestors of the node: 0 for the root element and for
/// anything outside it; an end tag gets the same depth as its start tag.
pub(crate) trait Visitor<'a> {
    fn visit(&mut self, event: &Event<'a>, span: Range<usize>, depth: usize) -> Result<(), FeedError>;
}

/// Walks `src` to the end, checking well-formedness, and hands each event to `visitor`.
///
/// Refuses documents whose DOCTYPE declares entities before anything is expanded: flarefeed
/// never expands them, which is what makes billion-laughs and external-entity documents harmless.
pub(crate) fn walk<'a>(src: &'a str, visitor: &mut impl Visitor<'a>) -> Result<(), FeedError> {
    check_chars(src)?;
    let mut reader = Reader::from_str(src);
    let config = reader.config_mut();
    config.trim_text(false);
    config.expand_empty_elements = false;
    config.check_end_names = true;
    config.check_comments = true;

    let mut root_seen = false;
    // Where each open element's start tag begins; its length is the depth.
    let mut open: Vec<usize> = Vec::new();
    let mut last = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(src, reader.error_position() as usize, describe(&e)))?;
        let end = reader.buffer_position() as usize;
        let span = last..end;
        last = end;
        let depth = open.len();
        match &event {
            Event::Decl(_) => {
                if span.start != 0 {
                    return Err(malformed(src, span.start, "XML declaration is not at the very start"));
                }
            }
            Event::DocType(text) => {
                if root_seen {
                    return Err(malformed(src, span.start, "DOCTYPE after the root element"));
                }
                if contains_entity_declaration(text) {
                    return Err(FeedError::EntityDeclarations);
                }
            }
            Event::Start(start) | Event::Empty(start) => {
                if depth == 0 {
                    if root_seen {
                        return Err(malformed(src, span.start, "more than one root element"));
                    }
                    root_seen = true;
                }
                check_attributes(src, span.start, start)?;
                if matches!(event, Event::Start(_)) {
                    open.push(span.start);
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(text) => {
                if depth == 0 && !is_xml_whitespace(text) {
                    return Err(malformed(src, span.start, "text outside the root element"));
                }
            }
            Event::CData(_) => {
                if depth == 0 {
                    return Err(malformed(src, span.start, "CDATA outside the root element"));
                }
            }
            Event::GeneralRef(reference) => {
                if depth == 0 {
                    return Err(malformed(src, span.start, "reference outside the root element"));
                }
                check_reference(reference).map_err(|problem| malformed(src, span.start, problem))?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => {
                if let Some(&unclosed) = open.last() {
                    let name = tag_name(&src[unclosed..]);
                    return Err(malformed(
                        src,
                        src.len(),
                        format!("document ends before <{name}> is closed (truncated?)"),
                    ));
                }
                if !root_seen {
                    return Err(malformed(src, src.len(), "no root element"));
                }
                visitor.visit(&event, span, 0)?;
                return Ok(());
            }
        }
        // An end tag has been popped already: it gets its start tag's depth.
        let visit_depth = if matches!(event, Event::End(_)) {
            open.len()
        } else {
            depth
        };
        visitor.visit(&event, span, visit_depth)?;
    }
}

/// quick-xml's words, plus the likely cause when the input simply stops.
fn describe(error: &quick_xml::Error) -> String {
    let text = error.to_string();
    if text.contains("end of input") {
        format!("{text} (the document is truncated?)")
    } else {
        text
    }
}

/// XML whitespace: the only characters allowed to be dropped between elements.
pub(crate) fn is_xml_whitespace(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The qualified name of a start or empty tag read at `span_start`, sliced from the source in O(1):
/// quick-xml already knows its length.
pub(crate) fn element_name<'a>(src: &'a str, span_start: usize, start: &BytesStart<'_>) -> &'a str {
    let from = span_start + 1;
    &src[from..from + start.name().as_ref().len()]
}

/// The qualified name of a raw tag (`<a:b x="1">` → `a:b`), for the rare places without an event.
pub(crate) fn tag_name(raw: &str) -> &str {
    let inner = raw.trim_start_matches('<').trim_start_matches('/');
    let end = inner
        .bytes()
        .position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>'))
        .unwrap_or(inner.len());
    &inner[..end]
}

/// The part of a qualified name after its prefix.
pub(crate) fn local_name(qname: &str) -> &str {
    match qname.bytes().rposition(|b| b == b':') {
        Some(colon) => &qname[colon + 1..],
        None => qname,
    }
}

/// The value of attribute `key` on a start tag, unescaped only for the predefined entities.
pub(crate) fn attribute(start: &BytesStart<'_>, key: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key.as_bytes())
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

fn contains_entity_declaration(doctype: &[u8]) -> bool {
    doctype.windows(8).any(|w| w.eq_ignore_ascii_case(b"<!ENTITY"))
}

/// XML 1.0 allows no C0 controls but tab, newline and carriage return, and neither U+FFFE nor U+FFFF.
///
/// This scan touches every byte, so it runs branch-free over 32-byte chunks (which the compiler
/// vectorises) and looks closely only at chunks holding a suspect byte.
fn check_chars(src: &str) -> Result<(), FeedError> {
    const CHUNK: usize = 32;
    let bytes = src.as_bytes();
    let suspect = |b: u8| (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r') | (b == 0xEF);
    let chunks = bytes.chunks_exact(CHUNK);
    let tail_start = bytes.len() - chunks.remainder().len();
    for (n, chunk) in chunks.enumerate() {
        if chunk.iter().fold(false, |hit, &b| hit | suspect(b)) {
            check_chars_at(src, n * CHUNK, (n + 1) * CHUNK)?;
        }
    }
    check_chars_at(src, tail_start, bytes.len())
}

fn check_chars_at(src: &str, from: usize, to: usize) -> Result<(), FeedError> {
    let bytes = src.as_bytes();
    for i in from..to {
        let b = bytes[i];
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            return Err(malformed(
                src,
                i,
                format!("control character U+{b:04X} is not allowed in XML"),
            ));
        }
        if b == 0xEF && bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) {
            return Err(malformed(src, i, "noncharacter U+FFFE/U+FFFF is not allowed in XML"));
        }
    }
    Ok(())
}

fn check_attributes(src: &str, at: usize, start: &BytesStart<'_>) -> Result<(), FeedError> {
    let mut attributes = start.attributes();
    attributes.with_checks(true);
    for attribute in attributes {
        let attribute = attribute.map_err(|e| malformed(src, at, format!("bad attribute: {e}")))?;
        let value = attribute.value.as_ref();
        if value.contains(&b'<') {
            return Err(malformed(src, at, "'<' inside an attribute value"));
        }
        check_references_in(value).map_err(|problem| malformed(src, at, problem))?;
    }
    Ok(())
}

fn check_references_in(mut value: &[u8]) -> Result<(), String> {
    while let Some(amp) = value.iter().position(|&b| b == b'&') {
        let rest = &value[amp + 1..];
        let semi = rest
            .iter()
            .position(|&b| b == b';')
            .ok_or_else(|| "'&' without ';' in an attribute value".to_string())?;
        check_reference_name(&rest[..semi])?;
        value = &rest[semi + 1..];
    }
    Ok(())
}

fn check_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<(), String> {
    check_reference_name(reference)
}

/// Only the five predefined entities and legal character references exist without a DTD.
fn check_reference_name(name: &[u8]) -> Result<(), String> {
    match name {
        b"amp" | b"lt" | b"gt" | b"quot" | b"apos" => Ok(()),
        [b'#', b'x', hex @ ..] => char_ref(hex, 16, name),
        [b'#', dec @ ..] => char_ref(dec, 10, name),
        _ => Err(format!("undefined entity &{};", String::from_utf8_lossy(name))),
    }
}

fn char_ref(digits: &[u8], radix: u32, name: &[u8]) -> Result<(), String> {
    let bad = || format!("invalid character reference &{};", String::from_utf8_lossy(name));
    let text = std::str::from_utf8(digits).map_err(|_| bad())?;
    let code = u32::from_str_radix(text, radix).map_err(|_| bad())?;
    let legal = matches!(code, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
    if legal { Ok(()) } else { Err(bad()) }
}

/// A not-well-formed error with a line and column a person can find.
pub(crate) fn malformed(src: &str, offset: usize, detail: impl Into<String>) -> FeedError {
    let offset = offset.min(src.len());
    let before = &src.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    FeedError::NotWellFormed {
        line,
        column,
        detail: detail.into(),
    }
}

/// The document proper: without a byte-order mark or leading whitespace, which servers and
/// Chrome's unwrapping leave in front of the XML declaration.
pub(crate) fn document(text: &str) -> &str {
    text.trim_start_matches('\u{feff}')
        .trim_start_matches([' ', '\t', '\n', '\r'])
}
