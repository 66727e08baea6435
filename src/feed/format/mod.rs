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
//! The output is never assembled while formatting: it is a list of pieces, each an optional line
//! break and indent and then a slice of the input (the pretty form only ever drops whitespace
//! between elements and adds indentation). A piece takes a few bytes however long its slice, so
//! formatting holds the input and little else: `flarefeed format` streams the pieces to stdout,
//! and a refresh hands them to the store ([`Document`]), which writes them as they lie. Its size is
//! bounded: indentation stops deepening at [`MAX_INDENT`] levels, and should the pretty form still
//! pass twice the input plus [`SLACK_BYTES`] (or the caller's cap), the document is published as
//! written instead.

mod output;

use std::collections::HashMap;
use std::ops::Range;

pub use output::{Document, Formatted, Pretty, Reader};
use output::{Layout, Mark, Pieces, write_varint};

use super::FeedError;
use super::xml::{Event, Tag, Visitor, document, local_name, walk};

/// Indentation stops deepening here: past it, lines would be mostly spaces.
pub const MAX_INDENT: usize = 32;

/// The pretty form may be at most twice the input plus this many bytes.
pub const SLACK_BYTES: usize = 4096;

const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// Pretty-prints a well-formed XML document without changing what it means.
pub fn format(text: &str) -> Result<Formatted<'_>, FeedError> {
    format_within(text, usize::MAX)
}

/// [`format`], refusing before it is built any output over `max_bytes`: the pretty form falls
/// back to the document as written, and if even that is over, the result is
/// [`FeedError::TooLarge`].
pub fn format_within(text: &str, max_bytes: usize) -> Result<Formatted<'_>, FeedError> {
    let mut printer = Printer::new(text, max_bytes);
    walk(document(text), &mut printer)?;
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
    declaration: String,
    pieces: Pieces,
    limit: usize,
    /// Something did not fit: the rest is ignored and the document goes out as written.
    overflow: bool,
}

impl Output {
    /// Whether `more` bytes still fit; if not, the output overflows for good.
    fn fits(&mut self, more: usize) -> bool {
        if self.overflow || self.pieces.len + more > self.limit {
            self.overflow = true;
            return false;
        }
        true
    }

    /// The declaration is always the first thing written.
    fn declare(&mut self, declaration: String) {
        if self.fits(declaration.len()) {
            self.pieces.len += declaration.len();
            self.declaration = declaration;
        }
    }

    /// A line break and indent at `depth` when given, then the input's bytes in `range`.
    fn piece(&mut self, depth: Option<usize>, range: Range<usize>) {
        let indent = depth.map_or(0, |d| 1 + 2 * d.min(MAX_INDENT));
        if !self.fits(indent + range.len()) {
            return;
        }
        let pieces = &mut self.pieces;
        pieces.bytes.push(depth.map_or(0, |d| 1 + d.min(MAX_INDENT) as u8));
        write_varint(&mut pieces.bytes, range.start - pieces.src_end);
        write_varint(&mut pieces.bytes, range.len());
        pieces.src_end = range.end;
        pieces.len += indent + range.len();
    }

    fn len(&self) -> usize {
        self.pieces.len
    }

    fn mark(&self) -> Mark {
        Mark {
            bytes: self.pieces.bytes.len(),
            src_end: self.pieces.src_end,
            len: self.pieces.len,
        }
    }

    fn rollback(&mut self, mark: Mark) {
        self.pieces.bytes.truncate(mark.bytes);
        self.pieces.src_end = mark.src_end;
        self.pieces.len = mark.len;
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
    /// The output just after the start tag.
    out_content: Mark,
    /// An element, comment or PI child was seen (and indented).
    children: bool,
    /// Non-whitespace text, CDATA or a reference was seen.
    text: bool,
    /// Output offset where this element's line began, when it is a volatile date.
    volatile_from: Option<usize>,
}

pub(super) struct Printer<'a> {
    src: &'a str,
    /// The text `src` is the end of (after a BOM, whitespace).
    text: &'a str,
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
    /// How many of those bindings are to the XHTML namespace: with none, no tag is looked up.
    xhtml_bindings: usize,
}

impl<'a> Printer<'a> {
    /// A printer of `text`, refusing output over `max_bytes`: walk it over the document in it
    /// ([`document`]), then [`Printer::finish`]. A refresh walks it together with the guard's
    /// visitor, so the document is read once ([`super::check_and_format`]).
    pub(super) fn new(text: &'a str, max_bytes: usize) -> Self {
        let src = document(text);
        // The bound counts the body after any declaration, which is rewritten: a document and its
        // as-written fallback then get the same bound, and formatting stays idempotent.
        let body_len = src.len() - declaration_end(src);
        let limit = body_len.saturating_mul(2).saturating_add(SLACK_BYTES).min(max_bytes);
        Printer {
            src,
            text,
            out: Output {
                declaration: String::new(),
                // A feed's elements are rarely under 64 bytes a piece.
                pieces: Pieces {
                    bytes: Vec::with_capacity(src.len() / 64 + 64),
                    ..Pieces::default()
                },
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
            xhtml_bindings: 0,
        }
    }

    /// The pretty form, after a walk that succeeded; or the document as written, when the pretty
    /// form would have been over the bound; or [`FeedError::TooLarge`] when even that is.
    pub(super) fn finish(self, max_bytes: usize) -> Result<Formatted<'a>, FeedError> {
        let Output {
            declaration,
            pieces,
            overflow,
            ..
        } = self.out;
        if !overflow {
            return Ok(Formatted::join(
                self.text,
                Layout {
                    skip: self.text.len() - self.src.len(),
                    declaration,
                    pieces,
                    volatile: self.volatile,
                    as_written: false,
                },
            ));
        }
        // As written: the fresh declaration (if it fitted), then everything after the original one.
        let size = declaration.len() + self.src.len() - self.body_start;
        if size > max_bytes {
            return Err(FeedError::TooLarge { size, limit: max_bytes });
        }
        let mut out = Output {
            pieces: Pieces {
                len: declaration.len(),
                ..Pieces::default()
            },
            declaration,
            limit: usize::MAX,
            overflow: false,
        };
        out.piece(None, self.body_start..self.src.len());
        Ok(Formatted::join(
            self.text,
            Layout {
                skip: self.text.len() - self.src.len(),
                declaration: out.declaration,
                pieces: out.pieces,
                volatile: Vec::new(),
                as_written: true,
            },
        ))
    }

    /// The top element's content is not structure: copy it as it came.
    fn go_verbatim(&mut self) {
        let top = self.stack.len() - 1;
        let mark = self.stack[top].out_content;
        self.out.rollback(mark);
        self.volatile.retain(|span| span.end <= mark.len);
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
                self.xhtml_bindings += usize::from(value == XHTML);
            }
        }
        if self.xhtml_bindings == 0 {
            return false;
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
            if let Some(uris) = self.namespaces.get_mut(prefix)
                && uris.pop() == Some(XHTML)
            {
                self.xhtml_bindings -= 1;
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
                .declare(format!(r#"<?xml version="{version}" encoding="UTF-8"{standalone}?>"#));
            self.declared = true;
            self.body_start = span.end;
            return Ok(());
        }
        if !self.declared {
            self.out
                .declare(r#"<?xml version="1.0" encoding="UTF-8"?>"#.to_string());
            self.declared = true;
        }

        if let Some(index) = self.verbatim {
            match event {
                Event::Start(_) => self.stack.push(frame("", span.end, self.out.mark())),
                Event::End => {
                    let done = self.stack.pop().expect("end tag has a frame");
                    self.close_scope(depth);
                    if self.stack.len() == index {
                        self.out.piece(None, done.src_content..span.end);
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
                            self.stack.push(frame("", span.end, self.out.mark()));
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
                self.out.piece(Some(depth), span.clone());
                match event {
                    Event::Start(tag) => {
                        let mut f = frame(local.unwrap_or(""), span.end, self.out.mark());
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
                    self.out.piece(Some(depth), span);
                } else {
                    self.out.piece(None, done.src_content..span.end);
                }
                if let Some(from) = done.volatile_from {
                    self.volatile.push(from..self.out.len());
                }
            }
            Event::Eof => {
                let end = self.out.pieces.src_end;
                self.out.piece(Some(0), end..end);
            }
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
fn frame(local: &str, src_content: usize, out_content: Mark) -> Frame<'_> {
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
    use std::io::{self, Write};

    use sha2::{Digest, Sha256};

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
            for span in &formatted.layout().volatile {
                kept.extend_from_slice(&xml.as_bytes()[at..span.start]);
                at = span.end;
            }
            kept.extend_from_slice(&xml.as_bytes()[at..]);
            assert_eq!(formatted.fingerprint(), hex::encode(Sha256::digest(&kept)), "{src}");
            assert!(!formatted.layout().volatile.is_empty(), "{src}");
            let mut streamed = Vec::new();
            formatted.write_to(&mut streamed).unwrap();
            assert_eq!(streamed, xml.as_bytes());
        }
    }

    /// A writer that takes a few bytes a call, as a pipe may: every piece still goes out once.
    #[test]
    fn short_writes_still_write_everything() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(7);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let src = format!(
            "<rss version=\"2.0\"><channel>{}</channel></rss>",
            "<item><title>t</title><b/></item>".repeat(900)
        );
        let formatted = format(&src).unwrap();
        let mut out = Trickle(Vec::new());
        formatted.write_to(&mut out).unwrap();
        assert_eq!(out.0, formatted.to_xml().as_bytes());
        assert_eq!(formatted.as_str(), formatted.to_xml());
        // Three bytes a piece here, where each piece stands for 4 to 16 bytes of input.
        assert!(
            formatted.layout().pieces.bytes.len() < src.len() / 2,
            "pieces are small beside the input"
        );
    }

    #[test]
    fn as_written_is_one_piece_after_the_new_declaration() {
        let src = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a><b/><b/><b/></a>";
        let formatted = format_within(src, src.len()).unwrap();
        assert!(formatted.as_written());
        assert_eq!(
            formatted.into_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a><b/><b/><b/></a>"
        );
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
