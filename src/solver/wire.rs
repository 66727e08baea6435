//! FlareSolverr's `/v1` on the wire: the commands, the reply shapes of FlareSolverr's builds and
//! of the solvers that copy its API (FlareBypasser, Byparr, flaresolverr-go), and what an error
//! message means for the operator.
//!
//! Failure is decided from the JSON, never from the HTTP status alone: FlareSolverr answers its
//! errors with 500, FlareBypasser and flaresolverr-go with 200, Byparr and FastAPI's validation
//! with 408, 422 or 502 and `{"detail": …}`. Only a body that is not JSON is "malformed".

use std::time::Duration;

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
    /// From a configured proxy url (already checked to be a url).
    pub(super) fn from_url(url: &str) -> Self {
        match reqwest::Url::parse(url) {
            Ok(mut parsed) => {
                let username = Some(parsed.username().to_string()).filter(|u| !u.is_empty());
                let password = parsed.password().map(str::to_string);
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
    /// The shape a malformed request gets instead of `status`/`message` (FlareSolverr).
    error: Option<serde_json::Value>,
    /// FastAPI's error shape (FlareBypasser's validation, Byparr's every error).
    pub(super) detail: Option<serde_json::Value>,
}

/// [`Reply`] as read, with `solution.response` still the JSON text inside the body: the page
/// is the reply's bulk, and decoding it once, straight into its own string, keeps a refresh's
/// memory at the body plus the page (serde_json would add a scratch copy).
#[derive(Deserialize)]
struct RawReply<'a> {
    #[serde(default, deserialize_with = "any_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "any_text")]
    message: Option<String>,
    #[serde(borrow)]
    solution: Option<RawSolution<'a>>,
    error: Option<serde_json::Value>,
    detail: Option<serde_json::Value>,
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

/// A string field, or `None` for any other JSON value: a solver's odd type for a field that only
/// informs must not make its whole reply unreadable.
fn any_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

/// `solution.status`: a number (FlareSolverr, Byparr, flaresolverr-go), a string (FlareBypasser
/// says `"ok"`), or absent. Only a number, or a string of one, is a status.
fn http_status<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    })
}

impl RawReply<'_> {
    fn decode(self) -> Result<Reply, serde_json::Error> {
        let solution = match self.solution {
            None => None,
            Some(raw) => Some(Solution {
                url: raw.url,
                solver: None,
                status: raw.status,
                response: match raw.response.map(serde_json::value::RawValue::get) {
                    None | Some("null") => None,
                    Some(text) if text.starts_with('"') => Some(Body::Text(json_string(text)?)),
                    Some(json) => Some(Body::Json(serde_json::from_str(json)?)),
                },
            }),
        };
        Ok(Reply {
            status: self.status,
            message: self.message,
            solution,
            error: self.error,
            detail: self.detail,
        })
    }
}

/// Decodes a JSON string literal (already checked by serde_json) into one exactly sized string.
fn json_string(literal: &str) -> Result<String, serde_json::Error> {
    use serde::de::Error;
    let bad = |what: &str| serde_json::Error::custom(format!("bad string in solution.response: {what}"));
    let inner = &literal[1..literal.len() - 1];
    let escapes = memchr::memchr_iter(b'\\', inner.as_bytes()).count();
    let mut out = String::with_capacity(inner.len() - escapes);
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let mut chars = escape.chars();
        let used = match chars.next() {
            Some('"') => {
                out.push('"');
                1
            }
            Some('\\') => {
                out.push('\\');
                1
            }
            Some('/') => {
                out.push('/');
                1
            }
            Some('b') => {
                out.push('\u{8}');
                1
            }
            Some('f') => {
                out.push('\u{c}');
                1
            }
            Some('n') => {
                out.push('\n');
                1
            }
            Some('r') => {
                out.push('\r');
                1
            }
            Some('t') => {
                out.push('\t');
                1
            }
            Some('u') => {
                let unit = |from: usize| {
                    escape
                        .get(from..from + 4)
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .ok_or_else(|| bad("a short \\u escape"))
                };
                let first = unit(1)?;
                match first {
                    0xD800..=0xDBFF => {
                        let second = if escape.get(5..7) == Some("\\u") { unit(7)? } else { 0 };
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(bad("a lone surrogate"));
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        out.push(char::from_u32(code).ok_or_else(|| bad("a surrogate pair"))?);
                        11
                    }
                    0xDC00..=0xDFFF => return Err(bad("a lone surrogate")),
                    code => {
                        out.push(char::from_u32(code).ok_or_else(|| bad("an escape"))?);
                        5
                    }
                }
            }
            _ => return Err(bad("an unknown escape")),
        };
        rest = &escape[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a reply; `Ok` only for `status: "ok"`. The body must be JSON: a body that is not is
/// the one "malformed" case, and then the url may well be wrong.
pub(super) fn parse_reply(status: reqwest::StatusCode, body: &[u8]) -> Result<Reply, SolverError> {
    let reply: Reply = serde_json::from_slice::<RawReply<'_>>(body)
        .and_then(RawReply::decode)
        .map_err(|e| {
            let head: String = String::from_utf8_lossy(&body[..body.len().min(200)]).chars().collect();
            SolverError::Malformed {
                detail: format!("HTTP {status}, not FlareSolverr JSON ({e}): {head:?}"),
            }
        })?;
    if let Some(error) = &reply.error {
        // The solver's text, whatever it holds, becomes one escaped line: a newline in it must
        // never start a line of its own on stdout (an EMF metric line, a CLI line).
        let message = one_line(&error.as_str().map_or_else(|| error.to_string(), str::to_string));
        return Err(SolverError::Rejected { message });
    }
    if let Some(detail) = &reply.detail {
        let message = detail_text(detail);
        // FastAPI's 422 is a request it could not validate; anything else is the solver's own
        // error (Byparr's 408 timeout, its 502 for a site it could not reach).
        return Err(if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            SolverError::Rejected { message }
        } else {
            classify(&message)
        });
    }
    match reply.status.as_deref() {
        Some("ok") if status.is_success() => Ok(reply),
        Some("error") | Some("ok") => Err(classify(reply.message.as_deref().unwrap_or("(no message)"))),
        other => Err(SolverError::Unrecognised {
            detail: format!(
                "HTTP {status}, status {other:?}: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        }),
    }
}

/// FastAPI's `detail`: a string, or a list of `{"loc": [...], "msg": ...}`, as one line
/// (`body.url: Field required`).
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
        let error = parse_reply(reqwest::StatusCode::BAD_REQUEST, body.as_bytes()).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
        assert!(!text.contains("_aws"), "{text}");
        let body =
            serde_json::json!({"status": "error", "message": format!("Error: x\u{1b}[2J\n{metric}")}).to_string();
        let text = parse_reply(reqwest::StatusCode::OK, body.as_bytes())
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
