//! `FLAREFEED_CONFIG_URL`: the configuration as an object in S3 (or a local file), re-read when
//! it changes, so that adding a feed means uploading the file, never redeploying.

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use super::{Config, ConfigError, MAX_CONFIG_BYTES, process_env};
use crate::error_chain;

/// Where the configuration is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigUrl {
    S3 { bucket: String, key: String },
    Path(PathBuf),
}

impl ConfigUrl {
    /// `s3://bucket/key`, or anything else as a local path.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(ConfigUrl::S3 {
                    bucket: bucket.into(),
                    key: key.into(),
                }),
                _ => Err(super::invalid(
                    "FLAREFEED_CONFIG_URL",
                    format!("{text:?} is not s3://bucket/key"),
                )),
            },
            None => Ok(ConfigUrl::Path(text.into())),
        }
    }

    fn origin(&self) -> String {
        match self {
            ConfigUrl::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            ConfigUrl::Path(path) => path.display().to_string(),
        }
    }

    /// Where the last valid configuration's copy is: beside it, `<key>.last-valid`.
    pub fn copy(&self) -> ConfigUrl {
        match self {
            ConfigUrl::S3 { bucket, key } => ConfigUrl::S3 {
                bucket: bucket.clone(),
                key: format!("{key}{LAST_VALID}"),
            },
            ConfigUrl::Path(path) => ConfigUrl::Path(copy_path(path)),
        }
    }
}

/// Where the last valid copy of the configuration file at `path` is.
fn copy_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut copy = path.to_path_buf().into_os_string();
    copy.push(LAST_VALID);
    copy.into()
}

/// The configuration at a [`ConfigUrl`], and the version of it last read.
///
/// Beside it, the last configuration that was valid is kept as a copy (`<key>.last-valid`): a
/// warm function keeps running on the configuration it has when a bad one is uploaded, and a
/// cold one runs on that copy, so a bad upload never stops the fleet.
pub struct Watched {
    url: ConfigUrl,
    s3: Option<aws_sdk_s3::Client>,
    /// The S3 ETag, or a SHA-256 of the file.
    version: Mutex<String>,
}

/// What a read found.
enum Read {
    Unchanged,
    Changed(Upload),
}

/// A configuration as read.
struct Upload {
    text: String,
    /// The S3 ETag, or a SHA-256 of the file.
    version: String,
    /// When the object was written (S3's `Last-Modified`, Unix seconds), which orders uploads
    /// where their versions cannot.
    uploaded: Option<i64>,
}

/// What [`Watched::check`] found.
pub enum Checked {
    Unchanged,
    /// A new valid configuration, now in use.
    Changed(Arc<Config>),
    /// A new configuration that is not valid: the last valid one stays in use. Said once per
    /// upload.
    Invalid(ConfigError),
    /// The configuration could not be read (or not in time): the last valid one stays in use.
    Unreadable(ConfigError),
}

/// The configuration a cold start runs on.
pub struct Opened {
    pub watched: Watched,
    pub config: Arc<Config>,
    /// Why the configuration object was refused, when the cold start runs on the last valid
    /// copy instead.
    pub refused: Option<ConfigError>,
}

/// The suffix of the last valid configuration's copy, beside the configuration.
pub const LAST_VALID: &str = ".last-valid";

impl Watched {
    /// Reads the configuration for the first time. S3 is reached through the SDK's default
    /// chain, `AWS_ENDPOINT_URL_S3` included, with `timeouts` (the composition root passes the
    /// store's: the SDK has none by default).
    pub async fn open(url: ConfigUrl, timeouts: aws_config::timeout::TimeoutConfig) -> Result<Opened, ConfigError> {
        let s3 = match &url {
            ConfigUrl::S3 { .. } => {
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1"))
                    .timeout_config(timeouts)
                    .load()
                    .await;
                Some(s3_client(&sdk, local_endpoint(&process_env)))
            }
            ConfigUrl::Path(_) => None,
        };
        Self::open_with(url, s3).await
    }

    /// [`Watched::open`] with an S3 client of the caller's. A configuration that is invalid
    /// (or over the size limit) is refused for the last valid copy, which is then what runs,
    /// and the error says why ([`Opened::refused`]); without a copy, the error is the answer.
    pub async fn open_with(url: ConfigUrl, s3: Option<aws_sdk_s3::Client>) -> Result<Opened, ConfigError> {
        let watched = Self {
            url,
            s3,
            version: Mutex::new(String::new()),
        };
        let origin = watched.url.origin();
        let (refused, version) = match watched.read(&watched.url, None).await {
            Ok(Read::Changed(upload)) => match Config::checked(&upload.text, &origin, &process_env) {
                Ok(config) => {
                    watched.keep_copy(&upload).await;
                    *watched.version.lock().await = upload.version;
                    return Ok(Opened {
                        watched,
                        config: Arc::new(config),
                        refused: None,
                    });
                }
                Err(e) => (e, upload.version),
            },
            Ok(Read::Unchanged) => unreachable!("a read without a version always reads"),
            Err(e) => (e, String::new()),
        };
        let copy = watched.url.copy();
        let config = match watched.read(&copy, None).await {
            Ok(Read::Changed(copied)) => Config::checked(&copied.text, &copy.origin(), &process_env).ok(),
            _ => None,
        };
        let Some(config) = config else {
            return Err(refused);
        };
        error!(
            origin = %origin, error = %refused, copy = %copy.origin(),
            "the configuration is not valid; running on the last valid one"
        );
        // Not read again until it changes: one error per upload, not one per invocation.
        *watched.version.lock().await = version;
        Ok(Opened {
            watched,
            config: Arc::new(config),
            refused: Some(refused),
        })
    }

    /// Reads the configuration again if it changed (one conditional GET), and returns the new
    /// one if it is valid. A configuration that became invalid, or cannot be read, is logged
    /// and refused: the last valid one stays in use.
    pub async fn check(&self) -> Checked {
        let mut current = self.version.lock().await;
        let origin = self.url.origin();
        match self.read(&self.url, Some(&current)).await {
            Ok(Read::Unchanged) => Checked::Unchanged,
            Ok(Read::Changed(upload)) => match Config::checked(&upload.text, &origin, &process_env) {
                Ok(config) => {
                    info!(origin = %origin, feeds = config.feeds.len(), "configuration changed; using it");
                    self.keep_copy(&upload).await;
                    *current = upload.version;
                    Checked::Changed(Arc::new(config))
                }
                Err(e) => {
                    error!(origin = %origin, error = %e, "the new configuration is invalid; the last valid one stays in use");
                    // Not again for this version: one error per upload, not one per invocation.
                    *current = upload.version;
                    Checked::Invalid(e)
                }
            },
            Err(e) => {
                error!(origin = %origin, error = %e, "the configuration could not be read; the last valid one stays in use");
                Checked::Unreadable(e)
            }
        }
    }

    /// Keeps `upload`, a valid configuration, as the last valid copy, unless it is already the
    /// copy or the copy holds a configuration uploaded later.
    /// A copy that cannot be written is a warning: the function runs, and the IAM policy
    /// (`s3:PutObject` on the copy) wants fixing.
    async fn keep_copy(&self, upload: &Upload) {
        let text = upload.text.as_str();
        let copy = self.url.copy();
        let result = match &self.url {
            ConfigUrl::Path(config) => {
                let path = copy_path(config);
                let current = std::fs::read_to_string(&path).ok();
                if current.as_deref() == Some(text) {
                    return;
                }
                std::fs::write(path, text).map_err(|e| e.to_string())
            }
            ConfigUrl::S3 { bucket, key } => {
                let client = self.s3.as_ref().expect("an S3 url has a client");
                match self.put_copy(client, bucket, key, upload).await {
                    Ok(Kept::Written) => Ok(()),
                    Ok(Kept::AlreadyThere) => return,
                    Ok(Kept::Superseded) => {
                        info!(copy = %copy.origin(), "a newer configuration was uploaded meanwhile; its reader keeps the copy");
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => info!(copy = %copy.origin(), "kept as the last valid configuration"),
            Err(e) => warn!(
                copy = %copy.origin(), error = %e,
                "the last valid configuration could not be kept; a cold start after a bad upload will fail (allow s3:PutObject on it)"
            ),
        }
    }

    /// Writes the S3 copy conditionally, so that concurrent environments never leave an older
    /// configuration as the copy: the copy is looked at (its version, and the version and upload
    /// time of the configuration it copies), left alone if it copies this configuration or one
    /// uploaded later, and otherwise written only if it is still the one looked at (`If-Match`,
    /// or `If-None-Match: *` where there was none; S3's conditional writes,
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). A write that
    /// lost to another is tried again from the look, three times at most.
    async fn put_copy(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        upload: &Upload,
    ) -> Result<Kept, String> {
        let Upload {
            text,
            version,
            uploaded,
        } = upload;
        let (version, uploaded) = (version.as_str(), *uploaded);
        let copy_key = format!("{key}{LAST_VALID}");
        for _ in 0..3 {
            let head = client.head_object().bucket(bucket).key(&copy_key).send().await;
            let seen = match head {
                Ok(head) => Some(head),
                Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => None,
                Err(e) => return Err(error_chain(&e)),
            };
            let copied = |name: &str| seen.as_ref().and_then(|h| h.metadata()?.get(name).cloned());
            let source_uploaded = copied(SOURCE_UPLOADED).and_then(|at| at.parse().ok());
            match copy_decision((copied(SOURCE).as_deref(), source_uploaded), (version, uploaded)) {
                Kept::Written => {}
                other => return Ok(other),
            }
            let mut put = client
                .put_object()
                .bucket(bucket)
                .key(&copy_key)
                .content_type("application/toml")
                .metadata(SOURCE, version)
                .body(text.as_bytes().to_vec().into());
            if let Some(at) = uploaded {
                put = put.metadata(SOURCE_UPLOADED, at.to_string());
            }
            let put = match seen.as_ref().and_then(|h| h.e_tag()) {
                Some(etag) => put.if_match(etag),
                None => put.if_none_match("*"),
            };
            match put.send().await {
                Ok(_) => return Ok(Kept::Written),
                // 412 Precondition Failed, or 409 for a conditional write racing another: look again.
                Err(SdkError::ServiceError(e)) if matches!(e.raw().status().as_u16(), 409 | 412) => continue,
                Err(e) => return Err(error_chain(&e)),
            }
        }
        Err("the copy kept changing under this write; left to the other writers".into())
    }

    /// A GET with `If-None-Match: <etag>`: S3 answers 304 Not Modified when the object is
    /// still that version
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax).
    /// An object over [`MAX_CONFIG_BYTES`] is refused by its length, unread.
    async fn read(&self, url: &ConfigUrl, version: Option<&str>) -> Result<Read, ConfigError> {
        let origin = url.origin();
        let failed = |detail: String| ConfigError::Read {
            path: origin.clone().into(),
            detail,
        };
        match url {
            ConfigUrl::Path(path) => {
                let text = super::sources::read(path)?;
                let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
                Ok(if version == Some(hash.as_str()) {
                    Read::Unchanged
                } else {
                    Read::Changed(Upload {
                        text,
                        version: hash,
                        uploaded: None,
                    })
                })
            }
            ConfigUrl::S3 { bucket, key } => {
                let client = self.s3.as_ref().expect("an S3 url has a client");
                let request = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .set_if_none_match(version.map(str::to_string));
                let object = match request.send().await {
                    Ok(object) => object,
                    Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 304 => return Ok(Read::Unchanged),
                    Err(e) => return Err(failed(error_chain(&e))),
                };
                let version = object.e_tag().unwrap_or_default().to_string();
                let uploaded = object.last_modified().map(|at| at.secs());
                let length = object.content_length().unwrap_or(0).max(0) as u64;
                if length > MAX_CONFIG_BYTES {
                    // Not read again until it changes.
                    return Err(ConfigError::TooLarge { origin, bytes: length });
                }
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .into_bytes();
                let text = String::from_utf8(bytes.to_vec()).map_err(|e| failed(e.to_string()))?;
                Ok(Read::Changed(Upload {
                    text,
                    version,
                    uploaded,
                }))
            }
        }
    }
}

/// What became of a last valid copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Written,
    /// The copy already copies this version.
    AlreadyThere,
    /// The copy holds a configuration uploaded after this one: a newer one, which its reader
    /// kept.
    Superseded,
}

/// Whether to write the copy of `mine` (a version and its upload time), when the copy copies
/// `copied`: not if it is the same version, nor if the copied one was uploaded later.
fn copy_decision(copied: (Option<&str>, Option<i64>), mine: (&str, Option<i64>)) -> Kept {
    match (copied, mine) {
        ((Some(theirs), _), (version, _)) if theirs == version => Kept::AlreadyThere,
        ((_, Some(theirs)), (_, Some(ours))) if theirs > ours => Kept::Superseded,
        _ => Kept::Written,
    }
}

/// The copy's metadata: the ETag (or hash) of the configuration it copies.
const SOURCE: &str = "flarefeed-source-version";
/// The copy's metadata: when the configuration it copies was uploaded (Unix seconds).
const SOURCE_UPLOADED: &str = "flarefeed-source-uploaded";

/// `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) when it is an IP address or `localhost`:
/// local S3 servers need path-style addressing, as they have no per-bucket host names.
fn local_endpoint(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
    endpoint
        .as_deref()
        .and_then(|url| url.split("://").nth(1))
        .is_some_and(|rest| {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok() || rest.starts_with('[')
        })
}

fn s3_client(sdk: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration in the file at `path`, opened as a cold start opens it.
    async fn open_file(path: &std::path::Path) -> Result<Opened, ConfigError> {
        Watched::open(
            ConfigUrl::Path(path.to_path_buf()),
            aws_config::timeout::TimeoutConfig::disabled(),
        )
        .await
    }

    /// Issue 27, finding 12: an environment that validated an older configuration never writes
    /// it over a copy of one uploaded later; the same version is never written twice.
    #[test]
    fn a_copy_of_a_newer_configuration_is_never_overwritten() {
        assert_eq!(
            copy_decision((Some("v2"), Some(200)), ("v1", Some(100))),
            Kept::Superseded
        );
        assert_eq!(
            copy_decision((Some("v1"), Some(100)), ("v1", Some(100))),
            Kept::AlreadyThere
        );
        assert_eq!(copy_decision((Some("v1"), Some(100)), ("v2", Some(200))), Kept::Written);
        assert_eq!(copy_decision((None, None), ("v1", Some(100))), Kept::Written);
        // A copy an older build wrote says no upload time: this one is written over it.
        assert_eq!(copy_decision((Some("v0"), None), ("v1", Some(100))), Kept::Written);
    }

    #[test]
    fn urls_and_local_endpoints() {
        assert_eq!(
            ConfigUrl::parse("s3://b/feeds/config.toml").unwrap(),
            ConfigUrl::S3 {
                bucket: "b".into(),
                key: "feeds/config.toml".into()
            }
        );
        assert!(ConfigUrl::parse("s3://b").is_err() && ConfigUrl::parse("s3:///k").is_err());
        assert_eq!(
            ConfigUrl::parse("/etc/flarefeed.toml").unwrap(),
            ConfigUrl::Path("/etc/flarefeed.toml".into())
        );
        let env = |value: &'static str| move |key: &str| (key == "AWS_ENDPOINT_URL_S3").then(|| value.to_string());
        assert!(local_endpoint(&env("http://127.0.0.1:9000")));
        assert!(local_endpoint(&env("http://localhost:4566")));
        assert!(local_endpoint(&env("http://[::1]:9000")));
        assert!(!local_endpoint(&env("https://s3.eu-west-1.amazonaws.com")));
        assert!(!local_endpoint(&|_| None));
    }

    /// One feed's TOML.
    fn feed(name: &str) -> String {
        format!("[[feeds]]\nname = \"{name}\"\nurl = \"https://site.test/{name}\"\n")
    }

    fn changed(checked: Checked) -> Arc<Config> {
        match checked {
            Checked::Changed(config) => config,
            _ => panic!("not a change"),
        }
    }

    #[tokio::test]
    async fn a_file_is_reread_when_it_changes_and_an_invalid_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flarefeed.toml");
        std::fs::write(&path, feed("a")).unwrap();
        let opened = open_file(&path).await.unwrap();
        let watched = opened.watched;
        assert_eq!(opened.config.feeds[0].name, "a");
        assert!(opened.refused.is_none());
        assert!(matches!(watched.check().await, Checked::Unchanged));
        std::fs::write(&path, feed("a") + &feed("b")).unwrap();
        assert_eq!(changed(watched.check().await).feeds.len(), 2);
        std::fs::write(&path, "[[feeds]]\nname = \"BAD NAME\"\n").unwrap();
        assert!(
            matches!(watched.check().await, Checked::Invalid(_)),
            "an invalid configuration is refused"
        );
        assert!(
            matches!(watched.check().await, Checked::Unchanged),
            "and said once, not on every invocation"
        );
        std::fs::write(&path, feed("c")).unwrap();
        assert_eq!(
            changed(watched.check().await).feeds[0].name,
            "c",
            "a valid one is taken again"
        );
    }

    /// Finding 5: a cold start on an invalid (or oversized) configuration runs on the last valid
    /// copy, and says why; with no copy it fails as before.
    #[tokio::test]
    async fn a_cold_start_on_a_bad_upload_runs_on_the_last_valid_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flarefeed.toml");
        std::fs::write(&path, "not = [toml").unwrap();
        assert!(matches!(open_file(&path).await, Err(ConfigError::Parse { .. })));
        std::fs::write(&path, feed("a")).unwrap();
        let first = open_file(&path).await.unwrap();
        let copy = dir.path().join("flarefeed.toml.last-valid");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), feed("a"), "kept");
        std::fs::write(&path, feed("b")).unwrap();
        changed(first.watched.check().await);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), feed("b"), "kept on change");

        std::fs::write(&path, "not = [toml").unwrap();
        let cold = open_file(&path).await.unwrap();
        assert_eq!(cold.config.feeds[0].name, "b");
        assert!(matches!(cold.refused, Some(ConfigError::Parse { .. })));
        assert!(matches!(cold.watched.check().await, Checked::Unchanged), "said once");

        let huge = feed("c") + &"# padding\n".repeat(120_000);
        std::fs::write(&path, huge).unwrap();
        let cold = open_file(&path).await.unwrap();
        assert!(matches!(cold.refused, Some(ConfigError::TooLarge { .. })), "over 1 MiB");
        assert_eq!(cold.config.feeds[0].name, "b");
    }
}
