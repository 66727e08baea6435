//! FlareSolverr's `/v1` on the wire: the commands, the reply shapes of FlareSolverr's builds and
//! of the solvers that copy its API (FlareBypasser, Byparr, flaresolverr-go), and what an error
//! message means for the operator.
//!
//! Failure is decided from the JSON, never from the HTTP status alone: FlareSolverr answers its
//! errors with 500, FlareBypasser and flaresolverr-go with 200, Byparr and FastAPI's validation
//! with 408, 422 or 502 and `{"detail": …}`. Only a body that is not JSON is "malformed".

use std::time::Duration;

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{Body, Solution, SolverError};
use crate::redact::one_line;

/// One command to `/v1`. Field names are FlareSolverr's.
#[derive(Debug, Serialize)]
pub(super) struct Command<'a> {
    pub(super) cmd: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(rename = "maxTimeout", skip_serializing_if = "Option::is_none")]
    max_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_ttl_minutes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<Proxy>,
}

/// FlareSolverr's `proxy`: the url without its credentials, which go in their own fields
/// (https://github.com/FlareSolverr/FlareSolverr#-sessionscreate and `request.get`:
/// "Authorization (username/password) is supported"; a request's proxy "is ignored when
/// `session` names a session that already exists"). Checked by hand against the PyPI build
/// (3.3.21rc4) with Debian's chromium: a proxy without credentials is used both at
/// `sessions.create` and on a sessionless `request.get`.
#[derive(Debug, Serialize)]
pub(super) struct Proxy {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

impl Proxy {
    /// From a configured proxy url (already checked to be a url). The url keeps its user and
    /// password percent-encoded (`me%40corp`); the solver hands them to Chrome as they are, so
    /// they are decoded here.
    pub(super) fn from_url(url: &str) -> Self {
        let decoded = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        match reqwest::Url::parse(url) {
            Ok(mut parsed) => {
                let username = Some(decoded(parsed.username())).filter(|u| !u.is_empty());
                let password = parsed.password().map(decoded);
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
                Self {
                    url: parsed.to_string().trim_end_matches('/').to_string(),
                    username,
                    password,
                }
            }
            Err(_) => Self {
                url: url.to_string(),
                username: None,
                password: None,
            },
        }
    }
}

impl<'a> Command<'a> {
    /// `request.get` of `url`, in `session` if one is given.
    pub(super) fn get(
        url: &'a str,
        max_timeout: Duration,
        session: Option<&'a str>,
        ttl_minutes: u64,
        proxy: Option<Proxy>,
    ) -> Self {
        Self {
            cmd: "request.get",
            url: Some(url),
            // Milliseconds, never below 1000: Byparr reads a smaller number as seconds.
            max_timeout: Some((max_timeout.as_millis() as u64).max(1000)),
            session,
            session_ttl_minutes: session.map(|_| ttl_minutes),
            // A session keeps the proxy it was created with, and FlareSolverr ignores one sent
            // with a request in it: the proxy goes to `sessions.create` then.
            proxy: if session.is_some() { None } else { proxy },
        }
    }

    /// A `sessions.*` command on session `id`.
    pub(super) fn session(cmd: &'a str, id: &'a str, proxy: Option<Proxy>) -> Self {
        Self {
            cmd,
            url: None,
            max_timeout: None,
            session: Some(id),
            session_ttl_minutes: None,
            proxy,
        }
    }
}

/// A reply of any of the solvers; every field may be missing.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: Option<String>,
    pub(super) message: Option<String>,
    pub(super) solution: Option<Solution>,
    /// The shape a malformed request gets instead of `status`/`message` (FlareSolverr), as
    /// one line of text.
    error: Option<String>,
    /// FastAPI's error shape (FlareBypasser's validation, Byparr's every error), as one line
    /// of text.
    pub(super) detail: Option<String>,
}

/// The most of a solver's own JSON (an `error`, a `detail`)
/// that is parsed: every message a solver writes fits, and a hostile reply's megabytes are never
/// parsed into a tree (a `serde_json::Value` takes up to 48 times its text). Anything larger is
/// kept as a prefix of its text.
const MAX_PARSED: usize = 16 * 1024;

/// `json`, parsed into a tree if it is small enough ([`MAX_PARSED`]); otherwise its first
/// characters, as a string.
fn small_json(json: &str) -> serde_json::Value {
    if json.len() <= MAX_PARSED
        && let Ok(value) = serde_json::from_str(json)
    {
        return value;
    }
    let mut end = MAX_PARSED.min(json.len());
    while !json.is_char_boundary(end) {
        end -= 1;
    }
    serde_json::Value::String(format!("{}…", &json[..end]))
}

/// [`Reply`] as read, with `solution.response` still the JSON text inside the body: the page
/// is the reply's bulk, and it is decoded in place in the body ([`unescape_in_place`]), so a
/// refresh holds the body or the page, never both (serde_json would add a scratch copy too).
#[derive(Deserialize)]
struct RawReply<'a> {
    #[serde(default, deserialize_with = "any_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "any_text")]
    message: Option<String>,
    #[serde(borrow)]
    solution: Option<RawSolution<'a>>,
    #[serde(borrow)]
    error: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    detail: Option<&'a serde_json::value::RawValue>,
}

/// `solution`: only `url`, `status` and `response` are read; headers, cookies and timestamps
/// differ between solvers (and are absent in some), and nothing needs them.
#[derive(Deserialize)]
struct RawSolution<'a> {
    #[serde(default, deserialize_with = "any_text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "http_status")]
    status: Option<u16>,
    #[serde(borrow)]
    response: Option<&'a serde_json::value::RawValue>,
}

/// Where `solution.response` is in the body: a string literal (a page) to decode in place, or
/// JSON (the PyPI build's value of a JSON reply) to keep as text.
enum Response {
    Text(Range<usize>),
    Json(Range<usize>),
}

/// A string field, or `None` for any other JSON value: a solver's odd type for a field that only
/// informs must not make its whole reply unreadable. Any other value is skipped unread.
pub(super) fn any_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match deserializer.deserialize_any(ScalarVisitor)? {
        Scalar::Text(text) => Some(text),
        _ => None,
    })
}

/// `solution.status`: a number (FlareSolverr, Byparr, flaresolverr-go), a string (FlareBypasser
/// says `"ok"`), or absent. Only a number, or a string of one, is a status.
fn http_status<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    Ok(match deserializer.deserialize_any(ScalarVisitor)? {
        Scalar::Number(n) => n.and_then(|n| u16::try_from(n).ok()),
        Scalar::Text(text) => text.trim().parse().ok(),
        Scalar::Other => None,
    })
}

/// A JSON value as a field that only informs reads it: a string, a number, or anything else,
/// which is skipped without building it (an array of millions of zeros costs nothing).
enum Scalar {
    Text(String),
    /// A non-negative whole number, `None` for any other number.
    Number(Option<u64>),
    Other,
}

/// Reads a [`Scalar`].
struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(text.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(text))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(Some(n)))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(u64::try_from(n).ok()))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(None))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Scalar::Other)
    }
}

impl RawReply<'_> {
    /// The reply, but for a text `solution.response`: that is left in `body`, and its literal's
    /// range returned, to be decoded in place ([`unescape_in_place`]) once the reply is known
    /// to be a success.
    fn decode(self, body: &[u8]) -> Result<(Reply, Option<Response>), serde_json::Error> {
        let mut text = None;
        let solution = match self.solution {
            None => None,
            Some(raw) => Some(Solution {
                url: raw.url,
                solver: None,
                passed_over: Vec::new(),
                status: raw.status,
                response: match raw.response.map(serde_json::value::RawValue::get) {
                    None | Some("null") => None,
                    Some(literal) => {
                        let start = literal.as_ptr() as usize - body.as_ptr() as usize;
                        let range = start..start + literal.len();
                        text = Some(match literal.starts_with('"') {
                            true => Response::Text(range),
                            false => Response::Json(range),
                        });
                        None
                    }
                },
            }),
        };
        let reply = Reply {
            status: self.status,
            message: self.message,
            solution,
            error: self.error.map(|raw| error_text(&small_json(raw.get()))),
            detail: self.detail.map(|raw| detail_text(&small_json(raw.get()))),
        };
        Ok((reply, text))
    }
}

/// Decodes a JSON string literal (already checked by serde_json) into one exactly sized string.
#[cfg(test)]
fn json_string(literal: &str) -> Result<String, serde_json::Error> {
    unescape_in_place(literal.as_bytes().to_vec(), 0..literal.len())
}

/// Decodes the JSON string literal at `literal` in `buffer` (a reply's body, already checked by
/// serde_json) to the front of that same buffer, which becomes the string: the page takes the
/// body's place rather than sitting beside it, so a refresh's peak is the body, not the body and
/// the page (15 MB less for Chrome's XML-viewer page of a 5 MB feed). An escape is never
/// shorter than what it stands for, so the write never overtakes the read.
fn unescape_in_place(mut buffer: Vec<u8>, literal: Range<usize>) -> Result<String, serde_json::Error> {
    use serde::de::Error;
    let bad = |what: &str| serde_json::Error::custom(format!("bad string in solution.response: {what}"));
    let (mut read, end) = (literal.start + 1, literal.end - 1);
    let mut written = 0;
    loop {
        let plain = memchr::memchr(b'\\', &buffer[read..end]).unwrap_or(end - read);
        buffer.copy_within(read..read + plain, written);
        written += plain;
        read += plain;
        if read == end {
            break;
        }
        let escape = &buffer[read + 1..end];
        let unit = |from: usize| {
            escape
                .get(from..from + 4)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .ok_or_else(|| bad("a short \\u escape"))
        };
        let (decoded, used) = match escape.first() {
            Some(b'"') => ('"', 1),
            Some(b'\\') => ('\\', 1),
            Some(b'/') => ('/', 1),
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => match unit(1)? {
                first @ 0xD800..=0xDBFF => {
                    let second = if escape.get(5..7) == Some(b"\\u") { unit(7)? } else { 0 };
                    if !(0xDC00..=0xDFFF).contains(&second) {
                        return Err(bad("a lone surrogate"));
                    }
                    let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    (char::from_u32(code).ok_or_else(|| bad("a surrogate pair"))?, 11)
                }
                0xDC00..=0xDFFF => return Err(bad("a lone surrogate")),
                code => (char::from_u32(code).ok_or_else(|| bad("an escape"))?, 5),
            },
            _ => return Err(bad("an unknown escape")),
        };
        let mut utf8 = [0; 4];
        let encoded = decoded.encode_utf8(&mut utf8).as_bytes();
        buffer[written..written + encoded.len()].copy_from_slice(encoded);
        written += encoded.len();
        read += 1 + used;
    }
    buffer.truncate(written);
    String::from_utf8(buffer).map_err(|_| bad("not UTF-8"))
}

/// Parses a reply; `Ok` only for `status: "ok"`. The body must be JSON: a body that is not is
/// the one "malformed" case, and then the url may well be wrong.
pub(super) fn parse_reply(status: reqwest::StatusCode, body: Vec<u8>) -> Result<Reply, SolverError> {
    let head = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    let (mut reply, text) = serde_json::from_slice::<RawReply<'_>>(&body)
        .and_then(|raw| raw.decode(&body))
        .map_err(|e| SolverError::Malformed {
            detail: format!("HTTP {status}, not FlareSolverr JSON ({e}): {:?}", head()),
        })?;
    if let Some(message) = reply.error.take() {
        return Err(SolverError::Rejected { message });
    }
    if let Some(message) = reply.detail.take() {
        // FastAPI's 422 is a request it could not validate; anything else is the solver's own
        // error (Byparr's 408 timeout, its 502 for a site it could not reach).
        return Err(if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            SolverError::Rejected { message }
        } else {
            classify(&message)
        });
    }
    match reply.status.as_deref() {
        Some("ok") if status.is_success() => {
            match (text, reply.solution.as_mut()) {
                (Some(Response::Text(literal)), Some(solution)) => {
                    let head = head();
                    let page = unescape_in_place(body, literal).map_err(|e| SolverError::Malformed {
                        detail: format!("HTTP {status}, not FlareSolverr JSON ({e}): {head:?}"),
                    })?;
                    solution.response = Some(Body::Text(page));
                }
                (Some(Response::Json(range)), Some(solution)) => {
                    // The JSON's text takes the body's place: no second copy.
                    let mut body = body;
                    body.truncate(range.end);
                    body.drain(..range.start);
                    let json = String::from_utf8(body).map_err(|_| SolverError::Malformed {
                        detail: format!("HTTP {status}: solution.response is not UTF-8"),
                    })?;
                    solution.response = Some(Body::Json(json));
                }
                _ => {}
            }
            Ok(reply)
        }
        Some("error") | Some("ok") => Err(classify(reply.message.as_deref().unwrap_or("(no message)"))),
        other => Err(SolverError::Unrecognised {
            detail: format!("HTTP {status}, status {other:?}: {:?}", head()),
        }),
    }
}

/// FastAPI's `detail`: a string, or a list of `{"loc": [...], "msg": ...}`, as one line
/// (`body.url: Field required`).
/// FlareSolverr's `error`, as one escaped line: a newline in the solver's text must never
/// start a line of its own on stdout (an EMF metric line, a CLI line).
fn error_text(error: &serde_json::Value) -> String {
    one_line(&error.as_str().map_or_else(|| error.to_string(), str::to_string))
}

fn detail_text(detail: &serde_json::Value) -> String {
    let text = match detail {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                let at = item["loc"]
                    .as_array()
                    .map(|loc| {
                        loc.iter()
                            .map(|part| part.as_str().map_or_else(|| part.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .unwrap_or_default();
                let msg = item["msg"].as_str().map_or_else(|| item.to_string(), str::to_string);
                if at.is_empty() { msg } else { format!("{at}: {msg}") }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    one_line(&text)
}

/// Sorts an error message into what the operator should do about it.
fn classify(message: &str) -> SolverError {
    let message = short_message(message);
    let lower = message.to_lowercase();
    const SESSION_MARKERS: [&str; 11] = [
        "session doesn't exist",
        "invalid session id",
        "no such window",
        "chrome not reachable",
        "target window already closed",
        "not connected to devtools",
        "session deleted",
        "browser has closed",
        "tab crashed",
        "浏览器未开启或已关闭",
        "disconnected",
    ];
    // FlareSolverr: "Timeout after 60.0 seconds"; FlareBypasser: "Processing timeout
    // (max_timeout=60.0)"; Byparr: "Timed out while loading the page or solving the challenge".
    if lower.contains("timeout after") || lower.contains("processing timeout") || lower.contains("timed out while") {
        SolverError::ChallengeTimeout { message }
    } else if lower.contains("cloudflare has blocked this request") {
        SolverError::Blocked { message }
    } else if let Some(at) = message.find("net::ERR_") {
        let code: String = message[at + "net::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        SolverError::Chrome { code }
    } else if SESSION_MARKERS.iter().any(|m| lower.contains(m)) {
        SolverError::Session { message }
    } else {
        SolverError::Failed { message }
    }
}

/// The message without `Error: ` and without the Chrome stack trace FlareSolverr appends.
fn short_message(message: &str) -> String {
    let message = message.strip_prefix("Error: ").unwrap_or(message);
    let cut = ["\\n", "\n", "Stacktrace:"]
        .iter()
        .filter_map(|m| message.find(m))
        .min()
        .unwrap_or(message.len());
    one_line(&message[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27, finding 10: a proxy's user and password reach the solver decoded
    /// (`me@corp`, not `me%40corp`), and the url without them.
    #[test]
    fn proxy_credentials_reach_the_solver_decoded() {
        let proxy = Proxy::from_url("http://me%40corp:p%3Ass%20w%2Fd@proxy.test:3128");
        let json = serde_json::to_value(&proxy).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"url": "http://proxy.test:3128", "username": "me@corp", "password": "p:ss w/d"})
        );
    }

    #[test]
    fn json_strings_decode_as_serde_json_does() {
        for value in [
            "",
            "plain",
            "a\"b\\c/d\n\r\t\u{8}\u{c}",
            "中文 😀 \u{1f}",
            "&lt;rss&gt; <pre>\\u0041",
        ] {
            let literal = serde_json::to_string(value).unwrap();
            assert_eq!(json_string(&literal).unwrap(), value, "{literal}");
        }
        assert_eq!(json_string(r#""\u00e9\ud83d\ude00\/""#).unwrap(), "é😀/");
        assert!(json_string(r#""\ud800""#).is_err());
        assert!(json_string(r#""\udc00x""#).is_err());
    }

    /// The page decoded in place, where the body held it among the reply's other fields, is
    /// what serde_json decodes: over many strings of escapes, quotes, controls, CJK and
    /// astral characters, with every character `\u`-escaped too (the longest escapes).
    #[test]
    fn a_page_decoded_in_place_is_serde_jsons() {
        let alphabet = [
            'a', '<', '&', '"', '\\', '/', '\n', '\t', '\u{1}', '\u{1f}', 'é', '中', '😀', ' ',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..300 {
            let len = (next() % 200) as usize;
            let value: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let literal = if case % 3 == 0 {
                // Every UTF-16 unit as \uXXXX: surrogate pairs for the astral ones.
                let units: String = value.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
                format!("\"{units}\"")
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let body = format!(
                r#"{{"status": "ok", "message": "", "solution": {{"url": "https://a.test/", "status": 200, "response": {literal}, "cookies": []}}, "version": "3"}}"#
            );
            let reply = parse_reply(reqwest::StatusCode::OK, body.into_bytes()).unwrap();
            match reply.solution.and_then(|s| s.response) {
                Some(Body::Text(text)) => assert_eq!(text, value, "{literal}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stack_traces_are_cut() {
        let e = classify(
            "Error: Error solving the challenge. Message: unknown error: cannot determine loading status\\n  (Session info: chrome=156)\\nStacktrace:\\n#0 0x55",
        );
        assert_eq!(
            e,
            SolverError::Failed {
                message: "Error solving the challenge. Message: unknown error: cannot determine loading status".into()
            }
        );
    }

    /// Chrome's network errors are the site's, explained in a sentence that says what to check.
    #[test]
    fn chrome_network_errors_are_explained() {
        let e = classify(
            "Error: Error solving the challenge. Message: unknown error: net::ERR_NAME_NOT_RESOLVED\\n  (Session info: chrome=156)",
        );
        assert_eq!(
            e,
            SolverError::Chrome {
                code: "ERR_NAME_NOT_RESOLVED".into()
            }
        );
        assert!(!e.may_be_session_failure());
        let said = e.to_string();
        assert!(said.contains("does not resolve from the solver's machine"), "{said}");
        let refused = classify("Error: net::ERR_CONNECTION_REFUSED").to_string();
        assert!(refused.contains("refused the solver's connection"), "{refused}");
    }

    #[test]
    fn a_rejection_cannot_inject_a_line() {
        let metric = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"flarefeed","Dimensions":[["Feed"]],"Metrics":[{"Name":"Failed"}]}]},"Feed":"other","Failed":1}"#;
        let body = serde_json::json!({"error": format!("bad\n{metric}\r\n")}).to_string();
        let error = parse_reply(reqwest::StatusCode::BAD_REQUEST, body.as_bytes().to_vec()).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
        assert!(!text.contains("_aws"), "{text}");
        let body =
            serde_json::json!({"status": "error", "message": format!("Error: x\u{1b}[2J\n{metric}")}).to_string();
        let text = parse_reply(reqwest::StatusCode::OK, body.as_bytes().to_vec())
            .unwrap_err()
            .to_string();
        assert!(text.contains("x\\u{1b}[2J") && !text.contains("_aws"), "{text}");
    }

    #[test]
    fn messages_are_sorted() {
        assert!(matches!(
            classify("Error: Error solving the challenge. Timeout after 5.0 seconds."),
            SolverError::ChallengeTimeout { .. }
        ));
        assert!(matches!(
            classify("Error: Error solving the challenge. Cloudflare has blocked this request. Probably"),
            SolverError::Blocked { .. }
        ));
        assert!(classify("Error: 浏览器未开启或已关闭。").may_be_session_failure());
        assert!(classify("Error: The session doesn't exist.").may_be_session_failure());
    }

    #[test]
    fn session_retries_are_decided_by_what_says_the_site_failed() {
        for unseen in [
            "Error: Error solving the challenge. 'NoneType' object has no attribute 'send'",
            "Error: something no build has said yet",
            "Error: セッションが壊れました",
        ] {
            assert!(classify(unseen).may_be_session_failure(), "{unseen}");
        }
        for site in [
            "Error: Error solving the challenge. Timeout after 60.0 seconds.",
            "Error: Error solving the challenge. Cloudflare has blocked this request. Probably your IP is banned for this site, check in your web browser.",
            "Error: Error solving the challenge. Message: unknown error: net::ERR_NAME_NOT_RESOLVED\\n  (Session info: chrome=156)",
            "Error: Error solving the challenge. Message: unknown error: net::ERR_CONNECTION_REFUSED",
        ] {
            assert!(!classify(site).may_be_session_failure(), "{site}");
        }
    }
}
