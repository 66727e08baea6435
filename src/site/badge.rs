//! `status/<name>.svg`: a small badge, "<name> | ok", "stale" or "failing", as shields.io draws
//! them, for a README or a dashboard.

use super::{FeedSummary, State};

/// What a badge says: three words, so a badge changes only when one of them does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ok,
    Stale,
    Failing,
}

pub(super) fn kind(state: State) -> Kind {
    match state {
        State::Ok | State::Busy => Kind::Ok,
        State::Failing => Kind::Failing,
        State::Stale | State::Never | State::Other => Kind::Stale,
    }
}

pub(super) fn render(summary: &FeedSummary) -> String {
    let (word, colour) = match kind(summary.state) {
        Kind::Ok => ("ok", "#2e7d32"),
        Kind::Stale => ("stale", "#b26a00"),
        Kind::Failing => ("failing", "#c62828"),
    };
    // Feed names are [a-z0-9-]: nothing to escape. About 6.5 px a character at 11 px.
    let name = &summary.name;
    let left = 10 + (name.len() as u32 * 13).div_ceil(2);
    let right = 10 + (word.len() as u32 * 13).div_ceil(2);
    let width = left + right;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{name}: {word}"><title>{name}: {word}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="{lx}" y="14">{name}</text><text x="{rx}" y="14">{word}</text></g></svg>
"##,
        lx = left / 2,
        rx = left + right / 2,
    )
}
