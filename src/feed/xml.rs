//! A strict XML 1.0 (fifth edition) well-formedness check, as one walk over a document held in
//! memory.
//!
//! The guard and the formatter both drive this walk, so "well-formed" means the same thing to
//! both, and every event comes with the byte span it was read from: the formatter copies those
//! spans instead of re-serialising, which keeps prefixes, attribute order and references as
//! written. The walk is its own lexer, written from the specification's productions, because a
//! lenient parser lets through documents that every strict reader then rejects (`]]>` in text,
//! `<1bad/>`, a second DOCTYPE, a forged `standalone`). The references below (`[5]`, "WFC: …")
//! are the specification's.
//!
//! What it refuses on purpose, although the specification allows it (README, "What the guard
//! refuses"): entity declarations other than internal general entities whose replacement text
//! holds no markup and no reference to another entity; parameter entities and their references;
//! ATTLIST declarations (their defaults would change the document unseen); references to
//! undeclared entities even where an external DTD subset might declare them; and nesting deeper
//! than [`MAX_DEPTH`].

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::LazyLock;

use memchr::{memchr, memchr3, memmem};

use super::FeedError;

/// The deepest element nesting accepted (the root is level 1). libxml2, and so Chrome and most
/// readers, refuse deeper documents unless told otherwise; a feed needs a handful of levels.
pub const MAX_DEPTH: usize = 256;

/// Entity references may expand to at most this many times the document's size…
pub const MAX_EXPANSION_FACTOR: usize = 5;
/// …and at most this many bytes in all, whatever the document's size.
pub const MAX_EXPANSION_BYTES: usize = 8 * 1024 * 1024;

/// One piece of a well-formed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// The XML declaration, with its checked `version` and `standalone` (`yes` or `no`).
    Decl {
        version: &'a str,
        standalone: Option<&'a str>,
    },
    DocType,
    Start(Tag<'a>),
    Empty(Tag<'a>),
    End,
    /// Character data up to the next markup or reference.
    Text {
        whitespace: bool,
    },
    CData,
    /// An entity or character reference in content.
    Ref,
    Comment,
    Pi,
    Eof,
}

/// A checked start or empty-element tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag<'a> {
    /// The qualified name as written.
    pub name: &'a str,
    /// The attributes as written, between the name and `>` or `/>`.
    attributes: &'a str,
}

impl<'a> Tag<'a> {
    /// The raw value of attribute `key` (references left as written).
    pub fn attribute(&self, key: &str) -> Option<&'a str> {
        self.attributes().find(|(name, _)| *name == key).map(|(_, value)| value)
    }

    /// Every attribute as `(qualified name, raw value)`.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut rest = self.attributes;
        std::iter::from_fn(move || {
            let trimmed = rest.trim_start_matches(is_space_char);
            let eq = trimmed.find('=')?;
            let name = trimmed[..eq].trim_end_matches(is_space_char);
            let after = trimmed[eq + 1..].trim_start_matches(is_space_char);
            let quote = after.chars().next()?;
            let value_and_rest = &after[1..];
            let close = value_and_rest.find(quote)?;
            rest = &value_and_rest[close + 1..];
            Some((name, &value_and_rest[..close]))
        })
    }

    pub fn has_attributes(&self) -> bool {
        !self.attributes.bytes().all(is_space)
    }
}

/// Receives every event of a well-formed document, in order.
///
/// `depth` is the number of open ancestors of the node: 0 for the root element and for
/// anything outside it; an end tag gets the same depth as its start tag.
pub(crate) trait Visitor<'a> {
    fn visit(&mut self, event: &Event<'a>, span: Range<usize>, depth: usize) -> Result<(), FeedError>;
}

/// Walks `src` to the end, checking well-formedness, and hands each event to `visitor`.
pub(crate) fn walk<'a>(src: &'a str, visitor: &mut impl Visitor<'a>) -> Result<(), FeedError> {
    check_chars(src)?;
    let mut lexer = Lexer::new(src);
    let bytes = src.as_bytes();
    // The start offset and name of each open element; its length is the depth.
    let mut open: Vec<(usize, &'a str)> = Vec::new();
    let mut root_seen = false;
    let mut doctype_seen = false;
    loop {
        let start = lexer.pos;
        let depth = open.len();
        let Some(&first) = bytes.get(start) else {
            if let Some(&(_, name)) = open.last() {
                return Err(lexer.error_at(
                    src.len(),
                    format!("document ends before <{name}> is closed (truncated?)"),
                ));
            }
            if !root_seen {
                return Err(lexer.error_at(src.len(), "no root element"));
            }
            return visitor.visit(&Event::Eof, start..start, 0);
        };
        let mut visit_depth = depth;
        let event = match first {
            b'<' => match bytes.get(start + 1) {
                Some(b'?') => lexer.pi_or_declaration(false)?,
                Some(b'!') if lexer.starts_with("<!--") => lexer.comment()?,
                Some(b'!') if lexer.starts_with("<![CDATA[") => {
                    if depth == 0 {
                        return Err(lexer.error("CDATA section outside the root element"));
                    }
                    lexer.cdata()?
                }
                Some(b'!') if lexer.starts_with("<!DOCTYPE") => {
                    if root_seen {
                        return Err(lexer.error("DOCTYPE after the root element"));
                    }
                    if doctype_seen {
                        return Err(lexer.error("a second DOCTYPE: a document has at most one"));
                    }
                    doctype_seen = true;
                    lexer.doctype()?
                }
                Some(b'!') => return Err(lexer.error("'<!' that starts no comment, CDATA section or DOCTYPE")),
                Some(b'/') => {
                    let name = lexer.end_tag()?;
                    match open.pop() {
                        Some((_, open_name)) if open_name == name => {}
                        Some((_, open_name)) => {
                            return Err(
                                lexer.error_at(start, format!("end tag </{name}> does not match <{open_name}>"))
                            );
                        }
                        None => return Err(lexer.error_at(start, format!("end tag </{name}> with no open element"))),
                    }
                    visit_depth = open.len();
                    Event::End
                }
                _ => {
                    let event = lexer.start_tag()?;
                    if depth == 0 {
                        if root_seen {
                            return Err(lexer.error_at(start, "more than one root element"));
                        }
                        root_seen = true;
                    }
                    if depth >= MAX_DEPTH {
                        return Err(FeedError::TooDeep { limit: MAX_DEPTH });
                    }
                    if let Event::Start(tag) = event {
                        open.push((start, tag.name));
                    }
                    event
                }
            },
            b'&' => {
                if depth == 0 {
                    return Err(lexer.error("reference outside the root element"));
                }
                lexer.reference()?;
                Event::Ref
            }
            _ => {
                let whitespace = lexer.text()?;
                if depth == 0 && !whitespace {
                    return Err(lexer.error_at(start, "text outside the root element"));
                }
                Event::Text { whitespace }
            }
        };
        visitor.visit(&event, start..lexer.pos, visit_depth)?;
    }
}

/// XML whitespace: the only characters allowed to be dropped between elements.
pub(crate) fn is_xml_whitespace(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| is_space(b))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The part of a qualified name after its prefix.
pub(crate) fn local_name(qname: &str) -> &str {
    match qname.bytes().rposition(|b| b == b':') {
        Some(colon) => &qname[colon + 1..],
        None => qname,
    }
}

/// [`ASCII_NAME`]: a byte that may continue a name, and one that may also start it.
const NAME_CHAR: u8 = 1;
const NAME_START: u8 = 2;

/// `[4] NameStartChar` and `[4a] NameChar` for the ASCII bytes, by table.
const ASCII_NAME: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphabetic() || c == b':' || c == b'_' {
            NAME_START
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            NAME_CHAR
        } else {
            0
        };
        b += 1;
    }
    table
};

/// `[4] NameStartChar`.
fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// `[4a] NameChar`.
fn is_name_char(c: char) -> bool {
    is_name_start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// `[13] PubidChar`.
fn is_pubid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b' ' | b'\r' | b'\n') || b"-'()+,./:=?;!*#@$_%".contains(&b)
}

/// `[2] Char`: no C0 controls but tab, newline and carriage return, and neither U+FFFE nor
/// U+FFFF (a `str` holds no surrogates).
fn check_chars(src: &str) -> Result<(), FeedError> {
    match first_forbidden(src.as_bytes()) {
        None => Ok(()),
        Some(Forbidden::Control(at)) => Err(malformed(
            src,
            at,
            format!("control character U+{:04X} is not allowed in XML", src.as_bytes()[at]),
        )),
        Some(Forbidden::Noncharacter(at)) => {
            Err(malformed(src, at, "noncharacter U+FFFE/U+FFFF is not allowed in XML"))
        }
    }
}

/// A character XML forbids, and where it starts.
#[derive(Debug, PartialEq, Eq)]
enum Forbidden {
    Control(usize),
    Noncharacter(usize),
}

/// The first character XML forbids, if any. This scan touches every byte, so it is one
/// branch-free fold over 64-byte chunks (which the compiler vectorises) that flags a C0 control
/// (but tab, line feed and carriage return) or the pair EF BF (U+FFFE and U+FFFF are EF BF BE and
/// EF BF BF; CJK text is full of EF, as in "，" EF BC 8C, but EF BF is rare, U+FFC0 and above);
/// only a flagged chunk is looked at byte by byte. One pass: it was a fold and a memmem search,
/// and before that a byte-by-byte look at every chunk holding an EF.
fn first_forbidden(bytes: &[u8]) -> Option<Forbidden> {
    const CHUNK: usize = 64;
    let control = |b: u8| (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
    let mut start = 0;
    // Each chunk is folded with the byte after it, so that a pair across chunks is seen.
    while start + CHUNK < bytes.len() {
        let (chunk, next) = (&bytes[start..start + CHUNK], &bytes[start + 1..start + CHUNK + 1]);
        let suspect = chunk.iter().zip(next).fold(false, |hit, (&b, &after)| {
            hit | control(b) | ((b == 0xEF) & (after == 0xBF))
        });
        if suspect && let Some(found) = forbidden_in(bytes, start..start + CHUNK) {
            return Some(found);
        }
        start += CHUNK;
    }
    forbidden_in(bytes, start..bytes.len())
}

/// The first forbidden character starting in `range`, byte by byte.
fn forbidden_in(bytes: &[u8], range: Range<usize>) -> Option<Forbidden> {
    for at in range {
        match bytes[at] {
            b'\t' | b'\n' | b'\r' => {}
            b if b < 0x20 => return Some(Forbidden::Control(at)),
            0xEF if bytes.get(at + 1) == Some(&0xBF) && matches!(bytes.get(at + 2), Some(0xBE | 0xBF)) => {
                return Some(Forbidden::Noncharacter(at));
            }
            _ => {}
        }
    }
    None
}

/// Whether a character reference's code point is a legal `Char`.
fn is_legal_char(code: u32) -> bool {
    matches!(code, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// A reference as read.
enum Reference<'a> {
    Char(u32),
    Entity(&'a str),
}

/// The searches a document makes again and again, each built once: building a searcher for
/// every CDATA section was a tenth of the time spent on a feed of many.
static CDATA_END: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"]]>"));
static DOUBLE_DASH: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"--"));
static PI_END: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"?>"));

const PREDEFINED: [&str; 5] = ["amp", "lt", "gt", "quot", "apos"];

/// The cursor over the document, with what the DOCTYPE declared.
struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Declared internal general entities and the length of their replacement text.
    entities: HashMap<&'a str, usize>,
    /// Bytes all entity references so far expand to, and the most allowed.
    expansion: usize,
    expansion_limit: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            entities: HashMap::new(),
            expansion: 0,
            expansion_limit: src.len().saturating_mul(MAX_EXPANSION_FACTOR).min(MAX_EXPANSION_BYTES),
        }
    }

    fn error(&self, detail: impl Into<String>) -> FeedError {
        malformed(self.src, self.pos, detail)
    }

    fn error_at(&self, at: usize, detail: impl Into<String>) -> FeedError {
        malformed(self.src, at, detail)
    }

    fn truncated(&self, what: impl std::fmt::Display) -> FeedError {
        malformed(
            self.src,
            self.src.len(),
            format!("document ends inside {what} (truncated?)"),
        )
    }

    fn starts_with(&self, s: &str) -> bool {
        self.bytes[self.pos..].starts_with(s.as_bytes())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips `S`, returning how many bytes it was.
    fn skip_space(&mut self) -> usize {
        let from = self.pos;
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
        self.pos - from
    }

    fn require_space(&mut self, context: &str) -> Result<(), FeedError> {
        if self.skip_space() == 0 {
            return Err(match self.peek() {
                None => self.truncated(context),
                Some(_) => self.error(format!("whitespace expected in {context}")),
            });
        }
        Ok(())
    }

    /// `context` is only written out for an error: it runs for every end tag.
    fn expect(&mut self, s: &str, context: impl std::fmt::Display) -> Result<(), FeedError> {
        if self.starts_with(s) {
            self.pos += s.len();
            Ok(())
        } else if self.pos + s.len() > self.bytes.len() && s.as_bytes().starts_with(&self.bytes[self.pos..]) {
            Err(self.truncated(context))
        } else {
            Err(self.error(format!("'{s}' expected in {context}")))
        }
    }

    /// `[5] Name` at the cursor. ASCII bytes are judged by a table, a byte at a time; only a
    /// non-ASCII character is decoded, and checked against the full productions.
    fn name(&mut self, what: &str) -> Result<&'a str, FeedError> {
        let from = self.pos;
        let bytes = &self.bytes[from..];
        let mut at = match bytes.first() {
            None => return Err(self.truncated(what)),
            Some(&b) if b < 0x80 && ASCII_NAME[b as usize] == NAME_START => 1,
            Some(&b) if b < 0x80 => {
                let c = b as char;
                return Err(self.error(format!("{c:?} cannot start {what}: not an XML name")));
            }
            Some(_) => {
                let c = self.src[from..].chars().next().expect("a character");
                if !is_name_start(c) {
                    return Err(self.error(format!("{c:?} cannot start {what}: not an XML name")));
                }
                c.len_utf8()
            }
        };
        loop {
            while let Some(&b) = bytes.get(at)
                && b < 0x80
                && ASCII_NAME[b as usize] != 0
            {
                at += 1;
            }
            match bytes.get(at) {
                Some(&b) if b >= 0x80 => {
                    let c = self.src[from + at..].chars().next().expect("a character");
                    if !is_name_char(c) {
                        break;
                    }
                    at += c.len_utf8();
                }
                _ => break,
            }
        }
        self.pos = from + at;
        Ok(&self.src[from..self.pos])
    }

    /// `[25] Eq`.
    fn eq(&mut self, context: &str) -> Result<(), FeedError> {
        self.skip_space();
        self.expect("=", context)?;
        self.skip_space();
        Ok(())
    }

    /// A quoted literal, returned without its quotes; `context` names it in errors.
    fn quoted(&mut self, context: impl std::fmt::Display) -> Result<&'a str, FeedError> {
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            Some(_) => return Err(self.error(format!("a quoted value expected for {context}"))),
            None => return Err(self.truncated(context)),
        };
        let from = self.pos + 1;
        let len = memchr(quote, &self.bytes[from..]).ok_or_else(|| self.truncated(context))?;
        self.pos = from + len + 1;
        Ok(&self.src[from..from + len])
    }

    /// `[14] CharData` up to the next `<` or `&`; returns whether it is all whitespace.
    fn text(&mut self) -> Result<bool, FeedError> {
        let from = self.pos;
        // One vectorised scan for the end of the text and for ']]>' together: ']' is rare in
        // text, so a run of plain text costs one pass.
        let mut end = from;
        loop {
            match memchr3(b'<', b'&', b']', &self.bytes[end..]) {
                Some(at) if self.bytes[end + at] == b']' => {
                    if self.bytes[end + at..].starts_with(b"]]>") {
                        return Err(self.error_at(end + at, "']]>' in text: it may only end a CDATA section"));
                    }
                    end += at + 1;
                }
                Some(at) => break end += at,
                None => break end = self.bytes.len(),
            }
        }
        self.pos = end;
        Ok(is_xml_whitespace(&self.bytes[from..end]))
    }

    /// `[18] CDSect`.
    fn cdata(&mut self) -> Result<Event<'a>, FeedError> {
        let from = self.pos + "<![CDATA[".len();
        let len = CDATA_END
            .find(&self.bytes[from..])
            .ok_or_else(|| self.truncated("a CDATA section"))?;
        self.pos = from + len + 3;
        Ok(Event::CData)
    }

    /// `[15] Comment`: no `--` inside, and no `-` just before the end.
    fn comment(&mut self) -> Result<Event<'a>, FeedError> {
        let from = self.pos + "<!--".len();
        let dashes = DOUBLE_DASH
            .find(&self.bytes[from..])
            .ok_or_else(|| self.truncated("a comment"))?;
        let end = from + dashes;
        match self.bytes.get(end + 2) {
            Some(b'>') => {
                self.pos = end + 3;
                Ok(Event::Comment)
            }
            Some(_) => Err(self.error_at(end, "'--' inside a comment")),
            None => Err(self.truncated("a comment")),
        }
    }

    /// `[16] PI`, or the `[23] XMLDecl` when the target is `xml`. `in_dtd`: inside the DOCTYPE.
    fn pi_or_declaration(&mut self, in_dtd: bool) -> Result<Event<'a>, FeedError> {
        let start = self.pos;
        self.pos += 2;
        let target = self.name("a processing instruction target")?;
        if target == "xml" && !in_dtd {
            return self.declaration(start);
        }
        if target.eq_ignore_ascii_case("xml") {
            return Err(self.error_at(
                start,
                format!("<?{target} is reserved: an XML declaration may only stand at the very start"),
            ));
        }
        if self.starts_with("?>") {
            self.pos += 2;
            return Ok(Event::Pi);
        }
        self.require_space("a processing instruction")?;
        let len = PI_END
            .find(&self.bytes[self.pos..])
            .ok_or_else(|| self.truncated("a processing instruction"))?;
        self.pos += len + 2;
        Ok(Event::Pi)
    }

    /// `[23] XMLDecl`, after `<?xml`.
    fn declaration(&mut self, start: usize) -> Result<Event<'a>, FeedError> {
        if start != 0 {
            return Err(self.error_at(start, "XML declaration is not at the very start"));
        }
        const CONTEXT: &str = "the XML declaration";
        self.require_space(CONTEXT)?;
        self.expect("version", CONTEXT)?;
        self.eq(CONTEXT)?;
        let version = self.quoted("version")?;
        let digits = version.strip_prefix("1.").unwrap_or("");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(format!("version {version:?} is not 1.x")));
        }
        let mut encoding_seen = false;
        let mut standalone = None;
        loop {
            let space = self.skip_space();
            if self.starts_with("?>") {
                self.pos += 2;
                return Ok(Event::Decl { version, standalone });
            }
            if space == 0 {
                return Err(match self.peek() {
                    None => self.truncated(CONTEXT),
                    Some(_) => self.error("whitespace or '?>' expected in the XML declaration"),
                });
            }
            if self.starts_with("encoding") && !encoding_seen && standalone.is_none() {
                self.pos += "encoding".len();
                self.eq(CONTEXT)?;
                let name = self.quoted("encoding")?;
                let mut bytes = name.bytes();
                let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
                    && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                if !valid {
                    return Err(self.error(format!("encoding {name:?} is not an encoding name")));
                }
                encoding_seen = true;
            } else if self.starts_with("standalone") && standalone.is_none() {
                self.pos += "standalone".len();
                self.eq(CONTEXT)?;
                let value = self.quoted("standalone")?;
                if value != "yes" && value != "no" {
                    return Err(self.error(format!("standalone {value:?} is neither \"yes\" nor \"no\"")));
                }
                standalone = Some(value);
            } else {
                return Err(
                    self.error("unexpected text in the XML declaration (version, encoding, standalone, in that order)")
                );
            }
        }
    }

    /// `[40] STag` or `[44] EmptyElemTag`, with unique, well-formed attributes.
    fn start_tag(&mut self) -> Result<Event<'a>, FeedError> {
        let start = self.pos;
        self.pos += 1;
        let name = self.name("an element name")?;
        let attributes_from = self.pos;
        let mut names: Vec<&'a str> = Vec::new();
        let mut seen: HashSet<&'a str> = HashSet::new();
        loop {
            let space = self.skip_space();
            let attributes_to = self.pos - space;
            let tag = |empty| {
                let tag = Tag {
                    name,
                    attributes: &self.src[attributes_from..attributes_to],
                };
                if empty { Event::Empty(tag) } else { Event::Start(tag) }
            };
            match self.peek() {
                Some(b'>') => {
                    self.pos += 1;
                    return Ok(tag(false));
                }
                Some(b'/') => {
                    let event = tag(true);
                    self.pos += 1;
                    self.expect(">", "an empty-element tag")?;
                    return Ok(event);
                }
                None => return Err(self.truncated(format_args!("the tag <{name}>"))),
                Some(_) if space == 0 => {
                    return Err(self.error(format!("whitespace, '>' or '/>' expected in the tag <{name}>")));
                }
                Some(_) => {
                    let key = self.name("an attribute name")?;
                    // A linear scan suits the usual handful; a hostile tag with thousands of
                    // attributes switches to a set, so the check stays linear overall.
                    let duplicate = if names.len() < 16 {
                        names.contains(&key)
                    } else {
                        if seen.is_empty() {
                            seen.extend(names.iter().copied());
                        }
                        !seen.insert(key)
                    };
                    if duplicate {
                        return Err(self.error_at(start, format!("attribute {key:?} appears twice in <{name}>")));
                    }
                    names.push(key);
                    self.eq("an attribute")?;
                    self.attribute_value(key)?;
                }
            }
        }
    }

    /// `[10] AttValue`: no `<`, and every `&` a good reference (WFC: No < in Attribute Values).
    fn attribute_value(&mut self, key: &str) -> Result<(), FeedError> {
        let value_start = self.pos + 1;
        let value = self.quoted(format_args!("attribute {key:?}"))?;
        if let Some(at) = memchr(b'<', value.as_bytes()) {
            return Err(self.error_at(value_start + at, format!("'<' inside the value of attribute {key:?}")));
        }
        let end = self.pos;
        let mut at = value_start;
        while let Some(amp) = memchr(b'&', &self.bytes[at..end - 1]) {
            self.pos = at + amp;
            self.reference()?;
            if self.pos > end - 1 {
                return Err(self.error_at(at + amp, format!("'&' without ';' in the value of attribute {key:?}")));
            }
            at = self.pos;
        }
        self.pos = end;
        Ok(())
    }

    /// `[42] ETag`, returning the name.
    fn end_tag(&mut self) -> Result<&'a str, FeedError> {
        self.pos += 2;
        let name = self.name("an end tag")?;
        self.skip_space();
        self.expect(">", format_args!("the end tag </{name}>"))?;
        Ok(name)
    }

    /// `[67] Reference` in content or an attribute value: a legal character, a predefined
    /// entity, or a declared one (WFC: Entity Declared, Legal Character), counted against the
    /// expansion limit.
    fn reference(&mut self) -> Result<(), FeedError> {
        let start = self.pos;
        match self.read_reference()? {
            Reference::Char(_) => Ok(()),
            Reference::Entity(name) if PREDEFINED.contains(&name) => Ok(()),
            Reference::Entity(name) => match self.entities.get(name) {
                Some(&len) => {
                    self.expansion += len;
                    if self.expansion > self.expansion_limit {
                        return Err(FeedError::EntityExpansion {
                            limit: self.expansion_limit,
                        });
                    }
                    Ok(())
                }
                None => Err(self.error_at(start, format!("undefined entity &{name};"))),
            },
        }
    }

    /// The syntax of `[66] CharRef` or `[68] EntityRef`, at a `&`.
    fn read_reference(&mut self) -> Result<Reference<'a>, FeedError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() == Some(b'#') {
            self.pos += 1;
            let radix = if self.peek() == Some(b'x') {
                self.pos += 1;
                16
            } else {
                10
            };
            let digits_from = self.pos;
            let mut code: u32 = 0;
            while let Some(digit) = self.peek().and_then(|b| (b as char).to_digit(radix)) {
                code = code.saturating_mul(radix).saturating_add(digit);
                self.pos += 1;
            }
            let digits = &self.src[digits_from..self.pos];
            if digits.is_empty() || self.peek() != Some(b';') {
                return Err(match self.peek() {
                    None => self.truncated("a character reference"),
                    Some(_) => self.error_at(start, "malformed character reference (&#…; or &#x…;)"),
                });
            }
            self.pos += 1;
            if !is_legal_char(code) {
                return Err(self.error_at(
                    start,
                    format!(
                        "&{}; refers to a character XML does not allow",
                        &self.src[start + 1..self.pos - 1]
                    ),
                ));
            }
            return Ok(Reference::Char(code));
        }
        let name = match self.name("an entity reference") {
            Ok(name) => name,
            Err(_) => return Err(self.error_at(start, "'&' that starts no reference: write &amp;")),
        };
        if self.peek() != Some(b';') {
            return Err(self.error_at(start, format!("'&{name}' without ';': write &amp; for a literal '&'")));
        }
        self.pos += 1;
        Ok(Reference::Entity(name))
    }

    /// `[28] doctypedecl`, at `<!DOCTYPE`.
    fn doctype(&mut self) -> Result<Event<'a>, FeedError> {
        const CONTEXT: &str = "the DOCTYPE";
        self.pos += "<!DOCTYPE".len();
        self.require_space(CONTEXT)?;
        self.name("the DOCTYPE's root name")?;
        let space = self.skip_space();
        if self.starts_with("SYSTEM") || self.starts_with("PUBLIC") {
            if space == 0 {
                return Err(self.error("whitespace expected in the DOCTYPE"));
            }
            self.external_id(true, CONTEXT)?;
            self.skip_space();
        }
        if self.peek() == Some(b'[') {
            self.pos += 1;
            self.internal_subset()?;
            self.skip_space();
        }
        self.expect(">", CONTEXT)?;
        Ok(Event::DocType)
    }

    /// `[75] ExternalID`; with `system_required` false, also `[83] PublicID`.
    fn external_id(&mut self, system_required: bool, context: &str) -> Result<(), FeedError> {
        if self.starts_with("SYSTEM") {
            self.pos += "SYSTEM".len();
            self.require_space(context)?;
            self.quoted("a system identifier")?;
            return Ok(());
        }
        self.expect("PUBLIC", context)?;
        self.require_space(context)?;
        let at = self.pos;
        let public = self.quoted("a public identifier")?;
        if let Some(bad) = public.bytes().position(|b| !is_pubid_char(b)) {
            return Err(self.error_at(at + 1 + bad, "character not allowed in a public identifier"));
        }
        if self.bytes[at] == b'\'' && public.contains('\'') {
            return Err(self.error_at(at, "apostrophe inside an apostrophe-quoted public identifier"));
        }
        let space = self.skip_space();
        if matches!(self.peek(), Some(b'"' | b'\'')) {
            if space == 0 {
                return Err(self.error("whitespace expected before the system identifier"));
            }
            self.quoted("a system identifier")?;
        } else if system_required {
            return Err(self.error("a system identifier expected after the public identifier"));
        }
        Ok(())
    }

    /// `[28b] intSubset`, up to and including its `]`.
    fn internal_subset(&mut self) -> Result<(), FeedError> {
        loop {
            self.skip_space();
            match self.peek() {
                None => return Err(self.truncated("the DOCTYPE's internal subset")),
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'%') => {
                    return Err(unsafe_entity("uses a parameter entity reference"));
                }
                Some(b'<') if self.starts_with("<!--") => {
                    self.comment()?;
                }
                Some(b'<') if self.starts_with("<?") => {
                    self.pi_or_declaration(true)?;
                }
                Some(b'<') if self.starts_with("<!ENTITY") => self.entity_declaration()?,
                Some(b'<') if self.starts_with("<!ELEMENT") => self.element_declaration()?,
                Some(b'<') if self.starts_with("<!NOTATION") => self.notation_declaration()?,
                Some(b'<') if self.starts_with("<!ATTLIST") => {
                    return Err(unsafe_entity(
                        "declares attribute defaults (ATTLIST), which would change the feed where flarefeed cannot see it",
                    ));
                }
                Some(_) => return Err(self.error("unexpected text in the DOCTYPE's internal subset")),
            }
        }
    }

    /// `[70] EntityDecl`. Only internal general entities with plain-text replacement are kept.
    fn entity_declaration(&mut self) -> Result<(), FeedError> {
        const CONTEXT: &str = "an entity declaration";
        self.pos += "<!ENTITY".len();
        self.require_space(CONTEXT)?;
        if self.peek() == Some(b'%') {
            return Err(unsafe_entity("declares a parameter entity"));
        }
        let name = self.name("an entity name")?;
        self.require_space(CONTEXT)?;
        if self.starts_with("SYSTEM") || self.starts_with("PUBLIC") {
            return Err(unsafe_entity(&format!(
                "declares the external entity {name:?} (SYSTEM/PUBLIC), which a reader would fetch"
            )));
        }
        let at = self.pos;
        let value = self.quoted("an entity value")?;
        let after = self.pos;
        let replacement = self.entity_replacement(name, value, at + 1)?;
        self.pos = after;
        self.skip_space();
        self.expect(">", CONTEXT)?;
        // The first declaration binds; later ones are ignored (XML 1.0, 4.2).
        self.entities.entry(name).or_insert(replacement);
        Ok(())
    }

    /// The length of an entity value's replacement text, refusing markup and references to
    /// other entities: what makes expansion linear and the replacement plain text.
    fn entity_replacement(&mut self, name: &str, value: &'a str, value_start: usize) -> Result<usize, FeedError> {
        let bytes = value.as_bytes();
        let mut len = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'<' => {
                    return Err(unsafe_entity(&format!(
                        "declares the entity {name:?} with markup ('<')"
                    )));
                }
                b'%' => {
                    return Err(unsafe_entity(&format!(
                        "uses a parameter entity reference in the entity {name:?}"
                    )));
                }
                b'&' => {
                    self.pos = value_start + i;
                    match self.read_reference()? {
                        Reference::Char(code) if code == u32::from(b'<') || code == u32::from(b'&') => {
                            return Err(unsafe_entity(&format!(
                                "declares the entity {name:?} with markup (a reference to '<' or '&')"
                            )));
                        }
                        Reference::Char(code) => len += char::from_u32(code).map_or(4, char::len_utf8),
                        Reference::Entity(other) if PREDEFINED.contains(&other) => len += other.len() + 2,
                        Reference::Entity(other) => {
                            return Err(unsafe_entity(&format!(
                                "declares the entity {name:?} in terms of another entity (&{other};), the shape of billion-laughs attacks"
                            )));
                        }
                    }
                    if self.pos > value_start + bytes.len() {
                        return Err(self.error_at(value_start + i, "'&' without ';' in an entity value"));
                    }
                    i = self.pos - value_start;
                }
                _ => {
                    len += 1;
                    i += 1;
                }
            }
        }
        Ok(len)
    }

    /// `[45] elementdecl`.
    fn element_declaration(&mut self) -> Result<(), FeedError> {
        const CONTEXT: &str = "an element declaration";
        self.pos += "<!ELEMENT".len();
        self.require_space(CONTEXT)?;
        self.name("an element name")?;
        self.require_space(CONTEXT)?;
        if self.starts_with("EMPTY") {
            self.pos += "EMPTY".len();
        } else if self.starts_with("ANY") {
            self.pos += "ANY".len();
        } else {
            self.expect("(", CONTEXT)?;
            self.skip_space();
            if self.starts_with("#PCDATA") {
                self.mixed()?;
            } else {
                self.content_group(1)?;
                self.occurrence();
            }
        }
        self.skip_space();
        self.expect(">", CONTEXT)
    }

    /// `[51] Mixed`, after `(` and any whitespace.
    fn mixed(&mut self) -> Result<(), FeedError> {
        const CONTEXT: &str = "a mixed content model";
        self.pos += "#PCDATA".len();
        let mut names = false;
        loop {
            self.skip_space();
            if self.peek() != Some(b'|') {
                break;
            }
            self.pos += 1;
            self.skip_space();
            self.name("an element name")?;
            names = true;
        }
        self.expect(")", CONTEXT)?;
        if names {
            self.expect("*", CONTEXT)
        } else {
            if self.peek() == Some(b'*') {
                self.pos += 1;
            }
            Ok(())
        }
    }

    /// `[49] choice` or `[50] seq`, after `(` and any whitespace, through `)`.
    fn content_group(&mut self, level: usize) -> Result<(), FeedError> {
        const CONTEXT: &str = "a content model";
        if level > MAX_DEPTH {
            return Err(FeedError::TooDeep { limit: MAX_DEPTH });
        }
        let mut separator = None;
        loop {
            self.skip_space();
            if self.peek() == Some(b'(') {
                self.pos += 1;
                self.content_group(level + 1)?;
            } else {
                self.name("an element name")?;
            }
            self.occurrence();
            self.skip_space();
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b @ (b'|' | b',')) if separator.is_none_or(|s| s == b) => {
                    separator = Some(b);
                    self.pos += 1;
                }
                None => return Err(self.truncated(CONTEXT)),
                Some(_) => return Err(self.error("'|', ',' or ')' expected in a content model (not both '|' and ',')")),
            }
        }
    }

    fn occurrence(&mut self) {
        if matches!(self.peek(), Some(b'?' | b'*' | b'+')) {
            self.pos += 1;
        }
    }

    /// `[82] NotationDecl`.
    fn notation_declaration(&mut self) -> Result<(), FeedError> {
        const CONTEXT: &str = "a notation declaration";
        self.pos += "<!NOTATION".len();
        self.require_space(CONTEXT)?;
        self.name("a notation name")?;
        self.require_space(CONTEXT)?;
        self.external_id(false, CONTEXT)?;
        self.skip_space();
        self.expect(">", CONTEXT)
    }
}

fn unsafe_entity(detail: &str) -> FeedError {
    FeedError::UnsafeDoctype {
        detail: detail.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass scan finds what a byte-by-byte look finds, wherever it lies against the
    /// 64-byte chunks: a control, U+FFFE/U+FFFF (also split across two chunks), and not the
    /// legal EF BF xx (U+FFE5, "￥") or EF BC 8C ("，").
    #[test]
    fn the_forbidden_character_scan_agrees_with_a_byte_by_byte_look() {
        let naive = |bytes: &[u8]| forbidden_in(bytes, 0..bytes.len());
        let filler = "中文，￥ab".as_bytes();
        for len in [0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 200] {
            let base: Vec<u8> = filler.iter().cycle().take(len).copied().collect();
            let base = String::from_utf8_lossy(&base).into_owned().into_bytes();
            assert_eq!(first_forbidden(&base), None, "{len}");
            for at in 0..=base.len() {
                for bad in [
                    &b"\x01"[..],
                    b"\x1f",
                    "\u{fffe}".as_bytes(),
                    "\u{ffff}".as_bytes(),
                    "\u{ffe5}".as_bytes(),
                ] {
                    let mut bytes = base.clone();
                    bytes.splice(at..at, bad.iter().copied());
                    assert_eq!(first_forbidden(&bytes), naive(&bytes), "{len} {at} {bad:?}");
                }
            }
        }
        assert_eq!(
            first_forbidden("ab\u{ffff}\u{1}".as_bytes()),
            Some(Forbidden::Noncharacter(2))
        );
        assert_eq!(
            first_forbidden("a\tb\u{1}\u{ffff}".as_bytes()),
            Some(Forbidden::Control(3))
        );
    }

    struct Count(usize);
    impl<'a> Visitor<'a> for Count {
        fn visit(&mut self, _: &Event<'a>, _: Range<usize>, _: usize) -> Result<(), FeedError> {
            self.0 += 1;
            Ok(())
        }
    }

    fn verdict(src: &str) -> Result<(), FeedError> {
        walk(src, &mut Count(0))
    }

    /// The table-driven name scan agrees with the productions `[4]` and `[4a]`, character by
    /// character, over the BMP's first 12,288 code points and a sample of the rest.
    #[test]
    fn names_by_table_follow_the_productions() {
        let reference = |text: &str| -> Option<usize> {
            let mut chars = text.char_indices();
            let (_, first) = chars.next()?;
            if !is_name_start(first) {
                return None;
            }
            Some(chars.find(|&(_, c)| !is_name_char(c)).map_or(text.len(), |(i, _)| i))
        };
        let codes = (1u32..0x3000).chain((0x3000..0x11_0000).step_by(97));
        for code in codes {
            let Some(c) = char::from_u32(code) else { continue };
            for text in [format!("{c}a b"), format!("a{c}b c"), format!("ab{c}")] {
                let mut lexer = Lexer::new(&text);
                let by_table = lexer.name("a name").ok().map(|name| name.len());
                assert_eq!(by_table, reference(&text), "U+{code:04X} in {text:?}");
            }
        }
    }

    #[test]
    fn accepts_the_productions() {
        let good = [
            "<a/>",
            "<?xml version=\"1.0\"?><a/>",
            "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n<a/>",
            "<a b = \"1\"\tc='&amp;&#x41;&#65;'></a >",
            "<!DOCTYPE a><a/>",
            "<!DOCTYPE a SYSTEM \"a.dtd\"><a/>",
            "<!DOCTYPE rss PUBLIC \"-//Netscape Communications//DTD RSS 0.91//EN\" \"http://my.netscape.com/publish/formats/rss-0.91.dtd\"><rss/>",
            "<!DOCTYPE a [<!ELEMENT a (b|c)*><!ELEMENT b (#PCDATA)><!ELEMENT c (#PCDATA|b)*><!NOTATION n PUBLIC \"x\">]><a/>",
            "<!DOCTYPE a [<!ENTITY id \"tag:example.com,2024:\"><!-- c --><?pi x?>]><a b=\"&id;\">&id;1</a>",
            "<a><![CDATA[ ]] > <x> ]]></a>",
            "<a><!----><!-- - --><?pi?><?pi data ?></a>",
            "<é:a xmlns:é=\"u\">·</é:a>",
        ];
        for src in good {
            verdict(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
    }

    #[test]
    fn refuses_what_the_issue_found() {
        let bad = [
            "<a>]]></a>",
            "<1bad/>",
            "<a><?XML x?></a>",
            "<!DOCTYPE a><!DOCTYPE a><a/>",
            "<?xml version=\"1.0\" standalone='x\" injected=\"1'?><a/>",
            "<a b=\"1\"c=\"2\"/>",
            "<a><!-- a -- b --></a>",
            "<a><!-- a ---></a>",
            "<a>&#+65;</a>",
            "<a>&#xD800;</a>",
            "<a></a b>",
            "<a b='1' b='2'/>",
            "<a>&undefined;</a>",
            "<?xml version=\"2.0\"?><a/>",
            "<?xml encoding=\"UTF-8\"?><a/>",
            "<!DOCTYPE a [<!ENTITY e \"a&b\">]><a/>",
        ];
        for src in bad {
            assert!(
                matches!(verdict(src), Err(FeedError::NotWellFormed { .. })),
                "{src}: {:?}",
                verdict(src)
            );
        }
    }

    #[test]
    fn refuses_unsafe_doctypes_on_purpose() {
        for src in [
            "<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
            "<!DOCTYPE a [<!ENTITY % p \"x\">]><a/>",
            "<!DOCTYPE a [<!ENTITY e \"<b/>\">]><a/>",
            "<!DOCTYPE a [<!ENTITY e \"&#60;b/>\">]><a/>",
            "<!DOCTYPE a [<!ENTITY a \"x\"><!ENTITY b \"&a;&a;\">]><a/>",
            "<!DOCTYPE a [<!ATTLIST a b CDATA \"x\">]><a/>",
        ] {
            assert!(matches!(verdict(src), Err(FeedError::UnsafeDoctype { .. })), "{src}");
        }
    }

    #[test]
    fn entity_expansion_is_bounded() {
        let entity = "x".repeat(1000);
        let uses = "&e;".repeat(100);
        let src = format!("<!DOCTYPE a [<!ENTITY e \"{entity}\">]><a>{uses}</a>");
        assert!(matches!(verdict(&src), Err(FeedError::EntityExpansion { .. })));
        let src = format!("<!DOCTYPE a [<!ENTITY e \"{entity}\">]><a>&e;&e;</a>");
        verdict(&src).unwrap();
    }

    #[test]
    fn depth_is_limited() {
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        verdict(&ok).unwrap();
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert_eq!(verdict(&deep), Err(FeedError::TooDeep { limit: MAX_DEPTH }));
        let deep_empty = format!("{}<a/>{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert_eq!(verdict(&deep_empty), Err(FeedError::TooDeep { limit: MAX_DEPTH }));
    }

    #[test]
    fn many_attributes_are_checked_for_duplicates_past_the_linear_scan() {
        let attributes: String = (0..50_000).map(|i| format!(" a{i}=\"\"")).collect();
        verdict(&format!("<r{attributes}/>")).unwrap();
        let error = verdict(&format!("<r{attributes} a49999=\"\"/>")).unwrap_err();
        assert!(error.to_string().contains("\"a49999\" appears twice"), "{error}");
    }

    #[test]
    fn tag_attributes_read_back_as_written() {
        let tag = Tag {
            name: "a",
            attributes: " b = \"1\"\tc='x\"y' d=\"\"",
        };
        assert_eq!(
            tag.attributes().collect::<Vec<_>>(),
            [("b", "1"), ("c", "x\"y"), ("d", "")]
        );
        assert_eq!(tag.attribute("c"), Some("x\"y"));
        assert!(tag.has_attributes());
    }
}
