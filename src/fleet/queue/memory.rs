//! The test adapter (feature `test-util`): the fleet's queue in memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Queue, QueueError, Refused};
use crate::fleet::plan::Due;

/// A FIFO queue in memory that drops a message whose deduplication id it has seen, as SQS FIFO
/// does within its deduplication interval, and refuses the entries or calls a test chooses.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<MemoryQueueState>,
}

#[derive(Default)]
struct MemoryQueueState {
    waiting: VecDeque<Due>,
    seen: HashSet<String>,
    /// Calls to fail as a whole, next first.
    fail_calls: VecDeque<QueueError>,
    /// Per feed: how many more sends refuse its entry, and whether as the sender's fault.
    refuse: HashMap<String, (usize, bool)>,
    calls: usize,
    /// Refreshes asked for by hand: (feed, force), oldest first.
    asked: Vec<(String, bool)>,
}

impl MemoryQueue {
    /// The messages waiting, oldest first.
    pub fn waiting(&self) -> Vec<Due> {
        self.state.lock().unwrap().waiting.iter().cloned().collect()
    }

    /// Takes the oldest message, as a worker's receive would.
    pub fn receive(&self) -> Option<Due> {
        self.state.lock().unwrap().waiting.pop_front()
    }

    /// The next call fails as a whole with `error`, taking nothing.
    pub fn fail_next_call(&self, error: QueueError) {
        self.state.lock().unwrap().fail_calls.push_back(error);
    }

    /// The next `times` entries for `feed` are refused: as SQS's `InternalError`
    /// (`SenderFault: false`), or as the sender's fault.
    pub fn refuse(&self, feed: &str, times: usize, sender_fault: bool) {
        self.state
            .lock()
            .unwrap()
            .refuse
            .insert(feed.to_string(), (times, sender_fault));
    }

    /// The refreshes asked for by hand, (feed, force), oldest first.
    pub fn asked(&self) -> Vec<(String, bool)> {
        self.state.lock().unwrap().asked.clone()
    }

    /// How many batches were sent.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send_batch(&self, batch: &[Due]) -> Result<Vec<Refused>, QueueError> {
        assert!(batch.len() <= super::BATCH, "SendMessageBatch takes at most 10 entries");
        let mut state = self.state.lock().unwrap();
        state.calls += 1;
        if let Some(error) = state.fail_calls.pop_front() {
            return Err(error);
        }
        let mut refused = Vec::new();
        for (index, due) in batch.iter().enumerate() {
            if let Some((times, sender_fault)) = state.refuse.get_mut(&due.feed)
                && *times > 0
            {
                *times -= 1;
                let detail = if *sender_fault {
                    "InvalidParameterValue: refused".to_string()
                } else {
                    "InternalError: try again".to_string()
                };
                refused.push(Refused {
                    index,
                    detail,
                    sender_fault: *sender_fault,
                });
                continue;
            }
            if state.seen.insert(due.deduplication_id()) {
                state.waiting.push_back(due.clone());
            }
        }
        Ok(refused)
    }

    async fn ask(&self, feed: &str, force: bool) -> Result<(), QueueError> {
        let mut state = self.state.lock().unwrap();
        state.calls += 1;
        if let Some(error) = state.fail_calls.pop_front() {
            return Err(error);
        }
        state.asked.push((feed.to_string(), force));
        Ok(())
    }

    fn locate(&self) -> String {
        "memory-queue".into()
    }
}
