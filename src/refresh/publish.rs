//! From a checked document to the store: the published copy as this refresh knows it, the
//! candidate (guarded, formatted and fingerprinted in one walk), and the one write of a
//! refresh's feed.

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::info;

use super::attempt::Attempt;
use super::{RefreshOptions, Refresher, elapsed_ms};
use crate::config::FeedConfig;
use crate::feed::{self, FeedError, GuardOptions};
use crate::interrupt::Interrupt;
use crate::outcome::{Recorded, Stage};
use crate::status::{Document, Findings, Lease};
use crate::store::{Condition, ObjectInfo, PutOptions, StoreError, Version, within};

/// What every route to a write shares: the feed, the policy, the deadline and the published
/// copy as it was when the attempt began.
pub(super) struct Job<'a> {
    pub(super) feed: &'a FeedConfig,
    pub(super) options: RefreshOptions,
    pub(super) deadline: Instant,
    pub(super) copy: PublishedCopy,
    pub(super) interrupt: Option<&'a Interrupt>,
    /// The solver of a pool that got past the feed's wall, from its record: asked first.
    pub(super) solver_hint: Option<String>,
}

/// The feed readers get now, as far as this refresh knows it. It is replaced only if it is
/// still this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PublishedCopy {
    /// The record's fingerprint stands for the copy ([`Lease::recorded_fingerprint`]), so an
    /// unchanged refresh (a 304, the same fingerprint) reads nothing more; the copy is looked
    /// at (a HEAD) only when a write needs its version.
    Recorded { sha256: String },
    /// As the store showed it.
    Looked(Looked),
}

/// The published copy as a HEAD found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Looked {
    /// Its version, which a write must match; `None`: there is no copy, and a write must find
    /// none.
    version: Option<Version>,
    /// Its fingerprint: the object's, or for a folder, which keeps none beside the feed, the
    /// record's.
    sha256: Option<String>,
}

impl Looked {
    /// What a HEAD found; `recorded` is the record's fingerprint, for a store that keeps none.
    fn from_head(head: Option<ObjectInfo>, recorded: Option<&str>) -> Self {
        match head {
            None => Looked::default(),
            Some(info) => Looked {
                version: Some(info.version),
                sha256: info.sha256.or_else(|| recorded.map(str::to_string)),
            },
        }
    }
}

impl PublishedCopy {
    /// The published feed's fingerprint, where known.
    pub(super) fn sha256(&self) -> Option<&str> {
        match self {
            PublishedCopy::Recorded { sha256 } => Some(sha256),
            PublishedCopy::Looked(looked) => looked.sha256.as_deref(),
        }
    }
}

/// A feed that passed the guard and was formatted.
pub(super) struct Candidate {
    info: feed::FeedInfo,
    xml: String,
    sha256: String,
}

impl Refresher {
    /// The published copy at the start of an attempt: the record's word for it where the lease
    /// trusts the record, what the lease's guard already found, or a HEAD.
    pub(super) async fn published_copy(
        &self,
        feed: &FeedConfig,
        lease: &Lease<'_>,
        now: OffsetDateTime,
        deadline: Instant,
    ) -> Result<PublishedCopy, StoreError> {
        if let Some(sha256) = lease.recorded_fingerprint(now) {
            return Ok(PublishedCopy::Recorded {
                sha256: sha256.to_string(),
            });
        }
        if lease.copy_absent() {
            return Ok(PublishedCopy::Looked(Looked::default()));
        }
        let store = self.store.as_ref();
        let head = within(deadline, store, &feed.key, store.head(&feed.key)).await?;
        let recorded = lease.before().and_then(|r| r.sha256.as_deref());
        Ok(PublishedCopy::Looked(Looked::from_head(head, recorded)))
    }

    /// Guard, format and fingerprint a feed document, from the solver's page or the site
    /// itself. Its only failures are the guard's.
    pub(super) fn check_and_format(
        &self,
        feed: &FeedConfig,
        text: &str,
        wrapper: Option<feed::Wrapper>,
    ) -> Result<Candidate, FeedError> {
        let started = Instant::now();
        // The solver or the direct request already refused a reply over the cap, and the feed
        // is part of the reply: the guard's own size check could never trip here. The
        // formatter's cap still bounds what the pretty form may grow to.
        let guard = GuardOptions {
            min_items: feed.min_items,
            max_bytes: usize::MAX,
        };
        // One walk: the guard's verdict and the formatted feed together.
        let (info, formatted) = feed::check_and_format(text, guard, self.config.solver.max_reply_bytes)?;
        let sha256 = formatted.fingerprint();
        info!(
            feed = %feed.name, stage = "format", ms = elapsed_ms(started),
            wrapper = ?wrapper, kind = %info.kind, items = info.items, bytes = formatted.len(),
            as_written = formatted.as_written(), "feed checked and formatted"
        );
        Ok(Candidate {
            info,
            xml: formatted.into_xml(),
            sha256,
        })
    }

    /// Writes a good feed, unless it is the one published: the one write of a refresh's feed,
    /// on the condition that the copy is still the one seen.
    pub(super) async fn write_feed(&self, job: &Job<'_>, candidate: Candidate, found: Findings) -> Attempt {
        let feed = job.feed;
        let found = Findings {
            document: Some(Document {
                kind: candidate.info.kind.to_string(),
                items: candidate.info.items,
                bytes: candidate.xml.len(),
            }),
            ..found
        };
        let writing = Instant::now();
        let same = |sha: Option<&str>| !job.options.publish_unchanged && sha == Some(candidate.sha256.as_str());
        let looked = match &job.copy {
            PublishedCopy::Looked(looked) => Some(looked.clone()),
            PublishedCopy::Recorded { sha256 } if same(Some(sha256)) => None,
            PublishedCopy::Recorded { .. } => {
                // The record's fingerprint stood for the copy: a write needs the copy's version
                // now, and the copy may be this feed already (written by a refresh whose record
                // was not).
                let store = self.store.as_ref();
                match within(job.deadline, store, &feed.key, store.head(&feed.key)).await {
                    Ok(head) => Some(Looked::from_head(head, None)),
                    Err(e) => return Attempt::failed(found, Stage::Store, e),
                }
            }
        };
        let Some(looked) = looked.filter(|looked| !same(looked.sha256.as_deref())) else {
            info!(feed = %feed.name, stage = "store", sha256 = %candidate.sha256, "unchanged: nothing written");
            return Attempt::served(found, Recorded::Unchanged, candidate.sha256);
        };
        let put_options = PutOptions {
            content_type: candidate.info.kind.content_type(),
            cache_control: &self.config.store.cache_control,
            sha256: Some(&candidate.sha256),
            condition: Condition::unchanged_since(looked.version.as_ref()),
        };
        let put = self.store.put(&feed.key, candidate.xml.into_bytes(), put_options);
        if let Err(e) = within(job.deadline, self.store.as_ref(), &feed.key, put).await {
            return Attempt::failed(found, Stage::Store, e);
        }
        info!(
            feed = %feed.name, stage = "store", ms = elapsed_ms(writing),
            target = %self.store.locate(&feed.key), "published"
        );
        Attempt::served(found, Recorded::Updated, candidate.sha256)
    }
}
