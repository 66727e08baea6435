//! The S3 adapter, through the AWS SDK: AWS S3, or an S3-compatible server at an endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};

use super::{Body, Condition, ObjectInfo, Pieces, PutOptions, Store, StoreError, Stored, Version};
use crate::config::Bucket;
use crate::error_chain;

/// An S3 bucket (or S3-compatible server), through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    clock: Arc<StoreClock>,
}

/// The offset of S3's clock from this host's, in milliseconds, from the `Date` header of its
/// last answer (every S3 response carries one:
/// https://docs.aws.amazon.com/AmazonS3/latest/API/RESTCommonResponseHeaders.html). `Date` has
/// whole seconds, so offsets under 2 s are noise and read as none.
#[derive(Debug, Default)]
struct StoreClock {
    offset_ms: AtomicI64,
}

/// The interceptor that keeps a [`StoreClock`] up to date.
#[derive(Debug)]
struct ReadsDate(Arc<StoreClock>);

impl Intercept for ReadsDate {
    fn name(&self) -> &'static str {
        "flarefeed::StoreClock"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if !answered_by_the_store(context.response().status().as_u16()) {
            return Ok(());
        }
        let date = context.response().headers().get("date");
        if let Some(at) = date.and_then(|d| DateTime::from_str(d, DateTimeFormat::HttpDate).ok()) {
            let now = time::OffsetDateTime::now_utc();
            let offset_ms = at.to_millis().unwrap_or(0) - (now.unix_timestamp_nanos() / 1_000_000) as i64;
            // The header's second is truncated: it lags this host by up to a second.
            self.0
                .offset_ms
                .store(bounded_offset(offset_ms + 500), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Whether an answer of this status is the store's own answer to the request, whose `Date` is
/// the store's clock: a success, or S3's "not modified", "no such key", "conflict" and
/// "precondition failed", which the refresh meets in its normal course. Any other error (a 403,
/// a 5xx) may come from a proxy, a load balancer or a firewall in front of it, whose clock says
/// nothing of the store's.
fn answered_by_the_store(status: u16) -> bool {
    (200..300).contains(&status) || matches!(status, 304 | 404 | 409 | 412)
}

/// S3 refuses a request signed more than 15 minutes away from its own clock
/// (`RequestTimeTooSkewed`, https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html),
/// so a store that answers at all is never further from this host: a `Date` beyond that is
/// clamped to it, and a bad header can move claims by 15 minutes at most.
const MAX_OFFSET_MS: i64 = 15 * 60 * 1000;

fn bounded_offset(offset_ms: i64) -> i64 {
    offset_ms.clamp(-MAX_OFFSET_MS, MAX_OFFSET_MS)
}

impl StoreClock {
    fn offset(&self) -> Option<time::Duration> {
        let ms = self.offset_ms.load(Ordering::Relaxed);
        (ms.abs() >= 2000).then(|| time::Duration::milliseconds(ms))
    }
}

impl S3Store {
    /// Loads credentials, region and `AWS_ENDPOINT_URL_S3` from the SDK's default chain; the
    /// region falls back to us-east-1, which S3-compatible servers accept.
    pub async fn connect(bucket: &Bucket, prefix: &str) -> Self {
        let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .timeout_config(Self::timeouts())
            .load()
            .await;
        Self::with_sdk_config(&sdk, bucket, prefix)
    }

    /// The store's timeouts: the SDK has none by default, and a GET that never answers would
    /// hold an invocation to its end. The configuration's client has the same.
    pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(45))
            .build()
    }

    /// For callers that build the SDK configuration themselves (tests, other runtimes).
    pub fn with_sdk_config(sdk: &aws_config::SdkConfig, bucket: &Bucket, prefix: &str) -> Self {
        let clock = Arc::new(StoreClock::default());
        let mut builder = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(bucket.path_style)
            .interceptor(ReadsDate(clock.clone()));
        if let Some(endpoint) = &bucket.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.bucket.clone(),
            prefix: prefix.to_string(),
            clock,
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
            // The SDK fails to sign before it sends, and reports that as a dispatch failure
            // ("no credentials found in chain", "failed to load IMDS session token"): that is
            // not the endpoint's fault, and says so.
            SdkError::DispatchFailure(_) if no_credentials(&error_chain(&error)) => StoreError::NoCredentials {
                target,
                detail: crate::redact::one_line(&error_chain(&error)),
            },
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

/// The CRC32 of a body (base64 of its big-endian bytes, as `x-amz-checksum-crc32` has it:
/// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html#API_PutObject_RequestSyntax).
/// Given, it is the checksum of the request: the SDK adds none of its own and sends the body as
/// it is (aws-sdk-s3's RequestChecksumInterceptor short-circuits on a checksum header the caller
/// set), and S3 refuses the PUT with `BadDigest` if the bytes it got differ.
fn crc32_of(pieces: &dyn Pieces) -> std::io::Result<String> {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
    pieces.write_to(&mut digest)?;
    Ok(aws_smithy_types::base64::encode(
        (digest.finalize() as u32).to_be_bytes(),
    ))
}

/// `pieces` as a request body: a fresh reader for each attempt ([`SdkBody::retryable`]), so a
/// retried PUT sends the whole body again (the SDK retries a PUT that failed with a 5xx or a
/// timeout: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
fn streamed(pieces: std::sync::Arc<dyn Pieces>) -> ByteStream {
    let length = pieces.len() as u64;
    ByteStream::new(aws_sdk_s3::primitives::SdkBody::retryable(move || {
        aws_sdk_s3::primitives::SdkBody::from_body_1_x(ReadBody {
            reader: pieces.clone().reader(),
            left: length,
        })
    }))
}

/// An HTTP body read from a reader of known length, in frames of [`FRAME`] bytes: the only
/// copy of a document's output is the frame being sent.
struct ReadBody {
    reader: Box<dyn std::io::Read + Send + Sync>,
    left: u64,
}

/// A frame's size: big enough that framing costs nothing, small enough to be no copy to speak of.
const FRAME: u64 = 64 * 1024;

impl http_body::Body for ReadBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let mut frame = vec![0; self.left.min(FRAME) as usize];
        let read = std::io::Read::read_exact(&mut self.reader, &mut frame);
        std::task::Poll::Ready(Some(read.map(|()| {
            self.left -= frame.len() as u64;
            http_body::Frame::data(bytes::Bytes::from(frame))
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// Whether an SDK error is about credentials rather than the network.
fn no_credentials(chain: &str) -> bool {
    let chain = chain.to_lowercase();
    [
        "no credentials",
        "credential provider",
        "credentials provider",
        "imds",
        "failed to load credentials",
    ]
    .iter()
    .any(|marker| chain.contains(marker))
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
        let modified = object
            .last_modified()
            .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at.secs()).ok());
        let body = object.body.collect().await.map_err(|e| StoreError::S3 {
            target: self.locate(key),
            detail: e.to_string(),
        })?;
        Ok(Some(Stored {
            body: body.into_bytes().to_vec(),
            version,
            modified,
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
    ///
    /// A body of pieces goes as a stream of known length, read afresh for each attempt of a
    /// retried PUT, with its CRC32 computed beforehand: S3 checks the body against it, and the
    /// SDK then sends it as it is rather than `aws-chunked` with a trailing checksum. A body the
    /// SDK cannot hash in memory is signed with `UNSIGNED-PAYLOAD` (aws-runtime's SigV4 signer),
    /// which S3 takes for a single-chunk PUT
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html); the
    /// CRC32 then stands for the payload hash.
    async fn put(&self, key: &str, body: Body, options: PutOptions<'_>) -> Result<Version, StoreError> {
        let metadata: Option<HashMap<String, String>> = options
            .sha256
            .map(|s| HashMap::from([("sha256".to_string(), s.to_string())]));
        let mut request = self.client.put_object().bucket(&self.bucket).key(self.key(key));
        request = match body {
            Body::Bytes(bytes) => request.body(ByteStream::from(bytes)),
            Body::Pieces(pieces) => {
                let length = pieces.len();
                let crc32 = crc32_of(pieces.as_ref()).map_err(|e| StoreError::Io {
                    target: self.locate(key),
                    detail: e.to_string(),
                })?;
                request
                    .body(streamed(pieces))
                    .content_length(length as i64)
                    .checksum_crc32(crc32)
            }
        };
        let mut request = request
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

    fn clock_offset(&self) -> Option<time::Duration> {
        self.clock.offset()
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27, finding 11: the store's clock is read from the store's own answers only, and
    /// within S3's 15-minute limit.
    #[test]
    fn the_store_clock_comes_from_the_stores_answers_within_fifteen_minutes() {
        for status in [200, 204, 304, 404, 409, 412] {
            assert!(answered_by_the_store(status), "{status}");
        }
        for status in [400, 403, 500, 502, 503, 504] {
            assert!(!answered_by_the_store(status), "{status}");
        }
        assert_eq!(bounded_offset(2 * 3600 * 1000), MAX_OFFSET_MS);
        assert_eq!(bounded_offset(-2 * 3600 * 1000), -MAX_OFFSET_MS);
        assert_eq!(bounded_offset(600_000), 600_000);
    }
}
