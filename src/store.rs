//! Where published feeds and status records live: an S3 bucket, or a local folder.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use thiserror::Error;

use crate::config::{StoreConfig, StoreLocation};
use crate::error_chain;

/// Why a read or write of the store failed. Each message names the object and what to check.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error(
        "{target}: access denied ({code}); check the credentials and that the IAM policy allows s3:GetObject and s3:PutObject on the prefix"
    )]
    Denied { target: String, code: String },
    #[error("{target}: the bucket does not exist; create it or fix store.bucket / FLAREFEED_BUCKET")]
    NoBucket { target: String },
    #[error(
        "{target}: cannot reach the S3 endpoint: {detail}; check store.endpoint, AWS_ENDPOINT_URL_S3 and the network"
    )]
    Unreachable { target: String, detail: String },
    #[error("{target}: S3 did not answer in time; the endpoint is slow or overloaded")]
    Timeout { target: String },
    #[error("{target}: S3 error: {detail}")]
    S3 { target: String, detail: String },
    #[error("{target}: {detail}")]
    Io { target: String, detail: String },
    /// A conditional write found the object changed since it was read: another writer got there
    /// first, and its write stands.
    #[error(
        "{target}: changed by another refresh of this feed since this one read it; nothing was overwritten, and the other refresh's result stands"
    )]
    Conflict { target: String },
}

/// One stored state of an object, for conditional writes: S3's ETag, or the SHA-256 of a
/// folder file's bytes. Opaque: only compared, never parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version(pub String);

/// What is known of a stored object without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    /// The fingerprint written with it, where the store keeps metadata (S3 does, a folder does not).
    pub sha256: Option<String>,
    pub version: Version,
}

/// An object's bytes and the version they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub body: Vec<u8>,
    pub version: Version,
}

/// What a write requires of the object it replaces; unmet, the write fails with
/// [`StoreError::Conflict`] and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Condition {
    /// Write whatever is there.
    #[default]
    Any,
    /// Only if there is no such object yet (S3 `If-None-Match: *`).
    Absent,
    /// Only if the object is still this version (S3 `If-Match: <etag>`).
    Matches(Version),
}

impl Condition {
    /// The condition that the object is still as `seen`: that version, or still absent.
    pub fn unchanged_since(seen: Option<&Version>) -> Self {
        seen.map_or(Condition::Absent, |v| Condition::Matches(v.clone()))
    }
}

/// How an object is to be served, and what the write requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions<'a> {
    pub content_type: &'a str,
    pub cache_control: &'a str,
    pub sha256: Option<&'a str>,
    pub condition: Condition,
}

/// The port: a flat key space below the configured prefix.
#[async_trait]
pub trait Store: Send + Sync {
    /// Metadata of `key`, or `None` if there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// The bytes of `key` and their version, or `None` if there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError>;
    /// Replaces `key` as a whole, if `options.condition` holds at the moment of the write
    /// (checked and written atomically). Readers see the old object or the new one, never a mix.
    /// Returns the version written.
    async fn put(&self, key: &str, body: Vec<u8>, options: PutOptions<'_>) -> Result<Version, StoreError>;
    /// The keys under `folder` (which ends in `/`), one level deep, sorted.
    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError>;
    /// Where `key` is, for messages (`s3://bucket/prefix/key`, `/srv/public/key`).
    fn locate(&self, key: &str) -> String;
}

/// Builds the store the configuration names, with the AWS SDK's default chain for S3.
pub async fn from_config(config: &StoreConfig) -> Box<dyn Store> {
    match &config.location {
        StoreLocation::Dir(dir) => Box::new(LocalStore::new(dir, &config.prefix)),
        StoreLocation::Bucket { .. } => Box::new(S3Store::connect(config).await),
    }
}

/// A local folder; writes are atomic (temp file, fsync, rename), and conditional writes compare
/// and rename under an exclusive `flock` of the folder, so they hold between processes on one
/// machine (not across NFS or other machines).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(dir: &Path, prefix: &str) -> Self {
        Self { root: dir.join(prefix) }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        key: &str,
        work: impl FnOnce(PathBuf) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path(key);
        let target = path.display().to_string();
        tokio::task::spawn_blocking(move || work(path))
            .await
            .map_err(|e| StoreError::Io {
                target: target.clone(),
                detail: e.to_string(),
            })?
            .map_err(|e| StoreError::Io {
                target,
                detail: e.to_string(),
            })
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.blocking(key, |path| {
            Ok(read_if_present(&path)?.map(|body| ObjectInfo {
                sha256: None,
                version: version_of(&body),
            }))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.blocking(key, |path| {
            Ok(read_if_present(&path)?.map(|body| Stored {
                version: version_of(&body),
                body,
            }))
        })
        .await
    }

    async fn put(&self, key: &str, body: Vec<u8>, options: PutOptions<'_>) -> Result<Version, StoreError> {
        let condition = options.condition;
        let target = self.locate(key);
        let written = self
            .blocking(key, move |path| write_if(&path, &body, &condition))
            .await?;
        written.ok_or(StoreError::Conflict { target })
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError> {
        let folder = folder.to_string();
        self.blocking(&folder.clone(), move |path| {
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut keys = Vec::new();
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Dot files are write_atomically's temporary files.
                if entry.file_type()?.is_file() && !name.starts_with('.') {
                    keys.push(format!("{folder}{name}"));
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    fn locate(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }
}

fn read_if_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A folder file's version: the SHA-256 of its bytes. Equal bytes are the same state, so
/// `Matches` means "still what was read".
fn version_of(body: &[u8]) -> Version {
    use sha2::{Digest, Sha256};
    Version(hex::encode(Sha256::digest(body)))
}

/// Writes `path` if `condition` holds, under an exclusive lock of its folder: another writer
/// (thread or process) that checks meanwhile waits, then sees this write. `Ok(None)` when the
/// condition does not hold.
fn write_if(path: &Path, body: &[u8], condition: &Condition) -> std::io::Result<Option<Version>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // flock(2) on the folder itself: no lock file to leave among the published ones. Released
    // when `lock` is dropped, also on every early return.
    let lock = std::fs::File::open(dir)?;
    lock.lock()?;
    let holds = match condition {
        Condition::Any => true,
        Condition::Absent => read_if_present(path)?.is_none(),
        Condition::Matches(version) => read_if_present(path)?.is_some_and(|current| &version_of(&current) == version),
    };
    if !holds {
        return Ok(None);
    }
    write_atomically(path, body)?;
    drop(lock);
    Ok(Some(version_of(body)))
}
/// Writes `path` so that it is always either the old file or the whole new one.
fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename is durable only once the folder itself is synced.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).or(Ok(()))
}

/// An S3 bucket (or S3-compatible server), through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// Loads credentials, region and `AWS_ENDPOINT_URL_S3` from the SDK's default chain; the
    /// region falls back to us-east-1, which S3-compatible servers accept.
    pub async fn connect(config: &StoreConfig) -> Self {
        let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(45))
            .build();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .timeout_config(timeouts)
            .load()
            .await;
        Self::with_sdk_config(&sdk, config)
    }

    /// For callers that build the SDK configuration themselves (tests, other runtimes).
    pub fn with_sdk_config(sdk: &aws_config::SdkConfig, config: &StoreConfig) -> Self {
        let StoreLocation::Bucket {
            bucket,
            endpoint,
            path_style,
        } = &config.location
        else {
            panic!("S3Store needs a store.bucket configuration");
        };
        let mut builder = aws_sdk_s3::config::Builder::from(sdk).force_path_style(*path_style);
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.clone(),
            prefix: config.prefix.clone(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Every conditional write names the version it expects, so an object without an ETag
    /// cannot take part: say so instead of failing every later write as a conflict.
    fn etag(&self, key: &str, etag: Option<&str>) -> Result<Version, StoreError> {
        match etag {
            Some(etag) if !etag.is_empty() => Ok(Version(etag.to_string())),
            _ => Err(StoreError::S3 {
                target: self.locate(key),
                detail: "the server sent no ETag, which flarefeed's conditional writes need; AWS S3 always sends one, so check the S3-compatible server".into(),
            }),
        }
    }

    fn error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        key: &str,
        error: SdkError<E, HttpResponse>,
    ) -> StoreError {
        let target = self.locate(key);
        match &error {
            SdkError::TimeoutError(_) => StoreError::Timeout { target },
            SdkError::DispatchFailure(failure) if failure.is_timeout() => StoreError::Timeout { target },
            SdkError::DispatchFailure(_) => StoreError::Unreachable {
                target,
                detail: error_chain(&error),
            },
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or("").to_string();
                match (status, code.as_str()) {
                    (403, _) | (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                        StoreError::Denied {
                            target,
                            code: if code.is_empty() { "HTTP 403".into() } else { code },
                        }
                    }
                    (_, "NoSuchBucket") => StoreError::NoBucket { target },
                    _ => StoreError::S3 {
                        target,
                        detail: format!("HTTP {status} {code}: {}", error_chain(&error)),
                    },
                }
            }
            _ => StoreError::S3 {
                target,
                detail: error_chain(&error),
            },
        }
    }
}

#[async_trait]
impl Store for S3Store {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectInfo {
                sha256: head.metadata().and_then(|m| m.get("sha256")).cloned(),
                version: self.etag(key, head.e_tag())?,
            })),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() || e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(self.error(key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(object) => object,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() || e.raw().status().as_u16() == 404 => {
                return Ok(None);
            }
            Err(e) => return Err(self.error(key, e)),
        };
        let version = self.etag(key, object.e_tag())?;
        let body = object.body.collect().await.map_err(|e| StoreError::S3 {
            target: self.locate(key),
            detail: e.to_string(),
        })?;
        Ok(Some(Stored {
            body: body.into_bytes().to_vec(),
            version,
        }))
    }

    /// Conditions are S3's conditional writes: `If-None-Match: *` and `If-Match: <etag>`,
    /// checked by S3 atomically with the write. An unmet condition is 412 Precondition Failed; a
    /// concurrent conditional write to the same key is 409 ConditionalRequestConflict
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html and the
    /// PutObject reference, https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
    /// `If-Match` needs s3:GetObject besides s3:PutObject, which the template grants on the
    /// same keys. `If-Match` on a key that is gone is 404 NoSuchKey on S3 and on moto, 412 on
    /// s3s: all three mean the object is not the one read, so all are a conflict.
    async fn put(&self, key: &str, body: Vec<u8>, options: PutOptions<'_>) -> Result<Version, StoreError> {
        let metadata: Option<HashMap<String, String>> = options
            .sha256
            .map(|s| HashMap::from([("sha256".to_string(), s.to_string())]));
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(body))
            .content_type(options.content_type)
            .cache_control(options.cache_control)
            .set_metadata(metadata);
        let conditional = options.condition != Condition::Any;
        match &options.condition {
            Condition::Any => {}
            Condition::Absent => request = request.if_none_match("*"),
            Condition::Matches(version) => request = request.if_match(&version.0),
        }
        match request.send().await {
            Ok(output) => self.etag(key, output.e_tag()),
            Err(SdkError::ServiceError(e))
                if conditional
                    && (matches!(e.raw().status().as_u16(), 404 | 409 | 412)
                        || matches!(
                            e.err().code(),
                            Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
                        )) =>
            {
                Err(StoreError::Conflict {
                    target: self.locate(key),
                })
            }
            Err(e) => Err(self.error(key, e)),
        }
    }

    /// ListObjectsV2 with a delimiter, so only this level; the template grants s3:ListBucket.
    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(folder))
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(folder, e))?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    keys.push(key.to_string());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(condition: Condition) -> PutOptions<'static> {
        PutOptions {
            content_type: "text/xml",
            cache_control: "no-cache",
            sha256: None,
            condition,
        }
    }

    #[tokio::test]
    async fn local_writes_replace_whole_files_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), "feeds/");
        assert_eq!(store.head("a.xml").await.unwrap(), None);
        store
            .put("a.xml", b"one".to_vec(), options(Condition::Any))
            .await
            .unwrap();
        let two = store
            .put("a.xml", b"two".to_vec(), options(Condition::Any))
            .await
            .unwrap();
        let stored = store.get("a.xml").await.unwrap().unwrap();
        assert_eq!((stored.body.as_slice(), &stored.version), (&b"two"[..], &two));
        assert_eq!(store.head("a.xml").await.unwrap().unwrap().version, two);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("feeds"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.xml"], "no temp file and no lock file is left");
        assert!(store.locate("a.xml").ends_with("feeds/a.xml"));
    }

    #[tokio::test]
    async fn local_conditional_writes_refuse_a_changed_or_missing_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), "");
        let one = store
            .put("a", b"one".to_vec(), options(Condition::Absent))
            .await
            .unwrap();
        let conflict = store.put("a", b"x".to_vec(), options(Condition::Absent)).await;
        assert!(matches!(conflict, Err(StoreError::Conflict { .. })), "{conflict:?}");
        let two = store
            .put("a", b"two".to_vec(), options(Condition::Matches(one.clone())))
            .await
            .unwrap();
        let stale = store.put("a", b"x".to_vec(), options(Condition::Matches(one))).await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
        let gone = store.put("b", b"x".to_vec(), options(Condition::Matches(two))).await;
        assert!(matches!(gone, Err(StoreError::Conflict { .. })), "{gone:?}");
        assert_eq!(store.get("a").await.unwrap().unwrap().body, b"two");
        assert_eq!(store.get("b").await.unwrap(), None);
    }

    /// Threads that all read the same version and then write at once: exactly one wins, on
    /// every round. Without the folder lock, several writers pass the comparison together.
    #[test]
    fn local_conditional_writes_have_exactly_one_winner_among_racing_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let mut seen = write_if(&path, b"start", &Condition::Absent).unwrap().unwrap();
        for round in 0..50 {
            let barrier = std::sync::Barrier::new(8);
            let winners: Vec<Version> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let (barrier, path, seen) = (&barrier, &path, &seen);
                        scope.spawn(move || {
                            let body = format!("round {round} writer {i}");
                            barrier.wait();
                            write_if(path, body.as_bytes(), &Condition::Matches(seen.clone())).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(winners.len(), 1, "round {round}");
            assert_eq!(version_of(&std::fs::read(&path).unwrap()), winners[0]);
            seen = winners[0].clone();
        }
    }
}
