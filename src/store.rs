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
}

/// What is known of a stored object without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    /// The fingerprint written with it, where the store keeps metadata (S3 does, a folder does not).
    pub sha256: Option<String>,
}

/// How an object is to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions<'a> {
    pub content_type: &'a str,
    pub cache_control: &'a str,
    pub sha256: Option<&'a str>,
}

/// The port: a flat key space below the configured prefix.
#[async_trait]
pub trait Store: Send + Sync {
    /// Metadata of `key`, or `None` if there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// The bytes of `key`, or `None` if there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces `key` as a whole: readers see the old object or the new one, never a mix.
    async fn put(&self, key: &str, body: Vec<u8>, options: PutOptions<'_>) -> Result<(), StoreError>;
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

/// A local folder; writes are atomic (temp file, fsync, rename).
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
        self.blocking(key, |path| match std::fs::metadata(&path) {
            Ok(_) => Ok(Some(ObjectInfo::default())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.blocking(key, |path| match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn put(&self, key: &str, body: Vec<u8>, _options: PutOptions<'_>) -> Result<(), StoreError> {
        self.blocking(key, move |path| write_atomically(&path, &body)).await
    }

    fn locate(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }
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
            })),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() || e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(self.error(key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
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
        let body = object.body.collect().await.map_err(|e| StoreError::S3 {
            target: self.locate(key),
            detail: e.to_string(),
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn put(&self, key: &str, body: Vec<u8>, options: PutOptions<'_>) -> Result<(), StoreError> {
        let metadata: Option<HashMap<String, String>> = options
            .sha256
            .map(|s| HashMap::from([("sha256".to_string(), s.to_string())]));
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(body))
            .content_type(options.content_type)
            .cache_control(options.cache_control)
            .set_metadata(metadata)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error(key, e))
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_writes_replace_whole_files_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), "feeds/");
        let options = PutOptions {
            content_type: "text/xml",
            cache_control: "no-cache",
            sha256: None,
        };
        assert_eq!(store.head("a.xml").await.unwrap(), None);
        store.put("a.xml", b"one".to_vec(), options.clone()).await.unwrap();
        store.put("a.xml", b"two".to_vec(), options).await.unwrap();
        assert_eq!(store.get("a.xml").await.unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.head("a.xml").await.unwrap(), Some(ObjectInfo::default()));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("feeds"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.xml"]);
        assert!(store.locate("a.xml").ends_with("feeds/a.xml"));
    }
}
