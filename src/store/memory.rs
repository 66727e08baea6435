//! The test adapter: a store in memory, with the same conditional-write semantics as the real
//! ones, counts of writes, and faults by key, for fast unit tests of `refresh`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Body, Condition, ObjectInfo, PutOptions, Store, StoreError, Stored, Version};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, (Vec<u8>, Version, Option<String>)>,
    modified: HashMap<String, time::OffsetDateTime>,
    next_version: u64,
    puts: HashMap<String, usize>,
    /// Puts of a key fail once this many of them have succeeded.
    fail_after: HashMap<String, usize>,
    clock_offset: Option<time::Duration>,
}

impl MemoryStore {
    /// How many writes of `key` succeeded.
    pub fn puts(&self, key: &str) -> usize {
        self.state.lock().unwrap().puts.get(key).copied().unwrap_or(0)
    }

    /// Writes of `key` are refused (access denied) after `succeeding` more have succeeded.
    pub fn fail_puts_after(&self, key: &str, succeeding: usize) {
        let mut state = self.state.lock().unwrap();
        let done = state.puts.get(key).copied().unwrap_or(0);
        state.fail_after.insert(key.to_string(), done + succeeding);
    }

    /// The store's clock is `offset` ahead of this host's (behind, if negative), as a bucket's
    /// would be for a host whose clock is off.
    pub fn set_clock_offset(&self, offset: time::Duration) {
        self.state.lock().unwrap().clock_offset = Some(offset);
    }

    /// Deletes `key`, as an operator might.
    pub fn delete(&self, key: &str) {
        self.state.lock().unwrap().objects.remove(key);
    }

    /// Writes `key` as another writer would, whatever is there.
    pub fn overwrite(&self, key: &str, body: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.next_version += 1;
        let version = Version(format!("v{}", state.next_version));
        state.objects.insert(key.to_string(), (body.to_vec(), version, None));
        let now = time::OffsetDateTime::now_utc() + state.clock_offset.unwrap_or_default();
        state.modified.insert(key.to_string(), now);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state.objects.get(key).map(|(_, version, sha256)| ObjectInfo {
            sha256: sha256.clone(),
            version: version.clone(),
        }))
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state.objects.get(key).map(|(body, version, _)| Stored {
            body: body.clone(),
            version: version.clone(),
            modified: state.modified.get(key).copied(),
        }))
    }

    async fn put(&self, key: &str, body: Body, options: PutOptions<'_>) -> Result<Version, StoreError> {
        let mut state = self.state.lock().unwrap();
        let done = state.puts.get(key).copied().unwrap_or(0);
        if state.fail_after.get(key).is_some_and(|&limit| done >= limit) {
            return Err(StoreError::Denied {
                target: self.locate(key),
                code: "AccessDenied".into(),
            });
        }
        let current = state.objects.get(key).map(|(_, version, _)| version);
        let holds = match &options.condition {
            Condition::Any => true,
            Condition::Absent => current.is_none(),
            Condition::Matches(expected) => current == Some(expected),
        };
        if !holds {
            return Err(StoreError::Conflict {
                target: self.locate(key),
            });
        }
        state.next_version += 1;
        let version = Version(format!("v{}", state.next_version));
        let sha256 = options.sha256.map(str::to_string);
        state
            .objects
            .insert(key.to_string(), (body.into_vec(), version.clone(), sha256));
        let now = time::OffsetDateTime::now_utc() + state.clock_offset.unwrap_or_default();
        state.modified.insert(key.to_string(), now);
        *state.puts.entry(key.to_string()).or_default() += 1;
        Ok(version)
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .objects
            .keys()
            .filter(|key| key.strip_prefix(folder).is_some_and(|rest| !rest.contains('/')))
            .cloned()
            .collect())
    }

    fn locate(&self, key: &str) -> String {
        format!("memory:{key}")
    }

    fn clock_offset(&self) -> Option<time::Duration> {
        self.state.lock().unwrap().clock_offset
    }
}
