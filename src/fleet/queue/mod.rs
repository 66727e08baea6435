//! The fleet's queue: the planner sends the due feeds to an SQS FIFO queue, and Lambda's event
//! source mapping hands them to the worker one refresh at a time per feed. With `test-util`,
//! `MemoryQueue` stands in for SQS.

#[cfg(any(test, feature = "test-util"))]
mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use thiserror::Error;

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryQueue;

use super::plan::Due;
use crate::error_chain;
use crate::redact::redact_url;

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
    #[error("{queue}: the queue refused {feeds}: {detail}")]
    Refused {
        queue: String,
        feeds: String,
        detail: String,
    },
}

/// The port: enqueue the due feeds.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn enqueue(&self, due: &[Due]) -> Result<(), QueueError>;
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
    /// One message per due feed: body `{"feed": "<name>"}`; `MessageGroupId` the feed's name,
    /// so that SQS hands out one message of a feed at a time; `MessageDeduplicationId`
    /// `<name>-<slot>`, so that a tick planned twice within SQS's 5-minute deduplication
    /// interval enqueues nothing more
    /// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-key-terms.html).
    async fn enqueue(&self, due: &[Due]) -> Result<(), QueueError> {
        let queue = redact_url(&self.url);
        for chunk in due.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, due)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::json!({"feed": due.feed}).to_string())
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
                    queue: queue.clone(),
                    detail: error_chain(&e),
                })?;
            if let Some(first) = sent.failed().first() {
                let feeds = sent
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse::<usize>().ok().and_then(|i| chunk.get(i)))
                    .map(|due| due.feed.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(QueueError::Refused {
                    queue,
                    feeds,
                    detail: format!("{}: {}", first.code(), first.message().unwrap_or("")),
                });
            }
        }
        Ok(())
    }
}
