//! `index.html`: one static page, inline CSS only (no script, font or image), a real table that
//! scrolls sideways on a phone, and a dark scheme through `prefers-color-scheme`. Every text
//! from a site or a solver is escaped here.

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use time::OffsetDateTime;

use super::{FeedSummary, Index, State, ago};
use crate::config::describe as every;
use crate::outcome::rfc3339;

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #666; --line: #ddd;
  --ok: #2e7d32; --stale: #b26a00; --failing: #c62828; --never: #777; --busy: #1565c0; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e8e8e8; --bg: #121212; --muted: #9a9a9a; --line: #333;
    --ok: #66bb6a; --stale: #ffb74d; --failing: #ef5350; --never: #9e9e9e; --busy: #64b5f6; }
}
body { margin: 0 auto; max-width: 80rem; padding: 1rem; font: 15px/1.4 system-ui, sans-serif;
  color: var(--fg); background: var(--bg); }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
p.meta { color: var(--muted); margin: 0 0 1rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .4rem .5rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
.url, .error { color: var(--muted); font-size: .85em; overflow-wrap: anywhere; }
.error { max-width: 28rem; }
.state { font-weight: 600; white-space: nowrap; }
.ok { color: var(--ok); } .stale { color: var(--stale); } .failing { color: var(--failing); }
.never { color: var(--never); } .busy { color: var(--busy); }
.bar { display: flex; gap: 1px; height: 1.1rem; min-width: 10rem; }
.bar span { flex: 1 1 0; max-width: 4px; min-width: 2px; border-radius: 1px; background: var(--line); }
.bar .u { background: var(--ok); } .bar .n { background: var(--ok); opacity: .55; }
.bar .f { background: var(--failing); } .bar .i { background: var(--never); }
time { white-space: nowrap; }
"#;

/// The page for `index`.
pub fn render(index: &Index) -> String {
    let mut html = String::with_capacity(4096 + index.feeds.len() * 1200);
    let title = text(&index.title);
    let counts = |state: State| index.feeds.iter().filter(|f| f.state == state).count();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <p class=\"meta\">{} feeds: {} ok, {} stale, {} failing, {} never refreshed. Written <time datetime=\"{gen}\">{shown}</time>; \
         times are as of then. <a href=\"feeds.opml\">Subscribe to all (OPML)</a> · <a href=\"index.json\">JSON</a></p>\n",
        index.feeds.len(),
        counts(State::Ok),
        counts(State::Stale),
        counts(State::Failing),
        counts(State::Never),
        gen = rfc3339(index.generated),
        shown = minutes(index.generated),
    );
    html.push_str(
        "<div class=\"scroll\">\n<table>\n<thead><tr><th scope=\"col\">Feed</th><th scope=\"col\">State</th>\
         <th scope=\"col\" title=\"An unchanged refresh may leave its record unwritten for up to an hour (or four intervals): the feed was checked at least this recently\">Last success</th><th scope=\"col\">Last error</th><th scope=\"col\">Failures</th>\
         <th scope=\"col\">Route</th><th scope=\"col\">Items</th><th scope=\"col\">Size</th>\
         <th scope=\"col\">Last attempts</th></tr></thead>\n<tbody>\n",
    );
    for feed in &index.feeds {
        row(&mut html, feed, index.generated);
    }
    html.push_str("</tbody>\n</table>\n</div>\n</body>\n</html>\n");
    html
}

fn row(html: &mut String, feed: &FeedSummary, now: OffsetDateTime) {
    let state = match feed.state {
        State::Never => "never",
        other => other.name(),
    };
    let name = match feed.sha256 {
        Some(_) => format!("<a href=\"{}\">{}</a>", attr(&feed.href), text(&feed.name)),
        None => text(&feed.name).into_owned(),
    };
    let success = match feed.last_success {
        Some(at) => format!(
            "checked at least as recently as <time datetime=\"{exact}\" title=\"{exact}\">{}</time><div class=\"url\">{}</div>",
            ago(at, now),
            minutes(at),
            exact = rfc3339(at)
        ),
        None => "never".into(),
    };
    let error = feed
        .last_error
        .as_deref()
        .map(|e| format!("<div class=\"error\">{}</div>", text(e)))
        .unwrap_or_default();
    let bar: String = feed
        .history
        .chars()
        .map(|c| {
            let what = match c {
                'u' => "updated",
                'n' => "unchanged",
                'f' => "failed",
                'i' => "interrupted",
                _ => "other",
            };
            format!("<span class=\"{c}\" title=\"{what}\"></span>")
        })
        .collect();
    let number = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    let size = feed.bytes.map(human_bytes).unwrap_or_else(|| "–".into());
    let _ = write!(
        html,
        "<tr id=\"feed-{id}\" data-state=\"{state_class}\"><td>{name}<div class=\"url\">{url}</div>\
         <div class=\"url\">every {every}</div></td>\
         <td class=\"state {state_class}\">{state}</td><td>{success}</td><td>{error}</td>\
         <td class=\"num\">{failures}</td><td>{route}</td><td class=\"num\">{items}</td><td class=\"num\">{size}</td>\
         <td><div class=\"bar\" aria-label=\"last {n} attempts\">{bar}</div></td></tr>",
        id = attr(&feed.name),
        state_class = feed.state.class(),
        url = text(&feed.url),
        every = every(std::time::Duration::from_secs(feed.interval_s)),
        failures = feed.failures,
        route = route(feed),
        items = number(feed.items),
        n = feed.history.len(),
    );
    html.push('\n');
}

/// How the feed was fetched: `direct`, or `solver` with the solver's host where a pool says
/// which one got it (and which met a wall before it).
fn route(feed: &FeedSummary) -> String {
    let Some(route) = feed.route else {
        return "–".into();
    };
    // The host, and the port where one is given: solvers often share a host.
    let host = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(u.port().map_or(host.clone(), |port| format!("{host}:{port}")))
            })
            .unwrap_or_else(|| url.to_string())
    };
    let mut said = text(&route.to_string()).into_owned();
    if let Some(solver) = feed.solver.as_deref().filter(|_| route == crate::fetch::Route::Solver) {
        let _ = write!(said, "<div class=\"url\">{}</div>", text(&host(solver)));
        if !feed.passed_over.is_empty() {
            let walled: Vec<String> = feed.passed_over.iter().map(|s| host(s)).collect();
            let _ = write!(
                said,
                "<div class=\"url\">past a wall that stopped {}</div>",
                text(&walled.join(", "))
            );
        }
    }
    said
}

/// `2026-12-03 10:26 UTC`: what a reader needs of a time.
pub fn minutes(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// `1075 B`, `47.1 KB`, `9.8 MB`.
pub fn human_bytes(bytes: usize) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

impl State {
    /// The CSS class, and the DOM's `data-state`.
    pub fn class(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Stale => "stale",
            State::Failing => "failing",
            State::Never => "never",
            State::Busy => "busy",
            State::Other => "never",
        }
    }
}
