//! From a checked document to what readers get: the item memory read when the plan needs it,
//! articles fetched for full text, the rewrite, the memory written (before the feed, only when
//! it changed), then the feed's one write.

use tracing::{info, warn};

use super::Refresher;
use super::attempt::Attempt;
use super::publish::{Checked, Job};
use crate::items;
use crate::outcome::Stage;
use crate::status::Findings;
use crate::status::memory::{self, Stored};
use crate::store::{store_now, within};

/// The item memory as a refresh holds it: as read, and whether it changed since.
pub(super) struct Held {
    pub(super) stored: Stored,
    pub(super) changed: bool,
}

impl Refresher {
    /// Publishes a checked document for readers. `held` is the item memory when the caller
    /// already read it (a feed built from a page).
    pub(super) async fn publish_checked(
        &self,
        job: &Job<'_>,
        checked: Checked,
        found: Findings,
        held: Option<Held>,
    ) -> Attempt {
        let feed = job.feed;
        let needs_memory = self.plan(feed, None).needs_memory();
        let store = self.store.as_ref();
        let key = items::key(&feed.name);
        let mut held = match held {
            Some(held) => Some(held),
            None if needs_memory => match within(job.deadline, store, &key, memory::read(store, &feed.name)).await {
                Ok(stored) => Some(Held { stored, changed: false }),
                Err(e) => return Attempt::failed(found, Stage::Store, e),
            },
            None => None,
        };
        let now = store_now(store);
        let mut found = found;
        if let (Some(full_text), Some(held)) = (&feed.full_text, held.as_mut()) {
            let fetched = self
                .fetch_articles(job, full_text, checked.text(), &mut held.stored.memory, now)
                .await;
            held.changed |= fetched.changed;
            found.articles = Some(fetched.counts);
        }
        let remembered = held.as_mut().map(|h| &mut h.stored.memory);
        let candidate = match self.for_readers(feed, checked, remembered, now) {
            Ok(candidate) => candidate,
            Err(e) => return Attempt::failed(found, Stage::Guard, e),
        };
        if let Some(held) = held.filter(|h| h.changed || candidate.rewritten.memory_changed) {
            let write = memory::write(store, &feed.name, &held.stored.memory, held.stored.version.as_ref());
            if let Err(e) = within(job.deadline, store, &key, write).await {
                warn!(feed = %feed.name, stage = "store", error = %e, "the item memory could not be written");
                return Attempt::failed(found, Stage::Store, e);
            }
            info!(feed = %feed.name, stage = "store", items = held.stored.memory.items.len(), "item memory written");
        }
        self.write_feed(job, candidate, found).await
    }
}
