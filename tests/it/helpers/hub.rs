//! A WebSub hub on 127.0.0.1 that records every publish ping's body and answers 202 Accepted,
//! or, told to fail, 500.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct FakeHub {
    /// `http://127.0.0.1:<port>/`.
    pub url: String,
    pings: Arc<Mutex<Vec<(String, String)>>>,
    failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHub {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let pings: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let (log, fail) = (pings.clone(), failing.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (log, fail) = (log.clone(), fail.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let text = String::from_utf8_lossy(&buffer).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buffer.len() >= end + 4 + length {
                                let content_type = text[..end]
                                    .lines()
                                    .find_map(|l| {
                                        l.to_ascii_lowercase()
                                            .strip_prefix("content-type:")
                                            .map(|v| v.trim().to_string())
                                    })
                                    .unwrap_or_default();
                                let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                                log.lock().unwrap().push((content_type, body));
                                break;
                            }
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let status = if fail.load(Ordering::SeqCst) {
                        "500 Internal Server Error"
                    } else {
                        "202 Accepted"
                    };
                    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            pings,
            failing,
            task,
        }
    }

    /// Every ping received: its `Content-Type` and its body.
    pub fn pings(&self) -> Vec<(String, String)> {
        self.pings.lock().unwrap().clone()
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}
