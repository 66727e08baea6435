//! From a checked document to the store: the published copy as this refresh knows it, the
//! candidate (guarded, formatted and fingerprinted in one walk), and the one write of a
//! refresh's feed.

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

use super::attempt::Attempt;
use super::{RefreshOptions, Refresher, elapsed_ms};
use crate::config::FeedConfig;
use crate::feed::{self, FeedError, GuardOptions};
use crate::interrupt::Interrupt;
use crate::outcome::{Recorded, Stage};
use crate::rewrite;
use crate::status::{Document, Findings, Lease};
use crate::store::{Body, Condition, ObjectInfo, PutOptions, StoreError, Version, within};

/// The longest a WebSub ping may take: a hub that hangs must not hold the refresh.
const HUB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// The output, as pieces of the text it came from: the store takes it as it lies.
    document: std::sync::Arc<feed::Document>,
    sha256: String,
    /// What the rewrite for readers did.
    pub(super) rewritten: rewrite::Rewritten,
}

/// A document the guard accepted, formatted as it is: what a rewrite for readers starts from.
/// It owns the text, so that a refresh holds the text and its pieces, and nothing more.
pub(super) struct Checked {
    pub(super) info: feed::FeedInfo,
    document: feed::Document,
    started: Instant,
    wrapper: Option<feed::Wrapper>,
}

impl Checked {
    /// The document as the site or the solver gave it.
    pub(super) fn text(&self) -> &str {
        self.document.text()
    }
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

    /// Guard and format a feed document as the site or the solver gave it (one walk). Its only
    /// failures are the guard's.
    pub(super) fn check(
        &self,
        feed: &FeedConfig,
        text: String,
        wrapper: Option<feed::Wrapper>,
    ) -> Result<Checked, FeedError> {
        let started = Instant::now();
        // The solver or the direct request already refused a reply over the cap, and the feed
        // is part of the reply: the guard's own size check could never trip here. The
        // formatter's cap still bounds what the pretty form may grow to.
        let guard = GuardOptions {
            min_items: feed.min_items,
            max_bytes: usize::MAX,
        };
        let (info, document) = feed::check_and_format_owned(text, guard, self.config.solver.max_reply_bytes)?;
        Ok(Checked {
            info,
            document,
            started,
            wrapper,
        })
    }

    /// What readers get of a checked document: the plan for readers applied (with `memory`,
    /// brought up to date at `now`, when the plan needs it) and checked again, as flarefeed's
    /// own output; or, when the plan changes nothing, the document as checked. A rewritten
    /// document takes the place of the one checked, in its buffer.
    pub(super) fn for_readers(
        &self,
        feed: &FeedConfig,
        checked: Checked,
        memory: Option<&mut crate::items::Memory>,
        now: time::OffsetDateTime,
    ) -> Result<Candidate, FeedError> {
        let self_url = self.public_url(feed);
        let plan = self.plan(feed, self_url.as_deref());
        let rewrite = rewrite::work_out(checked.text(), &plan, memory, now)?;
        let Checked {
            info,
            document,
            started,
            wrapper,
        } = checked;
        if !rewrite.changes_text() {
            return Ok(self.candidate(feed, (started, wrapper), info, document, rewrite.done));
        }
        // Made in the text's own buffer: the site's document and the one for readers are never
        // held together.
        let (text, rewritten) = rewrite.make(document.into_text());
        // Rules may leave fewer items than min_items: the origin had enough, and passed.
        let again = GuardOptions {
            min_items: 0,
            max_bytes: usize::MAX,
        };
        let (info, document) = feed::check_and_format_owned(text, again, self.config.solver.max_reply_bytes)?;
        Ok(self.candidate(feed, (started, wrapper), info, document, rewritten))
    }

    /// The plan for readers of `feed`, its public url being `self_url`.
    pub(super) fn plan<'a>(&'a self, feed: &'a FeedConfig, self_url: Option<&'a str>) -> rewrite::Plan<'a> {
        rewrite::Plan {
            self_url,
            hub: self.config.site.websub_hub.as_deref(),
            rules: &feed.rules,
            archive: feed.archive,
            full_text: feed.full_text.is_some(),
        }
    }

    /// A checked and formatted feed, fingerprinted, as a candidate for the store.
    fn candidate(
        &self,
        feed: &FeedConfig,
        (started, wrapper): (Instant, Option<feed::Wrapper>),
        info: feed::FeedInfo,
        document: feed::Document,
        rewritten: rewrite::Rewritten,
    ) -> Candidate {
        let sha256 = document.fingerprint();
        info!(
            feed = %feed.name, stage = "format", ms = elapsed_ms(started),
            wrapper = ?wrapper, kind = %info.kind, items = info.items, bytes = document.len(),
            as_written = document.as_written(), dropped = rewritten.dropped, archived = rewritten.archived,
            full_text = rewritten.full_text, "feed checked and formatted"
        );
        Candidate {
            info,
            document: std::sync::Arc::new(document),
            sha256,
            rewritten,
        }
    }

    /// The published feed's public url (`[site] base_url`, the prefix and its key), if the
    /// site has one.
    pub(super) fn public_url(&self, feed: &FeedConfig) -> Option<String> {
        let base = self.config.site.base_url.as_deref()?;
        Some(format!("{base}{}{}", self.config.store.prefix, feed.key))
    }

    /// Writes a good feed, unless it is the one published: the one write of a refresh's feed,
    /// on the condition that the copy is still the one seen.
    pub(super) async fn write_feed(&self, job: &Job<'_>, candidate: Candidate, found: Findings) -> Attempt {
        let feed = job.feed;
        let found = Findings {
            document: Some(Document {
                kind: candidate.info.kind.to_string(),
                items: candidate.info.items,
                bytes: candidate.document.len(),
            }),
            rules_dropped: (!feed.rules.is_empty()).then_some(candidate.rewritten.dropped),
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
        // A forced publish of the same feed changes nothing a hub's subscribers could fetch.
        let changed = job.copy.sha256() != Some(candidate.sha256.as_str());
        let put = self.store.put(&feed.key, Body::Pieces(candidate.document), put_options);
        if let Err(e) = within(job.deadline, self.store.as_ref(), &feed.key, put).await {
            return Attempt::failed(found, Stage::Store, e);
        }
        info!(
            feed = %feed.name, stage = "store", ms = elapsed_ms(writing),
            target = %self.store.locate(&feed.key), "published"
        );
        let hub = match changed {
            true => self.ping_hub(feed, job.deadline).await,
            false => None,
        };
        let found = Findings { hub, ..found };
        Attempt::served(found, Recorded::Updated, candidate.sha256)
    }

    /// Tells `[site] websub_hub` that the feed changed, once it is published; a failure is
    /// logged and returned for the record, never the refresh's.
    async fn ping_hub(&self, feed: &FeedConfig, deadline: Instant) -> Option<Result<(), String>> {
        let hub = self.config.site.websub_hub.as_deref()?;
        let topic = self.public_url(feed)?;
        let timeout = deadline.saturating_duration_since(Instant::now()).min(HUB_TIMEOUT);
        let pinged = self.fetcher.ping_hub(hub, &topic, timeout).await;
        match &pinged {
            Ok(()) => info!(feed = %feed.name, stage = "hub", topic = %topic, "hub told of the change"),
            Err(e) => {
                warn!(feed = %feed.name, stage = "hub", error = %e, "the WebSub hub could not be told of the change")
            }
        }
        Some(pinged.map_err(|e| crate::redact::one_line(&e.to_string())))
    }
}
