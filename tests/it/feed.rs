//! Extraction, guard and formatter against recorded replies and written fixtures.
//!
//! An independent parser (roxmltree) is the oracle for "means the same": the sequence of
//! elements, attribute values, text, CDATA, comments and PIs, where whitespace-only text counts
//! unless it sits between children of an element that has no other text.

use flarefeed::feed::{self, FeedError, FeedKind, GuardOptions, Wrapper};
use proptest::prelude::*;

use crate::helpers::fixtures::{fixture, fixture_path, recorded_response};

const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// What a feed parser sees in a document.
pub fn meaning(xml: &str) -> Vec<String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options).unwrap_or_else(|e| panic!("roxmltree: {e}\n{xml}"));
    let mut out = Vec::new();
    walk(doc.root(), false, &mut out);
    out
}

fn walk(node: roxmltree::Node<'_, '_>, preserve: bool, out: &mut Vec<String>) {
    let is_ws = |t: &str| t.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let has_text = node.children().any(|c| c.is_text() && !is_ws(c.text().unwrap_or("")));
    let has_markup = node.children().any(|c| c.is_element() || c.is_comment() || c.is_pi());
    for child in node.children() {
        match child.node_type() {
            roxmltree::NodeType::Element => {
                let tag = child.tag_name();
                out.push(format!("<{{{}}}{}", tag.namespace().unwrap_or(""), tag.name()));
                for a in child.attributes() {
                    out.push(format!(
                        "@{{{}}}{}={}",
                        a.namespace().unwrap_or(""),
                        a.name(),
                        a.value()
                    ));
                }
                let xml_type = child.attribute("type").is_some_and(|t| {
                    let media = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                    media == "xhtml" || media.ends_with("/xml") || media.ends_with("+xml")
                });
                let keeps = preserve
                    || xml_type
                    || child.attribute("mode") == Some("xml")
                    || child.attribute(("http://www.w3.org/XML/1998/namespace", "space")) == Some("preserve")
                    || child
                        .children()
                        .any(|c| c.is_element() && c.tag_name().namespace() == Some(XHTML));
                walk(child, keeps, out);
                out.push(">".into());
            }
            roxmltree::NodeType::Text if !node.is_root() => {
                let text = child.text().unwrap_or("");
                if preserve || has_text || !has_markup || !is_ws(text) {
                    out.push(format!("text:{text}"));
                }
            }
            roxmltree::NodeType::Comment => out.push(format!("<!--{}", child.text().unwrap_or(""))),
            roxmltree::NodeType::PI => {
                let pi = child.pi().unwrap();
                out.push(format!("<?{} {}", pi.target, pi.value.unwrap_or("")));
            }
            _ => {}
        }
    }
}

/// Formats, and checks meaning and idempotence on the way.
fn format_checked(input: &str) -> String {
    let once = feed::format(input).unwrap().to_xml();
    assert_eq!(
        meaning(input),
        meaning(&once),
        "format changed the meaning of\n{input}\n---\n{once}"
    );
    let twice = feed::format(&once).unwrap().to_xml();
    assert_eq!(once, twice, "format is not idempotent");
    assert!(once.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\""));
    once
}

/// Whether an error is the one a case expects.
type Expect = fn(&FeedError) -> bool;

fn refusal(text: &str) -> FeedError {
    feed::check(text, GuardOptions::default()).unwrap_err()
}

// ---- extraction ----

#[test]
fn chrome_pre_view_gives_back_the_original_bytes() {
    for kind in ["rss", "atom"] {
        let wrapped = recorded_response(&format!("upstream-3.5.0/{kind}_nosession.json"));
        let original = recorded_response(&format!("pypi-3.3.21/{kind}_nosession.json"));
        let extracted = feed::extract(&wrapped).unwrap();
        assert_eq!(extracted.wrapper, Wrapper::Pre);
        assert_eq!(extracted.text, original, "{kind}");
    }
}

#[test]
fn raw_replies_pass_through_and_are_accepted() {
    let rss = recorded_response("pypi-3.3.21/rss_nosession.json");
    let extracted = feed::extract(&rss).unwrap();
    assert_eq!(extracted.wrapper, Wrapper::Raw);
    let info = feed::check(&extracted.text, GuardOptions::default()).unwrap();
    assert_eq!(info.to_string(), "rss 2.0, 2 items");
    let atom = recorded_response("pypi-3.3.21/atom_nosession.json");
    assert_eq!(
        feed::check(&atom, GuardOptions::default()).unwrap().to_string(),
        "atom 1.0, 1 item"
    );
    let with_bom = format!("\u{feff}{rss}");
    assert_eq!(feed::extract(&with_bom).unwrap().text, rss);
    let without_declaration = rss.split_once("?>").unwrap().1;
    assert_eq!(
        feed::check(without_declaration, GuardOptions::default()).unwrap().items,
        2
    );
}

#[test]
fn chrome_xml_viewer_is_unwrapped() {
    let page = recorded_response("upstream-3.5.0/special_appxml_nosession.json");
    let extracted = feed::extract(&page).unwrap();
    assert_eq!(extracted.wrapper, Wrapper::XmlViewer);
    assert_eq!(extracted.text, fixture("feeds/appxml.extracted.xml"));
    assert!(!extracted.text.contains("xmlns=\"\""));
    let info = feed::check(&extracted.text, GuardOptions::default()).unwrap();
    assert_eq!(info.to_string(), "rss 2.0, 1 item");
    let formatted = format_checked(&extracted.text);
    let doc = roxmltree::Document::parse(&formatted).unwrap();
    let encoded = doc.descendants().find(|n| n.tag_name().name() == "encoded").unwrap();
    assert_eq!(
        encoded.text(),
        Some("<div><img src=\"x.png\"/> 你好，世界 ]]> end</div>")
    );
    let title = doc.descendants().find(|n| n.tag_name().name() == "title").unwrap();
    assert_eq!(title.text(), Some("特殊字符 Feed & Co"));
}

#[test]
fn any_text_survives_the_pre_view() {
    let rich = fixture("feeds/rich.xml");
    let page = crate::helpers::fake_solver::pre_wrapped(&rich);
    assert_eq!(feed::extract(&page).unwrap().text, rich);
}

#[test]
fn json_is_refused() {
    let page = recorded_response("upstream-3.5.0/json_nosession.json");
    assert_eq!(feed::extract(&page).unwrap_err(), FeedError::Json);
}

#[test]
fn html_pages_are_refused_with_their_title() {
    for (path, title) in [
        ("upstream-3.5.0/html_nosession.json", "Probe HTML page"),
        ("upstream-3.5.0/http404_nosession.json", "404 Not Found"),
    ] {
        let page = recorded_response(path);
        let extracted = feed::extract(&page).unwrap();
        let error = refusal(&extracted.text);
        assert_eq!(
            error,
            FeedError::HtmlPage {
                title: Some(title.into())
            },
            "{path}"
        );
        assert!(error.to_string().contains(title));
    }
    // A server's own error page is the site failing, said so (issue 19).
    let page = recorded_response("upstream-3.5.0/http503_nosession.json");
    let error = refusal(&feed::extract(&page).unwrap().text);
    assert_eq!(
        error,
        FeedError::ServerError {
            title: "503 Service Unavailable".into()
        }
    );
    assert!(error.to_string().contains("the site is failing"));
}

// ---- guard ----

#[test]
fn every_refusal_has_its_reason() {
    let truncated = {
        let rss = recorded_response("pypi-3.3.21/rss_nosession.json");
        rss[..rss.len() / 2].to_string()
    };
    let cases: Vec<(String, Expect)> = vec![
        (fixture("pages/cloudflare-challenge.html"), |e| {
            *e == FeedError::CloudflareChallenge
        }),
        (fixture("pages/cloudflare-block.html"), |e| {
            *e == FeedError::CloudflareBlock
        }),
        (fixture("pages/cloudflare-1020.txt"), |e| {
            *e == FeedError::CloudflareBlock
        }),
        (fixture("pages/ddos-guard.html"), |e| *e == FeedError::DdosGuard),
        (fixture("pages/chrome-neterror.html"), |e| {
            *e == FeedError::ChromeError {
                code: "ERR_CONNECTION_REFUSED".into(),
            }
        }),
        (fixture("pages/chrome-newtab.html"), |e| *e == FeedError::ChromeNewTab),
        (fixture("pages/about-blank.html"), |e| *e == FeedError::Empty),
        ("   \n".into(), |e| *e == FeedError::Empty),
        (fixture("pages/feed-as-html.html"), |e| *e == FeedError::ParsedAsHtml),
        (
            truncated,
            |e| matches!(e, FeedError::NotWellFormed { detail, .. } if detail.contains("truncated")),
        ),
        (
            fixture("feeds/billion-laughs.xml"),
            |e| matches!(e, FeedError::UnsafeDoctype { detail } if detail.contains("another entity")),
        ),
        (
            fixture("feeds/xxe.xml"),
            |e| matches!(e, FeedError::UnsafeDoctype { detail } if detail.contains("external entity")),
        ),
        (fixture("feeds/sitemap.xml"), |e| {
            *e == FeedError::NotAFeed { root: "urlset".into() }
        }),
        ("<feed><entry/></feed>".into(), |e| {
            *e == FeedError::NotAFeed { root: "feed".into() }
        }),
        ("<rss version=\"3.0\"><channel><item/></channel></rss>".into(), |e| {
            matches!(e, FeedError::UnsupportedVersion { .. })
        }),
        (fixture("feeds/zero-items.xml"), |e| {
            *e == FeedError::TooFewItems { found: 0, min: 1 }
        }),
        (
            "<rss version=\"2.0\"><channel><item>&nbsp;</item></channel></rss>".into(),
            |e| matches!(e, FeedError::NotWellFormed { detail, .. } if detail.contains("&nbsp;")),
        ),
        (
            "<rss version=\"2.0\"><channel><item>\u{1}</item></channel></rss>".into(),
            |e| matches!(e, FeedError::NotWellFormed { detail, .. } if detail.contains("U+0001")),
        ),
        (
            "<rss version=\"2.0\"><channel><item/></channel></rss><rss/>".into(),
            |e| matches!(e, FeedError::NotWellFormed { detail, .. } if detail.contains("more than one root")),
        ),
        (
            "<rss version=\"2.0\"><channel><item></channel></item></rss>".into(),
            |e| matches!(e, FeedError::NotWellFormed { line: 1, .. }),
        ),
        (
            "<rss version=\"2.0\" version=\"2.0\"><channel><item/></channel></rss>".into(),
            |e| matches!(e, FeedError::NotWellFormed { .. }),
        ),
        (
            "<rss version=\"2.0\"><channel a=\"x<y\"><item/></channel></rss>".into(),
            |e| matches!(e, FeedError::NotWellFormed { .. }),
        ),
        (
            "<rss version=\"2.0\"><channel><item>a & b</item></channel></rss>".into(),
            |e| matches!(e, FeedError::NotWellFormed { .. }),
        ),
    ];
    for (text, expected) in cases {
        let error = refusal(&text);
        assert!(expected(&error), "{text:.80} gave {error:?}");
    }
    assert_eq!(
        feed::check(
            &fixture("feeds/rich.xml"),
            GuardOptions {
                min_items: 5,
                ..GuardOptions::default()
            }
        )
        .unwrap_err(),
        FeedError::TooFewItems { found: 2, min: 5 }
    );
    assert_eq!(
        feed::check(
            &fixture("feeds/rich.xml"),
            GuardOptions {
                max_bytes: 100,
                ..GuardOptions::default()
            }
        )
        .unwrap_err(),
        FeedError::TooLarge {
            size: fixture("feeds/rich.xml").len(),
            limit: 100
        }
    );
}

#[test]
fn refusal_messages_say_what_happened() {
    assert!(
        FeedError::CloudflareChallenge
            .to_string()
            .contains("Cloudflare challenge page, not the feed: the challenge was not solved")
    );
    assert!(FeedError::ParsedAsHtml.to_string().contains("text/html"));
    let unsafe_doctype = FeedError::UnsafeDoctype {
        detail: "declares a parameter entity".into(),
    };
    assert!(unsafe_doctype.to_string().contains("never expands"));
}

#[test]
fn decoding_failures_are_refusals() {
    assert_eq!(
        feed::decode(b"<rss>\xC3\x28</rss>").unwrap_err(),
        FeedError::InvalidUtf8 { offset: 5 }
    );
    assert!(matches!(
        feed::decode(b"<?xml version=\"1.0\" encoding=\"GBK\"?><rss>\x81\x20</rss>").unwrap_err(),
        FeedError::BadEncoding { .. }
    ));
    assert!(matches!(
        feed::decode(b"<?xml version=\"1.0\" encoding=\"EBCDIC-XYZ\"?><rss/>").unwrap_err(),
        FeedError::UnknownEncoding { .. }
    ));
}

#[test]
fn a_huge_billion_laughs_is_refused_at_the_doctype() {
    let mut doc = fixture("feeds/billion-laughs.xml").replace("</channel>", "");
    let body = "<item><title>&lol9;</title></item>".repeat(100_000);
    doc = doc.replace("<channel>", &format!("<channel>{body}"));
    // UnsafeDoctype comes from reading the DOCTYPE, before a byte of the body is looked at.
    assert!(matches!(refusal(&doc), FeedError::UnsafeDoctype { .. }));
}

#[test]
fn feeds_of_every_kind_are_accepted() {
    let ok = |text: &str| feed::check(text, GuardOptions::default()).unwrap();
    assert_eq!(ok(&fixture("feeds/rich.xml")).to_string(), "rss 2.0, 2 items");
    assert_eq!(ok(&fixture("feeds/atom-xhtml.xml")).kind, FeedKind::Atom10);
    assert_eq!(ok(&fixture("feeds/rdf.xml")).to_string(), "rss 1.0 (rdf), 2 items");
    assert_eq!(ok(&fixture("feeds/rss-mentions-cloudflare.xml")).items, 1);
    let latin1 = std::fs::read(fixture_path("feeds/latin1.xml")).unwrap();
    assert_eq!(ok(&feed::decode(&latin1).unwrap()).to_string(), "rss 0.91, 1 item");
    let atom03 = "<feed version=\"0.3\" xmlns=\"http://purl.org/atom/ns#\"><entry/></feed>";
    assert_eq!(ok(atom03).kind, FeedKind::Atom03);
    assert_eq!(FeedKind::Rdf.content_type(), "application/rdf+xml; charset=utf-8");
}

// ---- formatter ----

#[test]
fn rich_feed_formats_as_the_golden_file() {
    let formatted = format_checked(&fixture("feeds/rich.xml"));
    assert_eq!(formatted, fixture("feeds/rich.formatted.xml"));
    for kept in [
        "<?xml-stylesheet type=\"text/xsl\" href=\"/feed.xsl\"?>",
        "<!DOCTYPE rss>",
        "<!-- generated by a CMS; keep this comment -->",
        "&#169; &#x4E2D;",
        "<![CDATA[<div><img src=\"x.png\"/> 你好，世界 ]]]]><![CDATA[> end</div>]]>",
        "<description>Text with <b>bold</b>  and   <i>two  spaces</i>\n   kept exactly</description>",
        "<dc:subject>   </dc:subject>",
        "<guid isPermaLink=\"false\">id-1</guid>",
        "standalone=\"yes\"",
    ] {
        assert!(formatted.contains(kept), "lost {kept:?}");
    }
}

#[test]
fn atom_xhtml_content_is_written_as_it_came() {
    let input = fixture("feeds/atom-xhtml.xml");
    let formatted = format_checked(&input);
    let start = input.find("<content type=\"xhtml\">").unwrap();
    let end = input.find("</content>").unwrap() + "</content>".len();
    assert!(formatted.contains(&input[start..end]));
}

#[test]
fn other_encodings_are_transcoded_to_utf8() {
    for (path, text) in [("feeds/gbk.xml", "标题：你好"), ("feeds/latin1.xml", "Café crème")] {
        let bytes = std::fs::read(fixture_path(path)).unwrap();
        let decoded = feed::decode(&bytes).unwrap().into_owned();
        let formatted = feed::format(&feed::decode(&bytes).unwrap()).unwrap().into_xml();
        assert!(
            formatted.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            "{path}"
        );
        assert!(formatted.contains(text), "{path}");
        assert_eq!(meaning(&decoded), meaning(&formatted));
        assert_eq!(format_checked(&formatted), formatted);
    }
}

#[test]
fn every_fixture_feed_keeps_its_meaning() {
    for path in [
        "feeds/rich.xml",
        "feeds/atom-xhtml.xml",
        "feeds/rdf.xml",
        "feeds/appxml.extracted.xml",
        "feeds/zero-items.xml",
        "feeds/sitemap.xml",
    ] {
        format_checked(&fixture(path));
    }
    for path in ["pypi-3.3.21/rss_nosession.json", "pypi-3.3.21/atom_nosession.json"] {
        format_checked(&recorded_response(path));
    }
}

#[test]
fn not_well_formed_input_is_not_formatted() {
    assert!(matches!(
        feed::format("<a><b></a>").unwrap_err(),
        FeedError::NotWellFormed { .. }
    ));
    assert!(matches!(
        feed::format("<a>").unwrap_err(),
        FeedError::NotWellFormed { .. }
    ));
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Node {
    Element {
        name: &'static str,
        attributes: Vec<(&'static str, String)>,
        children: Vec<Node>,
        self_closing: bool,
    },
    Text(String),
    CData(String),
    Comment(String),
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn write(node: &Node, out: &mut String) {
    match node {
        Node::Element {
            name,
            attributes,
            children,
            self_closing,
        } => {
            out.push('<');
            out.push_str(name);
            for (key, value) in attributes {
                out.push_str(&format!(" {key}=\"{}\"", escape(value)));
            }
            if children.is_empty() && *self_closing {
                out.push_str("/>");
                return;
            }
            out.push('>');
            children.iter().for_each(|c| write(c, out));
            out.push_str(&format!("</{name}>"));
        }
        Node::Text(text) => out.push_str(&escape(text)),
        Node::CData(text) => out.push_str(&format!("<![CDATA[{text}]]>")),
        Node::Comment(text) => out.push_str(&format!("<!--{text}-->")),
    }
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        3 => "[ \t\n]{1,4}".prop_map(Node::Text),
        3 => "[a-z 中文&<>\"' ]{1,10}".prop_map(Node::Text),
        1 => "[a-z <>&中\n]{0,8}".prop_map(Node::CData),
        1 => "[a-z 中]{0,8}".prop_map(Node::Comment),
    ];
    leaf.prop_recursive(5, 80, 6, |inner| {
        (
            prop::sample::select(vec!["item", "title", "p", "x:y", "content", "h:div"]),
            prop::collection::btree_map(
                prop::sample::select(vec!["id", "type", "href", "xml:space", "mode"]),
                prop_oneof![
                    Just("xhtml".to_string()),
                    Just("preserve".to_string()),
                    Just("application/xhtml+xml".to_string()),
                    Just("xml".to_string()),
                    "[a-z &<\"中]{0,6}"
                ],
                0..3,
            ),
            prop::collection::vec(inner, 0..6),
            any::<bool>(),
        )
            .prop_map(|(name, attributes, children, self_closing)| Node::Element {
                name,
                attributes: attributes.into_iter().collect(),
                children,
                self_closing,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn format_keeps_meaning_and_is_idempotent(children in prop::collection::vec(node(), 0..6)) {
        let root = Node::Element { name: "root", attributes: vec![("xmlns:x", "urn:x".into()), ("xmlns:h", XHTML.into())], children, self_closing: false };
        let mut xml = String::new();
        write(&root, &mut xml);
        let once = feed::format(&xml).unwrap().to_xml();
        prop_assert_eq!(meaning(&xml), meaning(&once));
        let twice = feed::format(&once).unwrap().to_xml();
        prop_assert_eq!(once, twice);
    }

    /// Random nesting depths and trees: every accepted input formats within the size bound to a
    /// document an independent parser reads with the same meaning, and formatting is idempotent;
    /// anything deeper than the limit is refused, never formatted.
    #[test]
    fn any_depth_is_bounded_or_refused(
        depth in 1usize..400,
        leaf in node(),
        text in "[a-z ]{0,3}",
        siblings in 0usize..40,
    ) {
        let mut inner = String::new();
        write(&leaf, &mut inner);
        inner.push_str(&"<s/>".repeat(siblings));
        let xml = format!("{}{text}{inner}{}", "<a xmlns:x=\"urn:x\" xmlns:h=\"http://www.w3.org/1999/xhtml\">".to_string() + &"<a>".repeat(depth - 1), "</a>".repeat(depth));
        let leaf_depth = match &leaf { Node::Element { children, .. } if children.is_empty() => 1, Node::Element { .. } => 7, _ => 0 };
        // The `<s/>` siblings sit one level below the innermost `<a>` too.
        let leaf_depth = leaf_depth.max(usize::from(siblings > 0));
        match feed::format(&xml) {
            Ok(formatted) => {
                let once = formatted.into_xml();
                prop_assert!(once.len() <= 2 * xml.len() + feed::SLACK_BYTES, "{} > 2 × {} + slack", once.len(), xml.len());
                prop_assert_eq!(meaning(&xml), meaning(&once));
                let twice = feed::format(&once).unwrap().into_xml();
                prop_assert_eq!(once, twice);
            }
            Err(FeedError::TooDeep { limit }) => prop_assert!(depth + leaf_depth > limit, "refused at depth {}", depth),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}

// ---- hostile shapes (issue: feed safety) ----

#[test]
fn deep_nesting_is_refused_at_the_documented_limit() {
    let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    feed::format(&nested(feed::MAX_DEPTH)).unwrap();
    for depth in [feed::MAX_DEPTH + 1, 8_000, 1_000_000] {
        assert_eq!(
            feed::format(&nested(depth)).unwrap_err(),
            FeedError::TooDeep { limit: feed::MAX_DEPTH }
        );
        let rss = format!(
            "<rss version=\"2.0\"><channel><item>{}</item></channel></rss>",
            nested(depth)
        );
        assert_eq!(refusal(&rss), FeedError::TooDeep { limit: feed::MAX_DEPTH });
    }
}

#[test]
fn output_stays_linear_in_the_input() {
    // 8,000 levels formatted to 128 MB before; now the deepest accepted nesting, and a wide
    // document of tiny siblings at that depth, both stay within 2 × input + slack.
    let deep = format!("{}{}", "<a>".repeat(feed::MAX_DEPTH), "</a>".repeat(feed::MAX_DEPTH));
    let wide = format!("{}{}{}", "<a>".repeat(200), "<b/>".repeat(50_000), "</a>".repeat(200));
    for src in [deep, wide] {
        let formatted = feed::format(&src).unwrap();
        assert!(
            formatted.len() <= 2 * src.len() + feed::SLACK_BYTES,
            "{} from {}",
            formatted.len(),
            src.len()
        );
        assert_eq!(meaning(&src), meaning(formatted.as_str()));
    }
}

#[test]
fn pretty_form_over_the_cap_falls_back_to_the_document_as_written() {
    let src = format!("<r>{}</r>", "<a><b/></a>".repeat(1000));
    let pretty = feed::format(&src).unwrap();
    assert!(!pretty.as_written());
    let capped = feed::format_within(&src, src.len() + 100).unwrap();
    assert!(capped.as_written());
    assert_eq!(
        capped.as_str(),
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{src}")
    );
    assert_eq!(
        feed::format_within(&src, src.len() / 2).unwrap_err(),
        FeedError::TooLarge {
            size: src.len() + 38,
            limit: src.len() / 2
        }
    );
}

#[test]
fn markup_content_is_copied_verbatim() {
    let cases = [
        // Atom 1.0 with an XML media type.
        r#"<content type="application/xhtml+xml"><b>a</b><i>b</i></content>"#,
        r#"<summary type="text/xml; charset=utf-8"><x>a</x><y>b</y></summary>"#,
        r#"<content type="image/svg+xml"><svg><g/><g/></svg></content>"#,
        // Atom 0.3 mode="xml".
        r#"<content mode="xml" type="text/html"><b>a</b><i>b</i></content>"#,
        // Any element whose children are XHTML.
        r#"<description><div xmlns="http://www.w3.org/1999/xhtml"><b>a</b><i>b</i></div></description>"#,
        r#"<description xmlns:h="http://www.w3.org/1999/xhtml"><h:b>a</h:b><h:i>b</h:i></description>"#,
    ];
    for content in cases {
        let src = format!("<feed xmlns=\"http://purl.org/atom/ns#\" version=\"0.3\"><entry>{content}</entry></feed>");
        let out = format_checked(&src);
        assert!(
            out.contains(&format!("\n    {content}\n")),
            "{content} was changed:\n{out}"
        );
    }
    // Structure around them is still indented.
    let out = format_checked("<feed><entry><title>t</title><content type=\"text\">x</content></entry></feed>");
    assert!(out.contains("\n    <title>t</title>\n"));
}

#[test]
fn internal_entities_are_kept_verbatim_and_counted_right() {
    let src = concat!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n  <!ENTITY id \"tag:example.com,2024:\">\n]>\n",
        "<rss version=\"2.0\"><channel><title>t</title>",
        "<item><guid>&id;1</guid></item><item><guid>&id;2</guid></item></channel></rss>"
    );
    let info = feed::check(src, GuardOptions::default()).unwrap();
    assert_eq!(info.items, 2);
    let formatted = feed::format(src).unwrap();
    let xml = formatted.as_str();
    assert!(xml.contains("<!DOCTYPE rss [\n  <!ENTITY id \"tag:example.com,2024:\">\n]>"));
    assert!(xml.contains("<guid>&id;1</guid>") && xml.contains("<guid>&id;2</guid>"));
    // roxmltree expands the entity: the meaning is the site's.
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap();
    let guids: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("guid"))
        .map(|n| n.text().unwrap_or("").to_string())
        .collect();
    assert_eq!(guids.len(), 2);
    // The fingerprint follows the entity's meaning: a changed declaration is a changed feed.
    let changed = src.replace("2024:", "2025:");
    assert_ne!(formatted.fingerprint(), feed::format(&changed).unwrap().fingerprint());
}

#[test]
fn well_formedness_findings_are_refused() {
    let item = |body: &str| format!("<rss version=\"2.0\"><channel><item>{body}</item></channel></rss>");
    for doc in [
        item("a]]>b"),
        item("<1bad/>"),
        item("<?XML x?>"),
        format!("<!DOCTYPE rss><!DOCTYPE rss>{}", item("")),
        format!("<?xml version=\"1.0\" standalone='x\" injected=\"1'?>{}", item("")),
    ] {
        assert!(matches!(refusal(&doc), FeedError::NotWellFormed { .. }), "{doc}");
        assert!(feed::format(&doc).is_err(), "{doc}");
    }
}

/// A page title is the site's text: it reaches messages and logs escaped, never as raw control
/// characters (a forged log line, a terminal escape).
#[test]
fn site_chosen_titles_are_escaped_in_messages() {
    let page = "<html><head><title>Hi\nINFO forged line \u{1b}[31m\"x\"</title></head><body>x</body></html>";
    let message = refusal(page).to_string();
    assert!(!message.contains('\n') && !message.contains('\u{1b}'), "{message}");
    assert!(message.contains(r#"Hi\nINFO forged line \u{1b}[31m\"x\""#), "{message}");
}

/// Issue 20's one walk: `check_and_format` gives exactly what `check` then `format_within` gave,
/// verdicts and bytes, for every fixture feed, each hostile shape, broken documents and pages,
/// and a cap that forces the as-written fallback or refuses.
#[test]
fn one_walk_gives_what_the_two_gave() {
    let mut documents: Vec<String> = std::fs::read_dir(crate::helpers::fixtures::fixture_path("feeds"))
        .unwrap()
        .map(|entry| String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()).into_owned())
        .collect();
    let nested = |depth: usize| {
        format!(
            "<rss version=\"2.0\"><channel><item>{}{}</item></channel></rss>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        )
    };
    documents.extend([
        nested(feed::MAX_DEPTH),
        nested(feed::MAX_DEPTH + 1),
        "<rss version=\"2.0\"><channel><item><title>a</title></item>".into(),
        "<rss version=\"2.0\"><channel><item>&bogus;</item></channel></rss>".into(),
        "<html><head><title>Just a moment...</title></head><body></body></html>".into(),
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title>t</title></entry></feed>".into(),
        format!(
            "<rss version=\"2.0\"><channel>{}</channel></rss>",
            "<item><b/></item>".repeat(2000)
        ),
        String::new(),
        "<sitemap/>".into(),
    ]);
    for doc in &documents {
        for (min_items, cap) in [(1, usize::MAX), (0, usize::MAX), (1, doc.len() + 200), (1, 64)] {
            let options = feed::GuardOptions {
                min_items,
                max_bytes: usize::MAX,
            };
            let two = feed::check(doc, options).and_then(|info| Ok((info, feed::format_within(doc, cap)?)));
            let one = feed::check_and_format(doc, options, cap);
            match (two, one) {
                (Ok((info2, f2)), Ok((info1, f1))) => {
                    assert_eq!(info1, info2);
                    assert_eq!((f1.as_str(), f1.as_written()), (f2.as_str(), f2.as_written()));
                    assert_eq!(f1.fingerprint(), f2.fingerprint());
                }
                (Err(e2), Err(e1)) => assert_eq!(e1, e2, "{}", &doc[..doc.len().min(80)]),
                (two, one) => panic!(
                    "{:?} vs {:?} for {}",
                    two.map(|_| ()),
                    one.map(|_| ()),
                    &doc[..doc.len().min(80)]
                ),
            }
        }
    }
}
