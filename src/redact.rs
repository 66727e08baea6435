//! Text fit for messages, status records, replies and logs: urls without their secrets.
//!
//! Every module that shows a url (the solver's, a feed's, a queue's) takes it from here, so
//! the rule is written once and nothing below the configuration depends on the configuration.

use reqwest::Url;

/// A url fit for messages, status records, replies and logs: credentials (`user:pass@`, a
/// common way to put FlareSolverr behind a proxy) and the query (often a token) become `…`.
/// Text that is not a url is cut at any `@` or `?` the same way.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        let cut = url.rfind('@').map_or(url, |at| &url[at + 1..]);
        return match cut.split_once('?') {
            Some((before, _)) => format!("{before}?…"),
            None => cut.to_string(),
        };
    };
    let had_credentials = !parsed.username().is_empty() || parsed.password().is_some();
    let had_query = parsed.query().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    parsed.set_fragment(None);
    let mut text = parsed.to_string();
    if had_credentials && let Some(at) = text.find("://") {
        text.insert_str(at + 3, "…@");
    }
    if had_query {
        text.push_str("?…");
    }
    text
}

/// The longest text [`one_line`] keeps, in characters.
const ONE_LINE_MAX: usize = 1000;

/// Text from a site or a solver, fit for one line of a log, a record, a report or stdout: cut
/// at its first line break, every other control character escaped (`\u{1b}`), and at most
/// [`ONE_LINE_MAX`] characters. A solver's message can hold anything; cut here, it can never
/// start a line of its own (an EMF metric line, a CLI line for another feed).
pub fn one_line(text: &str) -> String {
    let first = text
        .split(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}'])
        .next()
        .unwrap_or("");
    let mut out = String::with_capacity(first.len().min(ONE_LINE_MAX));
    for (i, c) in first.trim().chars().enumerate() {
        if i == ONE_LINE_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value that must never be shown: a header value (an API key) or a proxy url with its
/// credentials. Its `Debug` and `Display` say `…`; [`Secret::expose`] is for the request itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("http://user:pa55@solver.lan:8191/v1"),
            "http://…@solver.lan:8191/v1"
        );
        assert_eq!(
            redact_url("https://site.test/rss.xml?key=s3cret#x"),
            "https://site.test/rss.xml?…"
        );
        assert_eq!(redact_url("http://localhost:8191/v1"), "http://localhost:8191/v1");
        assert_eq!(redact_url("not a url user:pa55@host?token=1"), "host?…");
    }

    #[test]
    fn solver_text_becomes_one_escaped_line() {
        let injected = "bad request\n{\"_aws\":{\"CloudWatchMetrics\":[]},\"Feed\":\"other\"}";
        assert_eq!(one_line(injected), "bad request");
        assert_eq!(one_line("\u{1b}[31mred\u{7}\ttab"), "\\u{1b}[31mred\\u{7}\\ttab");
        assert_eq!(one_line("  a\r\nb"), "a");
        assert_eq!(one_line("x\u{2028}y"), "x");
        let long = "é".repeat(3000);
        assert_eq!(one_line(&long).chars().count(), ONE_LINE_MAX + 1);
    }
}
