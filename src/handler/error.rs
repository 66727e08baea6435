//! Why a non-HTTP invocation failed, as Lambda reports it.

use lambda_http::lambda_runtime::Diagnostic;
use thiserror::Error;

use crate::config::ConfigError;
use crate::fleet::queue::QueueError;
use crate::outcome::{RefreshError, Stage};

/// The shapes accepted, for the message that refuses any other.
pub const ACCEPTED: &str = "{\"feed\": \"<name>\"} (EventBridge Scheduler's input), {\"tick\": \"<ISO 8601 time>\"} or {\"tick\": true} (the fleet's tick), an EventBridge event whose detail is {\"feed\": \"<name>\"}, an SQS event whose bodies are {\"feed\": \"<name>\"}, or a function URL request";

/// Why a non-HTTP invocation failed; the invocation then counts as failed in CloudWatch, and
/// an asynchronous one goes to the on-failure destination.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("this event is none of the kinds flarefeed accepts: {ACCEPTED}; it failed to parse: {detail}")]
    BadEvent { detail: String },
    #[error("the event names no feed and {count} are configured; send {{\"feed\": \"<name>\"}} with one of: {names}")]
    FeedNotNamed { count: usize, names: String },
    #[error(transparent)]
    UnknownFeed(ConfigError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("refresh of {feed} failed at {stage}: {source}")]
    RefreshFailed {
        feed: String,
        stage: Stage,
        source: RefreshError,
    },
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::BadEvent { .. } | HandlerError::FeedNotNamed { .. } | HandlerError::UnknownFeed { .. } => {
                "flarefeed.BadEvent"
            }
            HandlerError::RefreshFailed { .. } => "flarefeed.RefreshFailed",
            HandlerError::Queue(_) => "flarefeed.QueueFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}
