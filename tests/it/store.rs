//! The S3 adapter against two real S3 servers (s3s-fs in process, moto's server): a feed's
//! output goes as a stream of its pieces, never assembled, and a PUT the SDK retries sends it
//! whole again.

use std::sync::Arc;

use flarefeed::config::Bucket;
use flarefeed::feed::Document;
use flarefeed::store::{Body, Condition, Pieces, PutOptions, S3Store, Store, StoreError};

use crate::helpers::counting::CountingProxy;
use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint, S3Server};

/// A CJK feed of about 2 MB, as the seed's: Chinese titles with entities and a character
/// reference, CDATA bodies.
fn cjk_feed() -> String {
    let items: String = (0..2500)
        .map(|i| {
            format!(
                "<item><title>第{i}帖：服务器 &amp; 网络 &lt;讨论&gt; &#x4E2D;</title>\
                 <link>https://example.test/post/{i}</link><guid>https://example.test/post/{i}</guid>\
                 <description><![CDATA[<p>这是第{i}个帖子的内容，包含一些中文文本和<b>标记</b>。</p>\
                 <pre>cargo build --release</pre>]]></description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>论坛</title>\
         <link>https://example.test/</link><description>最新帖子</description>\
         <lastBuildDate>Mon, 01 Jan 2024 00:00:00 GMT</lastBuildDate>{items}</channel></rss>"
    )
}

fn options(sha256: &str, condition: Condition) -> PutOptions<'_> {
    PutOptions {
        content_type: "application/rss+xml",
        cache_control: "public, max-age=123",
        sha256: Some(sha256),
        condition,
    }
}

/// A store on `server`, reached through a proxy that can fail PUTs.
fn through(proxy: &CountingProxy, server: &impl S3Endpoint) -> S3Store {
    let bucket = Bucket {
        bucket: BUCKET.into(),
        endpoint: Some(proxy.endpoint.clone()),
        path_style: true,
    };
    S3Store::with_sdk_config(&server.sdk_config(), &bucket, "feeds/")
}

/// Issue 30: the output of a formatted document is PUT as a stream of known length with its
/// CRC32. The first attempt fails after its whole body was sent (500 InternalError); the SDK
/// retries, and the retry sends every byte again from a fresh reader. The object is the
/// document's output, byte for byte, on both servers; a conditional write of pieces still
/// refuses a changed object.
#[tokio::test]
async fn a_feed_streams_to_s3_and_a_retried_put_sends_it_whole() {
    let document = Arc::new(Document::format_within(cjk_feed(), usize::MAX).unwrap());
    streams_and_retries("s3s", &S3Server::start().await, &document).await;
    streams_and_retries("moto", &MotoServer::start().await, &document).await;
}

async fn streams_and_retries(name: &str, server: &impl S3Endpoint, document: &Arc<Document>) {
    let expected = document.to_xml();
    let sha256 = document.fingerprint();
    let proxy = CountingProxy::start(server.endpoint()).await;
    let store = through(&proxy, server);
    proxy.fail_next_puts(1);
    let version = store
        .put(
            "big.xml",
            Body::Pieces(document.clone()),
            options(&sha256, Condition::Absent),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let puts: Vec<usize> = proxy
        .take()
        .iter()
        .filter(|seen| seen.method == "PUT" && seen.path == format!("/{BUCKET}/feeds/big.xml"))
        .map(|seen| seen.bytes)
        .collect();
    assert_eq!(
        puts,
        [expected.len(), expected.len()],
        "{name}: the failed PUT and its retry, each whole"
    );
    assert_eq!(server.text("feeds/big.xml").await, expected, "{name}");
    let head = store.head("big.xml").await.unwrap().unwrap();
    assert_eq!(
        (head.version, head.sha256.as_deref()),
        (version, Some(sha256.as_str())),
        "{name}"
    );
    let again = store
        .put(
            "big.xml",
            Body::Pieces(document.clone()),
            options(&sha256, Condition::Absent),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })), "{name}: {again:?}");
}

/// Pieces whose reader gives other bytes than were checksummed: the server, checking the
/// CRC32 the request carries, refuses the write, and nothing is stored.
struct Lying(Document);

impl Pieces for Lying {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn write_to(&self, writer: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.0.write_to(writer)
    }

    fn reader(self: Arc<Self>) -> Box<dyn std::io::Read + Send + Sync> {
        let mut bytes = self.0.to_xml().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        Box::new(std::io::Cursor::new(bytes))
    }
}

/// The CRC32 a streamed PUT carries is the body's: s3s, which checks it as S3 does, takes the
/// document's output (the test above) and refuses other bytes with S3's `BadDigest`. (moto does
/// not check it, and s3s-fs keeps the bytes it refused, so neither shows that nothing is stored;
/// S3 stores nothing: https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html.)
#[tokio::test]
async fn a_streamed_put_is_checked_against_its_crc32() {
    let s3s = S3Server::start().await;
    let proxy = CountingProxy::start(&s3s.endpoint).await;
    let store = through(&proxy, &s3s);
    let lying = Arc::new(Lying(Document::format_within(cjk_feed(), usize::MAX).unwrap()));
    let put = store
        .put("bad.xml", Body::Pieces(lying), options("x", Condition::Any))
        .await;
    assert!(
        matches!(&put, Err(StoreError::S3 { detail, .. }) if detail.contains("BadDigest")),
        "{put:?}"
    );
}
