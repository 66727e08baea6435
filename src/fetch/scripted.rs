//! The test adapter (feature `test-util`): direct replies from a script, with a count of what
//! was asked and the validators each request carried.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{DirectReply, DirectRequest, FetchError, Fetcher, Validators};

/// Answers each url with its next scripted reply, or its standing one; a request with neither
/// panics: the test did not expect it.
#[derive(Default)]
pub struct ScriptedFetcher {
    next: Mutex<HashMap<String, VecDeque<Result<DirectReply, FetchError>>>>,
    standing: Mutex<HashMap<String, Result<DirectReply, FetchError>>>,
    asked: Mutex<Vec<(String, Option<Validators>)>>,
    /// Every hub ping: the hub and the topic.
    pinged: Mutex<Vec<(String, String)>>,
}

impl ScriptedFetcher {
    /// The next request for `url` gets `reply`.
    pub fn then(&self, url: &str, reply: Result<DirectReply, FetchError>) {
        self.next
            .lock()
            .unwrap()
            .entry(url.into())
            .or_default()
            .push_back(reply);
    }

    /// Every request for `url` with nothing scripted next gets `reply`.
    pub fn always(&self, url: &str, reply: Result<DirectReply, FetchError>) {
        self.standing.lock().unwrap().insert(url.into(), reply);
    }

    /// A 200 with `body`, as a plain feed server sends it.
    pub fn document(url: &str, body: &str, etag: Option<&str>) -> Result<DirectReply, FetchError> {
        Ok(DirectReply::Document {
            body: body.as_bytes().to_vec(),
            charset: None,
            validators: Validators {
                etag: etag.map(str::to_string),
                last_modified: None,
            },
            final_url: url.to_string(),
        })
    }

    /// How many requests `url` got.
    pub fn requests(&self, url: &str) -> usize {
        self.asked.lock().unwrap().iter().filter(|(u, _)| u == url).count()
    }

    /// The hub pings sent, in order: `(hub, topic)`.
    pub fn pings(&self) -> Vec<(String, String)> {
        self.pinged.lock().unwrap().clone()
    }

    /// The validators the last request for `url` carried.
    pub fn last_validators(&self, url: &str) -> Option<Validators> {
        let asked = self.asked.lock().unwrap();
        asked.iter().rev().find(|(u, _)| u == url).and_then(|(_, v)| v.clone())
    }
}

#[async_trait]
impl Fetcher for ScriptedFetcher {
    async fn ping_hub(&self, hub: &str, topic: &str, _timeout: std::time::Duration) -> Result<(), FetchError> {
        self.pinged.lock().unwrap().push((hub.into(), topic.into()));
        Ok(())
    }

    async fn get(&self, request: &DirectRequest<'_>) -> Result<DirectReply, FetchError> {
        let url = request.url.to_string();
        self.asked
            .lock()
            .unwrap()
            .push((url.clone(), request.validators.cloned()));
        let next = self.next.lock().unwrap().get_mut(&url).and_then(VecDeque::pop_front);
        next.or_else(|| self.standing.lock().unwrap().get(&url).cloned())
            .unwrap_or_else(|| panic!("the test scripted no direct reply for {url}"))
    }
}
