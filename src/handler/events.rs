//! The events that are not HTTP requests, typed: lambda_http hands each one over as the body of
//! a pass-through `POST /events`, and this is where it stops being JSON text.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::error::ACCEPTED;
use super::error::HandlerError;

/// Which feed to refresh. `feed` may be left out only when one feed is configured. Unknown
/// fields are refused, so that a typo (`"fed"`) or an event meant for another function is not
/// taken for "the only feed".
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedInput {
    #[serde(default)]
    pub feed: Option<String>,
}

/// One non-HTTP invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// EventBridge Scheduler's `Input`, as the template's schedule sends it.
    Scheduled(FeedInput),
    /// An EventBridge rule's event (the classic scheduled rule, or a custom event).
    EventBridge(Box<EventBridgeEvent<FeedInput>>),
    /// The fleet's tick: plan the feeds due, and queue them.
    Tick(TickInput),
    /// Messages from the fleet's queue, through Lambda's event source mapping; each body is a
    /// [`crate::fleet::queue::Message`], read per record so that one bad message fails alone.
    Sqs(SqsEvent),
}

impl Invocation {
    /// Parses a raw event. A shape of none of the accepted kinds, or a `feed` that is not a
    /// string (`{"feed": 1}`), is a [`HandlerError::BadEvent`] that names the accepted shapes.
    pub fn parse(event: &[u8]) -> Result<Self, HandlerError> {
        let bad = |error: serde_json::Error| HandlerError::BadEvent {
            detail: error.to_string(),
        };
        if is_eventbridge(event) {
            serde_json::from_slice(event)
                .map(|event| Invocation::EventBridge(Box::new(event)))
                .map_err(bad)
        } else if has_member(event, "tick") {
            serde_json::from_slice(event).map(Invocation::Tick).map_err(bad)
        } else if let Some(sqs) = sqs_event(event) {
            sqs.map(Invocation::Sqs)
        } else {
            serde_json::from_slice(event).map(Invocation::Scheduled).map_err(bad)
        }
    }

    /// The feed named, if any (an SQS event names one per record).
    pub fn feed(&self) -> Option<&str> {
        match self {
            Invocation::Scheduled(input) => input.feed.as_deref(),
            Invocation::EventBridge(event) => event.detail.feed.as_deref(),
            Invocation::Tick(_) | Invocation::Sqs(_) => None,
        }
    }
}

/// `{"tick": …}`: the schedule's Input carries `<aws.scheduler.scheduled-time>`
/// (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html),
/// or `true` for now. `every` is how often the schedule fires (`"1m"`): the template writes it
/// beside the schedule's own rate, so the tick plans by the schedule that really fires, whatever
/// `[fleet] tick` says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TickInput {
    pub tick: Tick,
    #[serde(default)]
    pub every: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Tick {
    Now(bool),
    At(String),
}

impl TickInput {
    /// A tick at `tick`, without `every`.
    pub fn new(tick: Tick) -> Self {
        Self { tick, every: None }
    }

    /// How often the schedule fires: `every`, else `fallback` (`[fleet] tick`).
    pub fn every(&self, fallback: std::time::Duration) -> Result<std::time::Duration, HandlerError> {
        let Some(text) = &self.every else {
            return Ok(fallback);
        };
        crate::config::parse_duration(text)
            .filter(|every| (1..=crate::config::MAX_TICK.as_secs()).contains(&every.as_secs()))
            .ok_or_else(|| HandlerError::BadEvent {
                detail: format!("every {text:?} is not a duration from 1s to 1h (\"1m\", \"5m\")"),
            })
    }

    /// The tick's time, in Unix seconds.
    pub fn at(&self) -> Result<i64, HandlerError> {
        use time::format_description::well_known::Rfc3339;
        match &self.tick {
            Tick::Now(true) => Ok(time::OffsetDateTime::now_utc().unix_timestamp()),
            Tick::Now(false) => Err(HandlerError::BadEvent {
                detail: "{\"tick\": false} names no time".into(),
            }),
            Tick::At(text) => time::OffsetDateTime::parse(text, &Rfc3339)
                .map(|at| at.unix_timestamp())
                .map_err(|e| HandlerError::BadEvent {
                    detail: format!("tick {text:?} is not an ISO 8601 (RFC 3339) time: {e}"),
                }),
        }
    }
}

/// Whether `event` is an object with a member `name`.
fn has_member(event: &[u8], name: &str) -> bool {
    serde_json::from_slice::<std::collections::HashMap<String, IgnoredAny>>(event)
        .is_ok_and(|members| members.contains_key(name))
}

/// An SQS event, if `event` has `Records` from `aws:sqs` (Lambda's event source mapping).
fn sqs_event(event: &[u8]) -> Option<Result<SqsEvent, HandlerError>> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "Records")]
        records: Option<IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(event).ok()?.records?;
    let parsed =
        serde_json::from_slice::<SqsEvent>(event).map_err(|e| HandlerError::BadEvent { detail: e.to_string() });
    Some(parsed.and_then(|sqs| {
        match sqs
            .records
            .iter()
            .find(|r| r.event_source.as_deref() != Some("aws:sqs"))
        {
            Some(other) => Err(HandlerError::BadEvent {
                detail: format!(
                    "a record from {:?}, not aws:sqs",
                    other.event_source.as_deref().unwrap_or("nowhere")
                ),
            }),
            None => Ok(sqs),
        }
    }))
}

/// An EventBridge event is told by its envelope's `detail-type`, which no other accepted kind
/// has, so a malformed one is reported against the envelope's shape.
fn is_eventbridge(event: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "detail-type")]
        detail_type: Option<IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(event).is_ok_and(|probe| probe.detail_type.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_parses_and_anything_else_is_a_bad_event() {
        let named = Invocation::parse(br#"{"feed": "demo"}"#).unwrap();
        assert_eq!(named.feed(), Some("demo"));
        assert!(matches!(named, Invocation::Scheduled(_)));
        assert_eq!(Invocation::parse(b"{}").unwrap().feed(), None);
        let envelope = br#"{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2026-11-22T04:00:00Z","region":"eu-west-1","resources":[],"detail":{"feed":"demo"}}"#;
        let parsed = Invocation::parse(envelope).unwrap();
        assert!(matches!(parsed, Invocation::EventBridge(_)));
        assert_eq!(parsed.feed(), Some("demo"));
        let tick = Invocation::parse(br#"{"tick": "2026-11-22T04:01:00Z"}"#).unwrap();
        let Invocation::Tick(tick) = tick else {
            panic!("{tick:?}")
        };
        assert_eq!(tick.at().unwrap(), 1_795_320_060);
        let Invocation::Tick(now) = Invocation::parse(br#"{"tick": true}"#).unwrap() else {
            panic!()
        };
        assert!(now.at().unwrap() > 1_795_320_060);
        for bad in [&br#"{"tick": false}"#[..], br#"{"tick": "yesterday"}"#] {
            let Invocation::Tick(tick) = Invocation::parse(bad).unwrap() else {
                panic!()
            };
            assert!(matches!(tick.at(), Err(HandlerError::BadEvent { .. })));
        }
        let classic = br#"{"detail-type":"Scheduled Event","source":"aws.events","detail":{}}"#;
        assert_eq!(Invocation::parse(classic).unwrap().feed(), None);

        for (event, words) in [
            (&br#"{"feed": 1}"#[..], "invalid type: integer `1`, expected a string"),
            (br#"{"fed": "demo"}"#, "unknown field `fed`"),
            (br#"{"Records": [{"eventSource": "aws:s3"}]}"#, "not aws:sqs"),
            (br#"{"Records": 1}"#, "invalid type: integer"),
            (br#"{"tick": 5}"#, "did not match any variant"),
            (br#"{"tick": true, "feed": "demo"}"#, "unknown field `feed`"),
            (
                br#"{"detail-type": "x", "source": "y", "detail": {"feed": 1}}"#,
                "expected a string",
            ),
            (br#"{"detail-type": "x", "detail": {}}"#, "missing field `source`"),
            (b"[1, 2]", "invalid type: integer"),
            (b"\"demo\"", "invalid type: string"),
            (b"not json", "expected ident"),
        ] {
            let error = Invocation::parse(event).unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, HandlerError::BadEvent { .. }), "{text}");
            assert!(text.contains(words), "{text:?} should say {words:?}");
            assert!(text.contains(ACCEPTED), "{text}");
        }
    }
}
