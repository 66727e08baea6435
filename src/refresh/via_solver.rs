//! Through the solver: the request with the feed's own maxTimeout and proxy, then the feed cut
//! out of the page it answered with ([`Refresher::prepare`]).

use tokio::time::Instant;
use tracing::info;

use super::attempt::Attempt;
use super::publish::Job;
use super::{Refresher, elapsed_ms};
use crate::config::FeedConfig;
use crate::feed;
use crate::fetch::Route;
use crate::interrupt::interruptible;
use crate::outcome::{RefreshError, Stage};
use crate::redact::redact_url;
use crate::solver::SolveRequest;
use crate::status::Findings;

impl Refresher {
    /// Asks the solver, and publishes the feed in its page; `found` is what a direct request
    /// before it learnt.
    pub(super) async fn via_solver(&self, job: &Job<'_>, found: Findings) -> Attempt {
        let feed = job.feed;
        let solving = Instant::now();
        let request = SolveRequest {
            prefer: job.solver_hint.as_deref(),
            ..solve_request(feed, job.deadline)
        };
        let solved = interruptible(job.interrupt, self.solver.solve(&request)).await;
        let solver_ms = elapsed_ms(solving);
        info!(feed = %feed.name, stage = "solver", ms = solver_ms, ok = solved.is_ok(), "solver answered");
        let found = Findings {
            solver_ms: Some(solver_ms),
            route: Some(Route::Solver),
            ..found
        };
        let solution = match solved {
            Ok(Ok(solution)) => solution,
            Ok(Err(e)) => return Attempt::failed(found, Stage::Solver, e),
            Err(by) => return Attempt::failed(found, Stage::Solver, RefreshError::Interrupted { by: by.into() }),
        };
        // An empty url (Chrome downloaded the page instead of showing it) is no redirect.
        let final_url = solution
            .url
            .as_deref()
            .filter(|url| !url.is_empty() && *url != feed.url)
            .map(redact_url);
        if let Some(url) = &final_url {
            info!(feed = %feed.name, final_url = %url.escape_debug(), "the feed's url redirected");
        }
        let found = Findings {
            final_url,
            solver: solution.solver.clone(),
            passed_over: solution.passed_over.clone(),
            ..found
        };
        if let Some(rules) = &feed.scrape {
            return match solution.into_any_page() {
                Ok(page) => self.publish_page(job, rules, page, found).await,
                Err(e) => Attempt::failed(found, Stage::Extract, e),
            };
        }
        let page = match solution.into_page() {
            Ok(page) => page,
            Err(e) => return Attempt::failed(found, Stage::Extract, e),
        };
        let (text, wrapper) = match feed::extract_owned(page) {
            Ok(cut) => cut,
            Err(e) => return Attempt::failed(found, Stage::Extract, e),
        };
        match self.check(feed, text, Some(wrapper)) {
            Ok(checked) => self.publish_checked(job, checked, found, None).await,
            Err(e) => Attempt::failed(found, Stage::Guard, e),
        }
    }
}

/// The solver's request for `feed`, with its own maxTimeout and proxy.
pub(super) fn solve_request(feed: &FeedConfig, deadline: Instant) -> SolveRequest<'_> {
    SolveRequest {
        feed: &feed.name,
        url: &feed.url,
        deadline: Some(deadline),
        max_timeout: feed.request.max_timeout,
        proxy: feed.request.proxy.as_ref(),
        prefer: None,
    }
}
