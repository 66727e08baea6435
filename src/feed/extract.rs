//! Recovering the feed's XML from `solution.response`.
//!
//! The official FlareSolverr build returns Chrome's `page_source`, not the bytes the site sent:
//! a feed served as `application/rss+xml` comes back HTML-escaped inside a `<pre>`, one served
//! as `application/xml` inside Chrome's XML viewer. The PyPI build returns the raw bytes.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::FeedError;
use super::pages::looks_like_html;
use super::xml::{document, malformed};

const VIEWER_SOURCE: &str = r#"<div id="webkit-xml-viewer-source-xml">"#;
const PRE_END: &str = "</pre></body></html>";
const JSON_VIEWER_END: &str = r#"</pre><div class="json-formatter-container"></div></body></html>"#;
/// What takes the place of Chrome's view around a feed: the declaration of the UTF-8 it is now.
const DECLARATION_LINE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Which wrapper the feed came in, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    /// The text as the site sent it (PyPI build), or a page that is no wrapper at all.
    Raw,
    /// Chrome's plain-text view: HTML-escaped inside `<pre>`.
    Pre,
    /// Chrome's XML viewer: the document re-serialised inside a hidden `<div>`.
    XmlViewer,
}

/// The text recovered from a reply, still to be guarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted<'a> {
    pub text: Cow<'a, str>,
    pub wrapper: Wrapper,
}

/// Unwraps Chrome's views. Anything else, HTML pages included, is passed on unchanged for the
/// guard to judge, so a challenge page is reported as a challenge page.
pub fn extract(response: &str) -> Result<Extracted<'_>, FeedError> {
    let (text, wrapper) = match find(response)? {
        Found::Raw(doc) => (Cow::Borrowed(doc), Wrapper::Raw),
        Found::Viewer(rest) => (Cow::Owned(from_xml_viewer(rest)?), Wrapper::XmlViewer),
        Found::Pre(escaped) => (
            undo_windows_1252(html_escape::decode_html_entities(escaped)),
            Wrapper::Pre,
        ),
    };
    Ok(Extracted { text, wrapper })
}

/// [`extract`] of a page the feed then takes the place of: a slice of the page is cut down in
/// place, Chrome's `<pre>` view is unescaped and its XML viewer's source cut out in the page's
/// own buffer, so a refresh holds the page or the feed, never both.
pub fn extract_owned(page: String) -> Result<(String, Wrapper), FeedError> {
    let at = |part: &str| part.as_ptr() as usize - page.as_ptr() as usize;
    let place = match find(&page)? {
        Found::Raw(doc) => Place::Slice(at(doc)..at(doc) + doc.len()),
        Found::Pre(escaped) => Place::Escaped(at(escaped)..at(escaped) + escaped.len()),
        Found::Viewer(rest) => Place::Viewer(at(rest)),
    };
    Ok(match place {
        Place::Slice(range) => {
            let mut page = page;
            page.truncate(range.end);
            page.drain(..range.start);
            (page, Wrapper::Raw)
        }
        Place::Escaped(range) => {
            let text = unescape_in_place(page, range);
            let text = match undo_windows_1252(Cow::Borrowed(&text)) {
                Cow::Borrowed(_) => text,
                Cow::Owned(repaired) => repaired,
            };
            (text, Wrapper::Pre)
        }
        Place::Viewer(from) => (from_xml_viewer_in_place(page, from)?, Wrapper::XmlViewer),
    })
}

/// What a page is, as [`extract`] reads it.
enum Found<'a> {
    /// No wrapper: the document itself.
    Raw(&'a str),
    /// Chrome's XML viewer: what follows the source `<div>`'s start tag.
    Viewer(&'a str),
    /// Chrome's `<pre>` view: the escaped text.
    Pre(&'a str),
}

fn find(response: &str) -> Result<Found<'_>, FeedError> {
    let doc = document(response);
    if doc.trim_end().is_empty() {
        return Err(FeedError::Empty);
    }
    if !looks_like_html(doc) {
        return Ok(Found::Raw(doc));
    }
    if let Some(at) = doc.find(VIEWER_SOURCE) {
        return Ok(Found::Viewer(&doc[at + VIEWER_SOURCE.len()..]));
    }
    match pre_content(doc) {
        Some(Pre::Json(_)) => Err(FeedError::Json),
        Some(Pre::Text(escaped)) => Ok(Found::Pre(escaped)),
        None => Ok(Found::Raw(doc)),
    }
}

/// Where the feed is in a page it is to take the place of.
enum Place {
    Slice(std::ops::Range<usize>),
    Escaped(std::ops::Range<usize>),
    /// Where what follows the viewer's source `<div>` start tag begins.
    Viewer(usize),
}

/// The entities Chrome writes in a `<pre>` view's text (its serializer escapes `&`, `<`, `>`
/// and U+00A0 in text, nothing else), and what each stands for: each is longer than its text.
const CHROME_ENTITIES: [(&[u8], &str); 4] = [(b"&lt;", "<"), (b"&gt;", ">"), (b"&amp;", "&"), (b"&nbsp;", "\u{a0}")];

/// `page[escaped]` with its entities decoded, written over the page's own buffer from its start:
/// what [`html_escape::decode_html_entities`] makes of it, without a copy. Chrome's four
/// entities are decoded in place (each is longer than what it stands for, so the writing never
/// overtakes the reading); from any other `&` on, the rest is decoded by `html_escape` into a
/// copy, as [`extract`] does.
fn unescape_in_place(page: String, escaped: std::ops::Range<usize>) -> String {
    let mut bytes = page.into_bytes();
    let (mut read, mut write, end) = (escaped.start, 0, escaped.end);
    let mut rest = None;
    while read < end {
        let amp = memchr::memchr(b'&', &bytes[read..end]).map_or(end, |i| read + i);
        bytes.copy_within(read..amp, write);
        write += amp - read;
        read = amp;
        if read == end {
            break;
        }
        let known = CHROME_ENTITIES
            .iter()
            .find(|(entity, _)| bytes[read..end].starts_with(entity));
        let Some((entity, text)) = known else {
            rest = Some(read);
            break;
        };
        bytes[write..write + text.len()].copy_from_slice(text.as_bytes());
        write += text.len();
        read += entity.len();
    }
    let tail = rest.map(|from| {
        let rest = std::str::from_utf8(&bytes[from..end]).expect("a run of the page's text from an ASCII byte");
        html_escape::decode_html_entities(rest).into_owned()
    });
    bytes.truncate(write);
    if let Some(tail) = tail {
        bytes.extend_from_slice(tail.as_bytes());
    }
    String::from_utf8(bytes).expect("runs of the page's text split at ASCII bytes, and whole characters")
}

/// Chrome's plain-text view decodes a body whose `Content-Type` names no charset as
/// Windows-1252, whatever its XML declaration says: a UTF-8 feed served as `application/rss+xml`
/// without `; charset=utf-8` comes back as mojibake ("新闻" as "æ–°é—»"), well-formed and wrong.
/// Seen with a live FlareBypasser and Chromium 156 (`flarebypasser-0.1.52/rss-no-charset.json`).
///
/// So a document that declares UTF-8 (or declares nothing, which means UTF-8) and is not ASCII is
/// encoded back to Windows-1252; if that succeeds for every character and the bytes are valid
/// UTF-8, they are what the site sent. Text Chrome decoded right does not pass: CJK text has no
/// Windows-1252 form, and a lone "é" is not valid UTF-8 as one byte.
fn undo_windows_1252(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.is_ascii() || !declares_utf8(&text) || !fits_windows_1252(&text) {
        return text;
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    if unmappable {
        return text;
    }
    match String::from_utf8(bytes.into_owned()) {
        Ok(repaired) if repaired != *text => Cow::Owned(repaired),
        _ => text,
    }
}

/// Whether every character has a Windows-1252 byte, found with a small scratch buffer: a real
/// feed in CJK or Cyrillic fails at its first such character, and costs no copy of its size
/// (the whole encoding would write each of them out as a character reference).
fn fits_windows_1252(text: &str) -> bool {
    let mut encoder = encoding_rs::WINDOWS_1252.new_encoder();
    let mut scratch = [0u8; 16 * 1024];
    let mut rest = text;
    loop {
        let (result, read, _) = encoder.encode_from_utf8_without_replacement(rest, &mut scratch, true);
        match result {
            encoding_rs::EncoderResult::InputEmpty => return true,
            encoding_rs::EncoderResult::OutputFull => rest = &rest[read..],
            encoding_rs::EncoderResult::Unmappable(_) => return false,
        }
    }
}

/// Whether the XML declaration names UTF-8, or there is none (XML's default).
fn declares_utf8(text: &str) -> bool {
    let text = document(text);
    let Some(declaration) = text.strip_prefix("<?xml").and_then(|rest| rest.split("?>").next()) else {
        return true;
    };
    match declaration.find("encoding") {
        None => true,
        Some(at) => {
            let value = declaration[at + "encoding".len()..]
                .trim_start()
                .trim_start_matches('=')
                .trim_start()
                .trim_start_matches(['"', '\''])
                .to_ascii_lowercase();
            value.starts_with("utf-8") || value.starts_with("utf8")
        }
    }
}

enum Pre<'a> {
    Text(&'a str),
    /// Chrome's JSON view: the escaped JSON.
    Json(&'a str),
}

/// The JSON in Chrome's JSON view (the official build's answer for an API), unescaped; `None`
/// if the page is not that view. A feed built from a JSON API reads it.
pub fn json_in_page(page: &str) -> Option<Cow<'_, str>> {
    let doc = document(page);
    match pre_content(doc)? {
        // Escaped text never holds a raw `<`.
        Pre::Json(escaped) if !escaped.contains('<') => Some(html_escape::decode_html_entities(escaped)),
        Pre::Json(_) => None,
        Pre::Text(_) => None,
    }
}

/// The escaped text of Chrome's `<html>…<body><pre …>TEXT</pre></body></html>` view, if that is
/// what the page is. Escaped text never holds a raw `<`, which tells it from an HTML page that
/// happens to use a `<pre>`.
fn pre_content(doc: &str) -> Option<Pre<'_>> {
    let body = doc.find("<body><pre")? + "<body>".len();
    let open_end = body + doc[body..].find('>')? + 1;
    let doc = doc.trim_end();
    if let Some(inner) = doc.strip_suffix(JSON_VIEWER_END) {
        return Some(Pre::Json(inner.get(open_end..)?));
    }
    let inner = doc.strip_suffix(PRE_END)?.get(open_end..)?;
    (!inner.contains('<')).then_some(Pre::Text(inner))
}

/// The document inside the viewer's source `<div>`, with what Chrome changed undone where it
/// matters: a fresh UTF-8 declaration, and no `xmlns=""` on a root that had no default namespace.
fn from_xml_viewer(rest: &str) -> Result<String, FeedError> {
    let source = viewer_source(rest)?;
    let tag = without_empty_default_namespace(&rest[source.root.clone()]);
    let mut out = String::with_capacity(source.end + DECLARATION_LINE.len());
    out.push_str(DECLARATION_LINE);
    out.push_str(&rest[..source.root.start]);
    out.push_str(&tag);
    out.push_str(&rest[source.root.end..source.end]);
    Ok(out)
}

/// [`from_xml_viewer`] in the page's own buffer, `rest` starting at `from`: the page is cut
/// down to the document, and its head gives way to the declaration, which is shorter than the
/// source `<div>`'s start tag alone.
fn from_xml_viewer_in_place(mut page: String, from: usize) -> Result<String, FeedError> {
    let source = viewer_source(&page[from..])?;
    let root = from + source.root.start..from + source.root.end;
    let tag = without_empty_default_namespace(&page[root.clone()]).into_owned();
    page.truncate(from + source.end);
    page.replace_range(root, &tag);
    page.replace_range(..from, DECLARATION_LINE);
    Ok(page)
}

/// Where the document is in what follows the viewer's source `<div>` start tag.
struct ViewerSource {
    /// The root's start tag.
    root: std::ops::Range<usize>,
    /// Where the `<div>` closes.
    end: usize,
}

fn viewer_source(rest: &str) -> Result<ViewerSource, FeedError> {
    let mut reader = Reader::from_str(rest);
    let config = reader.config_mut();
    config.trim_text(false);
    config.allow_unmatched_ends = true;
    let bad = |at: u64, detail: String| malformed(rest, at as usize, format!("in Chrome's XML viewer page: {detail}"));
    let mut depth = 0usize;
    let mut root: Option<(usize, usize)> = None;
    let mut last = 0usize;
    let end = loop {
        let event = reader
            .read_event()
            .map_err(|e| bad(reader.error_position(), e.to_string()))?;
        let pos = reader.buffer_position() as usize;
        match event {
            Event::Start(_) | Event::Empty(_) => {
                if depth == 0 && root.is_none() {
                    root = Some((last, pos));
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) if depth == 0 => break last,
            Event::End(_) => depth -= 1,
            Event::Eof => return Err(bad(pos as u64, "the source <div> is never closed".into())),
            _ => {}
        }
        last = pos;
    };
    let (start, end_of_tag) = root.ok_or_else(|| bad(0, "no root element in the source <div>".into()))?;
    Ok(ViewerSource {
        root: start..end_of_tag,
        end,
    })
}

/// Chrome's serializer adds `xmlns=""` to a root in no namespace; the original never had it.
fn without_empty_default_namespace(tag: &str) -> Cow<'_, str> {
    let mut from = 0;
    while let Some(found) = tag[from..].find(r#"xmlns="""#) {
        let at = from + found;
        if at > 0 && tag.as_bytes()[at - 1].is_ascii_whitespace() {
            return Cow::Owned(format!("{}{}", &tag[..at - 1], &tag[at + r#"xmlns="""#.len()..]));
        }
        from = at + 1;
    }
    Cow::Borrowed(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_xml_passes_through_without_bom() {
        let e = extract("\u{feff}<?xml version=\"1.0\"?><rss/>").unwrap();
        assert_eq!(e.text, "<?xml version=\"1.0\"?><rss/>");
        assert_eq!(e.wrapper, Wrapper::Raw);
    }

    #[test]
    fn chromes_json_view_gives_its_json_back() {
        let recorded = include_str!("../../tests/fixtures/flaresolverr/upstream-3.5.0/json_nosession.json");
        let reply: serde_json::Value = serde_json::from_str(recorded).unwrap();
        let page = reply["solution"]["response"].as_str().unwrap();
        let json = json_in_page(page).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["nested"]["html"], "<b>x</b> & y");
        assert_eq!(value["nested"]["zh"], "中文");
        assert_eq!(extract(page).unwrap_err(), FeedError::Json);
        assert_eq!(json_in_page("<html><body><pre>{}</pre></body></html>"), None);
    }

    #[test]
    fn pre_wrapper_is_unescaped() {
        let page =
            "<html><head></head><body><pre style=\"x\">&lt;rss&gt;&amp;amp;&nbsp;&lt;/rss&gt;\n</pre></body></html>";
        let e = extract(page).unwrap();
        assert_eq!(e.text, "<rss>&amp;\u{a0}</rss>\n");
        assert_eq!(e.wrapper, Wrapper::Pre);
    }

    /// Unescaping in the page's buffer gives what `extract` gives, for Chrome's four entities
    /// and for any other, in any place; the raw case is cut down to the document.
    #[test]
    fn a_page_is_unescaped_in_place_as_extract_unescapes_it() {
        let wrap = |inner: &str| format!("<html><head></head><body><pre style=\"x\">{inner}</pre></body></html>");
        for inner in [
            "&lt;rss&gt;&amp;amp;&nbsp;中文&lt;/rss&gt;\n",
            "&lt;a&gt;&eacute;&amp;lt;&#x4E2D;&copy &nGt; &notit; &lt;/a&gt;",
            "&nGt;&lt;a/&gt;",
            "&lt;a&gt;x&amp&lt;/a&gt;&",
            "no entities at all",
        ] {
            let page = wrap(inner);
            let expected = extract(&page).unwrap();
            let (text, wrapper) = extract_owned(page.clone()).unwrap();
            assert_eq!((text.as_str(), wrapper), (&*expected.text, expected.wrapper), "{inner}");
        }
        let (utf8, _, _) = encoding_rs::UTF_8.encode("<rss><title>新闻 &amp; Café</title></rss>");
        let (shown, _, _) = encoding_rs::WINDOWS_1252.decode(&utf8);
        let page = wrap(&html_escape::encode_text(&shown).replace('\u{a0}', "&nbsp;"));
        let (text, _) = extract_owned(page).unwrap();
        assert_eq!(
            text, "<rss><title>新闻 &amp; Café</title></rss>",
            "Chrome's Windows-1252 view undone"
        );
        let viewer = r#"<html xmlns="http://www.w3.org/1999/xhtml"><head><style id="xml-viewer-style">div { x }</style></head><body><div id="webkit-xml-viewer-source-xml"><rss xmlns="" version="2.0"><channel><title>中 &amp; x</title></channel></rss></div><div class="pretty-print">rendered</div></body></html>"#;
        let expected = extract(viewer).unwrap();
        let (text, wrapper) = extract_owned(viewer.into()).unwrap();
        assert_eq!((text.as_str(), wrapper), (&*expected.text, Wrapper::XmlViewer));
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\">"),
            "{text}"
        );
        let (text, wrapper) = extract_owned("\u{feff}\n<rss/>\n".into()).unwrap();
        assert_eq!((text.as_str(), wrapper), ("<rss/>\n", Wrapper::Raw));
    }

    #[test]
    fn viewer_root_loses_only_the_added_namespace() {
        assert_eq!(
            without_empty_default_namespace(r#"<rss xmlns="" version="2.0">"#),
            r#"<rss version="2.0">"#
        );
        assert_eq!(
            without_empty_default_namespace(r#"<rss a="xmlns=""">"#),
            r#"<rss a="xmlns=""">"#
        );
    }

    #[test]
    fn html_page_with_markup_in_pre_is_not_a_wrapper() {
        let page = "<html><head></head><body><pre><b>x</b></pre></body></html>";
        assert_eq!(extract(page).unwrap().wrapper, Wrapper::Raw);
    }

    /// A UTF-8 feed Chrome showed as Windows-1252 (no charset in its Content-Type) is repaired;
    /// text Chrome decoded right, and a feed that declares another encoding, are left alone.
    #[test]
    fn chrome_s_windows_1252_view_of_utf8_is_undone() {
        let original =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss><title>新闻 — Café “q” € 😀 你 \u{81}</title></rss>";
        let (bytes, _, _) = encoding_rs::UTF_8.encode(original);
        let (shown, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
        assert_ne!(shown, original);
        let escaped = html_escape::encode_text(&shown).replace('\u{a0}', "&nbsp;");
        let page = format!("<html><head></head><body><pre style=\"x\">{escaped}</pre></body></html>");
        assert_eq!(extract(&page).unwrap().text, original);

        for untouched in [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss><title>新闻 Café</title></rss>",
            "<rss><title>Café</title></rss>",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss><title>CafÃ©</title></rss>",
        ] {
            let page = format!(
                "<html><head></head><body><pre>{}</pre></body></html>",
                html_escape::encode_text(untouched)
            );
            assert_eq!(extract(&page).unwrap().text, untouched);
        }
    }
}
