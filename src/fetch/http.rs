//! The real adapter: a direct GET through reqwest, with the limits a hostile site cannot lift.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect::Policy;

use super::redirect;
use super::{ACCEPT, DirectReply, DirectRequest, FetchError, Fetcher, MAX_REDIRECTS, Validators, classify_status};
use crate::error_chain;
use crate::redact::{Secret, redact_url};

/// How much of an error page is read to class it.
const ERROR_HEAD_BYTES: usize = 16 * 1024;

/// Direct GETs. One reqwest client per proxy (none, or a feed's own), built on first use and
/// kept: connections and TLS sessions are reused across refreshes.
#[derive(Default)]
pub struct HttpFetcher {
    clients: Mutex<HashMap<Option<Secret>, reqwest::Client>>,
}

impl HttpFetcher {
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, proxy: Option<&Secret>) -> Result<reqwest::Client, FetchError> {
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some(client) = clients.get(&proxy.cloned()) {
            return Ok(client.clone());
        }
        let client = build_client(proxy, None)?;
        clients.insert(proxy.cloned(), client.clone());
        Ok(client)
    }

    /// Sends the request, and follows its redirects by the rules a hostile site cannot bend: at
    /// most [`MAX_REDIRECTS`], to http or https only, never in a loop, never into internal
    /// address space from a public feed nor to a metadata address (`redirect`), the feed's own
    /// headers to its own origin only, and no `Referer`. Returns the answer that is no redirect.
    async fn follow(
        &self,
        request: &DirectRequest<'_>,
        client: reqwest::Client,
    ) -> Result<reqwest::Response, FetchError> {
        let url = redact_url(request.url);
        let start = Url::parse(request.url).map_err(|e| FetchError::Network {
            url: url.clone(),
            detail: format!("not a url: {e}"),
        })?;
        let proxied = request.proxy.is_some();
        // Where the feed's own url is: looked up only if it redirects, as most feeds do not.
        let mut feed_space = None;
        let (mut current, mut client, mut visited) = (start.clone(), client, Vec::new());
        loop {
            let headers = headers(request, current.origin() == start.origin())?;
            let response = client
                .get(current.clone())
                .headers(headers)
                .send()
                .await
                .map_err(|e| transport(&redact_url(current.as_str()), e, request.timeout))?;
            let Some(next) = redirect_target(&response) else {
                return Ok(response);
            };
            let refused = |target: &str, reason: String| FetchError::RedirectRefused {
                url: url.clone(),
                target: redact_url(target),
                reason,
            };
            let next = next.map_err(|reason| refused(current.as_str(), reason))?;
            visited.push(current);
            if visited.len() > MAX_REDIRECTS {
                return Err(refused(next.as_str(), format!("more than {MAX_REDIRECTS} redirects")));
            }
            if !matches!(next.scheme(), "http" | "https") {
                return Err(refused(next.as_str(), format!("a {} url", next.scheme())));
            }
            if visited.contains(&next) {
                return Err(refused(next.as_str(), "a redirect loop".into()));
            }
            let space = match feed_space {
                Some(space) => space,
                None => *feed_space.insert(redirect::space_of(&start, proxied).await),
            };
            client = match redirect::vet(&next, space, proxied).await {
                Err(reason) => return Err(refused(next.as_str(), reason)),
                Ok(Some(pinned)) => build_client(None, Some((next.host_str().unwrap_or_default(), &pinned)))?,
                Ok(None) => self.client(request.proxy)?,
            };
            current = next;
        }
    }
}

/// A client that follows no redirect itself ([`HttpFetcher::follow`] does, with its rules) and
/// sends no `Referer`; through `proxy` if given (it replaces the environment's `HTTPS_PROXY`
/// and the like), or connecting only to the `pinned` addresses of one host.
fn build_client(proxy: Option<&Secret>, pinned: Option<(&str, &[SocketAddr])>) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .redirect(Policy::none())
        .referer(false)
        .connect_timeout(Duration::from_secs(10));
    if let Some(proxy) = proxy {
        let proxy = reqwest::Proxy::all(proxy.expose()).map_err(|e| FetchError::Network {
            url: redact_url(proxy.expose()),
            detail: format!("the proxy is not usable: {}", error_chain(&e)),
        })?;
        builder = builder.proxy(proxy);
    }
    if let Some((host, addresses)) = pinned {
        builder = builder.resolve_to_addrs(host, addresses);
    }
    builder.build().map_err(|e| FetchError::Network {
        url: "(client)".into(),
        detail: error_chain(&e),
    })
}

/// Where a redirect answer points, if it is one that is followed (301, 302, 303, 307, 308).
fn redirect_target(response: &reqwest::Response) -> Option<Result<Url, String>> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?;
    let Ok(location) = location.to_str() else {
        return Some(Err("a Location that is not text".into()));
    };
    Some(
        response
            .url()
            .join(location)
            .map_err(|e| format!("a Location that is no url ({e})")),
    )
}

/// The request's headers: the feed's own `headers` only to the origin (scheme, host and port)
/// of its configured url, never to a host a redirect leads to.
fn headers(request: &DirectRequest<'_>, own_origin: bool) -> Result<HeaderMap, FetchError> {
    let bad = |what: &str| FetchError::Network {
        url: redact_url(request.url),
        detail: format!("{what} is not a valid header"),
    };
    let mut map = HeaderMap::new();
    map.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT));
    map.insert(
        header::USER_AGENT,
        HeaderValue::from_str(request.user_agent).map_err(|_| bad("the user agent"))?,
    );
    for (name, value) in request.headers.iter().filter(|_| own_origin) {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("a configured header name"))?;
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| bad("a configured header value"))?;
        // Never shown by Debug, nor by anything that logs headers.
        value.set_sensitive(true);
        map.insert(name, value);
    }
    if let Some(validators) = request.validators {
        if let Some(etag) = validators.etag.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            map.insert(header::IF_NONE_MATCH, etag);
        }
        if let Some(at) = validators
            .last_modified
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            map.insert(header::IF_MODIFIED_SINCE, at);
        }
    }
    Ok(map)
}

#[async_trait]
impl Fetcher for HttpFetcher {
    async fn ping_hub(&self, hub: &str, topic: &str, timeout: Duration) -> Result<(), FetchError> {
        let url = redact_url(hub);
        let client = self.client(None)?;
        let sent = client
            .post(hub)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(super::hub_ping_body(topic))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport(&url, e, timeout))?;
        match sent.status() {
            status if status.is_success() => Ok(()),
            status => Err(FetchError::Status {
                url,
                status: status.as_u16(),
                retry_after: None,
            }),
        }
    }

    async fn get(&self, request: &DirectRequest<'_>) -> Result<DirectReply, FetchError> {
        let url = redact_url(request.url);
        let client = self.client(request.proxy)?;
        let exchange = async {
            let response = self.follow(request, client).await?;
            let status = response.status();
            let final_url = redact_url(response.url().as_str());
            if status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(DirectReply::NotModified { final_url });
            }
            let text_of = |name: header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if !status.is_success() {
                let server = text_of(header::SERVER);
                let mitigated = response
                    .headers()
                    .get("cf-mitigated")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let retry_after = text_of(header::RETRY_AFTER);
                let head = read_head(response, ERROR_HEAD_BYTES).await;
                let head = String::from_utf8_lossy(&head);
                return Err(classify_status(
                    &final_url,
                    status.as_u16(),
                    server.as_deref(),
                    mitigated.as_deref(),
                    retry_after.as_deref(),
                    &head,
                ));
            }
            let charset = text_of(header::CONTENT_TYPE).and_then(|t| charset(&t));
            let validators = Validators {
                etag: text_of(header::ETAG),
                last_modified: text_of(header::LAST_MODIFIED),
            };
            let body = read_capped(response, request.max_bytes).await.map_err(|e| match e {
                ReadError::TooLarge => FetchError::TooLarge {
                    url: final_url.clone(),
                    limit: request.max_bytes,
                },
                ReadError::Transport(e) => transport(&final_url, e, request.timeout),
            })?;
            Ok(DirectReply::Document {
                body,
                charset,
                validators,
                final_url,
            })
        };
        tokio::time::timeout(request.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    url: url.clone(),
                    seconds: request.timeout.as_secs_f64().ceil() as u64,
                })
            })
    }
}

/// Why [`read_capped`] read no body.
pub(crate) enum ReadError {
    /// Over the cap: by `Content-Length`, or as it streamed.
    TooLarge,
    Transport(reqwest::Error),
}

/// The whole body, or [`ReadError::TooLarge`]: a `Content-Length` over `cap` before a byte is
/// read (reqwest drops the header when it decompresses, and where it is left it is the body's
/// own length), and a stream (chunked, or a small gzip that inflates to gigabytes) as soon as
/// it passes `cap`, so memory stays bounded. The solver's replies are read with it too.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(64 * 1024, |n| n as usize));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes of an error page, enough to class it; the rest is not read.
async fn read_head(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut head = Vec::new();
    while head.len() < limit
        && let Ok(Some(chunk)) = response.chunk().await
    {
        head.extend_from_slice(&chunk[..chunk.len().min(limit - head.len())]);
    }
    head
}

fn transport(url: &str, error: reqwest::Error, timeout: Duration) -> FetchError {
    // reqwest's messages name the url, query and all.
    let error = error.without_url();
    if error.is_timeout() {
        FetchError::Timeout {
            url: url.to_string(),
            seconds: timeout.as_secs_f64().ceil() as u64,
        }
    } else {
        FetchError::Network {
            url: url.to_string(),
            detail: error_chain(&error),
        }
    }
}

/// `charset=` of a `Content-Type`, unquoted.
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn charsets_are_read_off_the_content_type() {
        assert_eq!(
            super::charset("text/xml; charset=ISO-8859-1").as_deref(),
            Some("ISO-8859-1")
        );
        assert_eq!(super::charset("text/xml;Charset=\"utf-8\"").as_deref(), Some("utf-8"));
        assert_eq!(super::charset("application/rss+xml"), None);
    }
}
