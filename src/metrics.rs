//! One CloudWatch Embedded Metric Format line per refresh, on stdout: CloudWatch Logs turns it
//! into metrics with no SDK call
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::observer::Observer;
use crate::outcome::{Outcome, Report};
use crate::status::StatusRecord;

/// The metrics' namespace.
pub const NAMESPACE: &str = "flarefeed";

/// Prints one EMF line to stdout per refresh that made an attempt: wired in by the Lambda,
/// where stdout is CloudWatch Logs; never by the CLI, whose stdout is its output.
pub struct Emf;

impl Observer for Emf {
    fn finished(&self, report: &Report, record: Option<&StatusRecord>) {
        println!("{}", emf(report, record, OffsetDateTime::now_utc()));
    }

    fn ticked(&self, queued: usize, not_queued: usize) {
        println!("{}", tick_emf(queued, not_queued, OffsetDateTime::now_utc()));
    }

    fn config_invalid(&self, _error: &str) {
        println!("{}", counts_emf(&[("ConfigInvalid", 1)], OffsetDateTime::now_utc()));
    }
}

/// The EMF document for one tick: `Queued` and `NotQueued` (due feeds the queue would not
/// take, even sent again), without a feed dimension.
pub fn tick_emf(queued: usize, not_queued: usize, now: OffsetDateTime) -> Value {
    counts_emf(&[("Queued", queued), ("NotQueued", not_queued)], now)
}

/// An EMF document of counts, without dimensions (`ConfigInvalid`, a tick's counts).
pub fn counts_emf(counts: &[(&str, usize)], now: OffsetDateTime) -> Value {
    let mut document = Map::new();
    for (name, value) in counts {
        document.insert((*name).into(), (*value).into());
    }
    let declared: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    document.insert("_aws".into(), directive(json!([[]]), declared, now));
    Value::Object(document)
}

/// EMF's `_aws` member: when, and which of the document's members are metrics, by which
/// dimensions.
fn directive(dimensions: Value, declared: Vec<Value>, now: OffsetDateTime) -> Value {
    json!({
        "Timestamp": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": dimensions,
            "Metrics": declared,
        }],
    })
}

/// The EMF document for one refresh, whatever its outcome (busy and backoff included, so a
/// stuck feed still reports how stale it is): `record` is the feed's status record after it, or
/// as read. `StaleSeconds` is the time since the last success or, for a feed never published,
/// since its first attempt.
pub fn emf(report: &Report, record: Option<&StatusRecord>, now: OffsetDateTime) -> Value {
    let mut values: Vec<(&str, &str, Option<u64>)> = vec![
        ("SolverMs", "Milliseconds", report.solver_ms),
        ("TotalMs", "Milliseconds", Some(report.total_ms)),
        ("Bytes", "Bytes", record.and_then(|r| r.bytes).map(|b| b as u64)),
        ("Items", "Count", record.and_then(|r| r.items).map(|i| i as u64)),
        (
            "Published",
            "Count",
            Some(u64::from(report.outcome == Outcome::Updated)),
        ),
        (
            "Unchanged",
            "Count",
            Some(u64::from(report.outcome == Outcome::Unchanged)),
        ),
        ("Failed", "Count", Some(u64::from(report.outcome.is_failure()))),
    ];
    let since = record.and_then(|r| r.last_success.or(r.first_attempt).or(r.last_attempt));
    let stale = since.map(|at| (now - at).whole_seconds().max(0) as u64);
    values.push(("StaleSeconds", "Seconds", stale));

    let mut document = Map::new();
    let mut declared = Vec::new();
    for (name, unit, value) in values {
        if let Some(value) = value {
            declared.push(json!({"Name": name, "Unit": unit}));
            document.insert(name.into(), value.into());
        }
    }
    document.insert("Feed".into(), report.feed.clone().into());
    if let Some(route) = report.route {
        // A property, and a count per route: the share of direct refreshes is Direct / (Direct
        // + Solver).
        document.insert("Route".into(), route.to_string().into());
        let name = match route {
            crate::fetch::Route::Direct => "Direct",
            crate::fetch::Route::Solver => "Solver",
        };
        declared.push(json!({"Name": name, "Unit": "Count"}));
        document.insert(name.into(), 1.into());
    }
    document.insert("outcome".into(), report.outcome.name().into());
    document.insert("_aws".into(), directive(json!([["Feed"], []]), declared, now));
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedConfig;

    #[test]
    fn the_document_follows_the_emf_specification() {
        let feed = FeedConfig::new("news", "https://site.test/feed");
        let mut record = StatusRecord::never(&feed);
        record.last_success = Some(time::macros::datetime!(2026-11-22 10:00 UTC));
        record.items = Some(25);
        record.bytes = Some(48_213);
        let report = Report {
            feed: "news".into(),
            outcome: Outcome::Updated,
            location: "memory:news.xml".into(),
            kind: Some("rss 2.0".into()),
            items: Some(25),
            bytes: Some(48_213),
            solver_ms: Some(6_100),
            total_ms: 6_200,
            final_url: None,
            solver: None,
            route: None,
            page: None,
        };
        let now = time::macros::datetime!(2026-11-22 10:05 UTC);
        let doc = emf(&report, Some(&record), now);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], now.unix_timestamp() * 1000);
        assert_eq!(directive["Namespace"], "flarefeed");
        assert_eq!(directive["Dimensions"], json!([["Feed"], []]));
        // Every declared metric has a number at the root, and every dimension a string.
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "SolverMs",
                "TotalMs",
                "Bytes",
                "Items",
                "Published",
                "Unchanged",
                "Failed",
                "StaleSeconds"
            ]
        );
        for name in names {
            assert!(doc[name].is_u64(), "{name}");
        }
        assert_eq!(
            (doc["Feed"].as_str(), doc["StaleSeconds"].as_u64()),
            (Some("news"), Some(300))
        );
        assert_eq!((doc["Published"].as_u64(), doc["Failed"].as_u64()), (Some(1), Some(0)));

        // Never published: stale since the first attempt.
        record.last_success = None;
        record.first_attempt = Some(time::macros::datetime!(2026-11-22 09:00 UTC));
        let doc = emf(&report, Some(&record), now);
        assert_eq!(doc["StaleSeconds"], 3900);
        // Never attempted, or the record unreadable: no StaleSeconds, and still a line.
        let doc = emf(&report, None, now);
        assert!(doc.get("StaleSeconds").is_none());
        assert!(!doc.to_string().contains("StaleSeconds"));
    }
}
