//! What the commands print: the status table. A refresh's line is its report's `Display`.

use time::OffsetDateTime;

use crate::config::{Config, FeedConfig};
use crate::refresh::Preview;
use crate::scrape::{Dated, Extraction};
use crate::site::{FeedSummary, State, ago, human_bytes, minutes};
use crate::status::{Backoff, StatusRecord};

/// How the table is drawn: to a width (a terminal's, or `COLUMNS`), and in colour (a terminal
/// without `NO_COLOR`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Style {
    pub(super) width: Option<usize>,
    pub(super) colour: bool,
}

/// One line per feed: its state (coloured), the last success and attempt as relative times, the
/// failures in a row, items, size, and a note: who holds a claim and until when, a backoff's
/// end, or the last error, cut to the width (`--json` has it whole).
pub(super) fn status_table(
    records: &[StatusRecord],
    config: Option<&Config>,
    style: Style,
    now: OffsetDateTime,
) -> String {
    let header = [
        "FEED",
        "STATE",
        "LAST SUCCESS",
        "LAST ATTEMPT",
        "FAILS",
        "ITEMS",
        "SIZE",
        "NOTE",
    ];
    let dash = || "-".to_string();
    let rows: Vec<([String; 8], State)> = records
        .iter()
        .map(|r| {
            let configured = config.and_then(|c| c.feeds.iter().find(|f| f.name == r.feed));
            let fallback = FeedConfig::new(&r.feed, &r.url);
            let feed = configured.unwrap_or(&fallback);
            let state = FeedSummary::of(feed, r, now).state;
            let note = note(r, feed, config, now);
            let row = [
                r.feed.clone(),
                state.name().to_string(),
                r.last_success.map_or_else(dash, |at| ago(at, now)),
                r.last_attempt.map_or_else(dash, |at| ago(at, now)),
                r.consecutive_failures.to_string(),
                r.items.map_or_else(dash, |n| n.to_string()),
                r.bytes.map_or_else(dash, human_bytes),
                note,
            ];
            (row, state)
        })
        .collect();
    let mut widths = header.map(str::len);
    for (row, _) in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // The note takes what the other columns leave of the width, and is cut to it.
    let fixed: usize = widths[..7].iter().sum::<usize>() + 2 * 7;
    let note_room = style.width.map(|w| w.saturating_sub(fixed).max(12));
    let mut out = String::new();
    let mut line = |cells: &[String], state: Option<State>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let cell = match (i, note_room) {
                (7, Some(room)) => cut(cell, room),
                _ => cell.clone(),
            };
            let padded = if i == 7 { cell } else { format!("{cell:<width$}  ") };
            match (i, state) {
                (1, Some(state)) if style.colour => text.push_str(&format!("{}{padded}\u{1b}[0m", colour(state))),
                _ => text.push_str(&padded),
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from), None);
    rows.iter().for_each(|(row, state)| line(row, Some(*state)));
    out
}

/// What a feed's row adds: a live claim, a backoff, or the last error.
fn note(record: &StatusRecord, feed: &FeedConfig, config: Option<&Config>, now: OffsetDateTime) -> String {
    if let Some(crate::outcome::Outcome::Busy { holder, until, .. }) = record.busy(now, crate::status::DEFAULT_LEASE) {
        return format!("refreshing: {holder}, until {}", clock(until));
    }
    if let Some(config) = config {
        let backoff = Backoff {
            interval: feed.interval,
            max: config.fleet.max_backoff,
        };
        if let Some(wait) = record.backing_off(backoff, now) {
            let until = now + time::Duration::seconds(wait.as_secs() as i64);
            let error = record.last_error.as_deref().unwrap_or("");
            return format!("backing off until {}: {error}", clock(until));
        }
    }
    record.last_error.clone().unwrap_or_else(|| "-".into())
}

/// `10:42 UTC`, or the date too when it is not today.
fn clock(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    if at.date() == OffsetDateTime::now_utc().date() {
        format!("{:02}:{:02} UTC", at.hour(), at.minute())
    } else {
        minutes(at)
    }
}

fn colour(state: State) -> &'static str {
    match state {
        State::Ok => "\u{1b}[32m",
        State::Stale => "\u{1b}[33m",
        State::Failing => "\u{1b}[31m",
        State::Busy => "\u{1b}[34m",
        State::Never | State::Other => "\u{1b}[2m",
    }
}

/// `text` in at most `room` characters, `…` where it was cut.
fn cut(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The width of the terminal on stdout, else `COLUMNS`; `None` for a pipe without `COLUMNS`.
pub(super) fn width() -> Option<usize> {
    use std::io::IsTerminal;
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(columns);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ fills the winsize it is given, and stdout is a terminal.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return Some(usize::from(size.ws_col));
        }
    }
    Some(100)
}

/// Colour on a terminal, never with `NO_COLOR` (<https://no-color.org>).
pub(super) fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stdout().is_terminal() && !no_color && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// `flarefeed preview`'s lines: the feed's title and how the page came, then per item its date
/// (or that it is dated by when first seen), title and link, then what was skipped.
pub(super) fn preview(feed: &FeedConfig, preview: &Preview, now: OffsetDateTime) -> String {
    let extraction = &preview.extraction;
    let how = match preview.route {
        Some(route) => format!("fetched {route}"),
        None => "saved page".into(),
    };
    let moved = preview
        .final_url
        .as_ref()
        .map(|url| format!(", landed on {url}"))
        .unwrap_or_default();
    let mut out = format!(
        "{}  {:?}  {} items of {} matched ({how}{moved})\n",
        feed.name,
        preview.title,
        extraction.items.len(),
        extraction.matched
    );
    const DATE: usize = 26;
    for item in &extraction.items {
        let date = match &item.date {
            Dated::On(date) => date.format("%Y-%m-%d %H:%M %:z").to_string(),
            Dated::Undated => "(first seen)".into(),
            Dated::Unreadable(_) => "(first seen: unreadable)".into(),
        };
        out.push_str(&format!(
            "{date:<DATE$}{}\n{:DATE$}{}\n",
            one_line(&item.title),
            "",
            item.link
        ));
        if let Dated::Unreadable(text) = &item.date {
            out.push_str(&format!("{:DATE$}date {:?} was not read: give date_format\n", "", text));
        }
    }
    let unreadable = extraction.unreadable_dates();
    if unreadable > 0 {
        out.push_str(&format!(
            "{unreadable} dates were not read: those items are dated by when first seen (now, {})\n",
            now.date()
        ));
    }
    out.push_str(&skipped(extraction));
    out
}

/// What was skipped, and why: nothing when nothing was.
pub(super) fn skipped(extraction: &Extraction) -> String {
    let mut out = String::new();
    if extraction.skipped.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "skipped {} of {}:\n",
        extraction.skipped.len(),
        extraction.matched
    ));
    for skip in &extraction.skipped {
        out.push_str(&format!("  item {}: {}\n", skip.position, skip.reason));
    }
    out
}

/// `flarefeed preview --json`: every field of every item, and what was skipped.
pub(super) fn preview_json(feed: &FeedConfig, preview: &Preview) -> serde_json::Value {
    let extraction = &preview.extraction;
    let items: Vec<serde_json::Value> = extraction
        .items
        .iter()
        .map(|item| {
            let (date, date_text) = match &item.date {
                Dated::On(date) => (Some(date.to_rfc3339()), None),
                Dated::Undated => (None, None),
                Dated::Unreadable(text) => (None, Some(text.clone())),
            };
            serde_json::json!({
                "id": item.id,
                "title": item.title,
                "link": item.link,
                "date": date,
                "unreadable_date": date_text,
                "author": item.author,
                "content": item.content,
            })
        })
        .collect();
    let skipped: Vec<serde_json::Value> = extraction
        .skipped
        .iter()
        .map(|s| serde_json::json!({"item": s.position, "reason": s.reason.to_string()}))
        .collect();
    serde_json::json!({
        "feed": feed.name,
        "title": preview.title,
        "page_title": extraction.page_title,
        "route": preview.route,
        "final_url": preview.final_url,
        "matched": extraction.matched,
        "items": items,
        "skipped": skipped,
    })
}

/// A title on one line, control characters shown escaped.
fn one_line(text: &str) -> String {
    crate::redact::one_line(text)
}
