//! The fleet's queue: the planner sends the due feeds to an SQS FIFO queue, and Lambda's event
//! source mapping hands them to the worker one refresh at a time per feed. With `test-util`,
//! `MemoryQueue` stands in for SQS.

#[cfg(any(test, feature = "test-util"))]
mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;
use tracing::warn;

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryQueue;

use super::plan::Due;
use crate::error_chain;
use crate::redact::{one_line, redact_url};

/// One message of the queue: the feed to refresh, planned by a tick (`{"feed": "<name>"}`) or
/// asked for by hand (`{"feed": "<name>", "asked": true}`, and `"force": true`). The ticks and
/// [`crate::deployment::Deployment::ask`] write it, the worker reads it. Unknown fields are
/// refused, so that a message meant for something else is not taken for a refresh. The fields
/// are in the order of their names, as the bodies have always been written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// A refresh asked for by hand (the function URL, `flarefeed refresh`, a schedule naming a
    /// feed) rather than planned by a tick.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asked: bool,
    /// Optional in the JSON only so that a message without it says so, rather than failing
    /// to parse.
    #[serde(default)]
    pub feed: Option<String>,
    /// With `asked`: `?force=1`, `--force`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

impl Message {
    /// A tick's message for a due feed.
    pub fn planned(feed: &str) -> Self {
        Self {
            feed: Some(feed.to_string()),
            ..Self::default()
        }
    }

    /// A refresh asked for by hand.
    pub fn asked(feed: &str, force: bool) -> Self {
        Self {
            asked: true,
            feed: Some(feed.to_string()),
            force,
        }
    }

    /// The message's body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a message always serializes")
    }

    /// The message in a queue record's body: the feed it names, and `Some(force)` for a refresh
    /// asked for by hand; or why it cannot be attempted.
    pub fn read(body: Option<&str>) -> Result<(String, Option<bool>), String> {
        match body.map(serde_json::from_str::<Message>) {
            Some(Ok(Message {
                asked,
                feed: Some(feed),
                force,
            })) => Ok((feed, asked.then_some(force))),
            Some(Ok(Message { feed: None, .. })) => Err("the message names no feed".into()),
            Some(Err(e)) => Err(format!("the message is not {{\"feed\": \"<name>\"}}: {e}")),
            None => Err("the message has no body".into()),
        }
    }
}

/// SendMessageBatch takes at most 10 entries
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html).
const BATCH: usize = 10;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("a tick needs a queue: set [fleet] queue_url or FLAREFEED_QUEUE_URL to the SQS FIFO queue's url")]
    NotConfigured,
    #[error(
        "{queue}: cannot send to the queue: {detail}; check the url, the network and that the IAM policy allows sqs:SendMessage"
    )]
    Send { queue: String, detail: String },
    #[error(
        "{queue}: {not_queued} of {due} due feeds were not queued, and miss this slot: {feeds}; the first refusal: {detail}"
    )]
    NotQueued {
        queue: String,
        due: usize,
        not_queued: usize,
        feeds: String,
        detail: String,
    },
}

/// One entry of a batch the queue did not take (SQS's `BatchResultErrorEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its place in the batch sent.
    pub index: usize,
    /// `Code: Message`, one line.
    pub detail: String,
    /// The sender's fault (a bad entry): sending it again changes nothing.
    pub sender_fault: bool,
}

/// The port: one batch of at most [`BATCH`] due feeds, with the entries refused.
#[async_trait]
pub trait Queue: Send + Sync {
    /// `Err` when the call as a whole failed (nothing was taken); `Ok` lists the entries that
    /// were not.
    async fn send_batch(&self, batch: &[Due]) -> Result<Vec<Refused>, QueueError>;

    /// One refresh asked for by hand (the function URL, `flarefeed refresh`, a schedule
    /// naming a feed), into the feed's message group like every planned one, so that it never
    /// runs beside one: body `{"feed": name, "asked": true}` (and `"force": true`), with a deduplication id of its
    /// own (`<name>-asked-<unix ns>`) that no tick's can match.
    async fn ask(&self, feed: &str, force: bool) -> Result<(), QueueError>;

    /// The queue's url without secrets, for messages.
    fn locate(&self) -> String;
}

/// How many times a refused entry or a failed call is sent again, and the first pause.
const RESENDS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// What a tick's sends came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The due feeds now in the queue (or dropped there as duplicates).
    pub queued: Vec<String>,
    /// The due feeds that are not, each with why.
    pub not_queued: Vec<(String, String)>,
}

impl Sent {
    /// The error for a tick that queued less than it planned.
    pub fn error(&self, queue: &dyn Queue) -> Option<QueueError> {
        let (_, first) = self.not_queued.first()?;
        Some(QueueError::NotQueued {
            queue: queue.locate(),
            due: self.queued.len() + self.not_queued.len(),
            not_queued: self.not_queued.len(),
            feeds: self
                .not_queued
                .iter()
                .map(|(feed, _)| feed.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            detail: first.clone(),
        })
    }
}

/// Sends every due feed, in batches of [`BATCH`]: every batch is sent whatever happened to the
/// one before. An entry refused through no fault of the sender, and a batch whose call failed,
/// are sent again with a doubling pause, while `deadline` allows. SendMessageBatch reports each
/// entry on its own, and "you should check for batch errors even when the call returns an HTTP
/// status code of 200"
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html;
/// `SenderFault`: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_BatchResultErrorEntry.html).
/// Sending again is safe: the FIFO queue drops a deduplication id it has already taken.
pub async fn send_all(queue: &dyn Queue, due: &[Due], deadline: Instant) -> Sent {
    let mut sent = Sent::default();
    let mut waiting: Vec<(Due, String)> = Vec::new();
    let mut pending: Vec<Due> = due.to_vec();
    let mut pause = FIRST_PAUSE;
    for round in 0..=RESENDS {
        let mut again = Vec::new();
        for batch in pending.chunks(BATCH) {
            match queue.send_batch(batch).await {
                Ok(refused) => {
                    let mut refused_at = vec![None; batch.len()];
                    for entry in refused {
                        if let Some(slot) = refused_at.get_mut(entry.index) {
                            *slot = Some(entry);
                        }
                    }
                    for (due, refusal) in batch.iter().zip(refused_at) {
                        match refusal {
                            None => sent.queued.push(due.feed.clone()),
                            Some(r) if r.sender_fault => sent.not_queued.push((due.feed.clone(), r.detail)),
                            Some(r) => again.push((due.clone(), r.detail)),
                        }
                    }
                }
                Err(e) => again.extend(batch.iter().map(|due| (due.clone(), e.to_string()))),
            }
        }
        waiting = again;
        if waiting.is_empty() || round == RESENDS || Instant::now() + pause >= deadline {
            break;
        }
        warn!(
            entries = waiting.len(),
            pause_ms = pause.as_millis() as u64,
            first = %waiting[0].1,
            "the queue refused entries; sending them again"
        );
        tokio::time::sleep(pause).await;
        pause *= 2;
        pending = waiting.iter().map(|(due, _)| due.clone()).collect();
    }
    sent.not_queued
        .extend(waiting.into_iter().map(|(due, detail)| (due.feed, detail)));
    sent
}

/// An SQS FIFO queue, through the AWS SDK.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// Credentials, region and `AWS_ENDPOINT_URL_SQS` from the SDK's default chain.
    pub async fn connect(url: &str) -> Arc<dyn Queue> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1"))
            .load()
            .await;
        Arc::new(Self::with_sdk_config(&sdk, url))
    }

    pub fn with_sdk_config(sdk: &aws_config::SdkConfig, url: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            url: url.to_string(),
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    /// One message per due feed ([`Message::planned`]); `MessageGroupId` the feed's name,
    /// so that SQS hands out one message of a feed at a time; `MessageDeduplicationId`
    /// `<name>-<slot>`, so that a tick planned twice within SQS's 5-minute deduplication
    /// interval enqueues nothing more
    /// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-key-terms.html).
    async fn send_batch(&self, batch: &[Due]) -> Result<Vec<Refused>, QueueError> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, due)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(Message::planned(&due.feed).body())
                    .message_group_id(&due.feed)
                    .message_deduplication_id(due.deduplication_id())
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::Send {
                queue: self.locate(),
                detail: error_chain(&e),
            })?;
        Ok(sent
            .failed()
            .iter()
            .map(|failed| Refused {
                // An id that is not one of ours names nothing: it counts as refused at the end.
                index: failed.id().parse().unwrap_or(usize::MAX),
                detail: one_line(&format!("{}: {}", failed.code(), failed.message().unwrap_or(""))),
                sender_fault: failed.sender_fault(),
            })
            .collect())
    }

    async fn ask(&self, feed: &str, force: bool) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(Message::asked(feed, force).body())
            .message_group_id(feed)
            .message_deduplication_id(asked_id(feed))
            .send()
            .await
            .map(drop)
            .map_err(|e| QueueError::Send {
                queue: self.locate(),
                detail: error_chain(&e),
            })
    }

    fn locate(&self) -> String {
        redact_url(&self.url)
    }
}

/// A deduplication id no other message has: at most 128 characters
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html),
/// so a long feed name is cut (the group still names the feed whole).
fn asked_id(feed: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name: String = feed.chars().take(80).collect();
    format!("{name}-asked-{nanos}")
}
