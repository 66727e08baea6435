//! An item's date, read by chrono. Never guessed: a text none of the formats reads is no date,
//! and the item is dated by when flarefeed first saw it (and counted, so the record says so).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};

use super::rules::DateRule;

/// ISO 8601 forms without an offset, read in the rule's offset.
const LOCAL_FORMS: [&str; 6] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
];

/// ISO 8601 forms with an offset that RFC 3339 does not take (a space, `+0800`).
const OFFSET_FORMS: [&str; 3] = [
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
];

/// The date `text` names, by `rule`'s format if it has one, else by RFC 3339, RFC 2822 or ISO
/// 8601; a date without an offset is in `rule.offset`.
pub fn parse(text: &str, rule: &DateRule) -> Option<DateTime<FixedOffset>> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    if let Some(format) = &rule.format {
        return with_format(&text, format, rule.offset);
    }
    if let Ok(date) = DateTime::parse_from_rfc3339(&text) {
        return Some(date);
    }
    if let Ok(date) = DateTime::parse_from_rfc2822(&text) {
        return Some(date);
    }
    if let Some(date) = OFFSET_FORMS
        .iter()
        .find_map(|form| DateTime::parse_from_str(&text, form).ok())
    {
        return Some(date);
    }
    if let Some(naive) = LOCAL_FORMS
        .iter()
        .find_map(|form| NaiveDateTime::parse_from_str(&text, form).ok())
    {
        return local(naive, rule.offset);
    }
    let day = NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()?;
    local(day.and_hms_opt(0, 0, 0)?, rule.offset)
}

/// `text` by a strftime `format`: with its own offset if the format reads one, else in
/// `offset`; a format without a time reads midnight.
fn with_format(text: &str, format: &str, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    if let Ok(date) = DateTime::parse_from_str(text, format) {
        return Some(date);
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
        return local(naive, offset);
    }
    let day = NaiveDate::parse_from_str(text, format).ok()?;
    local(day.and_hms_opt(0, 0, 0)?, offset)
}

fn local(naive: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    offset.from_local_datetime(&naive).single()
}

/// Unix seconds, or milliseconds when above 10^11 (a date in 5138 as seconds, 1973 as ms).
pub fn from_unix(number: f64) -> Option<DateTime<FixedOffset>> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let millis = if number > 1e11 { number } else { number * 1000.0 };
    if millis > 253_402_300_799_000.0 {
        return None;
    }
    DateTime::from_timestamp_millis(millis as i64).map(|utc| utc.fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Option<String> {
        parse(text, &DateRule::default()).map(|d| d.to_rfc3339())
    }

    #[test]
    fn the_standard_forms_are_read() {
        assert_eq!(utc("2026-11-30T08:15:00+08:00").unwrap(), "2026-11-30T08:15:00+08:00");
        assert_eq!(
            utc("Mon, 30 Nov 2026 08:15:00 GMT").unwrap(),
            "2026-11-30T08:15:00+00:00"
        );
        assert_eq!(utc("2026-11-30 08:15:00+0800").unwrap(), "2026-11-30T08:15:00+08:00");
        assert_eq!(utc(" 2026-11-30\n 08:15 ").unwrap(), "2026-11-30T08:15:00+00:00");
        assert_eq!(utc("2026-11-30").unwrap(), "2026-11-30T00:00:00+00:00");
    }

    #[test]
    fn a_format_and_an_offset_read_local_dates() {
        let rule = DateRule::parse(Some("%d/%m/%Y %H:%M"), Some("+08:00")).unwrap();
        let date = parse("30/11/2026 08:15", &rule).unwrap();
        assert_eq!(date.to_rfc3339(), "2026-11-30T08:15:00+08:00");
        let day = DateRule::parse(Some("%Y年%m月%d日"), Some("+09:00")).unwrap();
        assert_eq!(
            parse("2026年11月30日", &day).unwrap().to_rfc3339(),
            "2026-11-30T00:00:00+09:00"
        );
    }

    #[test]
    fn what_no_form_reads_is_no_date() {
        for text in ["3 hours ago", "yesterday", "", "2026-13-45", "30/11/2026"] {
            assert_eq!(utc(text), None, "{text}");
        }
    }

    #[test]
    fn unix_seconds_and_milliseconds() {
        assert_eq!(
            from_unix(1_764_490_500.0).unwrap().to_rfc3339(),
            "2025-11-30T08:15:00+00:00"
        );
        assert_eq!(
            from_unix(1_764_490_500_000.0).unwrap().to_rfc3339(),
            "2025-11-30T08:15:00+00:00"
        );
        assert_eq!(from_unix(-1.0), None);
        assert_eq!(from_unix(f64::NAN), None);
        assert_eq!(from_unix(1e20), None);
    }
}
