//! The meaning-preserving pretty-printer.
//!
//! One streaming pass, no DOM. Element-only content is re-indented by two spaces; every other
//! element (text-only, mixed, empty) is copied byte for byte from the input, because whitespace
//! inside text is part of the feed. Tags, references, CDATA, comments, PIs and the DOCTYPE are
//! copied as written too, and so is every element whose content is markup rather than structure:
//! Atom `type="xhtml"` and other XML media types, Atom 0.3 `mode="xml"`, `xml:space="preserve"`,
//! and any element with a child in the XHTML namespace. When non-whitespace text turns up in an
//! element after its children were already indented, the output rolls back to that element's
//! start tag and copies it raw: the common case stays one pass, and a mixed element found late
//! costs only truncating what was written for it.
//!
//! The output is written straight into one string, so a refresh holds the input and the output
//! and nothing else of the feed's size. Its size is bounded: indentation stops deepening at
//! [`MAX_INDENT`] levels, and should the pretty form still pass twice the input plus
//! [`SLACK_BYTES`] (or the caller's cap), the document is published as written instead.

use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::Range;

use sha2::{Digest, Sha256};

use super::FeedError;
use super::xml::{Event, Tag, Visitor, document, local_name, walk};

/// Indentation stops deepening here: past it, lines would be mostly spaces.
pub const MAX_INDENT: usize = 32;

/// The pretty form may be at most twice the input plus this many bytes.
pub const SLACK_BYTES: usize = 4096;

const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// A formatted document, ready to store.
#[derive(Debug, Clone)]
pub struct Formatted {
    xml: String,
    /// Output byte spans of the feed-level `lastBuildDate`/`pubDate` (RSS) and `updated` (Atom).
    volatile: Vec<Range<usize>>,
    as_written: bool,
}

const SPACES: &str = "                                                                ";

impl Formatted {
    /// Length of the output in bytes.
    pub fn len(&self) -> usize {
        self.xml.len()
    }

    pub fn is_empty(&self) -> bool {
        self.xml.is_empty()
    }

    /// Whether the pretty form would have passed its size bound, so the document is kept as
    /// written (with a fresh UTF-8 declaration).
    pub fn as_written(&self) -> bool {
        self.as_written
    }

    pub fn as_str(&self) -> &str {
        &self.xml
    }

    /// The output as one string (a copy; see [`Formatted::into_xml`]).
    pub fn to_xml(&self) -> String {
        self.xml.clone()
    }

    /// The output, without copying it.
    pub fn into_xml(self) -> String {
        self.xml
    }

    /// Writes the output.
    pub fn write_to(&self, mut writer: impl Write) -> io::Result<()> {
        writer.write_all(self.xml.as_bytes())?;
        writer.flush()
    }

    /// SHA-256 (hex) of the output with the volatile dates left out: two fetches that differ only
    /// in a freshly stamped build date are the same feed, so nothing is written.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        let mut at = 0;
        for span in &self.volatile {
            hasher.update(&self.xml.as_bytes()[at..span.start]);
            at = span.end;
        }
        hasher.update(&self.xml.as_bytes()[at..]);
        hex::encode(hasher.finalize())
    }
}

/// Pretty-prints a well-formed XML document without changing what it means.
pub fn format(text: &str) -> Result<Formatted, FeedError> {
    format_within(text, usize::MAX)
}

/// [`format`], refusing before it is built any output over `max_bytes`: the pretty form falls
/// back to the document as written, and if even that is over, the result is
/// [`FeedError::TooLarge`].
pub fn format_within(text: &str, max_bytes: usize) -> Result<Formatted, FeedError> {
    let src = document(text);
    let mut printer = Printer::new(src, max_bytes);
    walk(src, &mut printer)?;
    printer.finish(max_bytes)
}

/// Where an XML declaration at the start ends (0 without one); the walk checks it properly.
fn declaration_end(src: &str) -> usize {
    let is_declaration = src.starts_with("<?xml") && src.as_bytes().get(5).is_some_and(|b| b.is_ascii_whitespace());
    match src.find("?>") {
        Some(at) if is_declaration => at + 2,
        _ => 0,
    }
}

/// The output so far, refusing to grow past its limit.
struct Output {
    xml: String,
    limit: usize,
    /// Something did not fit: the rest is ignored and the document goes out as written.
    overflow: bool,
}

impl Output {
    fn push(&mut self, text: &str) {
        if self.overflow {
            return;
        }
        if self.xml.len() + text.len() > self.limit {
            self.overflow = true;
            return;
        }
        self.xml.push_str(text);
    }

    fn indent(&mut self, depth: usize) {
        self.push("\n");
        self.push(&SPACES[..2 * depth.min(MAX_INDENT)]);
    }

    fn len(&self) -> usize {
        self.xml.len()
    }

    fn rollback(&mut self, len: usize) {
        self.xml.truncate(len);
    }

    /// The declaration is always the first line written.
    fn declaration_len(&self) -> usize {
        self.xml.find("?>").map_or(0, |at| at + 2)
    }
}

/// What the root says about where the volatile dates live.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    Rss,
    Atom,
    Other,
}

struct Frame<'a> {
    local: &'a str,
    /// Input offset just after the start tag.
    src_content: usize,
    /// Output length just after the start tag.
    out_content: usize,
    /// An element, comment or PI child was seen (and indented).
    children: bool,
    /// Non-whitespace text, CDATA or a reference was seen.
    text: bool,
    /// Output offset where this element's line began, when it is a volatile date.
    volatile_from: Option<usize>,
}

pub(super) struct Printer<'a> {
    src: &'a str,
    out: Output,
    /// Whether the declaration has been written.
    declared: bool,
    /// Input offset just after the original XML declaration, if any.
    body_start: usize,
    stack: Vec<Frame<'a>>,
    /// Index in `stack` of the element being copied verbatim, if any.
    verbatim: Option<usize>,
    volatile: Vec<Range<usize>>,
    root: Root,
    /// Namespace declarations in scope, in the order made: (depth of the declaring element, prefix).
    scopes: Vec<(usize, &'a str)>,
    /// The uris bound to each prefix, innermost last: a lookup costs the same however many there are.
    namespaces: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Printer<'a> {
    /// A printer of `src` (the document, after [`document`]), refusing output over `max_bytes`:
    /// walk it over `src`, then [`Printer::finish`]. A refresh walks it together with the guard's
    /// visitor, so the document is read once ([`super::check_and_format`]).
    pub(super) fn new(src: &'a str, max_bytes: usize) -> Self {
        // The bound counts the body after any declaration, which is rewritten: a document and its
        // as-written fallback then get the same bound, and formatting stays idempotent.
        let body_len = src.len() - declaration_end(src);
        let limit = body_len.saturating_mul(2).saturating_add(SLACK_BYTES).min(max_bytes);
        Printer {
            src,
            out: Output {
                // A pretty-printed feed is typically a little larger than a minified one.
                xml: String::with_capacity((src.len() + src.len() / 8 + 256).min(limit)),
                limit,
                overflow: false,
            },
            declared: false,
            body_start: 0,
            stack: Vec::new(),
            verbatim: None,
            volatile: Vec::new(),
            root: Root::Other,
            scopes: Vec::new(),
            namespaces: HashMap::new(),
        }
    }

    /// The pretty form, after a walk that succeeded; or the document as written, when the pretty
    /// form would have been over the bound; or [`FeedError::TooLarge`] when even that is.
    pub(super) fn finish(self, max_bytes: usize) -> Result<Formatted, FeedError> {
        if !self.out.overflow {
            return Ok(Formatted {
                xml: self.out.xml,
                volatile: self.volatile,
                as_written: false,
            });
        }
        // As written: the fresh declaration, then everything after the original one.
        let declaration_len = self.out.declaration_len();
        let mut declaration = self.out.xml;
        declaration.truncate(declaration_len);
        let rest = &self.src[self.body_start..];
        let size = declaration.len() + rest.len();
        if size > max_bytes {
            return Err(FeedError::TooLarge { size, limit: max_bytes });
        }
        let mut xml = String::with_capacity(size);
        xml.push_str(&declaration);
        xml.push_str(rest);
        Ok(Formatted {
            xml,
            volatile: Vec::new(),
            as_written: true,
        })
    }

    /// The top element's content is not structure: copy it as it came.
    fn go_verbatim(&mut self) {
        let top = self.stack.len() - 1;
        let mark = self.stack[top].out_content;
        self.out.rollback(mark);
        self.volatile.retain(|span| span.end <= mark);
        self.verbatim = Some(top);
    }

    fn is_volatile(&self, depth: usize, local: &str) -> bool {
        match self.root {
            Root::Rss => {
                depth == 2
                    && self.stack.get(1).is_some_and(|f| f.local == "channel")
                    && matches!(local, "lastBuildDate" | "pubDate")
            }
            Root::Atom => depth == 1 && local == "updated",
            Root::Other => false,
        }
    }

    /// Records the tag's namespace declarations and says whether it is in the XHTML namespace.
    fn is_xhtml(&mut self, tag: &Tag<'a>, depth: usize) -> bool {
        if tag.has_attributes() {
            for (name, value) in tag.attributes() {
                let prefix = match name.strip_prefix("xmlns") {
                    Some("") => "",
                    Some(rest) => match rest.strip_prefix(':') {
                        Some(prefix) => prefix,
                        None => continue,
                    },
                    None => continue,
                };
                self.scopes.push((depth, prefix));
                self.namespaces.entry(prefix).or_default().push(value);
            }
        }
        let prefix = tag.name.rsplit_once(':').map_or("", |(prefix, _)| prefix);
        self.namespaces
            .get(prefix)
            .and_then(|uris| uris.last())
            .is_some_and(|uri| *uri == XHTML)
    }

    /// Forgets the namespace declarations of elements at `depth` and deeper.
    fn close_scope(&mut self, depth: usize) {
        while let Some(&(d, prefix)) = self.scopes.last()
            && d >= depth
        {
            self.scopes.pop();
            if let Some(uris) = self.namespaces.get_mut(prefix) {
                uris.pop();
            }
        }
    }
}

impl<'a> Visitor<'a> for Printer<'a> {
    fn visit(&mut self, event: &Event<'a>, span: Range<usize>, depth: usize) -> Result<(), FeedError> {
        if let Event::Decl { version, standalone } = event {
            let version = if *version == "1.1" { "1.1" } else { "1.0" };
            let standalone = standalone.map(|v| format!(r#" standalone="{v}""#)).unwrap_or_default();
            self.out
                .push(&format!(r#"<?xml version="{version}" encoding="UTF-8"{standalone}?>"#));
            self.declared = true;
            self.body_start = span.end;
            return Ok(());
        }
        if !self.declared {
            self.out.push(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
            self.declared = true;
        }

        if let Some(index) = self.verbatim {
            match event {
                Event::Start(_) => self.stack.push(frame("", span.end, self.out.len())),
                Event::End => {
                    let done = self.stack.pop().expect("end tag has a frame");
                    self.close_scope(depth);
                    if self.stack.len() == index {
                        self.out.push(&self.src[done.src_content..span.end]);
                        self.verbatim = None;
                        if let Some(from) = done.volatile_from {
                            self.volatile.push(from..self.out.len());
                        }
                    }
                }
                _ => {}
            }
            return Ok(());
        }

        match event {
            Event::Start(_) | Event::Empty(_) | Event::Comment | Event::Pi | Event::DocType => {
                let xhtml = match event {
                    Event::Start(tag) | Event::Empty(tag) => self.is_xhtml(tag, depth),
                    _ => false,
                };
                if let Event::Empty(_) = event {
                    self.close_scope(depth);
                }
                if let Some(parent) = self.stack.last_mut() {
                    if parent.text || xhtml {
                        self.go_verbatim();
                        if matches!(event, Event::Start(_)) {
                            self.stack.push(frame("", span.end, self.out.len()));
                        }
                        return Ok(());
                    }
                    parent.children = true;
                }
                let local = match event {
                    Event::Start(tag) | Event::Empty(tag) => Some(local_name(tag.name)),
                    _ => None,
                };
                if let (0, Some(local)) = (depth, local) {
                    self.root = match local {
                        "rss" => Root::Rss,
                        "feed" => Root::Atom,
                        _ => Root::Other,
                    };
                }
                let volatile_from = local
                    .filter(|local| self.is_volatile(depth, local))
                    .map(|_| self.out.len());
                self.out.indent(depth);
                self.out.push(&self.src[span.clone()]);
                match event {
                    Event::Start(tag) => {
                        let mut f = frame(local.unwrap_or(""), span.end, self.out.len());
                        f.volatile_from = volatile_from;
                        self.stack.push(f);
                        if content_is_markup(tag) {
                            self.verbatim = Some(self.stack.len() - 1);
                        }
                    }
                    Event::Empty(_) => {
                        if let Some(from) = volatile_from {
                            self.volatile.push(from..self.out.len());
                        }
                    }
                    _ => {}
                }
            }
            Event::Text { whitespace: true } => {}
            Event::Text { .. } | Event::CData | Event::Ref => {
                if let Some(top) = self.stack.last_mut() {
                    if top.children {
                        self.go_verbatim();
                    } else {
                        top.text = true;
                    }
                }
            }
            Event::End => {
                let done = self.stack.pop().expect("end tag has a frame");
                self.close_scope(depth);
                if done.children {
                    self.out.indent(depth);
                    self.out.push(&self.src[span]);
                } else {
                    self.out.push(&self.src[done.src_content..span.end]);
                }
                if let Some(from) = done.volatile_from {
                    self.volatile.push(from..self.out.len());
                }
            }
            Event::Eof => self.out.indent(0),
            Event::Decl { .. } => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// Elements whose content is markup, where whitespace between child elements is content:
/// Atom's `type="xhtml"` and XML media types (`application/xhtml+xml`, `…/xml`, `…+xml`),
/// Atom 0.3's `mode="xml"`, and anything marked `xml:space="preserve"`.
fn content_is_markup(tag: &Tag<'_>) -> bool {
    // Most feed elements have no attributes at all; this runs for every start tag.
    if !tag.has_attributes() {
        return false;
    }
    tag.attributes().any(|(name, value)| match name {
        "type" => {
            let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            media == "xhtml" || media.ends_with("/xml") || media.ends_with("+xml")
        }
        "mode" => value == "xml",
        "xml:space" => value == "preserve",
        _ => false,
    })
}

/// A frame for an element; elements inside a verbatim copy need no name (`""`).
fn frame(local: &str, src_content: usize, out_content: usize) -> Frame<'_> {
    Frame {
        local,
        src_content,
        out_content,
        children: false,
        text: false,
        volatile_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format(s).unwrap().to_xml()
    }

    #[test]
    fn indents_element_only_content() {
        assert_eq!(
            fmt("<a><b>x</b><c/></a>"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>\n  <b>x</b>\n  <c/>\n</a>\n"
        );
    }

    #[test]
    fn keeps_mixed_content_as_written() {
        let src = "<a>\n<p>one <b>two</b>  three\n  <i>x</i> </p></a>";
        assert_eq!(
            fmt(src),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>\n  <p>one <b>two</b>  three\n  <i>x</i> </p>\n</a>\n"
        );
    }

    #[test]
    fn late_text_rolls_back_to_verbatim() {
        let src = "<r><p>\n  <b>bold</b>\n  <i>it</i>\n  tail</p></r>";
        assert_eq!(
            fmt(src),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r>\n  <p>\n  <b>bold</b>\n  <i>it</i>\n  tail</p>\n</r>\n"
        );
    }

    #[test]
    fn xhtml_content_and_preserved_space_are_verbatim() {
        let src =
            "<feed><content type=\"xhtml\"><div><p>a</p></div></content><x xml:space=\"preserve\"><y/></x></feed>";
        assert!(fmt(src).contains(
            "  <content type=\"xhtml\"><div><p>a</p></div></content>\n  <x xml:space=\"preserve\"><y/></x>\n"
        ));
    }

    #[test]
    fn text_only_whitespace_is_kept() {
        assert!(fmt("<a><b>  </b><c> x </c></a>").contains("<b>  </b>\n  <c> x </c>"));
    }

    #[test]
    fn fingerprint_ignores_build_dates_only() {
        let a = format("<rss version=\"2.0\"><channel><lastBuildDate>Mon</lastBuildDate><item><pubDate>1</pubDate></item></channel></rss>").unwrap();
        let b = format("<rss version=\"2.0\"><channel><lastBuildDate>Tue</lastBuildDate><item><pubDate>1</pubDate></item></channel></rss>").unwrap();
        let c = format("<rss version=\"2.0\"><channel><lastBuildDate>Tue</lastBuildDate><item><pubDate>2</pubDate></item></channel></rss>").unwrap();
        assert_ne!(a.to_xml(), b.to_xml());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(b.fingerprint(), c.fingerprint());
    }

    #[test]
    fn pieces_hash_and_stream_like_the_assembled_string() {
        let sources = [
            "<rss version=\"2.0\"><channel><title>t</title><lastBuildDate>Mon</lastBuildDate><pubDate>x</pubDate><item><b>a</b> mixed</item></channel></rss>",
            "<rss><channel><lastBuildDate>1</lastBuildDate><p><x/> late text</p><pubDate/></channel></rss>",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><updated>1</updated><entry><updated>2</updated></entry></feed>",
        ];
        for src in sources {
            let formatted = format(src).unwrap();
            let xml = formatted.to_xml();
            assert_eq!(xml.len(), formatted.len());
            let mut kept = Vec::new();
            let mut at = 0;
            for span in &formatted.volatile {
                kept.extend_from_slice(&xml.as_bytes()[at..span.start]);
                at = span.end;
            }
            kept.extend_from_slice(&xml.as_bytes()[at..]);
            assert_eq!(formatted.fingerprint(), hex::encode(Sha256::digest(&kept)), "{src}");
            assert!(!formatted.volatile.is_empty(), "{src}");
            let mut streamed = Vec::new();
            formatted.write_to(&mut streamed).unwrap();
            assert_eq!(streamed, xml.as_bytes());
        }
    }

    #[test]
    fn indentation_stops_deepening_at_the_cap() {
        let depth = MAX_INDENT + 8;
        let src = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let xml = fmt(&src);
        assert!(xml.contains(&format!("\n{}<a></a>\n", " ".repeat(MAX_INDENT * 2))));
        assert!(!xml.contains(&" ".repeat(MAX_INDENT * 2 + 1)));
        assert_eq!(fmt(&xml), xml);
    }

    #[test]
    fn atom_updated_is_volatile_only_at_feed_level() {
        let ns = "xmlns=\"http://www.w3.org/2005/Atom\"";
        let a_src = format!("<feed {ns}><updated>1</updated><entry><updated>1</updated></entry></feed>");
        let a = format(&a_src).unwrap();
        let b_src = format!("<feed {ns}><updated>2</updated><entry><updated>1</updated></entry></feed>");
        let b = format(&b_src).unwrap();
        let c_src = format!("<feed {ns}><updated>2</updated><entry><updated>2</updated></entry></feed>");
        let c = format(&c_src).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(b.fingerprint(), c.fingerprint());
    }
}
