//! Several FlareSolverrs behind one [`Solver`].

use async_trait::async_trait;
use tracing::warn;

use super::{FlareSolverr, Solution, SolveRequest, Solver, SolverError, SolverSettings};

/// Several FlareSolverrs. Each feed sticks to one, chosen by rendezvous (highest random
/// weight) hashing of its name over the urls, so that its session stays warm there, and adding
/// or removing a solver moves only the feeds that solver gains or loses. A solver that is out of
/// service ([`SolverError::solver_unavailable`]: unreachable, hung, a proxy's 5xx, a 429) hands
/// the feed to the next in the same order, within the same refresh.
pub struct SolverPool {
    members: Vec<FlareSolverr>,
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
        Self { members }
    }

    /// The solvers in the order `feed` tries them.
    pub fn order(&self, feed: &str) -> Vec<&str> {
        self.ranked(feed).into_iter().map(|m| m.url()).collect()
    }

    fn ranked(&self, feed: &str) -> Vec<&FlareSolverr> {
        let mut ranked: Vec<&FlareSolverr> = self.members.iter().collect();
        ranked.sort_by_key(|member| std::cmp::Reverse(rendezvous(feed, member.url())));
        ranked
    }
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
        for member in self.ranked(feed) {
            match member.solve(request).await {
                Err(e) if e.solver_unavailable() => {
                    warn!(feed, error = %e, "solver out of service; trying the feed's next one");
                    unavailable = Some(e);
                }
                other => return other,
            }
        }
        Err(unavailable.expect("a pool has at least one solver"))
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
