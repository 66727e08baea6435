//! The meaning-preserving pretty-printer.
//!
//! One streaming pass, no DOM. Element-only content is re-indented by two spaces; every other
//! element (text-only, mixed, empty) is copied byte for byte from the input, because whitespace
//! inside text is part of the feed. Tags, references, CDATA, comments, PIs and the DOCTYPE are
//! copied as written too, and so is everything inside Atom `type="xhtml"` content and
//! `xml:space="preserve"` elements. When non-whitespace text turns up in an element after its children
//! were already indented, the output rolls back to that element's start tag and copies it raw:
//! the common case stays one pass, and a mixed element found late costs only dropping the pieces
//! written for it. The output is a list of pieces of the input, so the feed's text is never copied.

use std::io::{self, BufWriter, Write};
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use sha2::{Digest, Sha256};

use super::FeedError;
use super::decode::decode;
use super::xml::{Visitor, attribute, document, element_name, is_xml_whitespace, local_name, walk};

/// A formatted document: pieces of the input and the whitespace between them, never a second
/// copy of the text, so a large feed costs its own size once (plus a little) and streams out.
#[derive(Debug, Clone)]
pub struct Formatted<'a> {
    src: &'a str,
    declaration: String,
    pieces: Vec<Piece>,
    len: usize,
    /// Output byte spans of the feed-level `lastBuildDate`/`pubDate` (RSS) and `updated` (Atom).
    volatile: Vec<Range<usize>>,
}

/// One stretch of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// Bytes of the input, as written.
    Source { start: usize, end: usize },
    /// A newline, then two spaces per level.
    Indent(usize),
    /// The fresh UTF-8 XML declaration.
    Declaration,
}

const SPACES: &str = "                                                                ";

impl Formatted<'_> {
    /// Length of the output in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The output as one string (what is stored).
    pub fn to_xml(&self) -> String {
        let mut xml = String::with_capacity(self.len);
        self.for_each_chunk(|chunk| xml.push_str(chunk));
        xml
    }

    /// Streams the output without building it in memory first.
    pub fn write_to(&self, writer: impl Write) -> io::Result<()> {
        let mut writer = BufWriter::with_capacity(64 * 1024, writer);
        let mut result = Ok(());
        self.for_each_chunk(|chunk| {
            if result.is_ok() {
                result = writer.write_all(chunk.as_bytes());
            }
        });
        result?;
        writer.flush()
    }

    /// SHA-256 (hex) of the output with the volatile dates left out: two fetches that differ only
    /// in a freshly stamped build date are the same feed, so nothing is written.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        let mut volatile = self.volatile.iter().peekable();
        let mut at = 0;
        self.for_each_chunk(|chunk| {
            let (start, end) = (at, at + chunk.len());
            let mut from = start;
            while from < end {
                while volatile.next_if(|span| span.end <= from).is_some() {}
                match volatile.peek() {
                    Some(span) if span.start < end => {
                        hasher.update(&chunk.as_bytes()[from - start..span.start.max(from) - start]);
                        from = span.end.min(end);
                    }
                    _ => {
                        hasher.update(&chunk.as_bytes()[from - start..]);
                        from = end;
                    }
                }
            }
            at = end;
        });
        hex::encode(hasher.finalize())
    }

    fn for_each_chunk(&self, mut emit: impl FnMut(&str)) {
        for piece in &self.pieces {
            match *piece {
                Piece::Source { start, end } => emit(&self.src[start..end]),
                Piece::Declaration => emit(&self.declaration),
                Piece::Indent(depth) => {
                    emit("\n");
                    let mut spaces = depth * 2;
                    while spaces > 0 {
                        let n = spaces.min(SPACES.len());
                        emit(&SPACES[..n]);
                        spaces -= n;
                    }
                }
            }
        }
    }
}

/// Decodes (BOM, declared encoding or UTF-8) and formats raw bytes.
pub fn format_bytes(bytes: &[u8]) -> Result<String, FeedError> {
    Ok(format(&decode(bytes)?)?.to_xml())
}

/// Pretty-prints a well-formed XML document without changing what it means.
pub fn format(text: &str) -> Result<Formatted<'_>, FeedError> {
    let src = document(text);
    let mut printer = Printer {
        src,
        // About one piece per 40 bytes of a typical feed; reserving avoids re-copying as it grows.
        out: Output {
            pieces: Vec::with_capacity(src.len() / 40 + 16),
            len: 0,
        },
        declaration: None,
        stack: Vec::new(),
        verbatim: None,
        volatile: Vec::new(),
        root: Root::Other,
    };
    walk(src, &mut printer)?;
    Ok(Formatted {
        src,
        declaration: printer.declaration.unwrap_or_default(),
        pieces: printer.out.pieces,
        len: printer.out.len,
        volatile: printer.volatile,
    })
}

/// The pieces written so far, and their length in bytes.
struct Output {
    pieces: Vec<Piece>,
    len: usize,
}

/// A point to roll the output back to.
#[derive(Clone, Copy)]
struct Mark {
    pieces: usize,
    len: usize,
    last: Option<Piece>,
}

impl Output {
    /// Appends input bytes, extending the last piece when they follow on from it.
    fn source(&mut self, span: Range<usize>) {
        self.len += span.len();
        if let Some(Piece::Source { end, .. }) = self.pieces.last_mut()
            && *end == span.start
        {
            *end = span.end;
            return;
        }
        self.pieces.push(Piece::Source {
            start: span.start,
            end: span.end,
        });
    }

    fn indent(&mut self, depth: usize) {
        self.len += 1 + depth * 2;
        self.pieces.push(Piece::Indent(depth));
    }

    fn mark(&self) -> Mark {
        Mark {
            pieces: self.pieces.len(),
            len: self.len,
            last: self.pieces.last().copied(),
        }
    }

    fn rollback(&mut self, mark: Mark) {
        self.pieces.truncate(mark.pieces);
        if let (Some(last), Some(piece)) = (mark.last, self.pieces.last_mut()) {
            *piece = last;
        }
        self.len = mark.len;
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

struct Printer<'a> {
    src: &'a str,
    out: Output,
    /// The declaration to write; `None` until the first node.
    declaration: Option<String>,
    stack: Vec<Frame<'a>>,
    /// Index in `stack` of the element being copied verbatim, if any.
    verbatim: Option<usize>,
    volatile: Vec<Range<usize>>,
    root: Root,
}

impl Printer<'_> {
    fn write_declaration(&mut self, declaration: String) {
        self.out.len += declaration.len();
        self.out.pieces.push(Piece::Declaration);
        self.declaration = Some(declaration);
    }

    /// The top element holds text as well as children: copy it as it came.
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
}

impl<'a> Visitor<'a> for Printer<'a> {
    fn visit(&mut self, event: &Event<'a>, span: Range<usize>, depth: usize) -> Result<(), FeedError> {
        if let Event::Decl(decl) = event {
            let version = decl
                .version()
                .ok()
                .filter(|v| v.as_ref() == b"1.1")
                .map_or("1.0", |_| "1.1");
            let standalone = match decl.standalone() {
                Some(Ok(value)) => format!(r#" standalone="{}""#, String::from_utf8_lossy(&value)),
                _ => String::new(),
            };
            self.write_declaration(format!(r#"<?xml version="{version}" encoding="UTF-8"{standalone}?>"#));
            return Ok(());
        }
        if self.declaration.is_none() {
            self.write_declaration(r#"<?xml version="1.0" encoding="UTF-8"?>"#.to_string());
        }

        if let Some(index) = self.verbatim {
            match event {
                Event::Start(_) => self.stack.push(frame("", span.end, self.out.mark())),
                Event::End(_) => {
                    let done = self.stack.pop().expect("end tag has a frame");
                    if self.stack.len() == index {
                        self.out.source(done.src_content..span.end);
                        self.verbatim = None;
                        if let Some(from) = done.volatile_from {
                            self.volatile.push(from..self.out.len);
                        }
                    }
                }
                _ => {}
            }
            return Ok(());
        }

        match event {
            Event::Start(_) | Event::Empty(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {
                if let Some(parent) = self.stack.last_mut() {
                    if parent.text {
                        self.go_verbatim();
                        if matches!(event, Event::Start(_)) {
                            self.stack.push(frame("", span.end, self.out.mark()));
                        }
                        return Ok(());
                    }
                    parent.children = true;
                }
                let (is_element, local) = match event {
                    Event::Start(start) | Event::Empty(start) => {
                        (true, local_name(element_name(self.src, span.start, start)))
                    }
                    _ => (false, ""),
                };
                if depth == 0 && is_element {
                    self.root = match local {
                        "rss" => Root::Rss,
                        "feed" => Root::Atom,
                        _ => Root::Other,
                    };
                }
                let volatile_from = (is_element && self.is_volatile(depth, local)).then_some(self.out.len);
                self.out.indent(depth);
                self.out.source(span.clone());
                match event {
                    Event::Start(start) => {
                        let mut f = frame(local, span.end, self.out.mark());
                        f.volatile_from = volatile_from;
                        self.stack.push(f);
                        if preserves_whitespace(start) {
                            self.verbatim = Some(self.stack.len() - 1);
                        }
                    }
                    Event::Empty(_) => {
                        if let Some(from) = volatile_from {
                            self.volatile.push(from..self.out.len);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(text) if is_xml_whitespace(text) => {}
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                if let Some(top) = self.stack.last_mut() {
                    if top.children {
                        self.go_verbatim();
                    } else {
                        top.text = true;
                    }
                }
            }
            Event::End(_) => {
                let done = self.stack.pop().expect("end tag has a frame");
                if done.children {
                    self.out.indent(depth);
                    self.out.source(span);
                } else {
                    self.out.source(done.src_content..span.end);
                }
                if let Some(from) = done.volatile_from {
                    self.volatile.push(from..self.out.len);
                }
            }
            Event::Eof => self.out.indent(0),
            Event::Decl(_) => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// Elements whose whitespace is content even between child elements: Atom's `type="xhtml"`
/// constructs (the XHTML is the entry's content) and anything marked `xml:space="preserve"`.
fn preserves_whitespace(start: &BytesStart<'_>) -> bool {
    // Most feed elements have no attributes at all; this runs for every start tag.
    if start.attributes_raw().iter().all(u8::is_ascii_whitespace) {
        return false;
    }
    attribute(start, "type").is_some_and(|v| v == "xhtml")
        || attribute(start, "xml:space").is_some_and(|v| v == "preserve")
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
    fn deep_nesting_indents_past_the_spaces_table() {
        let depth = 40;
        let src = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let xml = fmt(&src);
        assert!(xml.contains(&format!("\n{}<a></a>\n", " ".repeat((depth - 1) * 2))));
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
