//! Several FlareSolverrs behind one [`Solver`].

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tracing::{info, warn};

use super::{FlareSolverr, Solution, SolveRequest, Solver, SolverError, SolverSettings};
use crate::redact::redact_url;

/// Several FlareSolverrs. Each feed sticks to one, chosen by rendezvous (highest random
/// weight) hashing of its name over the urls, so that its session stays warm there, and adding
/// or removing a solver moves only the feeds that solver gains or loses. A solver that is out of
/// service ([`SolverError::solver_unavailable`]: unreachable, hung, a proxy's 5xx, a 429) hands
/// the feed to the next in the same order, within the same refresh.
///
/// No solver passes every wall (FlareSolverr loops on some Turnstile pages, Byparr fails on
/// others), so a solver that answers "ok" with a wall it did not get past ([`crate::feed::wall`]:
/// a challenge, a block page) is passed over for the next too, within the refresh's deadline.
/// The pool learns: it remembers per site (the feed's host) which solver got past a wall another
/// met, and asks that one first; so does a feed whose record names such a solver
/// ([`SolveRequest::prefer`]), which carries the lesson across processes. Where no wall was
/// met, each feed keeps its rendezvous order, and its session stays warm where it is.
pub struct SolverPool {
    members: Vec<FlareSolverr>,
    /// Site (host) → the solver (its url without secrets) that got past a wall another met.
    learnt: Mutex<HashMap<String, String>>,
}

impl SolverPool {
    pub fn new(settings: &SolverSettings) -> Self {
        let members = settings
            .urls
            .iter()
            .map(|url| {
                FlareSolverr::new(SolverSettings {
                    url: url.clone(),
                    urls: vec![url.clone()],
                    ..settings.clone()
                })
            })
            .collect();
        Self {
            members,
            learnt: Mutex::default(),
        }
    }

    /// The solvers in the order `feed` tries them, before anything is learnt.
    pub fn order(&self, feed: &str) -> Vec<&str> {
        self.ranked(feed).into_iter().map(|m| m.url()).collect()
    }

    fn ranked(&self, feed: &str) -> Vec<&FlareSolverr> {
        let mut ranked: Vec<&FlareSolverr> = self.members.iter().collect();
        ranked.sort_by_key(|member| std::cmp::Reverse(rendezvous(feed, member.url())));
        ranked
    }

    /// The order for `request`: the solver that last got its site, then the one its record
    /// names, then the feed's rendezvous order.
    fn order_for(&self, request: &SolveRequest<'_>) -> Vec<&FlareSolverr> {
        let mut order = self.ranked(request.feed);
        let learnt = site(request.url).and_then(|site| self.learnt.lock().expect("not poisoned").get(&site).cloned());
        for preferred in [request.prefer.map(str::to_string), learnt].into_iter().flatten() {
            if let Some(at) = order.iter().position(|m| redact_url(m.url()) == preferred) {
                let member = order.remove(at);
                order.insert(0, member);
            }
        }
        order
    }

    fn learn(&self, url: &str, solver: &str) {
        if let Some(site) = site(url) {
            self.learnt
                .lock()
                .expect("not poisoned")
                .insert(site, redact_url(solver));
        }
    }
}

/// The site of a feed's url: its host.
fn site(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok()?.host_str().map(str::to_ascii_lowercase)
}

/// The weight of `url` for `feed`: SHA-256, so the same everywhere and in every version.
fn rendezvous(feed: &str, url: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{feed}\n{url}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[async_trait]
impl Solver for SolverPool {
    async fn solve(&self, request: &SolveRequest<'_>) -> Result<Solution, SolverError> {
        let feed = request.feed;
        let mut unavailable = None;
        // The first wall a solver did not get past: the answer if no solver does.
        let mut walled: Option<Solution> = None;
        let mut passed_over = Vec::new();
        for member in self.order_for(request) {
            match member.solve(request).await {
                Err(e) if e.solver_unavailable() => {
                    warn!(feed, error = %e, "solver out of service; trying the feed's next one");
                    unavailable = Some(e);
                }
                // No time left for the next solver: the wall is the answer.
                Err(e) if walled.is_some() => {
                    warn!(feed, error = %e, "no next solver could be asked in time");
                    break;
                }
                Ok(mut solution) => match wall_in(&solution) {
                    Some(wall) => {
                        warn!(feed, solver = %redact_url(member.url()), wall = %wall, "the solver did not get past the site's wall; trying the feed's next one");
                        passed_over.push(redact_url(member.url()));
                        walled.get_or_insert(solution);
                    }
                    None => {
                        if !passed_over.is_empty() {
                            info!(feed, solver = %redact_url(member.url()), "got past the wall; asked first for this site from now on");
                            self.learn(request.url, member.url());
                        }
                        solution.passed_over = passed_over;
                        return Ok(solution);
                    }
                },
                Err(e) => return Err(e),
            }
        }
        match walled {
            Some(mut solution) => {
                // Every solver met the wall: the first's answer, which the guard refuses.
                passed_over.remove(0);
                solution.passed_over = passed_over;
                Ok(solution)
            }
            None => Err(unavailable.expect("a pool has at least one solver")),
        }
    }
}

/// The wall a solver's answer holds, if it is one.
fn wall_in(solution: &Solution) -> Option<crate::feed::FeedError> {
    match &solution.response {
        Some(super::Body::Text(page)) => crate::feed::wall(page),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_keeps_feeds_on_their_solver_and_spreads_them() {
        let urls = |n: usize| SolverSettings {
            urls: (0..n).map(|i| format!("http://solver-{i}:8191/v1")).collect(),
            ..SolverSettings::default()
        };
        let three = SolverPool::new(&urls(3));
        let four = SolverPool::new(&urls(4));
        let mut load = [0; 3];
        let mut moved = 0;
        for i in 0..3000 {
            let feed = format!("feed-{i}");
            let first = three.order(&feed)[0];
            load[first.as_bytes()[14] as usize - b'0' as usize] += 1;
            assert_eq!(three.order(&feed), three.order(&feed), "stable");
            // A fourth solver takes feeds only for itself; no feed moves between the others.
            let now = four.order(&feed)[0];
            if now != first {
                assert_eq!(now, "http://solver-3:8191/v1");
                moved += 1;
            }
        }
        assert!(load.iter().all(|&n| (850..=1150).contains(&n)), "{load:?}");
        assert!((600..=900).contains(&moved), "{moved} of 3000 moved to the new solver");
    }
}
