//! Recognising the pages a solver returns when it did not get the feed.
//!
//! FlareSolverr answers "ok" for these too, so the body is the only evidence. Markers are matched
//! only on documents that are HTML or not XML at all, so a feed that merely mentions Cloudflare
//! is never mistaken for a challenge.

use super::FeedError;

/// Whether the text starts like an HTML document rather than an XML one.
pub(crate) fn looks_like_html(text: &str) -> bool {
    let mut rest = text.trim_start();
    // An XHTML page may open with an XML declaration: FlareBypasser's Chrome serialises its XML
    // viewer as `<?xml …?><html xmlns="http://www.w3.org/1999/xhtml">`.
    if rest.starts_with("<?xml")
        && let Some(end) = rest.find("?>")
    {
        rest = rest[end + 2..].trim_start();
    }
    // Chrome and servers put comments before <html> now and then.
    while let Some(after) = rest.strip_prefix("<!--") {
        match after.find("-->") {
            Some(end) => rest = after[end + 3..].trim_start(),
            None => return false,
        }
    }
    let head = rest.get(..rest.len().min(16)).unwrap_or(rest).to_ascii_lowercase();
    ["<!doctype html", "<html", "<head", "<body"]
        .iter()
        .any(|p| head.starts_with(p))
}

/// A known non-feed page, if the text is one.
pub(crate) fn known_page(text: &str) -> Option<FeedError> {
    known_page_in(text, &text.to_ascii_lowercase())
}

/// [`known_page`] with the lower-cased text already made (pages can be megabytes).
fn known_page_in(text: &str, lower: &str) -> Option<FeedError> {
    let has = |marker: &str| lower.contains(marker);
    if has("ddos-guard") || has("__ddg1") || has("ddg-captcha") {
        return Some(FeedError::DdosGuard);
    }
    if has("<title>attention required! | cloudflare</title>")
        || has("cf-error-details")
        || has("sorry, you have been blocked")
        || has("used cloudflare to restrict access")
        || has("error code: 1020")
    {
        return Some(FeedError::CloudflareBlock);
    }
    if has("<title>just a moment...</title>")
        || has("/cdn-cgi/challenge-platform/")
        || has("window._cf_chl_opt")
        || has("cf-browser-verification")
        || has("cf_chl_opt")
        || has("checking if the site connection is secure")
        || has("enable javascript and cookies to continue")
    {
        return Some(FeedError::CloudflareChallenge);
    }
    if has("id=\"main-frame-error\"") || has("class=\"neterror\"") || has("chrome-error://") {
        return Some(FeedError::ChromeError {
            code: net_error_code(text).unwrap_or_else(|| "no error code shown".into()),
        });
    }
    if has("<title>new tab</title>") || has("chrome://new-tab-page") || has("<ntp-app") || has("chrome-search://") {
        return Some(FeedError::ChromeNewTab);
    }
    None
}

/// Why an HTML document is not the feed: a known page, a feed Chrome parsed as HTML, or some page.
pub(crate) fn classify_html(text: &str) -> FeedError {
    let lower = text.to_ascii_lowercase();
    if let Some(known) = known_page_in(text, &lower) {
        return known;
    }
    // Chrome's HTML parser keeps unknown elements, lower-cased, inside <body>.
    let feed_root = ["<rss ", "<rss>", "<feed ", "<feed>", "<rdf:rdf"]
        .iter()
        .any(|m| lower.contains(m));
    if feed_root && (lower.contains("<item") || lower.contains("<entry") || lower.contains("<channel")) {
        return FeedError::ParsedAsHtml;
    }
    if body_is_empty(&lower) {
        return FeedError::Empty;
    }
    let title = title(text, &lower);
    if let Some(title) = title.as_deref().filter(|t| server_error_title(t)) {
        return FeedError::ServerError {
            title: title.to_string(),
        };
    }
    FeedError::HtmlPage { title }
}

/// What Chrome's `net::ERR_…` code means for an operator, in one sentence.
pub fn explain_net_error(code: &str) -> &'static str {
    let code = code.trim_start_matches("net::");
    match code {
        "ERR_NAME_NOT_RESOLVED" | "ERR_NAME_RESOLUTION_FAILED" => {
            "the feed's host name does not resolve from the solver's machine: check the url's spelling, and the solver's DNS"
        }
        "ERR_CONNECTION_REFUSED" => {
            "the site refused the solver's connection: check that the site is up and that its port is right"
        }
        "ERR_CONNECTION_TIMED_OUT" | "ERR_TIMED_OUT" => {
            "the site did not answer the solver in time: it may be down, or block the solver's address"
        }
        "ERR_CONNECTION_RESET" | "ERR_CONNECTION_CLOSED" | "ERR_EMPTY_RESPONSE" => {
            "the site dropped the connection: it may be failing, or block the solver's address; it is tried again at the next refresh"
        }
        "ERR_ADDRESS_UNREACHABLE" | "ERR_INTERNET_DISCONNECTED" | "ERR_NETWORK_CHANGED" => {
            "the solver's machine has no route to the site: check its network"
        }
        "ERR_TOO_MANY_REDIRECTS" => "the site redirects in a loop: open the url in a browser to see where",
        "ERR_SSL_PROTOCOL_ERROR" | "ERR_SSL_VERSION_OR_CIPHER_MISMATCH" => {
            "TLS with the site failed: the site's HTTPS is broken, or something between intercepts it"
        }
        "ERR_BLOCKED_BY_CLIENT" | "ERR_BLOCKED_BY_RESPONSE" => "Chrome itself blocked the page",
        code if code.starts_with("ERR_CERT_") => {
            "the site's TLS certificate is not valid from the solver's machine (expired, or for another name)"
        }
        _ => "check the url, and that the site is reachable from the solver's machine",
    }
}

/// A server's own error page ("503 Service Unavailable", Cloudflare's 52x), by its title.
fn server_error_title(title: &str) -> bool {
    let lower = title.to_ascii_lowercase();
    let code = lower.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 3);
    code.is_some_and(|c| c.starts_with('5'))
        || [
            "service unavailable",
            "internal server error",
            "bad gateway",
            "gateway time-out",
            "gateway timeout",
            "web server is down",
            "origin is unreachable",
        ]
        .iter()
        .any(|m| lower.contains(m))
}

fn net_error_code(text: &str) -> Option<String> {
    let at = text.find("ERR_")?;
    let code: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    (code.len() > 4).then_some(code)
}

/// The page's `<title>`, found in `lower` (the page lower-cased once, by the caller).
fn title(text: &str, lower: &str) -> Option<String> {
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title>")?;
    let title = html_escape::decode_html_entities(text[start..end].trim()).into_owned();
    (!title.is_empty()).then(|| title.chars().take(120).collect())
}

/// `about:blank` and friends: markup but no content at all.
fn body_is_empty(lower: &str) -> bool {
    let Some(open) = lower.find("<body") else { return false };
    let Some(gt) = lower[open..].find('>') else {
        return false;
    };
    let inner = &lower[open + gt + 1..];
    let inner = inner.find("</body>").map_or(inner, |end| &inner[..end]);
    inner.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: a server's error page says the site is failing and will be retried, not "check
    /// the url"; Chrome's error page says what its code means.
    #[test]
    fn server_and_chrome_error_pages_are_explained() {
        for title in [
            "503 Service Unavailable",
            "502 Bad Gateway",
            "example.com | 521: Web server is down",
        ] {
            let page = format!("<html><head><title>{title}</title></head><body><h1>x</h1></body></html>");
            let error = classify_html(&page);
            assert!(matches!(error, FeedError::ServerError { .. }), "{title}: {error:?}");
            let said = error.to_string();
            assert!(
                said.contains("the site is failing") && !said.contains("check that the feed url"),
                "{said}"
            );
        }
        let ordinary = classify_html("<html><head><title>Welcome</title></head><body><h1>x</h1></body></html>");
        assert!(matches!(ordinary, FeedError::HtmlPage { .. }), "{ordinary:?}");
        let chrome = classify_html(
            "<html><body><div id=\"main-frame-error\" class=\"interstitial-wrapper\">net::ERR_NAME_NOT_RESOLVED</div></body></html>",
        );
        let said = chrome.to_string();
        assert!(
            said.contains("ERR_NAME_NOT_RESOLVED") && said.contains("does not resolve"),
            "{said}"
        );
    }
}
