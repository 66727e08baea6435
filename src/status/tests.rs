//! The record's shape, its gate and its claim, judged against fixed clocks.

use std::time::Duration;

use super::*;
use crate::outcome::Outcome;
use time::macros::datetime;

#[test]
fn names_are_serdes() {
    assert_eq!(Recorded::Never.to_string(), "never");
    assert_eq!(crate::outcome::serde_name(&Trigger::Http), "http");
    let record = StatusRecord::never(&FeedConfig::new("a", "https://user:pw@a.test/feed?k=1"));
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["outcome"], "never");
    assert_eq!(json["url"], "https://…@a.test/feed?…");
    assert!(json.get("in_flight").is_none() && json.get("final_url").is_none());
}

#[test]
fn min_interval_and_claims_are_judged_against_now() {
    let now = datetime!(2026-11-22 10:00 UTC);
    let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
    assert_eq!(record.too_recent(Duration::from_secs(60), now), None);
    record.last_attempt = Some(datetime!(2026-11-22 09:59:30 UTC));
    assert_eq!(
        record.too_recent(Duration::from_secs(60), now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(record.too_recent(Duration::from_secs(30), now), None);
    // A clock that ran backwards is not "too recent" forever.
    record.last_attempt = Some(datetime!(2026-11-22 10:05 UTC));
    assert_eq!(record.too_recent(Duration::from_secs(60), now), None);

    assert!(record.busy(now, DEFAULT_LEASE).is_none());
    record.in_flight = Some(InFlight::new(
        Trigger::Schedule,
        datetime!(2026-11-22 09:59 UTC),
        datetime!(2026-11-22 10:01 UTC),
    ));
    assert_eq!(
        record.in_flight.as_ref().unwrap().left(now, DEFAULT_LEASE, None),
        Some(Duration::from_secs(60))
    );
    assert!(matches!(
        record.busy(now, DEFAULT_LEASE),
        Some(Outcome::Busy {
            retry_after_s: 60,
            clamped: false,
            ..
        })
    ));
    assert!(record.busy(now + time::Duration::minutes(2), DEFAULT_LEASE).is_none());
}

/// Finding 2: a claim's times are trusted only within the longest lease, from the claim's
/// own start and from now, and the busy message says who holds it until when.
#[test]
fn a_claim_beyond_any_lease_is_clamped_to_it() {
    let now = datetime!(2026-12-03 10:00 UTC);
    let lease = Duration::from_secs(600);
    let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
    // Edited by hand, or a clock decades ahead: 2099.
    record.in_flight = Some(InFlight::new(
        Trigger::Cli,
        datetime!(2026-12-03 09:58 UTC),
        datetime!(2099-01-01 00:00 UTC),
    ));
    let Some(Outcome::Busy {
        retry_after_s,
        until,
        clamped,
        ..
    }) = record.busy(now, lease)
    else {
        panic!("a claim started 2 minutes ago is live")
    };
    assert_eq!(
        (retry_after_s, until, clamped),
        (480, datetime!(2026-12-03 10:08 UTC), true)
    );
    let said = record.busy(now, lease).unwrap().to_string();
    assert!(
        said.contains("holds the feed until 2026-12-03T10:08:00Z (retry in 480 s)"),
        "{said}"
    );
    assert!(said.contains("a clock ahead"), "{said}");
    assert!(said.contains(&format!("pid {}", std::process::id())), "{said}");

    // A host 2 hours ahead, killed mid-refresh: started and expires in the future, and the
    // store's clock says when it wrote them.
    record.written = Some(now);
    record.in_flight = cli_claim(datetime!(2026-12-03 12:00 UTC), datetime!(2026-12-03 12:06 UTC));
    assert_eq!(busy_wait(&record, now, lease), Some((600, true)));
    assert!(
        record.busy(now + time::Duration::minutes(10), lease).is_none(),
        "not 2 hours"
    );
    // An honest claim is untouched.
    record.in_flight = cli_claim(datetime!(2026-12-03 09:59 UTC), datetime!(2026-12-03 10:05 UTC));
    assert_eq!(busy_wait(&record, now, lease), Some((300, false)));
}

/// A claim of a CLI refresh by this process.
fn cli_claim(started: OffsetDateTime, expires: OffsetDateTime) -> Option<InFlight> {
    Some(InFlight::new(Trigger::Cli, started, expires))
}

/// How long a busy record says to wait, and whether its claim was clamped; `None` if it is not
/// busy.
fn busy_wait(record: &StatusRecord, now: OffsetDateTime, lease: Duration) -> Option<(u64, bool)> {
    match record.busy(now, lease)? {
        Outcome::Busy {
            retry_after_s, clamped, ..
        } => Some((retry_after_s, clamped)),
        other => panic!("busy answered {other:?}"),
    }
}

/// Finding 1: a claim whose process is gone from this host is no claim; one from another
/// host, or from this process, is.
#[test]
fn a_claim_of_a_process_gone_from_this_host_is_taken_over() {
    let now = OffsetDateTime::now_utc();
    let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
    let mut claim = InFlight::new(Trigger::Cli, now, now + time::Duration::minutes(5));
    record.in_flight = Some(claim.clone());
    assert!(record.busy(now, DEFAULT_LEASE).is_some(), "this process holds it");
    let this = Holder::this_process();
    if this.boot_id.is_some() && cfg!(target_os = "linux") {
        // A pid above Linux's pid_max (4194304) never runs.
        claim.holder = Some(Holder {
            pid: 4_194_305,
            ..this.clone()
        });
        record.in_flight = Some(claim.clone());
        assert!(record.busy(now, DEFAULT_LEASE).is_none(), "its holder is gone");
    }
    claim.holder = Some(Holder {
        host: "elsewhere".into(),
        boot_id: Some("another-boot".into()),
        pid: 4_194_305,
        pid_ns: None,
        started: None,
    });
    record.in_flight = Some(claim);
    assert!(record.busy(now, DEFAULT_LEASE).is_some(), "another host's claim stands");
}

/// Issue 27, finding 8: a holder in another PID namespace of this host (a container sharing
/// the hostname), or one that did not say which, cannot be seen from here: its claim stands. A
/// pid that now names another process (another start time) is the holder gone.
#[test]
fn a_holder_this_process_cannot_see_is_not_gone() {
    let this = Holder::this_process();
    if !(this.boot_id.is_some() && this.pid_ns.is_some() && cfg!(target_os = "linux")) {
        return;
    }
    let absent = |pid_ns: Option<&str>| Holder {
        pid: 4_194_305,
        pid_ns: pid_ns.map(str::to_string),
        ..this.clone()
    };
    assert!(
        absent(this.pid_ns.as_deref()).is_gone(),
        "absent in this namespace: gone"
    );
    assert!(!absent(Some("pid:[1]")).is_gone(), "another namespace");
    assert!(!absent(None).is_gone(), "a holder that did not say");
    // This very pid, started at another time: a reused pid, the holder gone.
    let reused = Holder {
        started: this.started.map(|t| t + 1),
        ..this.clone()
    };
    assert!(reused.is_gone());
    assert!(!this.is_gone(), "this process runs");
}

/// Finding 7: what a newer build writes (a trigger, an outcome, a route, a field this one
/// does not know) reads, keeps a live claim live, and is written back as it was.
#[test]
fn records_of_newer_builds_read_and_keep_what_they_do_not_know() {
    let now = OffsetDateTime::now_utc();
    let text = serde_json::json!({
        "feed": "news",
        "url": "https://news.example.test/rss.xml",
        "outcome": "quarantined",
        "last_attempt": crate::outcome::rfc3339(now),
        "last_success": "2026-12-01T08:15:02Z",
        "last_error": null,
        "consecutive_failures": 2,
        "items": 3, "bytes": 10, "sha256": "ab", "solver_ms": null, "total_ms": null,
        "fetched_by": "carrier-pigeon",
        "quarantine_log": [{"at": "2026-12-01T08:15:02Z", "outcome": "updated"}],
        "history": [[1796292000, "u", 1200], {"at": 1}, [1796292900, "z", 3]],
        "in_flight": {
            "trigger": "webhook",
            "started": crate::outcome::rfc3339(now),
            "expires": crate::outcome::rfc3339(now + time::Duration::minutes(5)),
            "lease_owner": "x"
        }
    })
    .to_string();
    let record = parse(text.as_bytes()).unwrap();
    assert_eq!(record.outcome, Recorded::Other);
    assert_eq!(record.fetched_by, None);
    assert_eq!(record.consecutive_failures, 2);
    assert_eq!(record.last_success, Some(datetime!(2026-12-01 08:15:02 UTC)));
    let claim = record.in_flight.as_ref().unwrap();
    assert_eq!(claim.trigger, Trigger::Other);
    assert!(record.busy(now, DEFAULT_LEASE).is_some(), "a live claim stays live");
    let written = serde_json::to_value(&record).unwrap();
    assert_eq!(
        written["quarantine_log"][0]["outcome"], "updated",
        "unknown fields are kept"
    );
    assert_eq!(
        record.history,
        [
            Attempted(1796292000, AttemptMark::Updated, 1200),
            Attempted(1796292900, AttemptMark::Other, 3)
        ],
        "history entries it cannot read are left out"
    );
    assert_eq!(written["in_flight"]["lease_owner"], "x");
}

#[test]
fn backoff_doubles_per_failure_up_to_the_cap() {
    let mut record = StatusRecord::never(&FeedConfig::new("news", "https://site.test/feed"));
    let now = datetime!(2026-11-22 12:00 UTC);
    let backoff = Backoff {
        interval: Duration::from_secs(900),
        max: Duration::from_secs(24 * 3600),
    };
    record.last_attempt = Some(now);
    assert_eq!(record.backing_off(backoff, now), None, "no failure, no backoff");
    for (failures, wait) in [(1, 1800), (2, 3600), (3, 7200), (7, 86_400), (40, 86_400)] {
        record.consecutive_failures = failures;
        assert_eq!(
            record.backing_off(backoff, now),
            Some(Duration::from_secs(wait)),
            "{failures}"
        );
    }
    // Finding 10: durations at the types' limits saturate, and never panic.
    let absurd = Backoff {
        interval: Duration::MAX,
        max: Duration::MAX,
    };
    record.consecutive_failures = 1;
    assert!(record.backing_off(absurd, now).is_some());
    record.consecutive_failures = u32::MAX;
    assert!(record.backing_off(absurd, now).is_some());
    record.consecutive_failures = 1;
    assert_eq!(
        record.backing_off(backoff, now + time::Duration::minutes(29)),
        Some(Duration::from_secs(60))
    );
    assert_eq!(record.backing_off(backoff, now + time::Duration::minutes(30)), None);
    // A solver's Retry-After holds the feed back at least that long.
    record.not_before = Some(now + time::Duration::hours(2));
    assert_eq!(
        record.backing_off(backoff, now + time::Duration::minutes(30)),
        Some(Duration::from_secs(5400))
    );
}

/// One gate: a live claim first, then the backoff, then min_interval, each only if asked.
#[test]
fn the_gate_decides_busy_backoff_and_min_interval_in_that_order() {
    let now = datetime!(2026-11-22 12:00 UTC);
    let mut record = StatusRecord::never(&FeedConfig::new("news", "https://site.test/feed"));
    let all = Gate {
        lease: DEFAULT_LEASE,
        min_interval: Some(Duration::from_secs(60)),
        backoff: Some(Backoff {
            interval: Duration::from_secs(900),
            max: Duration::from_secs(3600),
        }),
    };
    assert_eq!(record.gate(all, now), None, "never attempted: nothing holds it back");
    record.last_attempt = Some(now - time::Duration::seconds(10));
    assert_eq!(record.gate(all, now), Some(Outcome::Skipped { retry_after_s: 50 }));
    assert_eq!(record.gate(Gate::default(), now), None);
    record.consecutive_failures = 1;
    assert_eq!(
        record.gate(all, now),
        Some(Outcome::Backoff {
            retry_after_s: 1790,
            failures: 1
        })
    );
    record.in_flight = Some(InFlight::new(Trigger::Cli, now, now + time::Duration::seconds(90)));
    assert!(matches!(
        record.gate(Gate::default(), now),
        Some(Outcome::Busy { retry_after_s: 90, .. })
    ));
}

/// Records written by the release before typed times still read, and a bad time names its
/// key.
#[test]
fn todays_records_read_and_a_bad_time_names_its_key() {
    let today = br#"{
  "feed": "news",
  "url": "https://news.example.test/rss.xml",
  "outcome": "updated",
  "last_attempt": "2026-12-01T08:15:02.123456789Z",
  "last_success": "2026-12-01T08:15:02.123456789Z",
  "last_error": null,
  "consecutive_failures": 0,
  "items": 2,
  "bytes": 1234,
  "sha256": "ab",
  "solver_ms": 310,
  "total_ms": 330,
  "in_flight": {"trigger": "queue", "started": "2026-12-01T08:20:00.5Z", "expires": "2026-12-01T08:22:08.5Z"}
}"#;
    let record = parse(today).unwrap();
    assert_eq!(record.last_attempt, Some(datetime!(2026-12-01 08:15:02.123456789 UTC)));
    assert_eq!(record.in_flight.as_ref().unwrap().trigger, Trigger::Queue);
    let again = parse(&serde_json::to_vec(&record).unwrap()).unwrap();
    assert_eq!(again, record, "what this release writes, it reads");
    let text = String::from_utf8(serde_json::to_vec(&record).unwrap()).unwrap();
    assert!(text.contains("\"2026-12-01T08:15:02.123456789Z\""), "{text}");

    let bad = String::from_utf8(today.to_vec())
        .unwrap()
        .replace("2026-12-01T08:22:08.5Z", "soon");
    let (key, detail) = parse(bad.as_bytes()).unwrap_err();
    assert_eq!(key, "in_flight.expires", "{detail}");
}
