//! An item with its article as its content: RSS `content:encoded` (its namespace declared where
//! the document has not), Atom `content type="html"`; the item's own full content element is
//! replaced, its summary and description kept.

use super::outline::{ATOM, CONTENT, Dialect, ItemOutline};

/// `item_text` (the item's span) with `article` (HTML) as its content.
pub(super) fn with_article(item_text: &str, item: &ItemOutline, dialect: Dialect, article: &str) -> String {
    let escaped = html_escape::encode_text(article);
    let element = match dialect {
        Dialect::Atom => {
            let name = match prefix_for(item, ATOM) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}:content"),
                _ => "content".to_string(),
            };
            format!("<{name} type=\"html\">{escaped}</{name}>")
        }
        Dialect::Rss | Dialect::Rdf => match prefix_for(item, CONTENT) {
            Some(prefix) if !prefix.is_empty() => format!("<{prefix}:encoded>{escaped}</{prefix}:encoded>"),
            _ => format!("<content:encoded xmlns:content=\"{CONTENT}\">{escaped}</content:encoded>"),
        },
    };
    let offset = item.span.start;
    match &item.content_element {
        Some(span) => format!(
            "{}{element}{}",
            &item_text[..span.start - offset],
            &item_text[span.end - offset..]
        ),
        None if item.end_tag > item.start_tag.end => {
            let at = item.end_tag - offset;
            format!("{}{element}{}", &item_text[..at], &item_text[at..])
        }
        // An empty-element item (`<item/>`) has no room for content: left as it is.
        None => item_text.to_string(),
    }
}

/// The prefix bound to `uri` at the item, if any (`""` for the default namespace).
fn prefix_for<'a>(item: &'a ItemOutline, uri: &str) -> Option<&'a str> {
    item.namespaces
        .iter()
        .rev()
        .find(|(_, bound)| bound == uri)
        .map(|(prefix, _)| prefix.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::outline::outline;
    use super::*;

    fn first(text: &str) -> (ItemOutline, Dialect) {
        let o = outline(text).unwrap();
        (o.items[0].clone(), o.dialect.unwrap())
    }

    #[test]
    fn rss_gets_content_encoded_replaced_or_added() {
        let text = r#"<rss version="2.0"><channel><item><title>t</title><description>short</description></item></channel></rss>"#;
        let (item, dialect) = first(text);
        let got = with_article(&text[item.span.clone()], &item, dialect, "<p>full & long</p>");
        assert_eq!(
            got,
            r#"<item><title>t</title><description>short</description><content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/">&lt;p&gt;full &amp; long&lt;/p&gt;</content:encoded></item>"#
        );
        let text = r#"<rss version="2.0" xmlns:c="http://purl.org/rss/1.0/modules/content/"><channel><item><c:encoded><![CDATA[old]]></c:encoded><title>t</title></item></channel></rss>"#;
        let (item, dialect) = first(text);
        let got = with_article(&text[item.span.clone()], &item, dialect, "new");
        assert_eq!(got, "<item><c:encoded>new</c:encoded><title>t</title></item>");
    }

    #[test]
    fn atom_gets_html_content() {
        let text = r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><summary>s</summary></entry></feed>"#;
        let (item, dialect) = first(text);
        let got = with_article(&text[item.span.clone()], &item, dialect, "<b>x</b>");
        assert_eq!(
            got,
            r#"<entry><id>1</id><summary>s</summary><content type="html">&lt;b&gt;x&lt;/b&gt;</content></entry>"#
        );
    }
}
