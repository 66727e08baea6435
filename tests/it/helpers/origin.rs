//! A feed site on 127.0.0.1 that answers every class of reply a direct fetch meets: a plain
//! feed with ETag/Last-Modified and 304, Cloudflare challenges and blocks, 429 and 404, HTML,
//! gzip and brotli, ISO-8859-1, redirect chains and loops, a slow answer, oversize bodies and a
//! gzip bomb. It also acts as a forward proxy (a request in absolute form), and logs every
//! request's line and headers.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The feed the origin serves, with the ETag and Last-Modified it sends.
pub const ETAG: &str = "\"v1\"";
pub const LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

fn feed_xml(title: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>{title}</title>\
         <item><title>one</title><guid>1</guid></item><item><title>two</title><guid>2</guid></item></channel></rss>"
    )
}

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path (without a proxy's scheme and host).
    pub path: String,
    /// Lower-cased header names, with their values.
    pub headers: Vec<(String, String)>,
    /// Whether it came in absolute form, as to a proxy.
    pub proxied: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

pub struct Origin {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    pages: Pages,
    task: JoinHandle<()>,
}

/// What a test or the bench put at a path: a feed, served like `/plain.xml` (ETag, 304), or
/// (with its `Content-Type`) a page, served as it is, without validators.
type Pages = Arc<Mutex<std::collections::HashMap<String, (Option<String>, Vec<u8>)>>>;

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let pages: Pages = Arc::default();
        let (log, served) = (seen.clone(), pages.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, log.clone(), served.clone()));
            }
        });
        Self {
            base,
            seen,
            pages,
            task,
        }
    }

    /// Serves `body` at `path` as a feed, with [`ETAG`] and 304 for it.
    pub fn page(&self, path: &str, body: &[u8]) {
        self.pages.lock().unwrap().insert(path.into(), (None, body.to_vec()));
    }

    /// Serves `body` at `path` with this `Content-Type`, 200 and no validators, as a site's
    /// page or API is served.
    pub fn serve(&self, path: &str, content_type: &str, body: &[u8]) {
        let page = (Some(content_type.to_string()), body.to_vec());
        self.pages.lock().unwrap().insert(path.into(), page);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The requests for `path`.
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, pages: Pages) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buffer).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("/").to_string();
    let proxied = target.starts_with("http://");
    let path = if proxied {
        let rest = &target["http://".len()..];
        rest.find('/').map_or("/".to_string(), |at| rest[at..].to_string())
    } else {
        target
    };
    let headers: Vec<(String, String)> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let request = Seen {
        path: path.clone(),
        headers,
        proxied,
    };
    seen.lock().unwrap().push(request.clone());
    let page = pages.lock().unwrap().get(&path).cloned();
    let _ = match page {
        Some((None, body)) => feed(&mut stream, &request, &body).await,
        Some((Some(content_type), body)) => send(&mut stream, "200 OK", &[("Content-Type", content_type)], &body).await,
        None => respond(&mut stream, &path, &request).await,
    };
}

async fn send(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub const CHALLENGE_PAGE: &str = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body><script src=\"/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1\"></script></body></html>";

/// A feed as a plain feed server sends it: ETag and Last-Modified, and 304 when the request's
/// `If-None-Match` names the ETag.
async fn feed(stream: &mut TcpStream, request: &Seen, body: &[u8]) -> std::io::Result<()> {
    if request.header("if-none-match") == Some(ETAG) {
        return send(stream, "304 Not Modified", &[("ETag", ETAG.into())], b"").await;
    }
    let headers = [
        ("Content-Type", "application/rss+xml; charset=utf-8".to_string()),
        ("ETag", ETAG.into()),
        ("Last-Modified", LAST_MODIFIED.into()),
    ];
    send(stream, "200 OK", &headers, body).await
}

async fn respond(stream: &mut TcpStream, path: &str, request: &Seen) -> std::io::Result<()> {
    let xml = |t: &str| ("Content-Type", t.to_string());
    match path {
        "/plain.xml" | "/feed.xml" => feed(stream, request, feed_xml("plain").as_bytes()).await,
        // A server that ignores If-None-Match and always sends one ETag, whatever the feed says:
        // its feed changes with every request.
        "/constant-etag.xml" => {
            let title = format!(
                "version {}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            let headers = [xml("application/rss+xml"), ("ETag", "\"constant\"".into())];
            send(stream, "200 OK", &headers, feed_xml(&title).as_bytes()).await
        }
        // A server (or a cache in front of it) that answers 304 to everything.
        "/always-304" => send(stream, "304 Not Modified", &[], b"").await,
        "/challenge" => {
            let headers = [
                ("Server", "cloudflare".into()),
                ("cf-mitigated", "challenge".into()),
                xml("text/html"),
            ];
            send(stream, "403 Forbidden", &headers, CHALLENGE_PAGE.as_bytes()).await
        }
        "/cf503" => {
            let headers = [("Server", "cloudflare".into()), xml("text/html")];
            send(stream, "503 Service Unavailable", &headers, CHALLENGE_PAGE.as_bytes()).await
        }
        "/1020" => {
            let page = "<html><title>Access denied | site.test used Cloudflare to restrict access</title><body>error code: 1020</body></html>";
            let headers = [("Server", "cloudflare".into()), xml("text/html")];
            send(stream, "403 Forbidden", &headers, page.as_bytes()).await
        }
        "/429" => {
            send(
                stream,
                "429 Too Many Requests",
                &[("Retry-After", "120".into())],
                b"slow down",
            )
            .await
        }
        "/404" => send(stream, "404 Not Found", &[xml("text/html")], b"<html>not here</html>").await,
        "/html" => {
            let page = "<!DOCTYPE html><html><head><title>Welcome</title></head><body>news</body></html>";
            send(stream, "200 OK", &[xml("text/html")], page.as_bytes()).await
        }
        "/gzip.xml" => {
            let headers = [xml("application/rss+xml"), ("Content-Encoding", "gzip".into())];
            send(stream, "200 OK", &headers, &gzip(feed_xml("gzipped").as_bytes())).await
        }
        "/brotli.xml" => {
            let mut out = Vec::new();
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            writer.write_all(feed_xml("brotli").as_bytes()).unwrap();
            drop(writer);
            let headers = [xml("application/rss+xml"), ("Content-Encoding", "br".into())];
            send(stream, "200 OK", &headers, &out).await
        }
        "/latin1.xml" => {
            // No declaration: the charset is the Content-Type's.
            let mut body = b"<rss version=\"2.0\"><channel><title>caf".to_vec();
            body.push(0xe9);
            body.extend_from_slice(b" cr");
            body.push(0xe8);
            body.extend_from_slice(b"me</title><item><title>na");
            body.push(0xef);
            body.extend_from_slice(b"ve</title></item></channel></rss>");
            send(stream, "200 OK", &[xml("text/xml; charset=ISO-8859-1")], &body).await
        }
        "/loop" => send(stream, "302 Found", &[("Location", "/loop".into())], b"").await,
        // `/redirect-to/<url>`: a redirect to any url a test names (its own query left behind).
        p if p.starts_with("/redirect-to/") => {
            let target = p["/redirect-to/".len()..]
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string();
            send(stream, "302 Found", &[("Location", target)], b"").await
        }
        p if p.starts_with("/hop/") => {
            let n: usize = p["/hop/".len()..].parse().unwrap_or(0);
            let next = if n == 0 {
                "/plain.xml".to_string()
            } else {
                format!("/hop/{}", n - 1)
            };
            send(stream, "301 Moved Permanently", &[("Location", next)], b"").await
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            send(stream, "200 OK", &[], feed_xml("slow").as_bytes()).await
        }
        "/oversize-length" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 4000000000\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(b"<rss>").await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        "/oversize-chunked" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nTransfer-Encoding: chunked\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b' '; 64 * 1024];
            loop {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
        }
        "/bomb.gz" => {
            // 256 MB of spaces in a few hundred KB of gzip.
            let bomb = tokio::task::spawn_blocking(|| {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                let block = vec![b' '; 1024 * 1024];
                for _ in 0..256 {
                    encoder.write_all(&block).unwrap();
                }
                encoder.finish().unwrap()
            })
            .await
            .unwrap();
            let headers = [xml("application/rss+xml"), ("Content-Encoding", "gzip".into())];
            send(stream, "200 OK", &headers, &bomb).await
        }
        _ => send(stream, "404 Not Found", &[], b"").await,
    }
}
