//! What the commands print: the status table. A refresh's line is its report's `Display`.

use crate::outcome::rfc3339;
use crate::status::StatusRecord;

pub(super) fn status_table(records: &[StatusRecord]) -> String {
    let header = [
        "FEED",
        "OUTCOME",
        "LAST ATTEMPT",
        "LAST SUCCESS",
        "FAILURES",
        "ITEMS",
        "BYTES",
        "LAST ERROR",
    ];
    let dash = || "-".to_string();
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            let outcome = match &r.in_flight {
                Some(running) if running.left(now, crate::status::DEFAULT_LEASE, r.written).is_some() => {
                    format!("{} (refreshing)", r.outcome)
                }
                _ => r.outcome.to_string(),
            };
            [
                r.feed.clone(),
                outcome,
                r.last_attempt.map_or_else(dash, rfc3339),
                r.last_success.map_or_else(dash, rfc3339),
                r.consecutive_failures.to_string(),
                r.items.map_or_else(dash, |n| n.to_string()),
                r.bytes.map_or_else(dash, |n| n.to_string()),
                r.last_error.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    rows.iter().for_each(|row| line(row));
    out
}
