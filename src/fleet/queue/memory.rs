//! The test adapter (feature `test-util`): the fleet's queue in memory.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Queue, QueueError};
use crate::fleet::plan::Due;

/// A FIFO queue in memory that drops a message whose
/// deduplication id it has seen, as SQS FIFO does within its deduplication interval.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<MemoryQueueState>,
}

#[derive(Default)]
struct MemoryQueueState {
    waiting: VecDeque<Due>,
    seen: HashSet<String>,
    refuse: Option<QueueError>,
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

    /// The next `enqueue` fails with `error`, sending nothing.
    pub fn refuse_next(&self, error: QueueError) {
        self.state.lock().unwrap().refuse = Some(error);
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, due: &[Due]) -> Result<(), QueueError> {
        let mut state = self.state.lock().unwrap();
        if let Some(error) = state.refuse.take() {
            return Err(error);
        }
        for due in due {
            if state.seen.insert(due.deduplication_id()) {
                state.waiting.push_back(due.clone());
            }
        }
        Ok(())
    }
}
