//! `FLAREFEED_CONFIG_URL`: the configuration as an object in S3 (or a local file), re-read when
//! it changes, so that adding a feed means uploading the file, never redeploying.

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use tokio::sync::Mutex;
use tracing::{error, info};

use super::{Config, ConfigError, process_env};
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
}

/// The configuration at a [`ConfigUrl`], and the version of it last read.
pub struct Watched {
    url: ConfigUrl,
    s3: Option<aws_sdk_s3::Client>,
    /// The S3 ETag, or a SHA-256 of the file.
    version: Mutex<String>,
}

/// What a read found.
enum Read {
    Unchanged,
    Changed { text: String, version: String },
}

impl Watched {
    /// Reads the configuration for the first time: it must be there and valid. S3 is reached
    /// through the SDK's default chain, `AWS_ENDPOINT_URL_S3` included.
    pub async fn open(url: ConfigUrl) -> Result<(Self, Arc<Config>), ConfigError> {
        let s3 = match &url {
            ConfigUrl::S3 { .. } => {
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1"))
                    .load()
                    .await;
                Some(s3_client(&sdk, local_endpoint(&process_env)))
            }
            ConfigUrl::Path(_) => None,
        };
        Self::open_with(url, s3).await
    }

    /// [`Watched::open`] with an S3 client of the caller's.
    pub async fn open_with(url: ConfigUrl, s3: Option<aws_sdk_s3::Client>) -> Result<(Self, Arc<Config>), ConfigError> {
        let watched = Self {
            url,
            s3,
            version: Mutex::new(String::new()),
        };
        let Read::Changed { text, version } = watched.read(None).await? else {
            unreachable!("a read without a version always reads");
        };
        let config = Arc::new(Config::checked(&text, &watched.url.origin(), &process_env)?);
        *watched.version.lock().await = version;
        Ok((watched, config))
    }

    /// Reads the configuration again if it changed (one conditional GET), and returns the new
    /// one if it is valid. A configuration that became invalid, or cannot be read, is logged
    /// and refused: the last valid one stays in use.
    pub async fn check(&self) -> Option<Arc<Config>> {
        let mut current = self.version.lock().await;
        let origin = self.url.origin();
        match self.read(Some(&current)).await {
            Ok(Read::Unchanged) => None,
            Ok(Read::Changed { text, version }) => match Config::checked(&text, &origin, &process_env) {
                Ok(config) => {
                    info!(origin = %origin, feeds = config.feeds.len(), "configuration changed; using it");
                    *current = version;
                    Some(Arc::new(config))
                }
                Err(e) => {
                    error!(origin = %origin, error = %e, "the new configuration is invalid; the last valid one stays in use");
                    // Not again for this version: one error per upload, not one per invocation.
                    *current = version;
                    None
                }
            },
            Err(e) => {
                error!(origin = %origin, error = %e, "the configuration could not be read; the last valid one stays in use");
                None
            }
        }
    }

    /// A GET with `If-None-Match: <etag>`: S3 answers 304 Not Modified when the object is
    /// still that version
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax).
    async fn read(&self, version: Option<&str>) -> Result<Read, ConfigError> {
        let origin = self.url.origin();
        let failed = |detail: String| ConfigError::Read {
            path: origin.clone().into(),
            detail,
        };
        match &self.url {
            ConfigUrl::Path(path) => {
                let text = super::read(path)?;
                let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
                Ok(if version == Some(hash.as_str()) {
                    Read::Unchanged
                } else {
                    Read::Changed { text, version: hash }
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
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .into_bytes();
                let text = String::from_utf8(bytes.to_vec()).map_err(|e| failed(e.to_string()))?;
                Ok(Read::Changed { text, version })
            }
        }
    }
}

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

    #[tokio::test]
    async fn a_file_is_reread_when_it_changes_and_an_invalid_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flarefeed.toml");
        let feed = |name: &str| format!("[[feeds]]\nname = \"{name}\"\nurl = \"https://site.test/{name}\"\n");
        std::fs::write(&path, feed("a")).unwrap();
        let (watched, config) = Watched::open(ConfigUrl::Path(path.clone())).await.unwrap();
        assert_eq!(config.feeds[0].name, "a");
        assert!(watched.check().await.is_none(), "unchanged");
        std::fs::write(&path, feed("a") + &feed("b")).unwrap();
        assert_eq!(watched.check().await.unwrap().feeds.len(), 2);
        std::fs::write(&path, "[[feeds]]\nname = \"BAD NAME\"\n").unwrap();
        assert!(watched.check().await.is_none(), "an invalid configuration is refused");
        assert!(
            watched.check().await.is_none(),
            "and said once, not on every invocation"
        );
        std::fs::write(&path, feed("c")).unwrap();
        assert_eq!(
            watched.check().await.unwrap().feeds[0].name,
            "c",
            "a valid one is taken again"
        );
    }
}
