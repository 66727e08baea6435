//! A fake FlareSolverr on 127.0.0.1: it keeps sessions like the real one, answers `request.get`
//! from pages the test registers, and can be told to misbehave (hang, cut off, garbage).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Action {
    /// An HTTP reply with this status and JSON body.
    Reply(u16, String),
    /// These bytes verbatim on the socket, then close (for cut-off and non-HTTP replies).
    Raw(Vec<u8>),
    /// Read the request, then never answer.
    Hang,
    /// Wait, then act.
    Delay(Duration, Box<Action>),
    /// Wait until the test opens the gate, then act: the test decides the order of replies.
    Gated(Gate, Box<Action>),
}

/// A gate a test opens to release one [`Action::Gated`] reply.
#[derive(Clone, Debug)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    /// A closed gate.
    fn default() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }
}

impl Gate {
    /// Lets one reply waiting at this gate through.
    pub fn open(&self) {
        self.0.add_permits(1);
    }

    /// `action`, held until the gate opens.
    pub fn hold(&self, action: Action) -> Action {
        Action::Gated(self.clone(), Box::new(action))
    }
}

#[derive(Default)]
struct State {
    log: Vec<Value>,
    sessions: BTreeSet<String>,
    pages: HashMap<String, Action>,
    /// Overrides for the next `request.get` calls, in order.
    queue: VecDeque<Action>,
    /// Every command of a name answers so: a solver broken for one command.
    commands: HashMap<String, Action>,
}

/// The running fake; stops when dropped.
pub struct FakeSolver {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeSolver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSolver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { url, state, task }
    }

    /// `request.get` of `url` answers with `action`.
    pub fn page(&self, url: &str, action: Action) {
        self.state.lock().unwrap().pages.insert(url.to_string(), action);
    }

    /// The next `request.get` answers with `action`, whatever its url.
    pub fn then(&self, action: Action) {
        self.state.lock().unwrap().queue.push_back(action);
    }

    /// Every `cmd` command answers with `action`, before anything else is decided.
    pub fn on_command(&self, cmd: &str, action: Action) {
        self.state.lock().unwrap().commands.insert(cmd.to_string(), action);
    }

    /// Every command received, in order.
    pub fn log(&self) -> Vec<Value> {
        self.state.lock().unwrap().log.clone()
    }

    /// `cmd` (and `session`, if any) of every command received, e.g. `request.get@flarefeed-x`.
    pub fn commands(&self) -> Vec<String> {
        self.log()
            .iter()
            .map(|c| match c.get("session").and_then(Value::as_str) {
                Some(s) => format!("{}@{s}", c["cmd"].as_str().unwrap_or("?")),
                None => c["cmd"].as_str().unwrap_or("?").to_string(),
            })
            .collect()
    }

    /// Waits until `count` `request.get` commands have arrived.
    pub async fn requests_reach(&self, count: usize) {
        let arrived = || self.log().iter().filter(|c| c["cmd"] == "request.get").count();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while arrived() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} requests arrived",
                arrived()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn sessions(&self) -> Vec<String> {
        self.state.lock().unwrap().sessions.iter().cloned().collect()
    }
}

/// An "ok" reply as the official build sends it, with `response` as given.
pub fn ok_reply(url: &str, response: &str) -> Action {
    let body = json!({
        "status": "ok", "message": "Challenge not detected!",
        "solution": {"url": url, "status": 200, "cookies": [], "userAgent": "Mozilla/5.0", "headers": {}, "response": response},
        "startTimestamp": 1, "endTimestamp": 2, "version": "3.5.0"
    });
    Action::Reply(200, body.to_string())
}

/// An HTTP reply with any bytes as its body (also bytes that are not UTF-8 or not JSON).
pub fn raw_reply(status: u16, body: &[u8]) -> Action {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    Action::Raw([head.as_bytes(), body].concat())
}

/// An error reply as both builds send it.
pub fn error_reply(message: &str) -> Action {
    Action::Reply(
        500,
        json!({"status": "error", "message": message, "startTimestamp": 1, "endTimestamp": 2, "version": "3.5.0"})
            .to_string(),
    )
}

/// Chrome's `<pre>` view of a text document, as the official build returns it.
pub fn pre_wrapped(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<html><head><meta name=\"color-scheme\" content=\"light dark\"></head><body><pre style=\"word-wrap: break-word; white-space: pre-wrap;\">{escaped}</pre></body></html>"
    )
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let Some(body) = read_request(&mut stream).await else {
        return;
    };
    let command: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return respond(
                &mut stream,
                Action::Reply(500, r#"{"error": "(400, 'Invalid JSON')"}"#.into()),
            )
            .await;
        }
    };
    let action = decide(&state, command);
    respond(&mut stream, action).await;
}

fn decide(state: &Mutex<State>, command: Value) -> Action {
    let mut state = state.lock().unwrap();
    state.log.push(command.clone());
    let session = command.get("session").and_then(Value::as_str).map(str::to_string);
    if let Some(action) = command
        .get("cmd")
        .and_then(Value::as_str)
        .and_then(|cmd| state.commands.get(cmd))
    {
        return action.clone();
    }
    let ok = |extra: Value| {
        let mut body =
            json!({"status": "ok", "message": "", "startTimestamp": 1, "endTimestamp": 2, "version": "3.5.0"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Action::Reply(200, body.to_string())
    };
    match command.get("cmd").and_then(Value::as_str) {
        Some("sessions.create") => {
            let id = session.unwrap_or_else(|| format!("auto-{}", state.log.len()));
            let message = if state.sessions.insert(id.clone()) {
                "Session created successfully."
            } else {
                "Session already exists."
            };
            ok(json!({"message": message, "session": id}))
        }
        Some("sessions.list") => ok(json!({"sessions": state.sessions.iter().collect::<Vec<_>>()})),
        Some("sessions.destroy") => match session {
            Some(id) if state.sessions.remove(&id) => ok(json!({"message": "The session has been removed."})),
            _ => error_reply("Error: The session doesn't exist."),
        },
        Some("request.get") => {
            if let Some(id) = session {
                state.sessions.insert(id);
            }
            if let Some(action) = state.queue.pop_front() {
                return action;
            }
            let url = command.get("url").and_then(Value::as_str).unwrap_or_default();
            state.pages.get(url).cloned().unwrap_or_else(|| {
                error_reply("Error: Error solving the challenge. Message: unknown error: net::ERR_NAME_NOT_RESOLVED")
            })
        }
        None => error_reply("Error: Request parameter 'cmd' is mandatory."),
        Some(other) => error_reply(&format!("Error: Request parameter 'cmd' = '{other}' is invalid.")),
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[header_end..header_end + length].to_vec())
}

async fn respond(stream: &mut TcpStream, action: Action) {
    let mut action = action;
    loop {
        match action {
            Action::Delay(wait, next) => {
                tokio::time::sleep(wait).await;
                action = *next;
            }
            Action::Gated(gate, next) => {
                gate.0.acquire().await.expect("the gate is never closed").forget();
                action = *next;
            }
            Action::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Action::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                return;
            }
            Action::Reply(status, body) => {
                let reason = match status {
                    200 => "OK",
                    429 => "Too Many Requests",
                    502 => "Bad Gateway",
                    _ => "Internal Server Error",
                };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}
