//! The test adapter (feature `test-util`): a solver that answers from a script, counts what it
//! is asked per feed, and can take its time or act (as another refresh would) while it
//! "solves".

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Body, Solution, SolveRequest, Solver, SolverError};

/// Answers, in order: the next scripted answer ([`ScriptedSolver::page`],
/// [`ScriptedSolver::error`]) if there is one, else the standing answer for the url
/// ([`ScriptedSolver::always`], [`ScriptedSolver::always_fail`]). A request with neither panics:
/// the test did not expect it.
#[derive(Default)]
pub struct ScriptedSolver {
    next: Mutex<VecDeque<Result<Solution, SolverError>>>,
    standing: Mutex<HashMap<String, Result<Solution, SolverError>>>,
    delay: Mutex<Duration>,
    during: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    calls: Mutex<HashMap<String, Calls>>,
}

/// What one feed asked of the solver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// Requests in all.
    pub total: usize,
    /// Requests being answered now.
    pub running: usize,
    /// The most ever answered at once.
    pub most: usize,
}

/// A page as the PyPI build returns a feed: raw text, status 200.
fn solution(url: &str, text: &str) -> Solution {
    Solution {
        url: Some(url.to_string()),
        solver: None,
        status: Some(200),
        response: Some(Body::Text(text.to_string())),
        passed_over: Vec::new(),
    }
}

impl ScriptedSolver {
    /// The next request gets this page.
    pub fn page(&self, url: &str, text: &str) {
        self.next.lock().unwrap().push_back(Ok(solution(url, text)));
    }

    /// The next request gets this error.
    pub fn error(&self, error: SolverError) {
        self.next.lock().unwrap().push_back(Err(error));
    }

    /// Every request for `url` with nothing scripted next gets this page.
    pub fn always(&self, url: &str, text: &str) {
        self.standing
            .lock()
            .unwrap()
            .insert(url.to_string(), Ok(solution(url, text)));
    }

    /// Every request for `url` with nothing scripted next gets this error.
    pub fn always_fail(&self, url: &str, error: SolverError) {
        self.standing.lock().unwrap().insert(url.to_string(), Err(error));
    }

    /// Each request takes this long, as a real solver does (0.3 to 60 s).
    pub fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Runs `act` while the next request is being solved.
    pub fn meanwhile(&self, act: impl FnOnce() + Send + 'static) {
        *self.during.lock().unwrap() = Some(Box::new(act));
    }

    /// What `feed` asked so far.
    pub fn calls(&self, feed: &str) -> Calls {
        self.calls.lock().unwrap().get(feed).copied().unwrap_or_default()
    }

    /// Requests from every feed.
    pub fn requests(&self) -> usize {
        self.calls.lock().unwrap().values().map(|c| c.total).sum()
    }
}

#[async_trait]
impl Solver for ScriptedSolver {
    async fn solve(&self, request: &SolveRequest<'_>) -> Result<Solution, SolverError> {
        let (feed, url) = (request.feed, request.url);
        {
            let mut calls = self.calls.lock().unwrap();
            let calls = calls.entry(feed.to_string()).or_default();
            calls.total += 1;
            calls.running += 1;
            calls.most = calls.most.max(calls.running);
        }
        if let Some(act) = self.during.lock().unwrap().take() {
            act();
        }
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(calls) = self.calls.lock().unwrap().get_mut(feed) {
            calls.running -= 1;
        }
        let next = self.next.lock().unwrap().pop_front();
        next.or_else(|| self.standing.lock().unwrap().get(url).cloned())
            .unwrap_or_else(|| panic!("the test scripted no answer for {feed} ({url})"))
    }
}
