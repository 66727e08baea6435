//! The meaning-preserving pretty-printer.
//!
//! One streaming pass, no DOM. Element-only content is re-indented by two spaces; every other
//! element (text-only, mixed, empty) is copied byte for byte from the input, because whitespace
//! inside text is part of the feed. Tags, references, CDATA, comments, PIs and the DOCTYPE are
//! copied as written too, and so is everything inside Atom `type="xhtml"` content and
//! `xml:space="preserve"` elements. When non-whitespace text turns up in an element after its children
//! were already indented, the output rolls back to that element's start tag and copies it raw:
//! the common case stays one pass, and the rare mixed element costs one extra copy.

use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use sha2::{Digest, Sha256};

use super::FeedError;
use super::decode::decode;
use super::xml::{Visitor, attribute, document, is_xml_whitespace, local_name, tag_name, walk};

/// A formatted document, with the spans that change on every fetch of many feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    /// The pretty-printed UTF-8 document, declaration included.
    pub xml: String,
    /// Output spans of the feed-level `lastBuildDate`/`pubDate` (RSS) and `updated` (Atom).
    volatile: Vec<Range<usize>>,
}

impl Formatted {
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

/// Decodes (BOM, declared encoding or UTF-8) and formats raw bytes.
pub fn format_bytes(bytes: &[u8]) -> Result<Formatted, FeedError> {
    format(&decode(bytes)?)
}

/// Pretty-prints a well-formed XML document without changing what it means.
pub fn format(text: &str) -> Result<Formatted, FeedError> {
    let src = document(text);
    let mut printer = Printer {
        src,
        out: String::with_capacity(src.len() + src.len() / 4 + 64),
        header: false,
        stack: Vec::new(),
        verbatim: None,
        volatile: Vec::new(),
        root: Root::Other,
    };
    walk(src, &mut printer)?;
    Ok(Formatted {
        xml: printer.out,
        volatile: printer.volatile,
    })
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
    /// Output offset just after the start tag.
    out_content: usize,
    /// An element, comment or PI child was seen (and indented).
    children: bool,
    /// Non-whitespace text, CDATA or a reference was seen.
    text: bool,
    /// Output offset where this element's line began, when it is a volatile date.
    volatile_from: Option<usize>,
}

struct Printer<'a> {
    src: &'a str,
    out: String,
    /// Whether the XML declaration has been written.
    header: bool,
    stack: Vec<Frame<'a>>,
    /// Index in `stack` of the element being copied verbatim, if any.
    verbatim: Option<usize>,
    volatile: Vec<Range<usize>>,
    root: Root,
}

const INDENT: &str = "                                                                ";

impl Printer<'_> {
    fn ensure_header(&mut self) {
        if !self.header {
            self.header = true;
            self.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        }
    }

    fn newline(&mut self, depth: usize) {
        self.out.push('\n');
        let mut spaces = depth * 2;
        while spaces > 0 {
            let n = spaces.min(INDENT.len());
            self.out.push_str(&INDENT[..n]);
            spaces -= n;
        }
    }

    /// The top element holds text as well as children: copy it as it came.
    fn go_verbatim(&mut self) {
        let top = self.stack.len() - 1;
        let cut = self.stack[top].out_content;
        self.out.truncate(cut);
        self.volatile.retain(|span| span.end <= cut);
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
        let raw = &self.src[span.clone()];
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
            self.out
                .push_str(&format!(r#"<?xml version="{version}" encoding="UTF-8"{standalone}?>"#));
            self.header = true;
            return Ok(());
        }
        self.ensure_header();

        if let Some(index) = self.verbatim {
            match event {
                Event::Start(_) => self.stack.push(frame(raw, span.end, 0)),
                Event::End(_) => {
                    let done = self.stack.pop().expect("end tag has a frame");
                    if self.stack.len() == index {
                        self.out.push_str(&self.src[done.src_content..span.end]);
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
            Event::Start(_) | Event::Empty(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {
                if let Some(parent) = self.stack.last_mut() {
                    if parent.text {
                        self.go_verbatim();
                        if matches!(event, Event::Start(_)) {
                            self.stack.push(frame(raw, span.end, 0));
                        }
                        return Ok(());
                    }
                    parent.children = true;
                }
                if depth == 0 && matches!(event, Event::Start(_) | Event::Empty(_)) {
                    self.root = match local_name(tag_name(raw)) {
                        "rss" => Root::Rss,
                        "feed" => Root::Atom,
                        _ => Root::Other,
                    };
                }
                let local = local_name(tag_name(raw));
                let volatile_from = (matches!(event, Event::Start(_) | Event::Empty(_))
                    && self.is_volatile(depth, local))
                .then_some(self.out.len());
                self.newline(depth);
                self.out.push_str(raw);
                match event {
                    Event::Start(start) => {
                        let mut f = frame(raw, span.end, self.out.len());
                        f.volatile_from = volatile_from;
                        self.stack.push(f);
                        if preserves_whitespace(start) {
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
                    self.newline(depth);
                    self.out.push_str(raw);
                } else {
                    self.out.push_str(&self.src[done.src_content..span.end]);
                }
                if let Some(from) = done.volatile_from {
                    self.volatile.push(from..self.out.len());
                }
            }
            Event::Eof => self.out.push('\n'),
            Event::Decl(_) => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// Elements whose whitespace is content even between child elements: Atom's `type="xhtml"`
/// constructs (the XHTML is the entry's content) and anything marked `xml:space="preserve"`.
fn preserves_whitespace(start: &BytesStart<'_>) -> bool {
    attribute(start, "type").is_some_and(|v| v == "xhtml")
        || attribute(start, "xml:space").is_some_and(|v| v == "preserve")
}

fn frame(raw: &str, src_content: usize, out_content: usize) -> Frame<'_> {
    Frame {
        local: local_name(tag_name(raw)),
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
        format(s).unwrap().xml
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
        assert_ne!(a.xml, b.xml);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(b.fingerprint(), c.fingerprint());
    }

    #[test]
    fn atom_updated_is_volatile_only_at_feed_level() {
        let ns = "xmlns=\"http://www.w3.org/2005/Atom\"";
        let a = format(&format!(
            "<feed {ns}><updated>1</updated><entry><updated>1</updated></entry></feed>"
        ))
        .unwrap();
        let b = format(&format!(
            "<feed {ns}><updated>2</updated><entry><updated>1</updated></entry></feed>"
        ))
        .unwrap();
        let c = format(&format!(
            "<feed {ns}><updated>2</updated><entry><updated>2</updated></entry></feed>"
        ))
        .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(b.fingerprint(), c.fingerprint());
    }
}
