//! What each kind of invocation runs: a scheduled refresh, the fleet's tick (the planner) and
//! the fleet's worker (an SQS batch). The function URL's routes share the same state.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tracing::{info, warn};

use super::error::HandlerError;
use super::events::{FeedInput, Invocation, TickInput};
use crate::deployment::Deployment;
use crate::fleet::queue::QueueError;
use crate::outcome::{Outcome, Report};
use crate::refresh::RefreshOptions;

/// What the routes share: built once per cold start.
pub(crate) struct Shared {
    pub(crate) deployment: Deployment,
    /// SHA-256 of `FLAREFEED_TOKEN`: comparing digests keeps the comparison constant-time
    /// whatever the length of the token offered.
    pub(crate) token: Option<[u8; 32]>,
}

/// The refresh's deadline, carried to the routes as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(pub(crate) Option<Instant>);

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub enqueued: usize,
    pub feeds: Vec<String>,
}

impl Shared {
    pub(crate) async fn scheduled(
        &self,
        invocation: &Invocation,
        deadline: Option<Instant>,
    ) -> Result<Report, HandlerError> {
        let config = &self.deployment.config;
        let feed = match invocation.feed() {
            Some(name) => config.feed(name).map_err(HandlerError::UnknownFeed)?,
            None if config.feeds.len() == 1 => &config.feeds[0],
            None => {
                return Err(HandlerError::FeedNotNamed {
                    count: config.feeds.len(),
                    names: config.feed_names().join(", "),
                });
            }
        };
        let report = self
            .deployment
            .refresher
            .refresh(feed, RefreshOptions::scheduled(deadline))
            .await;
        match report.outcome {
            Outcome::Failed { stage, error } => Err(HandlerError::RefreshFailed {
                feed: report.feed,
                stage,
                source: error,
            }),
            _ => Ok(report),
        }
    }

    /// The fleet's planner: the feeds with a slot in the tick's window go to the queue. It
    /// reads nothing from the store; the slots are fixed ([`crate::fleet`]).
    pub(crate) async fn tick(&self, tick: &TickInput) -> Result<Planned, HandlerError> {
        let deployment = &self.deployment;
        let queue = deployment.queue.as_ref().ok_or(QueueError::NotConfigured)?;
        let due = crate::fleet::plan(&deployment.config, tick.at()?);
        queue.enqueue(&due).await?;
        let feeds: Vec<String> = due.into_iter().map(|d| d.feed).collect();
        info!(enqueued = feeds.len(), "tick planned");
        Ok(Planned {
            enqueued: feeds.len(),
            feeds,
        })
    }

    /// The fleet's worker: refreshes each queued record's feed, backing off failing feeds.
    ///
    /// Lambda deletes the messages of a batch when the function succeeds, except those listed
    /// in `batchItemFailures`, which return to the queue after the visibility timeout
    /// (`ReportBatchItemFailures`,
    /// https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting;
    /// an empty `itemIdentifier` would fail the whole batch, and SQS always sets `messageId`).
    /// Listed are only the records not attempted (a bad body, an unknown feed, another refresh of the feed
    /// in flight, no time left) and those whose outcome could not be recorded. A refresh that
    /// failed and was recorded is consumed: the feed's next slot is its retry. A bad message
    /// goes round until the queue's `maxReceiveCount` sends it to the dead-letter queue.
    pub(crate) async fn work(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        let config = &self.deployment.config;
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let id = record.message_id.unwrap_or_default();
            let feed = match record.body.as_deref().map(serde_json::from_str::<FeedInput>) {
                Some(Ok(FeedInput { feed: Some(name) })) => config.feed(&name).map_err(|e| e.to_string()),
                Some(Ok(FeedInput { feed: None })) => Err("the message names no feed".into()),
                Some(Err(e)) => Err(format!("the message is not {{\"feed\": \"<name>\"}}: {e}")),
                None => Err("the message has no body".into()),
            };
            let retry = match feed {
                Err(reason) => {
                    warn!(message_id = %id, reason = %reason, "queued message not attempted");
                    true
                }
                Ok(feed) => {
                    let options = RefreshOptions::queued(deadline);
                    let report = self.deployment.refresher.refresh(feed, options).await;
                    report.outcome.retry_later()
                }
            };
            if retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

/// SHA-256 of a token: comparing digests keeps the comparison constant-time whatever the
/// length of the token offered.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
