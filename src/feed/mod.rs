//! Turning a solver reply into a feed worth publishing: extraction, the publish guard and the
//! meaning-preserving formatter.
//!
//! Everything here is pure and synchronous: text in, text or a typed refusal out.

mod decode;
mod extract;
mod format;
mod guard;
mod pages;

pub use pages::explain_net_error;
pub(crate) mod xml;

pub use decode::{decode, decode_owned, decode_with_charset};
pub use extract::{Extracted, Wrapper, extract, extract_owned, json_in_page};
pub use format::{Document, Formatted, MAX_INDENT, Pretty, Reader, SLACK_BYTES, format, format_within};
pub use guard::{DEFAULT_MAX_BYTES, FeedInfo, FeedKind, GuardOptions, check};
pub use xml::{MAX_DEPTH, MAX_EXPANSION_BYTES, MAX_EXPANSION_FACTOR};

/// [`check`] and [`format_within`] in one walk of the document: a refresh reads its feed once.
/// The verdict is [`check`]'s, exactly (the guard's visitor sees each event first, and the
/// formatter's never fails); then the formatted document, as [`format_within`] makes it.
pub fn check_and_format(
    text: &str,
    options: GuardOptions,
    max_bytes: usize,
) -> Result<(FeedInfo, Formatted<'_>), FeedError> {
    let doc = guard::before_walk(text, options)?;
    let mut both = Both {
        shape: guard::Shape::new(doc),
        printer: format::Printer::new(text, max_bytes),
    };
    let walked = xml::walk(doc, &mut both);
    let info = both.shape.finish(walked, options)?;
    Ok((info, both.printer.finish(max_bytes)?))
}

/// [`check_and_format`] of a text the result then owns: what a refresh holds until the store has
/// the output, which is never assembled.
pub fn check_and_format_owned(
    text: String,
    options: GuardOptions,
    max_bytes: usize,
) -> Result<(FeedInfo, Document), FeedError> {
    let (info, formatted) = check_and_format(&text, options, max_bytes)?;
    let layout = formatted.into_layout();
    Ok((info, Document::join(text, layout)))
}

/// The guard's visitor and the formatter's, over one walk.
struct Both<'a> {
    shape: guard::Shape<'a>,
    printer: format::Printer<'a>,
}

impl<'a> xml::Visitor<'a> for Both<'a> {
    fn visit(&mut self, event: &xml::Event<'a>, span: std::ops::Range<usize>, depth: usize) -> Result<(), FeedError> {
        self.shape.visit(event, span.clone(), depth)?;
        self.printer.visit(event, span, depth)
    }
}

use thiserror::Error;

/// Why a reply or document is not published. Each message says what happened and what to do.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FeedError {
    #[error(
        "the reply is {size} bytes, over the {limit}-byte cap: refusing it to protect memory; if the feed really is this large, raise the cap"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "the solver returned an empty page, not the feed: the site sent nothing, or Chrome loaded nothing (Chrome downloads rather than shows some feed types, such as application/x-rss+xml; fetch = \"auto\" fetches those directly)"
    )]
    Empty,
    #[error(
        "the solver returned JSON, not a feed: the feed url points at a JSON endpoint; use the site's RSS or Atom url"
    )]
    Json,
    #[error(
        "the site serves this feed as text/html, so Chrome parsed it as HTML and broke it (<link> becomes a void element, CDATA becomes a comment); it is not repaired. Fix: use a feed url the site serves as XML, ask the site to send application/rss+xml, or run the PyPI FlareSolverr build (pip install flaresolverr), which returns the raw bytes"
    )]
    ParsedAsHtml,
    #[error(
        "the solver returned a Cloudflare challenge page, not the feed: the challenge was not solved; raise [solver] max_timeout_ms (--max-timeout with --url) or update FlareSolverr"
    )]
    CloudflareChallenge,
    #[error(
        "the solver returned a Cloudflare block page, not the feed: the site refuses the solver's IP address; run FlareSolverr from another address or behind a proxy"
    )]
    CloudflareBlock,
    #[error("the solver returned a DDoS-Guard check page, not the feed: FlareSolverr did not get past DDoS-Guard")]
    DdosGuard,
    #[error(
        "the solver returned Chrome's error page ({code}), not the feed: {}",
        pages::explain_net_error(code)
    )]
    ChromeError { code: String },
    #[error(
        "the site is failing: the solver returned its error page titled {title:?}, not the feed; it is tried again at the next refresh"
    )]
    ServerError { title: String },
    #[error(
        "the solver returned Chrome's New Tab page, not the feed: Chrome did not show the url (an unsupported scheme, a port Chrome refuses, or a feed type Chrome downloads rather than shows, such as application/x-rss+xml: fetch = \"auto\" fetches those directly); check the feed url"
    )]
    ChromeNewTab,
    #[error("the solver returned an HTML page{}, not a feed: check that the feed url is the feed itself and not the site's page or an error page", title.as_ref().map(|t| format!(" titled {t:?}")).unwrap_or_default())]
    HtmlPage { title: Option<String> },
    #[error("the document is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("the document declares the encoding {label:?}, which flarefeed does not know")]
    UnknownEncoding { label: String },
    #[error("the document has bytes that are not valid {encoding}")]
    BadEncoding { encoding: String },
    #[error("the document is not well-formed XML: line {line}, column {column}: {detail}")]
    NotWellFormed { line: usize, column: usize, detail: String },
    #[error(
        "the document's DOCTYPE {detail}; flarefeed refuses it to protect readers: it never expands entities itself, and accepts only internal entities that stand for plain text (README, \"What the guard refuses\")"
    )]
    UnsafeDoctype { detail: String },
    #[error(
        "the document's entity references expand to more than {limit} bytes (5 times the document, at most 8 MiB): refused as an entity-expansion attack"
    )]
    EntityExpansion { limit: usize },
    #[error(
        "the document nests elements more than {limit} deep: refused, since libxml2 (Chrome and most feed readers) refuses such documents too, and no real feed is that deep"
    )]
    TooDeep { limit: usize },
    #[error("the document is XML but its root element is <{root}>, not RSS <rss>, Atom <feed> or RSS 1.0 <rdf:RDF>")]
    NotAFeed { root: String },
    #[error(
        "the document is {kind} version {version:?}, which flarefeed does not accept (RSS 0.91–2.0, Atom 0.3 or 1.0, RSS 1.0)"
    )]
    UnsupportedVersion { kind: &'static str, version: String },
    #[error(
        "the feed has {found} items, fewer than min_items = {min}: refusing to publish a feed that lost its items; lower the feed's min_items (--min-items with --url) if this is expected"
    )]
    TooFewItems { found: usize, min: usize },
}

/// The known page `page` is, if it is one that is not what was asked for: a wall, Chrome's
/// error or New Tab page. A feed built from a page whose rules found nothing says this, rather
/// than that a selector matched nothing.
pub fn known_page(page: &str) -> Option<FeedError> {
    pages::looks_like_html(page).then(|| pages::known_page(page)).flatten()
}

/// The largest page [`wall`] looks at: a challenge or block page is a few kilobytes, and a page
/// larger than this is a feed or a site's page, never a wall.
const WALL_MAX_BYTES: usize = 256 * 1024;

/// Whether a solver's page is a wall it did not get past: a Cloudflare challenge or block page,
/// or DDoS-Guard's check, and no feed. A pool of solvers passes such an answer over for its next
/// solver, which may get past it. Only small pages are looked at, as the guard would see them
/// (after the feed is looked for in Chrome's viewer or `<pre>`), so a feed that mentions
/// Cloudflare is never one.
pub fn wall(page: &str) -> Option<FeedError> {
    if page.len() > WALL_MAX_BYTES {
        return None;
    }
    let extracted = extract(page).ok()?;
    if !pages::looks_like_html(&extracted.text) {
        return None;
    }
    match pages::known_page(&extracted.text)? {
        wall @ (FeedError::CloudflareChallenge | FeedError::CloudflareBlock | FeedError::DdosGuard) => Some(wall),
        _ => None,
    }
}
