//! `feeds.opml` (OPML 2.0, http://opml.org/spec2.opml): every feed that has been published, so
//! that a reader subscribes to all of them at once. A feed never published is not offered.

use super::Index;

pub(super) fn render(index: &Index, base_url: Option<&str>) -> String {
    use html_escape::encode_double_quoted_attribute as attr;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n");
    out.push_str(&format!(
        "    <title>{}</title>\n  </head>\n  <body>\n",
        html_escape::encode_text(&index.title)
    ));
    for feed in index.feeds.iter().filter(|f| f.sha256.is_some()) {
        let url = format!("{}{}", base_url.unwrap_or(""), feed.href);
        out.push_str(&format!(
            "    <outline type=\"rss\" text=\"{name}\" title=\"{name}\" xmlUrl=\"{url}\"/>\n",
            name = attr(&feed.name),
            url = attr(&url),
        ));
    }
    out.push_str("  </body>\n</opml>\n");
    out
}
